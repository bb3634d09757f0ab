"""Backends by provider name, imported only when a run asks for them.

Third parties add providers through the ``pytest_specbench_add_backends`` hook (see
:mod:`pytest_specbench.hookspec`); the registry below is where those end up too.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from ..errors import BackendUnavailable, ConfigError

if TYPE_CHECKING:
    from .base import Backend, BackendSpec

BackendFactory = Callable[["BackendSpec"], "Backend"]

#: provider -> (module, class, what to install if the import fails)
BUILTIN_PROVIDERS: dict[str, tuple[str, str, str]] = {
    "llamacpp": ("pytest_specbench.backends.llamacpp", "LlamaCppBackend", 'pip install "pytest-specbench[embedded]"'),
    "openai": ("pytest_specbench.backends.openai_compat", "OpenAICompatBackend", "pip install openai"),
    "vllm-server": ("pytest_specbench.backends.vllm_server", "VLLMServerBackend", "pip install openai"),
    "vllm": ("pytest_specbench.backends.vllm_engine", "VLLMEngineBackend", 'pip install "pytest-specbench[vllm]"'),
}


#: Third-party modules a built-in provider imports when its first backend is created (the slow part of it).
PROVIDER_IMPORTS: dict[str, tuple[str, ...]] = {"openai": ("openai",), "vllm-server": ("openai",)}


def preload(providers: Iterable[str]) -> None:
    """Import what these providers will need, on a background thread, and return at once.

    An xdist worker sits idle between sending its collection and receiving its first tests; importing the
    openai client there (0.7 s of CPU on this project's machine) takes it off the path to the first
    request. A failed import is left for the real one to report, with its install hint.
    """
    import threading

    modules = sorted({m for p in providers for m in PROVIDER_IMPORTS.get(p, ())})

    def run() -> None:
        for name in modules:
            try:
                importlib.import_module(name)
            except ImportError:
                pass  # BackendRegistry.create raises BackendUnavailable with the hint when it is really needed

    if modules:
        threading.Thread(target=run, name="specbench-preload", daemon=True).start()


class BackendRegistry:
    """Maps provider names to factories; built-ins load lazily, plugins register callables."""

    def __init__(self) -> None:
        self._extra: dict[str, BackendFactory] = {}

    def register(self, provider: str, factory: BackendFactory) -> None:
        self._extra[provider] = factory

    @property
    def providers(self) -> list[str]:
        return sorted({*BUILTIN_PROVIDERS, *self._extra})

    def check(self, provider: str) -> None:
        if provider not in BUILTIN_PROVIDERS and provider not in self._extra:
            raise ConfigError(f"unknown model provider {provider!r}; valid providers: {', '.join(self.providers)} (write PROVIDER/NAME, e.g. llamacpp/smollm2 or openai/gpt-4.1)")

    def create(self, spec: BackendSpec) -> Backend:
        self.check(spec.provider)
        if spec.provider in self._extra:
            return self._extra[spec.provider](spec)
        module_name, class_name, hint = BUILTIN_PROVIDERS[spec.provider]
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise BackendUnavailable(f"the {spec.provider} provider cannot be loaded ({exc}); {hint}") from exc
        return getattr(module, class_name)(spec)
