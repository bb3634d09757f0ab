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


def builtin_providers_with(capability: str) -> list[str]:
    """Built-in providers whose backend class has ``capability`` (e.g. ``supports_prefill``), for error messages."""
    return BackendRegistry().providers_with(capability)


class BackendRegistry:
    """Maps provider names to backend classes or factories: the only place a backend is built.

    Built-ins load lazily (their modules import nothing heavy; the engines they drive load on first
    use). Plugins register a :class:`~pytest_specbench.backends.base.Backend` subclass, or any callable
    ``factory(spec) -> Backend``; what a provider can do is read from its class, never from a list of
    names, so a registered class answers capability questions like a built-in one.
    """

    def __init__(self) -> None:
        self._extra: dict[str, BackendFactory] = {}

    def register(self, provider: str, factory: BackendFactory) -> None:
        self._extra[provider] = factory

    @property
    def providers(self) -> list[str]:
        return sorted({*BUILTIN_PROVIDERS, *self._extra})

    def check(self, provider: str) -> None:
        if provider not in BUILTIN_PROVIDERS and provider not in self._extra:
            raise ConfigError(
                f"unknown model provider {provider!r}; valid providers: {', '.join(self.providers)} (write PROVIDER/NAME, e.g. llamacpp/smollm2 or openai/gpt-4.1)"
            )

    def backend_class(self, provider: str) -> type[Backend] | None:
        """The class behind ``provider`` (imported on first use); None for a plain factory function."""
        self.check(provider)
        if provider in self._extra:
            factory = self._extra[provider]
            return factory if isinstance(factory, type) else None
        module_name, class_name, hint = BUILTIN_PROVIDERS[provider]
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise BackendUnavailable(f"the {provider} provider cannot be loaded ({exc}); {hint}") from exc
        cls: type[Backend] = getattr(module, class_name)
        return cls

    def capability(self, provider: str, name: str) -> bool:
        """Whether ``provider``'s backend class declares ``name`` (False when a factory hides its class)."""
        return bool(getattr(self.backend_class(provider), name, False))

    def providers_with(self, name: str) -> list[str]:
        """Providers whose class declares capability ``name``; providers that cannot be loaded are left out."""
        out = []
        for provider in self.providers:
            try:
                if self.capability(provider, name):
                    out.append(provider)
            except BackendUnavailable:
                continue
        return out

    def create(self, spec: BackendSpec) -> Backend:
        self.check(spec.provider)
        if spec.provider in self._extra:
            return self._extra[spec.provider](spec)
        cls = self.backend_class(spec.provider)
        assert cls is not None
        return cls(spec)

    def preload(self, providers: Iterable[str], http_client: str) -> None:
        """Import the HTTP client these providers will need on a background thread, and return at once.

        An xdist worker sits idle between sending its collection and receiving its first tests; importing
        the client there takes it off the path to the first request.
        """
        from ..warmup import import_in_background

        if any(self.capability(p, "uses_http") for p in providers):
            import_in_background([http_client], name="specbench-preload")
