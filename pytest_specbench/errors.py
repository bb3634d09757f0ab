"""Every error pytest-specbench raises on purpose.

One root, so callers can catch the whole family and nothing else::

    SpecbenchError
    ├── ConfigError            a setting or option value that cannot work (shown as a usage error)
    ├── SuiteError             a spec suite or dataset that cannot be read (names file, field, line)
    ├── BackendError           a model call that did not produce a usable completion
    │   ├── BackendUnavailable     an optional dependency or model file is missing
    │   ├── CapabilityError        the backend cannot serve what a method needs (e.g. prefill)
    │   ├── RequestFailed          the server kept failing after the bounded retries
    │   └── TransportError         one HTTP exchange failed (backends.http: timeout, connection, status);
    │                              the retry policy reads its kind and wraps the last one in RequestFailed
    └── JudgeError             the judge's answer could not be read after its retries

Errors raised by third-party clients are chained with ``raise ... from exc`` and their text passes
through :func:`pytest_specbench.secrets.redact` before it reaches any output.
"""

from __future__ import annotations


class SpecbenchError(Exception):
    """Root of the pytest-specbench error tree."""


class ConfigError(SpecbenchError):
    """An option, ini value or profile that cannot be used as given."""


class SuiteError(SpecbenchError):
    """A suite or dataset file that cannot be loaded.

    The message always starts with the file (and line, when the parser knows it) and the field, so a
    user can go straight to the mistake.
    """

    def __init__(self, path: str, message: str, *, field: str | None = None, line: int | None = None):
        self.path = path
        self.field = field
        self.line = line
        self.detail = message
        where = path if line is None else f"{path}:{line}"
        at = f" (field {field})" if field else ""
        super().__init__(f"{where}{at}: {message}")


class BackendError(SpecbenchError):
    """A model call that did not yield a usable completion."""


class BackendUnavailable(BackendError):
    """The backend needs something that is not installed or not present."""


class CapabilityError(BackendError):
    """The backend cannot do what the method asks of it."""


class RequestFailed(BackendError):
    """A request that still failed after the retry policy gave up.

    ``attempts`` is how many times it was sent, so reports can show that the bound was respected.
    """

    def __init__(self, message: str, *, attempts: int):
        self.attempts = attempts
        super().__init__(f"{message} (after {attempts} attempt{'s' if attempts != 1 else ''})")


class JudgeError(SpecbenchError):
    """The judge's answer could not be turned into one verdict per spec.

    ``raw`` keeps the judge's last answer so the test error can show what it actually said.
    """

    def __init__(self, message: str, *, raw: str = "", attempts: int = 1):
        self.raw = raw
        self.attempts = attempts
        super().__init__(message)
