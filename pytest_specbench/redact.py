"""Keep API keys out of everything the plugin writes.

Keys are read from the environment by name; their values are registered here and scrubbed from any
text (error messages from HTTP clients included) before it reaches the terminal, reports or caches.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

MASK = "[REDACTED]"
# Bearer tokens and common key shapes, caught even when the value was never registered.
_PATTERNS = (
    re.compile(r"(?i)(authorization\s*[:=]\s*)(bearer\s+)?[^\s'\",}]+"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"\bsk-[A-Za-z0-9_-]{8,}"),
)
#: A password in a URL's user-info part (``http://user:secret@host``), as a base URL may carry one.
_URL_PASSWORD = re.compile(r"(://[^/\s:@]*:)[^@\s/]+@")


class Redactor:
    """Scrubs registered secret values and key-shaped strings from text."""

    def __init__(self, secrets: Iterable[str] = ()):
        self._secrets: tuple[str, ...] = ()
        self._register(s for s in secrets if s and len(s) >= 4)

    def _register(self, values: Iterable[str]) -> None:
        # longest first: a secret that contains another is masked whole
        self._secrets = tuple(sorted({*self._secrets, *values}, key=len, reverse=True))

    def add_env(self, *names: str) -> None:
        self._register(value for name in names if (value := os.environ.get(name)) and len(value) >= 4)

    @property
    def registered(self) -> bool:
        """Whether any secret value is registered (:meth:`values` changes nothing otherwise)."""
        return bool(self._secrets)

    def values(self, text: str) -> str:
        """Scrub only the registered values: for model output, where key-shaped text is usually just code."""
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text

    def __call__(self, text: str) -> str:
        text = self.values(text)
        for pattern in _PATTERNS:
            text = pattern.sub(lambda m: (m.group(1) if m.lastindex else "") + MASK, text)
        return _URL_PASSWORD.sub(rf"\1{MASK}@", text)
