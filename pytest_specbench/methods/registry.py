"""Methods by name, each registered with the options it takes and what it needs from the run.

A registration is the whole contract of a method: the async function, its typed option table (defaults
and validation, :mod:`.options`), a cross-option check, and its *needs*. A need is either a backend
capability, named by the flag a :class:`~pytest_specbench.backends.base.Backend` class sets
(``prefill`` -> ``supports_prefill``), or a run resource the engine provides (``judge``: the run's own
spec judge, which ranks candidates). Needs may depend on the resolved options (Align3 needs prefill only
in its prefill mode), so they can be given as a function of them. The setup check reads only these
declarations and the backend's flags: no method or provider name is special.

Built-in methods are registered the same way a plugin registers its own in a ``conftest.py``
(see :func:`pytest_specbench.hookspec.pytest_specbench_add_methods`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import Any

from ..backends.base import Backend
from ..errors import CapabilityError, ConfigError
from .core import Method
from .options import OptionTable, resolve_options

#: Needs met by a backend capability flag, and how an error describes each.
BACKEND_NEEDS: dict[str, tuple[str, str]] = {
    "prefill": ("supports_prefill", "continues a partial assistant turn (prefill)"),
    "json_schema": ("supports_json_schema", "constrains its output to a JSON Schema"),
}
#: Needs the engine meets: the run's spec judge used as a ranking scorer.
RUN_NEEDS = frozenset({"judge"})

Needs = Collection[str] | Callable[[Mapping[str, Any]], Collection[str]]
OptionCheck = Callable[[str, Mapping[str, Any]], None]
#: Fixes the options that depend on what the backend can do (``auto`` choices), given its capabilities.
Settle = Callable[[Mapping[str, Any], frozenset[str]], dict[str, Any]]
#: The name a run with these (settled) options goes by in test ids, records and reports.
Label = Callable[[Mapping[str, Any]], str]


@dataclass(frozen=True)
class MethodInfo:
    """A registered method: how to run it, the options it takes, and what it needs."""

    name: str
    run: Method
    options: OptionTable = field(default_factory=dict)
    needs: Needs = ()
    #: Checks a combination of resolved options (e.g. a reward scorer without its URL); raises ConfigError.
    check: OptionCheck | None = None
    settle: Settle | None = None
    label: Label | None = None

    def resolve(self, given: Mapping[str, Any], *, complete: bool = True) -> dict[str, Any]:
        """Options with defaults filled in and every value read; ``complete`` also runs the cross-option check.

        The check is for a method about to run (a ranking method without a scorer is refused); options
        written for a method the run does not use are only read.
        """
        resolved = resolve_options(self.name, self.options, given)
        if complete and self.check is not None:
            self.check(self.name, resolved)
        return resolved

    def settled(self, options: Mapping[str, Any], capabilities: Collection[str]) -> dict[str, Any]:
        """Options with every backend-dependent choice made, so that ids, records and the run agree on what ran."""
        return self.settle(options, frozenset(capabilities)) if self.settle is not None else dict(options)

    def label_for(self, options: Mapping[str, Any]) -> str:
        """The method's name, or a variant name when the options make it a different method (``align3-chat``)."""
        return self.label(options) if self.label is not None else self.name

    def needs_for(self, options: Mapping[str, Any]) -> frozenset[str]:
        needs = self.needs(options) if callable(self.needs) else self.needs
        return frozenset(needs)


class MethodRegistry:
    """Methods by the name ``--specbench-method`` takes; starts with the built-ins unless told not to."""

    def __init__(self, *, builtins: bool = True) -> None:
        self._methods: dict[str, MethodInfo] = {}
        if builtins:
            register_builtin_methods(self)

    def register(
        self,
        name: str,
        method: Method,
        *,
        options: OptionTable | None = None,
        needs: Needs = (),
        check: OptionCheck | None = None,
        settle: Settle | None = None,
        label: Label | None = None,
    ) -> None:
        """Add (or replace) a method; ``options`` declares every option it accepts, ``needs`` what it requires.

        ``settle`` makes the choices that depend on the backend's capabilities; ``label`` names a variant
        whose results must not be compared with the plain method's.
        """
        if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            raise ConfigError(f"method names are lower-case identifiers, got {name!r}")
        if not callable(needs):
            unknown = sorted(set(needs) - set(BACKEND_NEEDS) - RUN_NEEDS)
            if unknown:
                raise ConfigError(
                    f"method {name!r} declares unknown needs {', '.join(unknown)}; known: {', '.join(sorted({*BACKEND_NEEDS, *RUN_NEEDS}))}"
                )
        self._methods[name] = MethodInfo(
            name, method, dict(options or {}), needs if callable(needs) else tuple(needs), check, settle, label
        )

    @property
    def names(self) -> list[str]:
        return sorted(self._methods)

    def info(self, name: str) -> MethodInfo:
        try:
            return self._methods[name]
        except KeyError:
            raise ConfigError(f"unknown method {name!r}; valid methods: {', '.join(self.names)}") from None

    def get(self, name: str) -> Method:
        return self.info(name).run

    def resolve_options(self, name: str, given: Mapping[str, Any], *, complete: bool = True) -> dict[str, Any]:
        return self.info(name).resolve(given, complete=complete)

    def run_options(
        self,
        run_methods: Collection[str],
        given: Mapping[str, Mapping[str, Any]],
        capabilities: Collection[str] | None = None,
    ) -> dict[str, dict[str, Any]]:
        """Resolved options of every method that runs or was given options (a typo in either is an error).

        With the model backend's ``capabilities`` known, the running methods' options are also settled.
        """
        out = {}
        for name in sorted({*run_methods, *given}):
            info = self.info(name)
            options = info.resolve(given.get(name, {}), complete=name in run_methods)
            out[name] = (
                info.settled(options, capabilities) if capabilities is not None and name in run_methods else options
            )
        return out

    def label(self, name: str, options: Mapping[str, Any]) -> str:
        return self.info(name).label_for(options)

    def check_backend(self, name: str, backend: Backend, options: Mapping[str, Any] | None = None) -> None:
        """Setup-time check, before any case runs: the options are valid and the backend has what the method needs."""
        info = self.info(name)
        resolved = info.resolve(options or {})
        for need in sorted(info.needs_for(resolved)):
            if need in BACKEND_NEEDS:
                require_capability(name, need, backend)

    def help(self) -> str:
        """One line per option, for ``--help`` and the README."""
        lines = []
        for name in self.names:
            for key, spec in self._methods[name].options.items():
                default = "auto" if spec.default is None else spec.default
                lines.append(f"{name}.{key} (default {default}): {spec.doc}")
        return "\n".join(lines)


def capabilities_of(backend: Backend | type[Backend] | Any) -> frozenset[str]:
    """The backend needs a backend (or backend class) meets, read from its capability flags."""
    return frozenset(need for need, (flag, _) in BACKEND_NEEDS.items() if getattr(backend, flag, False))


def require_capability(method: str, need: str, backend: Backend) -> None:
    """Refuse early, naming the built-in providers that can, when the backend lacks a capability."""
    flag, words = BACKEND_NEEDS[need]
    if not getattr(backend, flag, False):
        able = ", ".join(capable_providers(flag)) or "none built in"
        raise CapabilityError(
            f"{method} {words}, which the {backend.label} backend cannot do; use a provider whose backend can: {able}"
        )


@cache
def capable_providers(flag: str) -> tuple[str, ...]:
    """Built-in providers whose backend class sets ``flag``; read from the classes, so never out of date."""
    from ..backends import builtin_providers_with

    return tuple(builtin_providers_with(flag))


def register_builtin_methods(registry: MethodRegistry) -> None:
    """Register the paper's methods (and ``raw``), each family module the way a plugin would."""
    from . import align3, base, refine, selection, thinking

    for family in (base, thinking, align3, refine, selection):
        family.register(registry)


@lru_cache(maxsize=1)
def builtin_registry() -> MethodRegistry:
    """A shared registry of the built-ins, for callers that have no run (profile files, direct calls); read it, do not register on it."""
    return MethodRegistry()


def validate_method_options(
    name: str, options: Mapping[str, Any], registry: MethodRegistry | None = None
) -> dict[str, Any]:
    """Every option of method ``name`` with defaults filled in (built-ins unless a registry is given)."""
    return (registry or builtin_registry()).resolve_options(name, options)


def check_method_backend(
    method: str, backend: Backend, options: Mapping[str, Any] | None = None, registry: MethodRegistry | None = None
) -> None:
    """:meth:`MethodRegistry.check_backend` on ``registry`` (default: the built-ins)."""
    (registry or builtin_registry()).check_backend(method, backend, options)


def method_options_help(registry: MethodRegistry | None = None) -> str:
    return (registry or builtin_registry()).help()
