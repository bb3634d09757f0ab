"""A persistent, content-keyed store of model calls, so nothing is paid for twice and nothing finished is lost.

Every backend call is keyed by everything that determines its answer: the backend (provider/name, and
for servers the set of base URLs it was given: see :attr:`Backend.cache_identity`), the exact messages,
the assistant prefill, stop strings, output schema, decoding settings (seed included) and the sample
index. Methods and the judge are built from such calls, so:

* a re-run replays every call from the store and makes no request at all;
* editing one spec's text changes exactly the requests whose text contains it (the judge prompts of that
  scenario, and the responses of methods that show specs to the model), and nothing else;
* a run stopped by Ctrl-C, a crash or a killed worker has already committed every call that finished,
  so the next run resumes where it stopped.

The store is one SQLite file in WAL mode: embedded, no server, safe with several xdist workers writing at
once (each process has its own connection; writers wait on SQLite's lock). Only successful completions
are stored; a judge answer that could not be parsed is removed again so a re-run asks anew.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

from .backends.base import Backend, Completion, GenerationRequest
from .errors import ConfigError

SCHEMA_VERSION = 1
KINDS = ("responses", "verdicts")
BUSY_TIMEOUT_S = 30.0
#: Environment variable to change how long a writer waits for another process's lock (seconds).
ENV_BUSY_TIMEOUT = "SPECBENCH_CACHE_BUSY_TIMEOUT"


def request_key(backend_identity: str, request: GenerationRequest) -> str:
    """A stable hash of everything that determines a completion; ``backend_identity`` is :attr:`Backend.cache_identity`."""
    payload = {
        "v": SCHEMA_VERSION,
        "backend": backend_identity,
        "messages": [dict(m) for m in request.messages],
        "prefill": request.prefill,
        "stop": list(request.stop),
        "schema": request.json_schema,
        "dialect": request.schema_dialect if request.json_schema is not None else None,
        "decoding": request.decoding.to_key(),
        "sample": request.sample,
    }
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()


class CallCache:
    """The SQLite store. Thread-safe within a process; process-safe through SQLite's locking."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.write_failures = 0
        timeout = float(os.environ.get(ENV_BUSY_TIMEOUT) or BUSY_TIMEOUT_S)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a file where a folder must be, a read-only or virtual file system, no permission
            reason = exc.strerror or type(exc).__name__
            raise ConfigError(
                f"the specbench cache at {path} cannot be used: its folder {path.parent} cannot be created ({reason}). "
                "Choose another with --specbench-cache=PATH (or --specbench-cache=none to run without one)."
            ) from exc
        try:
            self._db = sqlite3.connect(str(path), timeout=timeout, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS calls (key TEXT PRIMARY KEY, kind TEXT NOT NULL, backend TEXT NOT NULL, completion TEXT NOT NULL, created REAL NOT NULL)"
            )
            self._db.execute("SELECT count(*) FROM calls").fetchone()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc):
                raise ConfigError(
                    f"the specbench cache at {path} cannot be opened ({exc}); choose another with --specbench-cache=PATH"
                ) from exc
            raise ConfigError(
                f"the specbench cache at {path} is locked by another process (waited {timeout:g} s). Wait for that run to "
                "finish, or use another file with --specbench-cache=PATH."
            ) from exc
        except sqlite3.DatabaseError as exc:
            raise ConfigError(
                f"the specbench cache at {path} cannot be used ({exc}). Delete the file to start a fresh cache, "
                "or choose another with --specbench-cache=PATH (or --specbench-cache=none to run without one)."
            ) from exc

    def get(self, key: str) -> Completion | None:
        try:
            with self._lock:
                row = self._db.execute("SELECT completion FROM calls WHERE key = ?", (key,)).fetchone()
        except sqlite3.OperationalError:  # locked for longer than the busy timeout: a miss is always safe
            row = None
        if row is None:
            self.misses += 1
            return None
        try:
            data = json.loads(row[0])
            completion = Completion(**data)
        except (ValueError, TypeError):
            self.misses += 1  # an unreadable row is ignored and will be overwritten
            return None
        self.hits += 1
        return completion

    def put(self, key: str, kind: str, backend: str, completion: Completion) -> None:
        blob = json.dumps(asdict(completion), ensure_ascii=False)
        try:
            with self._lock:
                self._db.execute(
                    "INSERT OR REPLACE INTO calls (key, kind, backend, completion, created) VALUES (?, ?, ?, ?, ?)",
                    (key, kind, backend, blob, time.time()),
                )
        except sqlite3.OperationalError as exc:
            self.write_failures += 1
            if self.write_failures == 1:
                warnings.warn(
                    f"specbench cache {self.path}: a result could not be stored ({exc}); the run goes on", stacklevel=1
                )

    def delete(self, key: str) -> None:
        try:
            with self._lock:
                self._db.execute("DELETE FROM calls WHERE key = ?", (key,))
        except sqlite3.OperationalError:
            pass

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM calls").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


class CachedBackend(Backend):
    """Wraps a backend: answers from the store when it can, stores what the backend returns.

    ``kind`` says which refresh switch applies (responses of the model, or verdicts of the judge);
    with ``refresh`` set the store is not read but still written, so the new answers replace the old.
    ``scrub`` masks secrets in what is stored (see :meth:`_storable`).
    """

    def __init__(
        self,
        inner: Backend,
        cache: CallCache,
        kind: str,
        refresh: bool = False,
        scrub: Callable[[str], str] | None = None,
    ):
        self.inner = inner
        self.scrub = scrub
        self.spec = inner.spec
        self.cache = cache
        self.kind = kind
        self.refresh = refresh
        self.supports_prefill = inner.supports_prefill  # type: ignore[misc]
        self.supports_json_schema = inner.supports_json_schema  # type: ignore[misc]
        self.schema_dialect = inner.schema_dialect  # type: ignore[misc]
        self.default_concurrency = inner.default_concurrency  # type: ignore[misc]

    @property
    def calls(self) -> int:  # type: ignore[override]
        return self.inner.calls

    async def generate(self, request: GenerationRequest) -> Completion:
        key = request_key(self.inner.cache_identity, request)
        if not self.refresh:
            hit = self.cache.get(key)
            if hit is not None:
                return hit
        completion = await self.inner.generate(request)
        self.cache.put(key, self.kind, self.inner.label, self._storable(completion))
        return completion

    def _storable(self, completion: Completion) -> Completion:
        """The completion as the store may keep it: secrets a server echoed back (its key, say) masked.

        The caller still gets the answer as it came; only the file on disk is scrubbed. A replayed answer
        then differs from the original by the mask, so a judge call over it is asked anew once.
        """
        scrub = self.scrub
        if scrub is None:
            return completion
        text = scrub(completion.text)
        reasoning = None if completion.reasoning is None else scrub(completion.reasoning)
        if text == completion.text and reasoning == completion.reasoning:
            return completion
        return replace(completion, text=text, reasoning=reasoning)

    def forget(self, request: GenerationRequest) -> None:
        """Drop a stored answer that turned out unusable (an unreadable judge answer)."""
        self.cache.delete(request_key(self.inner.cache_identity, request))

    async def _generate_once(
        self, request: GenerationRequest
    ) -> Completion:  # pragma: no cover - generate is overridden
        return await self.inner.generate(request)

    async def aclose(self) -> None:
        await self.inner.aclose()
