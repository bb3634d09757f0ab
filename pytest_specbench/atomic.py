"""Atomic file writes: a reader sees the old file or the complete new one, never half of either.

Every file this package writes for a user (the JSON, HTML and CSV/Parquet reports, the toolkit's suites,
logs' compacted copies, label files, the download stamp) goes through here. The recipe is the usual one:
write a temporary sibling in the same folder (so the final move never crosses a filesystem), flush and
``fsync`` it, then :func:`os.replace` it over the target, which is atomic on POSIX and Windows. On any
failure, Ctrl-C included, the temporary file is removed and the target is left as it was.

Writers that produce the file themselves (pandas' ``to_csv``/``to_parquet``) use :func:`atomic_path`,
which hands out the temporary path; everything else streams into the open file from :func:`atomic_open`,
so a large report is never built as one string first.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from .errors import ConfigError


def _temp_sibling(path: Path) -> tuple[int, str]:
    return tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)


def _check_folder(path: Path, create: bool) -> None:
    if create:
        path.parent.mkdir(parents=True, exist_ok=True)
    elif not path.parent.is_dir():
        raise ConfigError(f"{path}: the folder {path.parent} does not exist; create it or choose another path")


@contextmanager
def atomic_path(path: Path | str, *, create_parents: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; whatever is written there replaces ``path`` on success.

    A missing folder is a :class:`~pytest_specbench.errors.ConfigError` (the user named a place we cannot
    write) unless ``create_parents`` is set.
    """
    path = Path(path)
    _check_folder(path, create_parents)
    fd, tmp = _temp_sibling(path)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_open(path: Path | str, mode: str = "w", *, create_parents: bool = False) -> Iterator[IO[Any]]:
    """An open file (``"w"`` text in UTF-8, or ``"wb"``) whose content replaces ``path`` when the block ends."""
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    _check_folder(path, create_parents)
    fd, tmp = _temp_sibling(path)
    try:
        with os.fdopen(fd, mode, encoding="utf-8" if mode == "w" else None, newline="" if mode == "w" else None) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
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
