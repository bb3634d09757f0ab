"""The one road from a model reference to a backend spec and its decoding.

A run names each role (the model under test, the judge) as ``PROVIDER/NAME`` or as the name of a
profile (:mod:`pytest_specbench.profiles`). :func:`resolve_model` turns either into a
:class:`ResolvedModel`: the :class:`~pytest_specbench.backends.base.BackendSpec` the registry builds the
backend from (backend options such as a profile's ``prefill_template`` travel on it) and the
:class:`~pytest_specbench.backends.base.Decoding` the role samples with. The plugin, the engine and the
``specbench`` toolkit all call it, so a provider added through ``pytest_specbench_add_backends``, a profile
and the HTTP-client choice mean the same thing everywhere.

Precedence for every decoding value: a command-line flag when given, then the profile, then the
role's default. The completion budget's default is "the server's" (nothing is sent) for servers; a
backend class that runs in-process (``needs_max_tokens``) gets the paper's budget instead: 8,400
tokens for a model that thinks first (profile ``thinking: true``, or a model known by name to think by
default, see :func:`~pytest_specbench.templates.thinks_by_default`), 4,200 otherwise.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from .backends.base import INSTRUCT_MAX_TOKENS, REASONING_MAX_TOKENS, BackendSpec, Decoding
from .backends.http import HTTP_CLIENTS
from .errors import ConfigError

if TYPE_CHECKING:
    from .backends import BackendRegistry
    from .profiles import Profile, ProfileFile


@dataclass(frozen=True)
class ResolvedModel:
    """A role's model: how to build its backend, how it samples, and where that came from."""

    ref: str
    spec: BackendSpec
    decoding: Decoding
    #: Thinks before answering (decides the in-process budget); from the profile or the model's name.
    reasoning: bool
    profile: Profile | None = None

    @property
    def provider(self) -> str:
        return self.spec.provider


def is_profile_ref(ref: str) -> bool:
    """A reference without a slash names a profile; ``PROVIDER/NAME`` names a provider's model."""
    return "/" not in ref


def _profile(ref: str, profiles: ProfileFile | None) -> Profile:
    if profiles is None:
        raise ConfigError(f"{ref!r} is not PROVIDER/NAME and no model profiles are loaded to look it up in")
    return profiles.get(ref)


def provider_of(ref: str, profiles: ProfileFile | None = None) -> str:
    """The provider of ``PROVIDER/NAME`` or of a profile (an unknown profile lists the known ones)."""
    return ref.partition("/")[0] if not is_profile_ref(ref) else _profile(ref, profiles).provider


def model_name(ref: str, profiles: ProfileFile | None = None) -> str:
    """The provider's model name of ``PROVIDER/NAME`` or of a profile."""
    return ref.partition("/")[2] if not is_profile_ref(ref) else _profile(ref, profiles).model


def default_budget(reasoning: bool) -> int:
    """The paper's completion budget for a model that thinks first, or for an instruct model."""
    return REASONING_MAX_TOKENS if reasoning else INSTRUCT_MAX_TOKENS


def resolve_model(
    ref: str,
    registry: BackendRegistry,
    profiles: ProfileFile | None = None,
    *,
    base_urls: tuple[str, ...] = (),
    timeout: float | None = None,
    retries: int | None = None,
    n_ctx: int | None = None,
    http_client: str = HTTP_CLIENTS[0],
    temperature: float | None = None,
    max_tokens: int | None = None,
    seed: int | None = None,
    default_temperature: float | None = None,
    managed: bool = False,
) -> ResolvedModel:
    """Resolve ``ref`` (``PROVIDER/NAME`` or a profile name) for one role.

    ``temperature`` and ``max_tokens`` are the command line's values (None when not given) and win over
    the profile; ``default_temperature`` applies when neither sets one (0 for the judge, as in the
    paper). Raises :class:`ConfigError` for an unknown provider or profile, listing the valid ones.
    """
    connection: dict[str, Any] = {
        "timeout": timeout,
        "max_retries": retries,
        "n_ctx": n_ctx,
        "http_client": http_client,
        "managed": managed,
    }
    if is_profile_ref(ref):
        profile: Profile | None = _profile(ref, profiles)
        assert profile is not None
        registry.check(profile.provider)
        spec = profile.backend_spec(base_urls=base_urls, **connection)
        options: list[tuple[str, Any]] = []
        if profile.engine_args and profile.provider == "vllm":
            # JSON keeps the spec hashable whatever the values are (vLLM takes nested configs too).
            options.append(("engine_args", json.dumps(dict(profile.engine_args), sort_keys=True)))
        if profile.prefill_template and registry.capability(profile.provider, "supports_thinking_template"):
            options.append(("prefill_template", profile.prefill_template))
        if options:
            spec = replace(spec, options=tuple(options))
        decoding = profile.decoding(max_tokens=max_tokens, seed=seed, temperature=temperature)
        reasoning = profile.thinking if profile.thinking is not None else _thinks(spec.name)
    else:
        profile = None
        provider, _, name = ref.partition("/")
        if not provider or not name:
            raise ConfigError(
                f"{ref!r} is not PROVIDER/NAME (e.g. llamacpp/smollm2 or openai/gpt-4.1) or a profile name"
            )
        registry.check(provider)
        spec = BackendSpec(
            provider, name, base_urls=tuple(base_urls), **{k: v for k, v in connection.items() if v is not None}
        )
        decoding = Decoding(temperature=temperature, max_tokens=max_tokens, seed=seed)
        reasoning = _thinks(name)
    if decoding.temperature is None and default_temperature is not None:
        decoding = replace(decoding, temperature=default_temperature)
    if decoding.max_tokens is None and registry.capability(spec.provider, "needs_max_tokens"):
        decoding = replace(decoding, max_tokens=default_budget(reasoning))
    return ResolvedModel(ref=ref, spec=spec, decoding=decoding, reasoning=reasoning, profile=profile)


def _thinks(name: str) -> bool:
    from .templates import thinks_by_default

    return thinks_by_default(name)
