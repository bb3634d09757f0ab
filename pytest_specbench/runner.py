"""Run state of one pytest process: backends, the judge, and an event loop that evaluates cases.

Tests are synchronous; model calls are not. Each process keeps one asyncio loop, and the loop runs in
the thread that waits for an outcome: a test asking for its case's outcome runs the loop until that
outcome is ready, and meanwhile every case scheduled ahead of it (up to the concurrency limit) is being
generated and judged as well. A loop on a thread of its own would trade the GIL with the test thread
several times per model call, and that trade costs more CPU than the calls' own Python code. The price
is that cases in flight make progress only while some test waits: while pytest runs an ordinary test,
their answers wait in the socket buffers. Outcomes become typed plain dicts
(:class:`~pytest_specbench.record.CaseRecord`) before they leave the process on a test report.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypedDict, TypeVar

from .backends import BackendRegistry
from .backends.base import Backend, BackendSpec, Decoding
from .cache import CachedBackend, CallCache
from .errors import BackendError, ConfigError, JudgeError, SpecbenchError
from .judge import Judge, JudgeResult
from .methods import Method, MethodContext, MethodRegistry, MethodResult, Selector
from .methods.registry import capabilities_of
from .methods.selection import SelectorPool
from .options import Settings
from .record import CaseRecord, build_record
from .redact import Redactor
from .scoring import Score, score_verdicts
from .suite import Case

#: How long closing waits for cancelled cases and backends to wind down.
SHUTDOWN_TIMEOUT = 10.0

_T = TypeVar("_T")

#: The judge's temperature when neither --specbench-judge-temperature nor its profile sets one (the paper's).
JUDGE_TEMPERATURE = 0.0


class _OutcomeBase(TypedDict):
    """The fields every outcome of one case has, whatever happened to it."""

    case: Case
    model: str
    method: str
    judge: str


@dataclass(frozen=True)
class CaseOutcome:
    """Everything known about one evaluated case; ``error`` set means it could not be scored."""

    case: Case
    model: str
    method: str
    judge: str
    result: MethodResult | None = None
    judged: JudgeResult | None = None
    score: Score | None = None
    error: str | None = None
    error_stage: str | None = None
    judge_raw: str | None = None

    @property
    def response(self) -> str:
        return self.result.response if self.result else ""

    @property
    def verdicts(self) -> tuple[Any, ...]:
        return self.judged.verdicts if self.judged else ()

    def verdict(self, spec_id: str) -> str | None:
        """The label given to one spec (by id), or None if the case was not judged."""
        return next((v.label for v in self.verdicts if v.spec_id == spec_id), None)

    def to_record(self, redact: Redactor) -> CaseRecord:
        """The plain record that leaves the process on the test report (:mod:`pytest_specbench.record`)."""
        return build_record(self, redact)


class Engine:
    """Builds backends on first use and evaluates cases on a private event loop."""

    def __init__(
        self,
        settings: Settings,
        backends: BackendRegistry,
        methods: MethodRegistry,
        redactor: Redactor,
        cache_path: Path | None = None,
        method_options: Mapping[str, Mapping[str, Any]] | None = None,
        profiles: Any = None,
    ):
        self.settings = settings
        self.profiles = profiles
        self.method_options = dict(method_options or {})
        self.cache_path = cache_path
        self.cache: CallCache | None = None
        self.in_flight = 0
        self.backends = backends
        self.methods = methods
        self.redact = redactor
        self._loop: asyncio.AbstractEventLoop | None = None
        #: Held while a thread schedules on the loop or runs it: the loop is not thread-safe.
        self._driving = threading.RLock()
        self._instances: dict[BackendSpec, Backend] = {}
        self._futures: dict[tuple[str, str, str], asyncio.Task[CaseOutcome]] = {}
        self._semaphore: asyncio.Semaphore | None = None
        self._setup_error: str | None = None
        self._lock = threading.Lock()
        #: What each method is reported as (align3 on a chat-only backend: align3-chat), once options are settled.
        self._labels: dict[str, str] = {}

    # ------------------------------------------------------------------------------------ plumbing

    def role(
        self,
        ref: str,
        urls: tuple[str, ...],
        *,
        temperature: float | None,
        max_tokens: int | None,
        default_temperature: float | None = None,
    ) -> tuple[Backend, Decoding]:
        """Backend and decoding for the model under test or the judge (see :func:`~pytest_specbench.models.resolve_model`)."""
        from .models import resolve_model

        s = self.settings
        resolved = resolve_model(
            ref,
            self.backends,
            self.profiles,
            base_urls=urls,
            timeout=s.timeout,
            retries=s.retries,
            n_ctx=s.n_ctx,
            http_client=s.http_client,
            temperature=temperature,
            max_tokens=max_tokens,
            seed=s.seed,
            default_temperature=default_temperature,
            managed=self._managed(urls),
        )
        if resolved.spec not in self._instances:
            self._instances[resolved.spec] = self.backends.create(resolved.spec)
        return self._instances[resolved.spec], resolved.decoding

    def _managed(self, urls: tuple[str, ...]) -> bool:
        """Whether ``urls`` are the servers --specbench-serve started for the model (the settings then carry theirs)."""
        return self.settings.serve and bool(urls) and urls == self.settings.base_urls

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
            return self._loop

    def _run(self, awaitable: Awaitable[_T]) -> _T:
        """Run the loop until ``awaitable`` is done, in this thread; cases scheduled ahead advance meanwhile.

        A thread that already runs an event loop (an async test asking for an outcome) cannot run a second
        one: a helper thread runs ours while this one waits. Another thread asking at the same time waits
        for the lock, then runs the loop itself.
        """
        loop = self._ensure_loop()
        with self._driving:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                return loop.run_until_complete(awaitable)
            with ThreadPoolExecutor(1, thread_name_prefix="specbench-loop") as helper:
                return helper.submit(loop.run_until_complete, awaitable).result()

    def _prepare(self) -> None:
        """Create backends, method and judge once; a failure becomes every case's error reason."""
        if hasattr(self, "_judge") or self._setup_error:
            return
        s = self.settings
        try:
            self._model, decoding = self.role(s.model, s.base_urls, temperature=s.temperature, max_tokens=s.max_tokens)
            judge_backend, judge_decoding = self.role(
                s.judge,
                s.judge_base_urls,
                temperature=s.judge_temperature,
                max_tokens=s.judge_max_tokens,
                default_temperature=JUDGE_TEMPERATURE,
            )
            methods = {name: self.methods.info(name) for name in s.methods}
            if self.cache_path is not None:
                self.cache = CallCache(self.cache_path)
                refresh = s.refresh or ""
                scrub = self.redact.values
                self._model = CachedBackend(
                    self._model, self.cache, "responses", refresh in ("responses", "all"), scrub=scrub
                )
                judge_backend = CachedBackend(
                    judge_backend, self.cache, "verdicts", refresh in ("verdicts", "all"), scrub=scrub
                )
        except (SpecbenchError, OSError) as exc:
            self._setup_error = self.redact(str(exc))
            return
        self._selectors = SelectorPool(
            self._model.spec, Selector(f"judge:{s.judge}", True, self._score_response), self._selector_judge
        )
        try:
            self._methods: dict[str, tuple[Method, MethodContext]] = {}
            for name, info in methods.items():
                options = info.settled(info.resolve(self.method_options.get(name, {})), capabilities_of(self._model))
                self._labels[name] = info.label_for(options)
                self.methods.check_backend(name, self._model, options)
                # the run's judge ranks candidates only for a method that declared it needs it
                scorer = self._score_response if "judge" in info.needs_for(options) else None
                self._methods[name] = (
                    info.run,
                    MethodContext(self._model, decoding, s.prompt, options, scorer, self._selectors),
                )
        except SpecbenchError as exc:
            self._setup_error = self.redact(str(exc))
            return
        self._judge = self._make_judge(judge_backend, judge_decoding)
        self._concurrency = s.concurrency or min(self._model.default_concurrency, judge_backend.default_concurrency)

    # ----------------------------------------------------------------------------------- evaluating

    def _make_judge(self, backend: Backend, decoding: Decoding) -> Judge:
        s = self.settings
        return Judge(
            backend=backend, decoding=decoding, format=s.judge_format, mode=s.judge_mode, retries=s.judge_retries
        )

    async def _score_response(self, case: Case, response: str) -> float:
        """s of a candidate response under the run's grading judge (a ranking method's rater when it asks for it)."""
        return await self._s_under(self._judge, case, response)

    async def _s_under(self, judge: Judge, case: Case, response: str) -> float:
        judged = await judge.judge(case, response)
        return score_verdicts(judged.verdicts, alpha=self.settings.alpha, na=self.settings.na).s

    def _selector_judge(self, ref: str, base_urls: tuple[str, ...]) -> Selector:
        """A judge other than the grading one, as a ranking method's rater: same format, mode, retries and cache.

        It counts as the grader when it is the same model (provider and model name), wherever it is served.
        """
        s = self.settings
        if "/" not in ref and self.profiles is None:
            raise ConfigError(
                f"selector judge {ref!r}: write PROVIDER/NAME, or load the profile file that defines it with --specbench-model-config"
            )
        urls = base_urls or (s.judge_base_urls if ref == s.judge else ())
        backend, decoding = self.role(
            ref,
            urls,
            temperature=s.judge_temperature,
            max_tokens=s.judge_max_tokens,
            default_temperature=JUDGE_TEMPERATURE,
        )
        if self.cache is not None:
            backend = CachedBackend(backend, self.cache, "verdicts", (s.refresh or "") in ("verdicts", "all"))
        judge = self._make_judge(backend, decoding)

        async def score(case: Case, response: str) -> float:
            return await self._s_under(judge, case, response)

        return Selector(f"judge:{ref}", backend.spec.label == self._judge.backend.spec.label, score)

    def submit(self, case: Case, method: str) -> asyncio.Task[CaseOutcome]:
        """Schedule a case under a method; asking twice returns the same task.

        The task starts the next time the loop runs (:meth:`outcome`).
        """
        key = (case.scenario.origin, case.case_id, method)
        with self._lock:
            task = self._futures.get(key)
        if task is None:
            loop = self._ensure_loop()
            self._prepare()
            with self._driving:
                task = loop.create_task(self._evaluate(case, method))
            with self._lock:
                task = self._futures.setdefault(key, task)
        return task

    def outcome(self, case: Case, method: str) -> CaseOutcome:
        """The case's outcome, running the loop until it is ready."""
        task = self.submit(case, method)
        return task.result() if task.done() else self._run(task)

    def forget(self, case: Case, method: str) -> None:
        """Drop a finished case's future (and with it its outcome); asking for it again would evaluate it anew."""
        with self._lock:
            self._futures.pop((case.scenario.origin, case.case_id, method), None)

    async def _evaluate(self, case: Case, method: str) -> CaseOutcome:
        s = self.settings
        label = self._labels.get(method) or self.methods.label(method, self.method_options.get(method, {}))
        base: _OutcomeBase = {"case": case, "model": s.model, "method": label, "judge": s.judge}
        if self._setup_error:
            return CaseOutcome(**base, error=self._setup_error, error_stage="setup")
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self._concurrency)
        async with self._semaphore:
            self.in_flight += 1
            try:
                return await self._evaluate_now(case, method, base)
            finally:
                self.in_flight -= 1

    async def _evaluate_now(self, case: Case, method: str, base: _OutcomeBase) -> CaseOutcome:
        """Generate, then judge, then score; any failure becomes the outcome's error, with its stage."""
        fn, ctx = self._methods[method]
        try:
            result = await fn(case, ctx)
        except (BackendError, ConfigError) as exc:
            return CaseOutcome(**base, error=self.redact(f"generation failed: {exc}"), error_stage="generate")
        if not result.response.strip():
            reason = f"the model returned an empty response (finish reason: {result.finish_reason})"
            return CaseOutcome(**base, result=result, error=reason, error_stage="generate")
        try:
            judged = await self._judge.judge(case, result.response)
        except JudgeError as exc:
            return CaseOutcome(
                **base, result=result, error=self.redact(f"judge failed: {exc}"), error_stage="judge", judge_raw=exc.raw
            )
        except BackendError as exc:
            return CaseOutcome(
                **base, result=result, error=self.redact(f"judge call failed: {exc}"), error_stage="judge"
            )
        judged = self._scrubbed(judged)
        score = score_verdicts(judged.verdicts, alpha=self.settings.alpha, na=self.settings.na)
        return CaseOutcome(**base, result=result, judged=judged, score=score)

    def _scrubbed(self, judged: JudgeResult) -> JudgeResult:
        """The judge's reasons and raw answer with registered secrets masked.

        A judge may quote the response it reviewed, and a server may echo the key it was sent inside a
        normal answer; reasons travel to the terminal (failure messages), JUnit XML and every report, so
        they are scrubbed once here rather than at each of those places. Only registered values are
        masked, as for responses: key-shaped text in a reason about code is usually just code.
        """
        if not self.redact.registered:
            return judged
        scrub = self.redact.values
        verdicts = tuple(
            v if not v.reason or scrub(v.reason) == v.reason else replace(v, reason=scrub(v.reason))
            for v in judged.verdicts
        )
        return replace(judged, verdicts=verdicts, raw=scrub(judged.raw))

    def close(self) -> None:
        """Cancel what is still scheduled, close backends, close the loop."""
        loop = self._loop
        if loop is None:
            return
        with self._lock:
            pending = [t for t in self._futures.values() if not t.done()]
        for t in pending:
            t.cancel()

        async def shutdown() -> None:
            await asyncio.gather(*pending, return_exceptions=True)
            await loop.shutdown_default_executor()  # the resolver threads HTTP clients started
            if getattr(self, "_selectors", None) is not None:
                await self._selectors.aclose()
            for backend in self._instances.values():
                try:
                    await backend.aclose()
                except Exception as exc:  # closing must not hide the run's own result
                    print(f"specbench: closing {backend.label} failed: {self.redact(str(exc))}")

        if self.cache is not None:
            self.cache.close()
        try:
            self._run(asyncio.wait_for(shutdown(), SHUTDOWN_TIMEOUT))
        except Exception as exc:
            print(f"specbench: shutdown did not finish cleanly: {self.redact(str(exc)) or type(exc).__name__}")
        with self._driving:
            if not loop.is_running():
                loop.close()
        self._loop = None
        with self._lock:  # outcomes are in the records by now; drop them so the interpreter has less to free
            self._futures.clear()
