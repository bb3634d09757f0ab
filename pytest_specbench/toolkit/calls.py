"""Model calls for the toolkit: one backend factory, one on-disk cache, one concurrent runner.

Why a cache: synthesizing and attack-enhancing a suite costs thousands of calls; an interrupted or
repeated run should pay only for what it has not asked yet. The cache is a single SQLite file keyed
by the SHA-256 of everything that determines an answer (backend, messages, decoding settings with
the seed, schema), so two commands that ask the same question share the answer, and asking with
another seed is a new question. Embeddings are cached in the same file, per (model, text).

Why a runner: commands map an async function over items. :func:`run_items` bounds concurrency by
what the backend can serve, shows a progress bar with rate and time left, and hands each result to
a callback as soon as it is ready, so the caller can append it to its resumable log.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import sys
import threading
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from ..backends import BackendRegistry
from ..backends.base import Backend, BackendSpec, Completion, GenerationRequest
from ..errors import ConfigError
from .errors import InputError
from .store import cache_root

T = TypeVar("T")
R = TypeVar("R")

#: The default model: the embedded SmolLM2-135M, so every command works offline out of the box.
DEFAULT_MODEL = "llamacpp/smollm2"
CACHE_FILE = "calls.sqlite"


def default_cache_dir() -> Path:
    return cache_root()


class CallCache:
    """Completions and embeddings keyed by content hash, in one SQLite file (safe across threads)."""

    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / CACHE_FILE
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS completions (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self._db.execute("CREATE TABLE IF NOT EXISTS embeddings (key TEXT PRIMARY KEY, dim INTEGER NOT NULL, value BLOB NOT NULL)")
        self._db.commit()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def completion_key(backend_label: str, request: GenerationRequest) -> str:
        blob = {
            "backend": backend_label,
            "messages": [dict(m) for m in request.messages],
            "decoding": request.decoding.to_key(),
            "prefill": request.prefill,
            "stop": list(request.stop),
            "schema": request.json_schema,
            "dialect": request.schema_dialect,
        }
        return hashlib.sha256(json.dumps(blob, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()

    def get_completion(self, key: str) -> Completion | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM completions WHERE key = ?", (key,)).fetchone()
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        return Completion(**json.loads(row[0]))

    def put_completion(self, key: str, completion: Completion) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO completions VALUES (?, ?)", (key, json.dumps(completion.__dict__)))
            self._db.commit()

    @staticmethod
    def embedding_key(model: str, text: str) -> str:
        return hashlib.sha256(f"{model}\x00{text}".encode()).hexdigest()

    def get_embeddings(self, keys: Sequence[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = list(keys[start : start + 500])
                marks = ",".join("?" * len(chunk))
                for key, _dim, value in self._db.execute(f"SELECT key, dim, value FROM embeddings WHERE key IN ({marks})", chunk):
                    found[key] = value
        return found

    def put_embeddings(self, rows: Iterable[tuple[str, int, bytes]]) -> None:
        with self._lock:
            self._db.executemany("INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?)", list(rows))
            self._db.commit()

    def close(self) -> None:
        with self._lock:
            self._db.close()


class CachedBackend:
    """A backend seen through the cache: same ``generate``, answered from disk when it can be.

    Only successful completions are stored; a failure is never cached, so a rerun retries it.
    """

    def __init__(self, backend: Backend, cache: CallCache | None):
        self.backend = backend
        self.cache = cache
        self.label = backend.label
        self.calls = 0

    @property
    def default_concurrency(self) -> int:
        return self.backend.default_concurrency

    async def generate(self, request: GenerationRequest) -> Completion:
        key = CallCache.completion_key(self.label, request) if self.cache else ""
        if self.cache:
            hit = self.cache.get_completion(key)
            if hit is not None:
                return hit
        self.calls += 1
        completion = await self.backend.generate(request)
        if self.cache:
            self.cache.put_completion(key, completion)
        return completion

    async def aclose(self) -> None:
        await self.backend.aclose()


def parse_model(ref: str, option: str = "--model") -> tuple[str, str]:
    provider, sep, name = ref.partition("/")
    if not sep or not provider or not name:
        raise InputError(f"{option} {ref!r}: write PROVIDER/NAME, e.g. llamacpp/smollm2 (embedded, offline) or openai/gpt-4.1")
    return provider, name


def make_backend(
    ref: str,
    base_urls: Sequence[str] = (),
    *,
    cache: CallCache | None,
    timeout: float = 120.0,
    retries: int = 3,
    n_ctx: int = 4096,
    option: str = "--model",
) -> CachedBackend:
    """Build the backend named ``PROVIDER/NAME`` through the plugin's registry, behind the cache."""
    provider, name = parse_model(ref, option)
    spec = BackendSpec(provider, name, base_urls=tuple(base_urls), timeout=timeout, max_retries=retries, n_ctx=n_ctx)
    try:
        backend = BackendRegistry().create(spec)
    except ConfigError as exc:
        raise InputError(f"{option}: {exc}") from exc
    return CachedBackend(backend, cache)


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
