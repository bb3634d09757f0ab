"""Errors of the ``specbench`` toolkit, grafted onto the package's one error tree.

::

    SpecbenchError                          (pytest_specbench.errors)
    └── ToolkitError                        anything a toolkit command refuses or cannot finish
        ├── InputError                      a file or argument the user must fix (exit status 2)
        │   └── IncompatibleReports         agree was given reports of different suites
        └── DownloadError                   the dataset could not be fetched
            └── ChecksumMismatch            a file arrived but is not the published one

Every message names the file or option at fault and says what would work instead, because the
person reading it is at a terminal, not in a debugger.
"""

from __future__ import annotations

from ..errors import SpecbenchError


class ToolkitError(SpecbenchError):
    """Root of the toolkit's errors; the CLI prints the message and exits 1."""

    exit_status = 1


class InputError(ToolkitError):
    """Bad input the user can fix: a wrong file, an impossible option value. Exit status 2."""

    exit_status = 2


class IncompatibleReports(InputError):
    """Two reports (or a report and labels) that do not cover the same cases and specs."""


class DownloadError(ToolkitError):
    """A dataset file could not be fetched (network, HTTP status, disk)."""


class ChecksumMismatch(DownloadError):
    """A downloaded file whose SHA-256 is not the one recorded in the manifest."""

    def __init__(self, name: str, expected: str, got: str):
        self.name = name
        self.expected = expected
        self.got = got
        super().__init__(
            f"{name}: checksum mismatch (expected sha256 {expected[:16]}…, got {got[:16]}…); "
            "the file was not kept. The source may have changed or the transfer was corrupted: "
            "retry, or point --base-url/--manifest at a copy you trust"
        )
