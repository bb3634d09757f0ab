"""Model profiles: named model + decoding settings in a YAML file (``--specbench-model-config``).

Why profiles: the paper's numbers depend on per-model sampling (Qwen3's thinking and non-thinking modes
want different settings) and on switches such as ``enable_thinking``. Writing them once, in a file
under version control, beats repeating six flags per run. The shipped file
(``pytest_specbench/profiles/paper.yaml``, :data:`SHIPPED`) holds the paper's main models.

File layout::

    profiles:
      Qwen3-14B:                      # the name a run refers to
        provider: vllm-server         # any registered provider: vllm-server, vllm, openai, llamacpp, ...
        model: Qwen/Qwen3-14B         # the provider's model name
        thinking: false               # -> chat_template_kwargs.enable_thinking
        temperature: 0.7
        top_p: 0.8
        top_k: 20
        min_p: 0.0
        max_tokens: 4200
        serve_args: --max-model-len 16384   # for --specbench-serve (a list or one quoted string)
        engine_args: {max_model_len: 16384} # for provider vllm: keyword arguments of vllm.LLM
    method_options:                   # optional: defaults for --specbench-method-opt
      self_refine: {iterations: 3}

Every key is checked: a typo is a :class:`~pytest_specbench.errors.ConfigError` naming the file, the
profile and the key, with the valid keys (and the closest one) listed.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .backends.base import BackendSpec, Decoding
from .errors import ConfigError

#: The profiles file shipped with the package.
SHIPPED = "paper.yaml"
TOP_LEVEL_KEYS = ("profiles", "method_options")


@dataclass(frozen=True)
class Profile:
    """One named model configuration, as read from a profiles file."""

    name: str
    provider: str
    model: str
    description: str = ""
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    thinking: bool | None = None
    chat_template_kwargs: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)
    prefill_template: str | None = None
    base_urls: tuple[str, ...] = ()
    api_key_env: str | None = None
    #: Arguments for ``--specbench-serve``'s server (``--max-model-len``, ``--enforce-eager``, ...).
    serve_args: tuple[str, ...] = ()
    #: Keyword arguments for the in-process ``vllm.LLM`` (``enforce_eager``, ``max_model_len``, ...).
    engine_args: Mapping[str, Any] = field(default_factory=dict)
    source: str = ""

    @property
    def model_ref(self) -> str:
        """``PROVIDER/NAME``, the form ``--specbench-model`` takes."""
        return f"{self.provider}/{self.model}"

    def template_kwargs(self) -> dict[str, Any]:
        kwargs = dict(self.chat_template_kwargs)
        if self.thinking is not None:
            kwargs["enable_thinking"] = self.thinking
        return kwargs

    def decoding(
        self, *, max_tokens: int | None = None, seed: int | None = None, temperature: float | None = None
    ) -> Decoding:
        """The :class:`Decoding` for this profile; explicit arguments (command-line flags) win over the file."""
        extra: dict[str, Any] = dict(self.extra)
        if self.top_k is not None:
            extra["top_k"] = self.top_k
        if self.min_p is not None:
            extra["min_p"] = self.min_p
        kwargs = self.template_kwargs()
        if kwargs:
            extra["chat_template_kwargs"] = kwargs
        return Decoding(
            temperature=self.temperature if temperature is None else temperature,
            max_tokens=max_tokens or self.max_tokens,
            seed=self.seed if seed is None else seed,
            top_p=self.top_p,
            extra=extra,
        )

    def backend_spec(self, **overrides: Any) -> BackendSpec:
        """A :class:`BackendSpec` for this profile; ``overrides`` (timeout, max_retries, base_urls, …) win.

        Backend options (``prefill_template``) are added by :func:`pytest_specbench.models.resolve_model`,
        which knows from the provider's class whether it takes them.
        """
        values: dict[str, Any] = {}
        if self.base_urls:
            values["base_urls"] = self.base_urls
        if self.api_key_env:
            values["api_key_env"] = self.api_key_env
        values.update({k: v for k, v in overrides.items() if v not in (None, ())})
        return BackendSpec(self.provider, self.model, **values)


@dataclass(frozen=True)
class ProfileFile:
    """A parsed profiles file: its profiles by name, and method option defaults by method."""

    path: str
    profiles: Mapping[str, Profile]
    method_options: Mapping[str, Mapping[str, Any]]

    def get(self, name: str) -> Profile:
        try:
            return self.profiles[name]
        except KeyError:
            close = difflib.get_close_matches(name, list(self.profiles), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{self.path}: no profile {name!r}{hint}; profiles: {', '.join(self.profiles)}") from None


# ---------------------------------------------------------------------------------------- key checks

_FLOAT = "a number"


def _number(value: Any, lo: float, hi: float | None, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"must be {what}, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        rng = f"between {lo:g} and {hi:g}" if hi is not None else f"at least {lo:g}"
        raise ValueError(f"must be {rng}, got {value!r}")
    return float(value)


def _whole(value: Any, lo: int, what: str = "a whole number") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"must be {what}, got {value!r}")
    if value < lo:
        raise ValueError(f"must be at least {lo}, got {value!r}")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"must be a non-empty string, got {value!r}")
    return value.strip()


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"must be true or false, got {value!r}")
    return value


def _mapping(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise TypeError(f"must be a mapping, got {value!r}")
    return dict(value)


def _args(value: Any) -> tuple[str, ...]:
    """A list of command-line arguments, or one shell-quoted string of them."""
    import shlex

    if isinstance(value, str):
        return tuple(shlex.split(value))
    if not isinstance(value, list) or not all(
        isinstance(a, (str, int, float)) and not isinstance(a, bool) for a in value
    ):
        raise ValueError(f"must be a list of command-line arguments or one string of them, got {value!r}")
    return tuple(str(a) for a in value)


def _urls(value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if (
        not isinstance(items, list)
        or not items
        or not all(isinstance(u, str) and u.startswith(("http://", "https://")) for u in items)
    ):
        raise ValueError(f"must be an http(s) URL or a list of them, got {value!r}")
    return tuple(items)


#: profile key -> (Profile field, reader that raises TypeError or ValueError with the reason)
PROFILE_KEYS: dict[str, tuple[str, Any]] = {
    "provider": ("provider", _text),
    "model": ("model", _text),
    "description": ("description", lambda v: str(v).strip()),
    "temperature": ("temperature", lambda v: _number(v, 0.0, 2.0, _FLOAT)),
    "top_p": ("top_p", lambda v: _number(v, 0.0, 1.0, _FLOAT)),
    "top_k": ("top_k", lambda v: v if v == -1 else _whole(v, 1)),
    "min_p": ("min_p", lambda v: _number(v, 0.0, 1.0, _FLOAT)),
    "max_tokens": ("max_tokens", lambda v: _whole(v, 1)),
    "seed": ("seed", lambda v: _whole(v, 0)),
    "thinking": ("thinking", _flag),
    "chat_template_kwargs": ("chat_template_kwargs", _mapping),
    "extra": ("extra", _mapping),
    "prefill_template": ("prefill_template", _text),
    "base_url": ("base_urls", _urls),
    "base_urls": ("base_urls", _urls),
    "api_key_env": ("api_key_env", _text),
    "serve_args": ("serve_args", _args),
    "engine_args": ("engine_args", _mapping),
}
REQUIRED_KEYS = ("provider", "model")


def _unknown(path: str, where: str, unknown: list[str], valid: list[str]) -> ConfigError:
    hints = []
    for key in unknown:
        close = difflib.get_close_matches(key, valid, n=1)
        hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return ConfigError(
        f"{path}: {where}: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(hints)}; valid keys: {', '.join(valid)}"
    )


def parse_profile(path: str, name: str, raw: Any) -> Profile:
    """One profile from its YAML mapping; every problem names the file, the profile and the key."""
    where = f"profile {name!r}"
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: {where} must be a mapping of settings, got {type(raw).__name__}")
    unknown = sorted(k for k in raw if k not in PROFILE_KEYS)
    if unknown:
        raise _unknown(path, where, unknown, list(PROFILE_KEYS))
    missing = [k for k in REQUIRED_KEYS if k not in raw]
    if missing:
        raise ConfigError(f"{path}: {where}: missing key{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    if "base_url" in raw and "base_urls" in raw:
        raise ConfigError(f"{path}: {where}: give base_url or base_urls, not both")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        attr, reader = PROFILE_KEYS[key]
        try:
            values[attr] = reader(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{path}: {where}: key {key!r} {exc}") from None
    if "enable_thinking" in values.get("chat_template_kwargs", {}) and "thinking" in values:
        raise ConfigError(f"{path}: {where}: set thinking or chat_template_kwargs.enable_thinking, not both")
    if values.get("prefill_template"):
        from .templates import NAMED_TEMPLATES, SERVER_TEMPLATE

        template = values["prefill_template"]
        if template != SERVER_TEMPLATE and template not in NAMED_TEMPLATES:
            candidate = (Path(path).parent / template) if not Path(template).is_absolute() else Path(template)
            if not candidate.is_file():
                raise ConfigError(
                    f"{path}: {where}: key 'prefill_template': {template!r} is neither {SERVER_TEMPLATE!r}, one of {', '.join(NAMED_TEMPLATES)}, nor an existing file"
                )
            values["prefill_template"] = str(candidate)
    return Profile(name=name, source=path, **values)


def parse_profiles(path: str, data: Any) -> ProfileFile:
    """A whole profiles file from its parsed YAML."""
    from .methods import builtin_registry

    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: the file must be a mapping with a 'profiles' key")
    unknown = sorted(k for k in data if k not in TOP_LEVEL_KEYS)
    if unknown:
        raise _unknown(path, "top level", unknown, list(TOP_LEVEL_KEYS))
    raw_profiles = data.get("profiles")
    if not isinstance(raw_profiles, Mapping) or not raw_profiles:
        raise ConfigError(f"{path}: 'profiles' must map at least one profile name to its settings")
    profiles = {str(name): parse_profile(path, str(name), raw) for name, raw in raw_profiles.items()}
    method_options: dict[str, dict[str, Any]] = {}
    raw_methods = data.get("method_options") or {}
    if not isinstance(raw_methods, Mapping):
        raise ConfigError(f"{path}: 'method_options' must map method names to their options")
    for method, options in raw_methods.items():
        if not isinstance(options, Mapping):
            raise ConfigError(f"{path}: method_options.{method} must be a mapping of option names to values")
        try:
            if (
                str(method) in builtin_registry().names
            ):  # a plugin's own method is checked once the run's registry has it
                builtin_registry().resolve_options(str(method), options, complete=False)
        except ConfigError as exc:
            raise ConfigError(f"{path}: method_options: {exc}") from None
        method_options[str(method)] = dict(options)
    return ProfileFile(path=path, profiles=profiles, method_options=method_options)


def load_profiles(path: str | Path | None = None) -> ProfileFile:
    """Read a profiles file (default: the shipped :data:`SHIPPED`)."""
    import yaml

    if path is None:
        text = resources.files("pytest_specbench").joinpath("profiles").joinpath(SHIPPED).read_text(encoding="utf-8")
        label = f"<shipped {SHIPPED}>"
        base = str(Path(str(resources.files("pytest_specbench"))) / "profiles" / SHIPPED)
    else:
        p = Path(path).expanduser()
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read model profiles file {p}: {exc.strerror or exc}") from exc
        label = base = str(p)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{label}{at}: not valid YAML: {getattr(exc, 'problem', None) or exc}") from exc
    result = parse_profiles(base, data)
    return result if path is not None else ProfileFile(label, result.profiles, result.method_options)


def load_profile(name: str, path: str | Path | None = None) -> Profile:
    """One profile by name from ``path`` (default: the shipped file)."""
    return load_profiles(path).get(name)
