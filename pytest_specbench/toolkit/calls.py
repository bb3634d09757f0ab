"""Model calls for the toolkit: one backend factory, the plugin's call cache, one concurrent runner.

Why a cache: synthesizing and attack-enhancing a suite costs thousands of calls; an interrupted or
repeated run should pay only for what it has not asked yet. Completions go through the plugin's own
content-keyed store (:mod:`pytest_specbench.cache`), so a command and a pytest run that ask the same
question (same backend, messages, decoding with seed, schema) share the answer when pointed at the same
file, and asking with another seed is a new question. Embeddings, which the plugin never makes, have a
small store of their own here (:class:`EmbeddingCache`).

Why a runner: commands map an async function over items. :func:`run_items` bounds concurrency by
what the backend can serve, shows a progress bar with rate and time left, and hands each result to
a callback as soon as it is ready, so the caller can append it to its resumable log.
"""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import sys
import threading
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from ..backends import BackendRegistry
from ..backends.base import Backend
from ..errors import ConfigError
from .errors import InputError
from .store import cache_root

T = TypeVar("T")
R = TypeVar("R")

#: The default model: the embedded SmolLM2-135M, so every command works offline out of the box.
DEFAULT_MODEL = "llamacpp/smollm2"
CALLS_FILE = "calls.sqlite3"
EMBEDDINGS_FILE = "embeddings.sqlite3"


def default_cache_path() -> Path:
    """The toolkit's call store: ``<platform cache>/pytest-specbench/calls.sqlite3``."""
    return cache_root() / CALLS_FILE


def open_call_cache(path: Path | None) -> Any:
    """The plugin's :class:`~pytest_specbench.cache.CallCache` at ``path`` (default location if None)."""
    from ..cache import CallCache

    return CallCache(Path(path).expanduser() if path else default_cache_path())


class EmbeddingCache:
    """Sentence embeddings keyed by (embedder id, text), as float32 bytes in one SQLite file."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(str(path), check_same_thread=False, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS embeddings (key TEXT PRIMARY KEY, dim INTEGER NOT NULL, value BLOB NOT NULL)"
            )
            self._db.commit()
        except sqlite3.DatabaseError as exc:
            raise InputError(
                f"the embedding cache {path} cannot be used ({exc}); delete it or pass --no-cache"
            ) from exc

    @staticmethod
    def key(model: str, text: str) -> str:
        return hashlib.sha256(f"{model}\x00{text}".encode("utf-8", "surrogatepass")).hexdigest()

    def get_many(self, keys: Sequence[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = list(keys[start : start + 500])
                marks = ",".join("?" * len(chunk))
                for key, value in self._db.execute(f"SELECT key, value FROM embeddings WHERE key IN ({marks})", chunk):
                    found[key] = value
        return found

    def put_many(self, rows: Iterable[tuple[str, int, bytes]]) -> None:
        with self._lock:
            self._db.executemany("INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?)", list(rows))
            self._db.commit()

    def close(self) -> None:
        with self._lock:
            self._db.close()


def open_embedding_cache(folder: Path | None) -> EmbeddingCache:
    return EmbeddingCache((Path(folder).expanduser() if folder else cache_root()) / EMBEDDINGS_FILE)


def parse_model(ref: str, option: str = "--model") -> tuple[str, str]:
    provider, sep, name = ref.partition("/")
    if not sep or not provider or not name:
        raise InputError(
            f"{option} {ref!r}: write PROVIDER/NAME, e.g. llamacpp/smollm2 (embedded, offline) or openai/gpt-4.1"
        )
    return provider, name


def load_plugins(names: Sequence[str]) -> BackendRegistry:
    """The backend registry, with what the named plugin modules add through ``pytest_specbench_add_backends``.

    The same hook a ``pytest -p NAME`` run calls, so a provider that a plugin module (or an installed
    plugin's module) registers for pytest is available to ``specbench -p NAME synthesize …`` too.
    """
    registry = BackendRegistry()
    if not names:
        return registry
    import importlib

    import pluggy

    from .. import hookspec

    class Manager(pluggy.PluginManager):
        def parse_hookimpl_opts(self, plugin: Any, name: str) -> Any:
            # pytest takes any ``pytest_*`` function as a hook implementation, decorated or not; so do we
            opts = super().parse_hookimpl_opts(plugin, name)
            if opts is None and name.startswith("pytest_specbench_") and callable(getattr(plugin, name, None)):
                return {}
            return opts

    manager = Manager("pytest")
    manager.add_hookspecs(hookspec)
    for name in dict.fromkeys(names):
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise InputError(
                f"-p {name}: the plugin module cannot be imported ({exc}); it must be on the import path, as for pytest -p"
            ) from exc
        manager.register(module, name)
    manager.hook.pytest_specbench_add_backends(registry=registry)
    return registry


def make_backend(
    ref: str,
    base_urls: Sequence[str] = (),
    *,
    timeout: float = 120.0,
    retries: int = 3,
    n_ctx: int = 4096,
    option: str = "--model",
    registry: BackendRegistry | None = None,
    profiles: Path | None = None,
    http_client: str | None = None,
) -> Backend:
    """The backend ``--model`` names (``PROVIDER/NAME`` or a profile), built the way a pytest run builds it.

    ``registry`` carries providers added by plugins (:func:`load_plugins`); ``profiles`` is a profiles
    file (default: the shipped one, read only when ``ref`` names a profile).
    """
    from ..backends.http import HTTP_CLIENTS
    from ..models import is_profile_ref, resolve_model

    registry = registry or BackendRegistry()
    try:
        loaded = None
        if is_profile_ref(ref) or profiles is not None:
            from ..profiles import load_profiles

            loaded = load_profiles(profiles)
        resolved = resolve_model(
            ref,
            registry,
            loaded,
            base_urls=tuple(base_urls),
            timeout=timeout,
            retries=retries,
            n_ctx=n_ctx,
            http_client=http_client or HTTP_CLIENTS[0],
        )
        return registry.create(resolved.spec)
    except ConfigError as exc:
        hint = (
            "; write PROVIDER/NAME, e.g. llamacpp/smollm2 (embedded, offline) or openai/gpt-4.1, or a profile name"
            if is_profile_ref(ref)
            else ""
        )
        raise InputError(f"{option} {ref!r}: {exc}{hint}") from exc


def cached(backend: Backend, cache: Any, kind: str = "responses") -> Backend:
    """``backend`` behind the plugin's call store (unchanged when ``cache`` is None).

    ``kind`` is the store's bucket: ``responses`` for text a model writes, ``verdicts`` for a judging
    answer such as the attack verifier's; one backend may be wrapped twice, once per role.
    """
    if cache is None:
        return backend
    from ..cache import CachedBackend

    return CachedBackend(backend, cache, kind)


def real(backend: Backend) -> Backend:
    """The backend under any cache wrapper (to close each engine once)."""
    return getattr(backend, "inner", backend)


def progress(total: int, desc: str, unit: str, enabled: bool | None) -> Any:
    """A tqdm bar on stderr showing count, rate and time left; ``enabled=None`` means "if a terminal"."""
    from tqdm import tqdm

    show = sys.stderr.isatty() if enabled is None else enabled
    return tqdm(total=total, desc=desc, unit=unit, disable=not show, file=sys.stderr, dynamic_ncols=True, smoothing=0.1)


async def run_items(
    items: Sequence[T],
    work: Callable[[T], Awaitable[R]],
    on_done: Callable[[T, R], None],
    *,
    concurrency: int,
    bar: Any,
) -> None:
    """Run ``work`` on every item, at most ``concurrency`` at a time, calling ``on_done`` as each ends.

    An exception in one item cancels the rest and propagates: the items finished so far are already
    in the caller's log, so a rerun resumes after them.
    """
    semaphore = asyncio.Semaphore(max(1, concurrency))

    async def one(item: T) -> None:
        async with semaphore:
            result = await work(item)
        on_done(item, result)
        bar.update(1)

    tasks = [asyncio.ensure_future(one(item)) for item in items]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
