"""Putting a file on disk so that a reader never sees half of it, and a bad path costs that file only.

Every file this package writes for a user (the JSON, HTML and CSV/Parquet reports, the toolkit's suites,
logs' compacted copies, label files, the download stamp) goes through here. A target path is whatever
the user typed, so each kind of path is treated as it should be:

* a regular file, or a path that does not exist yet, is replaced atomically: a temporary sibling in the
  same folder (so the final move never crosses a filesystem) is written, flushed and ``fsync``-ed, then
  :func:`os.replace`-d over the target (atomic on POSIX). The new file gets the usual permissions (the
  old file's mode, or 0666 less the umask as ``open()`` would give), not a temporary file's private
  0600, so a CI artifact step run as another user can read it. On any failure, Ctrl-C included, the
  temporary file is removed and the target is left as it was;
* a character device (``/dev/null``, ``/dev/stdout``) or a FIFO with a reader is written in place
  through its own node: a rename would swap the device node for a regular file (as root, ``/dev/null``
  itself);
* a folder, a block device, a socket or a FIFO nobody reads is refused.

A write that fails is an :class:`OutputError` naming the path and the reason, so a caller with several
outputs can write the others and still print its summary; :func:`check_output_path` is the check made
before a run spends any calls. Writers that produce the file themselves (pandas' ``to_csv`` /
``to_parquet``) use :func:`atomic_path`, which hands out a temporary path; everything else streams into
the open file from :func:`atomic_open`, so a large report is never built as one string first.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from .errors import ConfigError, SpecbenchError


class OutputError(SpecbenchError):
    """A file that could not be written; the message names the path and why."""


def check_output_path(path: Path, shown: Path | str | None = None) -> str | None:
    """Why ``path`` cannot take a report, checked before the run; None when it looks writable.

    Only what is certain in advance is refused (a folder, a missing parent folder, a block device or
    socket); a full disk or a FIFO without a reader shows only when writing. ``shown`` is the path as
    the user wrote it, for the message (default: ``path``).
    """
    problem = _path_problem(path)
    if problem is not None and shown is not None:
        problem = problem.replace(str(path), str(shown), 1)
    return problem


def _path_problem(path: Path) -> str | None:
    try:
        info = _stat(path)
    except OutputError as exc:
        return str(exc)
    if info is not None and stat.S_ISDIR(info.st_mode):
        return f"{path} is a folder; give a file name (inside it, for example)"
    if info is not None and not (
        stat.S_ISREG(info.st_mode) or stat.S_ISCHR(info.st_mode) or stat.S_ISFIFO(info.st_mode)
    ):
        return f"{path} is neither a regular file nor a character device or FIFO; a file is never written onto it"
    if not path.parent.is_dir():
        return f"the folder of {path} does not exist; create it or choose another path"
    return None


def _stat(path: Path) -> os.stat_result | None:
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise OutputError(f"{path} cannot be used ({exc.strerror or exc})") from exc


def _prepare(path: Path, create: bool) -> os.stat_result | None:
    """The target's current state after the checks every write makes; None for a path that does not exist."""
    if create:
        path.parent.mkdir(parents=True, exist_ok=True)
    elif not path.parent.is_dir():
        raise ConfigError(f"{path}: the folder {path.parent} does not exist; create it or choose another path")
    info = _stat(path)
    if info is not None and not stat.S_ISREG(info.st_mode):
        problem = _path_problem(path)
        if problem is not None:
            raise OutputError(problem)
    return info


def _default_mode() -> int:
    """What ``open(path, "w")`` would give a new file: 0666 less the process umask."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def _temp_sibling(path: Path, info: os.stat_result | None) -> tuple[int, str]:
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise OutputError(
            f"{path} could not be written: no file can be created in {path.parent} ({exc.strerror or exc})"
        ) from exc
    try:
        os.fchmod(fd, _default_mode() if info is None else stat.S_IMODE(info.st_mode))
    except BaseException:
        os.close(fd)
        Path(tmp).unlink(missing_ok=True)
        raise
    return fd, tmp


def _open_in_place(path: Path, info: os.stat_result) -> int:
    """A write descriptor on a character device or FIFO's own node, never creating or truncating anything."""
    try:
        # O_NONBLOCK: opening a FIFO nobody reads fails at once (ENXIO) instead of waiting for a reader
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        if stat.S_ISFIFO(info.st_mode) and exc.errno == errno.ENXIO:
            raise OutputError(
                f"{path} is a FIFO that nobody is reading; start its reader first or choose a file"
            ) from exc
        raise OutputError(f"{path} cannot be opened for writing ({exc.strerror or exc})") from exc
    os.set_blocking(fd, True)
    return fd


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


@contextmanager
def atomic_path(path: Path | str, *, create_parents: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; whatever is written there replaces ``path`` on success.

    A missing folder is a :class:`~pytest_specbench.errors.ConfigError` (the user named a place we cannot
    write) unless ``create_parents`` is set. For a character device or FIFO target the finished
    temporary file is copied into the node instead of renamed over it.
    """
    path = Path(path)
    info = _prepare(path, create_parents)
    fd, tmp = _temp_sibling(path, info)
    os.close(fd)
    try:
        yield Path(tmp)
        if info is not None and not stat.S_ISREG(info.st_mode):
            data = Path(tmp).read_bytes()
            out = _open_in_place(path, info)
            try:
                _write_all(out, data)
            finally:
                os.close(out)
        else:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, path)
    except OutputError:
        raise
    except OSError as exc:
        raise OutputError(f"{path} could not be written ({exc.strerror or exc})") from exc
    finally:
        Path(tmp).unlink(missing_ok=True)


@contextmanager
def atomic_open(path: Path | str, mode: str = "w", *, create_parents: bool = False) -> Iterator[IO[Any]]:
    """An open file (``"w"`` text in UTF-8, or ``"wb"``) whose content replaces ``path`` when the block ends."""
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    info = _prepare(path, create_parents)
    text: dict[str, Any] = {"encoding": "utf-8", "newline": ""} if mode == "w" else {}
    if info is not None and not stat.S_ISREG(info.st_mode):
        fd = _open_in_place(path, info)
        try:
            with os.fdopen(fd, mode, **text) as fh:
                yield fh
        except OSError as exc:
            raise OutputError(f"{path} could not be written ({exc.strerror or exc})") from exc
        return
    fd, tmp = _temp_sibling(path, info)
    try:
        with os.fdopen(fd, mode, **text) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise OutputError(f"{path} could not be written ({exc.strerror or exc})") from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes(path: Path | str, data: bytes, *, create_parents: bool = True) -> None:
    with atomic_open(path, "wb", create_parents=create_parents) as fh:
        fh.write(data)


def write_text(path: Path | str, text: str, *, create_parents: bool = True) -> None:
    with atomic_open(path, "w", create_parents=create_parents) as fh:
        fh.write(text)


def write_json(path: Path | str, data: Any, *, indent: int | None = 1, create_parents: bool = True) -> None:
    """``data`` as UTF-8 JSON (non-ASCII kept as is), streamed to the file rather than built as one string."""
    with atomic_open(path, "w", create_parents=create_parents) as fh:
        json.dump(data, fh, ensure_ascii=False, indent=indent)
        fh.write("\n")
