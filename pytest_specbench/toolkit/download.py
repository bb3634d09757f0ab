"""Fetch SpecBench into a local cache and prove it is the published data.

The manifest (``pytest_specbench/datasets/specbench.json``, documented in the repository's
``datasets/``) lists every file with its size and SHA-256 and the places it can be fetched from. A file is streamed to ``NAME.part`` beside its final
place, hashed while it arrives, and moved into place only when the hash matches, so the cache holds
either nothing or a verified file, never a truncated one. Files already present and verified are
skipped: a second ``download`` (or one resumed after an interruption) fetches only what is missing.

After a complete download a stamp (``.specbench-verified.json``) records size, mtime and hash of each
file. :func:`default_data_dir` trusts the stamp while sizes and mtimes still match and re-hashes a file
otherwise, so the plugin can default ``--specbench-data`` to the cache at almost no cost per run.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ChecksumMismatch, DownloadError, InputError
from .store import atomic_write_text, cache_root, read_json

MANIFEST_NAME = "specbench.json"
STAMP_NAME = ".specbench-verified.json"
CHUNK = 1 << 16
#: Bounded retries for transient failures (connection errors, 5xx, 429), with doubling delays.
DOWNLOAD_ATTEMPTS = 3
DOWNLOAD_BACKOFF_S = 1.0
TIMEOUT_S = 60.0
USER_AGENT = "pytest-specbench-download"


def dataset_dir() -> Path:
    """Where ``specbench download`` puts the data by default."""
    return cache_root() / "specbench"


def builtin_manifest_path() -> Path:
    """The SpecBench manifest shipped with the package (``pytest_specbench/datasets/``)."""
    from importlib.resources import files

    return Path(str(files("pytest_specbench.datasets").joinpath(MANIFEST_NAME)))


@dataclass(frozen=True)
class FileEntry:
    path: str  # relative, "/"-separated: "Child/prompts.json"
    sha256: str
    size: int


@dataclass(frozen=True)
class Manifest:
    """The files of a dataset, their hashes, and named base URLs to fetch them from."""

    name: str
    files: tuple[FileEntry, ...]
    sources: dict[str, str]
    default_source: str
    origin: str

    @classmethod
    def load(cls, path: Path | None = None) -> Manifest:
        path = path or builtin_manifest_path()
        data = read_json(path)
        where = str(path)
        if not isinstance(data, dict) or not isinstance(data.get("files"), dict) or not data["files"]:
            raise InputError(
                f"{where}: a manifest is a JSON object with a non-empty 'files' mapping of path -> {{sha256, size}}"
            )
        entries = []
        for rel, meta in sorted(data["files"].items()):
            if not isinstance(meta, dict) or not isinstance(meta.get("sha256"), str) or len(meta["sha256"]) != 64:
                raise InputError(f"{where}: files[{rel!r}] needs a 64-hex-digit sha256")
            parts = Path(rel).parts
            if Path(rel).is_absolute() or ".." in parts or not parts:
                raise InputError(f"{where}: files[{rel!r}] must be a relative path inside the dataset")
            entries.append(FileEntry(rel, meta["sha256"].lower(), int(meta.get("size", -1))))
        sources = data.get("sources") or {}
        if not isinstance(sources, dict):
            raise InputError(f"{where}: 'sources' must map a name to a base URL")
        default = data.get("default_source") or next(iter(sources), "")
        return cls(str(data.get("name") or path.stem), tuple(entries), dict(sources), default, where)

    def select(self, scenarios: Sequence[str] | None) -> tuple[FileEntry, ...]:
        if not scenarios:
            return self.files
        known = sorted({f.path.split("/")[0] for f in self.files if "/" in f.path})
        unknown = [s for s in scenarios if s not in known]
        if unknown:
            raise InputError(f"--scenario {', '.join(unknown)}: not in the manifest; choose from {', '.join(known)}")
        return tuple(f for f in self.files if f.path.split("/")[0] in scenarios)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _url(base: str, rel: str) -> str:
    return base.rstrip("/") + "/" + urllib.parse.quote(rel)


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code in (408, 429) or exc.code >= 500
    return isinstance(exc, (urllib.error.URLError, TimeoutError, ConnectionError))


def _fetch(url: str, target: Path, entry: FileEntry, bar: Any) -> None:
    """Stream one file to ``target.part``, check size and hash, then move it into place."""
    part = target.with_name(target.name + ".part")
    target.parent.mkdir(parents=True, exist_ok=True)
    last: BaseException | None = None
    for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
        received = shown = 0
        too_long = False
        h = hashlib.sha256()
        try:
            request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response, open(part, "wb") as out:
                while chunk := response.read(CHUNK):
                    received += len(chunk)
                    if 0 <= entry.size < received:
                        too_long = True  # longer than published: it cannot match, stop reading
                        break
                    h.update(chunk)
                    out.write(chunk)
                    bar.update(len(chunk))
                    shown += len(chunk)
                out.flush()
                os.fsync(out.fileno())
        except urllib.error.HTTPError as exc:
            part.unlink(missing_ok=True)
            if not _transient(exc):
                raise DownloadError(f"{entry.path}: HTTP {exc.code} from {url}; check --source or --base-url") from exc
            last = exc
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            part.unlink(missing_ok=True)
            last = exc
        except OSError as exc:
            part.unlink(missing_ok=True)
            raise DownloadError(f"{entry.path}: cannot write {part}: {exc}") from exc
        else:
            digest = "(longer than published)" if too_long else h.hexdigest()
            if digest != entry.sha256:
                part.unlink(missing_ok=True)
                raise ChecksumMismatch(entry.path, entry.sha256, digest)
            os.replace(part, target)
            return
        bar.update(-shown)  # this attempt's bytes are discarded
        if attempt < DOWNLOAD_ATTEMPTS:
            time.sleep(DOWNLOAD_BACKOFF_S * 2 ** (attempt - 1))
    reason = getattr(last, "reason", last)
    raise DownloadError(f"{entry.path}: could not fetch {url} after {DOWNLOAD_ATTEMPTS} attempts: {reason}") from last


@dataclass(frozen=True)
class DownloadResult:
    folder: Path
    fetched: tuple[str, ...]
    skipped: tuple[str, ...]


def download(
    to: Path | None = None,
    *,
    manifest: Manifest | None = None,
    source: str | None = None,
    base_url: str | None = None,
    scenarios: Sequence[str] | None = None,
    force: bool = False,
    show_progress: bool | None = None,
) -> DownloadResult:
    """Fetch the manifest's files into ``to`` (default :func:`dataset_dir`), verified, resumable."""
    from .calls import progress

    manifest = manifest or Manifest.load()
    folder = Path(to).expanduser() if to else dataset_dir()
    entries = manifest.select(scenarios)
    if base_url is None:
        if not manifest.sources:
            raise InputError(f"{manifest.origin} names no source to fetch from; give --base-url")
        name = source or manifest.default_source
        if name not in manifest.sources:
            raise InputError(f"--source {name!r}: the manifest knows {', '.join(sorted(manifest.sources))}")
        base_url = manifest.sources[name]
    todo, skipped = [], []
    for entry in entries:
        target = folder / entry.path
        if (
            not force
            and target.is_file()
            and target.stat().st_size == entry.size
            and sha256_file(target) == entry.sha256
        ):
            skipped.append(entry.path)
        else:
            todo.append(entry)
    total = sum(max(e.size, 0) for e in todo)
    with progress(total, "download", "B", show_progress) as bar:
        bar.unit_scale = True
        for entry in todo:
            _fetch(_url(base_url, entry.path), folder / entry.path, entry, bar)
    write_stamp(folder, manifest, entries)
    return DownloadResult(folder, tuple(e.path for e in todo), tuple(skipped))


def write_stamp(folder: Path, manifest: Manifest, entries: Sequence[FileEntry]) -> None:
    files: dict[str, dict[str, Any]] = {}
    stamp = {"manifest": manifest.origin, "name": manifest.name, "files": files}
    for e in entries:
        st = (folder / e.path).stat()
        files[e.path] = {"sha256": e.sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    atomic_write_text(folder / STAMP_NAME, json.dumps(stamp, indent=1) + "\n")


def verify(folder: Path, manifest: Manifest | None = None) -> list[str]:
    """Problems with the dataset in ``folder`` (empty list: every manifest file is present and intact).

    Files whose size and mtime match the stamp are trusted without re-hashing.
    """
    manifest = manifest or Manifest.load()
    stamp: dict[str, Any] = {}
    stamp_path = folder / STAMP_NAME
    if stamp_path.is_file():
        try:
            stamp = json.loads(stamp_path.read_text(encoding="utf-8")).get("files", {})
        except (OSError, ValueError):
            stamp = {}
    problems = []
    for entry in manifest.files:
        target = folder / entry.path
        if not target.is_file():
            problems.append(f"{entry.path}: missing")
            continue
        st = target.stat()
        seen = stamp.get(entry.path) or {}
        if (
            seen.get("sha256") == entry.sha256
            and seen.get("size") == st.st_size
            and seen.get("mtime_ns") == st.st_mtime_ns
        ):
            continue
        if st.st_size != entry.size or sha256_file(target) != entry.sha256:
            problems.append(f"{entry.path}: contents differ from the manifest")
    return problems


def default_data_dir() -> Path | None:
    """The downloaded SpecBench folder if it holds a complete, verified copy; otherwise ``None``.

    The plugin uses this as the default of ``--specbench-data``: after one ``specbench download``,
    ``pytest`` finds the benchmark without any option. Never raises: a missing or broken manifest or
    cache simply means "no default".
    """
    folder = dataset_dir()
    if not folder.is_dir():
        return None
    try:
        return folder if not verify(folder) else None
    except (OSError, InputError):
        return None
