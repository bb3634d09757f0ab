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
    "openai": ("pytest_specbench.backends.openai_compat", "OpenAICompatBackend", "pip install aiohttp"),
    "vllm-server": ("pytest_specbench.backends.vllm_server", "VLLMServerBackend", "pip install aiohttp"),
    "vllm": ("pytest_specbench.backends.vllm_engine", "VLLMEngineBackend", 'pip install "pytest-specbench[vllm]"'),
}


#: Providers whose backends send over an HTTP transport (pytest_specbench.backends.http).
HTTP_PROVIDERS = frozenset({"openai", "vllm-server"})


def preload(providers: Iterable[str], http_client: str) -> None:
    """Import the HTTP client these providers will need on a background thread, and return at once.

    An xdist worker sits idle between sending its collection and receiving its first tests; importing
    the client there takes it off the path to the first request.
    """
    from ..warmup import import_in_background

    if any(p in HTTP_PROVIDERS for p in providers):
        import_in_background([http_client], name="specbench-preload")


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

    def backend_class(self, provider: str) -> type[Backend] | None:
        """The class a provider builds, where that is known without building one: a class a plugin
        registered, else the built-in class of that name; None for an opaque factory function.

        Capability flags are class attributes, so this is how a run learns what its model can do
        (prefill, JSON Schema) before any backend exists.
        """
        factory = self._extra.get(provider)
        if isinstance(factory, type):
            return factory
        if provider not in BUILTIN_PROVIDERS:
            return None
        module_name, class_name, _ = BUILTIN_PROVIDERS[provider]
        try:
            backend_class: type[Backend] = getattr(importlib.import_module(module_name), class_name)
        except ImportError:
            return None
        return backend_class

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
