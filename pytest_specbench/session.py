"""The per-run session: what one pytest process knows and does for SpecBench from configure to exit.

Data flow, which is the same with and without pytest-xdist:

1. each process collects the same items (:mod:`pytest_specbench.collection`);
2. a test's setup waits for its case's outcome from the :class:`~pytest_specbench.runner.Engine`;
   a case that cannot be scored (server down, unreadable judge) errors there with the reason;
3. the outcome travels as the case's record in the report's ``user_properties``: from an xdist worker as
   one JSON string (one C-speed encode instead of execnet serialising a nested dict, about 5x cheaper
   per case), in a run without workers as the dict itself;
4. the controlling process takes each record off the report it logs: the text goes to a case store on
   disk, a slim copy (ids, labels, scores, verdict labels) stays in memory
   (:mod:`pytest_specbench.casestore`); at the end it prints the summary and applies the gates from the
   slim copies and streams the reports from the store.

Work happens in three steps so that a project without spec cases pays nothing: :meth:`check`
(registries, profiles, method options: at configure when a ``--specbench-*`` option is given, else once
spec cases are collected), :meth:`start` (managed servers, HTTP-client preload, the call store: only
once cases are collected), and the engine (on the first case).
"""

from __future__ import annotations

import json
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from . import options as opts
from .distributed import DEFAULT_PIPELINE, Role, WorkerQueue, role

if TYPE_CHECKING:
    import threading

    from .casestore import CaseStore, SlimRecord
    from .protocol import CaseProtocol
    from .record import CaseRecord
    from .runconfig import RunConfig
    from .runner import CaseOutcome, Engine
    from .suite import Case

PLUGIN_NAME = "specbench-session"
RECORD_KEY = "specbench"
#: The record of a test using the ``specbench_case`` fixture, whose case other tests may assert too.
SHARED_RECORD_KEY = "specbench-shared"
OUTCOME_KEY = pytest.StashKey["CaseOutcome"]()
RECORD_STASH: pytest.StashKey[CaseRecord] = pytest.StashKey()
#: Cases scheduled ahead of the running test, per concurrency slot, in a run without xdist.
AHEAD_PER_SLOT = 4
#: What the controller's session finish imports to aggregate and report (numpy among them).
REPORTING_MODULES = ("pytest_specbench.reporting.run", "pytest_specbench.summary")


def session_of(config: pytest.Config) -> SpecbenchSession:
    plugin = config.pluginmanager.get_plugin(PLUGIN_NAME)
    assert isinstance(plugin, SpecbenchSession)
    return plugin


class SpecbenchSession:
    """Per-process state: settings, registries, the engine, and (on the controller) the records."""

    def __init__(self, config: pytest.Config, run: RunConfig):
        from .redact import Redactor

        self.config = config
        self.run = run
        self.settings = run.settings
        self.role: Role = role(config)
        self.backends: Any = None
        self.methods: Any = None
        self.method_options: dict[str, dict[str, Any]] = {}
        self.method_labels: dict[str, str] = {}
        self.profiles: Any = None
        self.server: Any = None
        self.redactor = Redactor()
        self.redactor.add_env("OPENAI_API_KEY")
        #: Slim copies of the case records (ids, labels, scores, verdict labels); the full ones are in ``store``.
        self.records: list[SlimRecord] = []
        #: The full case records, on disk (controller only; made on the first record).
        self.store: CaseStore | None = None
        self.collected_scenarios: set[str] = set()
        #: scenario key -> the suite that defined it (see suite.claim_scenario_key)
        self.claimed_scenarios: dict[str, str] = {}
        self.has_cases = False
        self.gate_results: list[Any] = []
        #: Reports that could not be written, each with its reason (printed after the summary).
        self.output_failures: list[str] = []
        self.baseline: Any = None
        self.spec_texts: dict[str, dict[str, str]] = {}
        #: The run's aggregates (:class:`~pytest_specbench.reporting.run.RunSummary`), computed once at session finish.
        self.summary: Any = None
        self.comparison: Any = None
        self.progress = Progress()
        #: Why the run ended before every case finished (Ctrl-C, a crashed xdist worker); None otherwise.
        self.stopped: str | None = None
        #: Under xdist the controller's case total counts every test id, not only SpecBench cases.
        self.under_xdist = self.role == "controller"
        self._engine: Engine | None = None
        self._queue = WorkerQueue(config)
        #: (group, suite, case id) of the records kept, once a test that may share its case has reported
        #: (see :meth:`_add_record`); None until then.
        self._seen: set[tuple[Any, Any, Any]] | None = None
        #: On an xdist worker: ids of the items whose cases are submitted and whose tests have not finished.
        self._submitted: set[int] = set()
        self._specs_sent: set[str] = set()
        self._checked = False
        self._started = False
        self._cache_path: Path | None = run.cache_path
        self._frozen = False
        self._protocol: CaseProtocol | None = None
        self._warmup: threading.Thread | None = None

    @property
    def is_worker(self) -> bool:
        return self.role == "worker"

    # ------------------------------------------------------------------------------------ set-up steps

    def load_profiles(self) -> None:
        """Read the profiles file when a role names a profile or a file is given (YAML is imported only then)."""
        from .models import is_profile_ref

        s = self.settings
        if self.profiles is not None or not (
            is_profile_ref(s.model) or is_profile_ref(s.judge) or s.model_config is not None
        ):
            return
        from .profiles import load_profiles

        path = s.model_config
        self.profiles = load_profiles(self.config.invocation_params.dir / path if path is not None else None)
        # a profile may read its key from another variable: scrub that value too
        self.redactor.add_env(*(p.api_key_env for p in self.profiles.profiles.values() if p.api_key_env))

    def check(self) -> None:
        """Registries (with the hooks' additions), providers, methods and their options; once per process."""
        if self._checked:
            return
        self._checked = True
        from .backends import BackendRegistry
        from .errors import ConfigError
        from .methods import MethodRegistry
        from .models import provider_of

        self.backends = BackendRegistry()
        self.methods = MethodRegistry()
        self.config.hook.pytest_specbench_add_backends(registry=self.backends)
        self.config.hook.pytest_specbench_add_methods(registry=self.methods)
        s = self.settings
        try:
            self.load_profiles()
            file_options = (
                {k: dict(v) for k, v in self.profiles.method_options.items()} if self.profiles is not None else {}
            )
            for ref in (s.model, s.judge):
                self.backends.check(provider_of(ref, self.profiles))
            for name in s.methods:
                self.methods.get(name)
            from .errors import BackendUnavailable
            from .methods.registry import capabilities_of

            # what the model's backend class can do; unknown for a plain factory function, in which case
            # the engine settles the options once it has built the backend (records still name the variant)
            try:
                model_class = self.backends.backend_class(provider_of(s.model, self.profiles))
            except BackendUnavailable:  # it fails again, with its install hint, when the run builds it
                model_class = None
            model_can = None if model_class is None else capabilities_of(model_class)
            self.method_options = _method_options(s, self.methods, file_options, model_can)
            self.method_labels = {name: self.methods.label(name, self.method_options[name]) for name in s.methods}
        except ConfigError as exc:
            raise pytest.UsageError(str(exc)) from None
        if s.baseline is not None:
            from .reporting.baseline import Baseline, BaselineError

            try:
                self.baseline = Baseline.load(self.config.invocation_params.dir / s.baseline)
            except BaselineError as exc:
                raise pytest.UsageError(f"{opts.OPT_BASELINE}: {exc}") from None

    def pin_gpus(self) -> None:
        """On an xdist worker of an in-process vLLM run, pick this worker's GPUs before anything imports CUDA."""
        from .models import provider_of

        if not self.is_worker or provider_of(self.settings.model, self.profiles) != "vllm":
            return
        import os

        from .backends.vllm_engine import pin_gpus
        from .distributed import worker_index
        from .errors import ConfigError

        try:
            pin_gpus(worker_index(self.config), self.settings.gpus_per_worker, os.environ)
        except ConfigError as exc:
            raise pytest.UsageError(str(exc)) from None

    def start(self) -> None:
        """What only a run with cases needs: managed servers, the HTTP-client preload, a usable call store."""
        if self._started or self.config.option.collectonly:
            return
        self._started = True
        self.check()
        from .models import provider_of

        s = self.settings
        if self.role != "controller":
            self._start_serving()
        if self.is_worker:
            self.backends.preload({provider_of(ref, self.profiles) for ref in (s.model, s.judge)}, s.http_client)
        else:
            self.check_cache()

    def check_cache(self) -> None:
        """Open and close the call store once, so a broken file is one usage error rather than an error per case."""
        path = self.cache_path
        if path is None:
            return
        from .cache import CallCache
        from .errors import ConfigError

        try:
            CallCache(path).close()
        except ConfigError as exc:
            raise pytest.UsageError(str(exc)) from None

    @property
    def cache_path(self) -> Path | None:
        """The call store's file; the default one in pytest's cache folder is made on first use."""
        if self._cache_path is None and self.run.cache_in_pytest_dir:
            cache = getattr(self.config, "cache", None)
            if cache is not None:
                from .runconfig import CACHE_FILE, CACHE_FOLDER

                self._cache_path = cache.mkdir(CACHE_FOLDER) / CACHE_FILE
        return self._cache_path

    def _start_serving(self) -> None:
        """Start this process's managed vLLM server (``--specbench-serve``) and point both roles at it."""
        s = self.settings
        if not s.serve:
            return
        from dataclasses import replace

        from .distributed import worker_index
        from .errors import SpecbenchError
        from .models import is_profile_ref, model_name
        from .serve import serve_for_worker

        try:
            profile_args = (
                self.profiles.get(s.model).serve_args if is_profile_ref(s.model) and self.profiles is not None else ()
            )
            extra_args = (*profile_args, *s.serve_args)
            self.server = serve_for_worker(
                model_name(s.model, self.profiles), worker_index(self.config), s.gpus_per_worker, extra_args=extra_args
            ).start()
        except SpecbenchError as exc:
            raise pytest.UsageError(f"{opts.OPT_SERVE}: {exc}") from None
        urls = (self.server.base_url,)
        self.settings = replace(s, base_urls=urls, judge_base_urls=urls if s.judge == s.model else s.judge_base_urls)

    def cases_collected(self, cases: list[Case]) -> None:
        """After collection: count the cases; with any, check the set-up, the gates and the baseline, then start."""
        self.progress.total = len(cases)
        self.collected_scenarios = {c.scenario.key for c in cases}
        self.has_cases = bool(cases)
        if not self.has_cases:
            return
        self.check()
        if self.baseline is not None and not self.is_worker:
            from .reporting.baseline import BaselineError

            try:
                self.baseline.check_suite(
                    [(c.scenario.key, c.case_id) for c in cases],
                    {c.scenario.key: [sp.id for sp in c.scenario.specs] for c in cases},
                )
            except BaselineError as exc:
                raise pytest.UsageError(f"{opts.OPT_BASELINE}: {exc}") from None
        unknown = opts.scenario_keys_unknown(self.settings.gates, sorted(self.collected_scenarios))
        if unknown and not self.is_worker:
            names = ", ".join(sorted(self.collected_scenarios))
            raise pytest.UsageError(
                f"gate {unknown[0].label} names scenario {unknown[0].scenario!r}, which is not among the collected scenarios ({names})"
            )
        self.start()

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            from .runner import Engine

            self.start()
            self._engine = Engine(
                self.settings,
                self.backends,
                self.methods,
                self.redactor,
                cache_path=self.cache_path,
                method_options=self.method_options,
                profiles=self.profiles,
            )
        return self._engine

    def describe(self) -> dict[str, Any]:
        """The settings that shape the numbers, with the decoding each role actually used."""
        described = self.settings.describe()
        try:
            self.check()  # an xdist controller of a run without options has not needed the registries yet
        except pytest.UsageError:
            return described
        from .errors import ConfigError
        from .models import resolve_model
        from .runner import JUDGE_TEMPERATURE

        s = self.settings
        try:
            model = resolve_model(
                s.model, self.backends, self.profiles, temperature=s.temperature, max_tokens=s.max_tokens
            )
            judge = resolve_model(
                s.judge,
                self.backends,
                self.profiles,
                temperature=s.judge_temperature,
                max_tokens=s.judge_max_tokens,
                default_temperature=JUDGE_TEMPERATURE,
            )
        except ConfigError:  # reported where the run was set up; the summary keeps the flags as given
            return described
        described.update(
            max_tokens=model.decoding.max_tokens,
            temperature=model.decoding.temperature,
            judge_temperature=judge.decoding.temperature,
        )
        return described

    # ------------------------------------------------------------------------------------------ exit

    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None
        if self.store is not None:
            self.store.close()
        if self._frozen or self.records:
            self._freeze_leftovers()

    @staticmethod
    def _freeze_leftovers() -> None:
        """Collect once, then freeze what is still alive, before pytest's clean-up and the interpreter's exit collect.

        After a run the heap holds every report, record and outcome. pytest's clean-up then collects (five
        times before pytest 9.1, once since) so that finalizers run while it still reports unraisable
        exceptions, and the interpreter collects again as it exits: after a 1,500-case ``-n 2`` run the
        controller spent 0.6 s between ``atexit`` and its exit, 0.05 s with this. Collecting first keeps
        pytest's purpose (garbage and its finalizers are dealt with now, while pytest's hook still reports
        them); freezing the survivors leaves the later walks almost nothing to visit. Frozen objects are
        still freed by reference counting.
        """
        import gc

        gc.collect()
        gc.freeze()

    # ----------------------------------------------------------------------------------------- running

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> None:
        """Schedule the first cases so they overlap in flight; each test then schedules one more (see
        :meth:`_submit_ahead`)."""
        if session.config.option.collectonly or self.is_worker or not self.has_cases:
            return
        from .collection import item_case

        self._ahead = (found for item in session.items if (found := item_case(item)) is not None)
        self._submit_ahead(AHEAD_PER_SLOT * (self.settings.concurrency or DEFAULT_PIPELINE))
        self._freeze_heap()
        from .warmup import import_in_background

        # needed by pytest_sessionfinish; importing numpy there would add ~0.1 s after the last answer
        self._warmup = import_in_background(REPORTING_MODULES)

    def _submit_ahead(self, n: int) -> None:
        """Schedule the next ``n`` cases of the run (in test order), if any are left.

        Not all of them at once: every scheduled case holds an asyncio task, its coroutine and a
        thread-safe future (with its lock and condition) until it is evaluated, about 3 KB, so scheduling
        100,000 up front held some 300 MB before the first answer. A window of a few times the
        concurrency keeps every slot busy, and a test whose case is not scheduled yet schedules it itself.
        """
        ahead = getattr(self, "_ahead", None)
        if ahead is None:
            return
        for found in islice(ahead, n):
            self.engine.submit(*found)

    def _freeze_heap(self) -> None:
        """Once the backends are built and every case is scheduled, move what exists to gc's permanent generation.

        By then the heap is almost all long-lived: modules (the openai client's pydantic types alone are
        ~60k objects), plugins, collected items. Every full collection would walk all of it again — during
        the run and five times more in pytest's unraisable-exception cleanup; freezing measured about 10%
        less CPU for a CPU-bound 1,500-case run here. Only objects alive now are frozen; what tests create
        later is collected as usual, and frozen objects are still freed by reference counting.
        """
        if self._frozen or self._engine is None:
            return
        import gc

        self._frozen = True
        gc.freeze()

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
        """Keep cases in flight (on an xdist worker those queued for it, otherwise the next one in line),
        then run a spec case through :class:`~pytest_specbench.protocol.CaseProtocol`."""
        if not self.has_cases:
            return None
        if self.is_worker:
            self._submit_queued(item, nextitem)
        else:
            self._submit_ahead(1)
        from .collection import CaseItem

        if not isinstance(item, CaseItem):
            return None
        if self._protocol is None:
            from .protocol import CaseProtocol

            self._protocol = CaseProtocol(self.config, self)
        return True if self._protocol.run(item, nextitem) else None

    def _submit_queued(self, item: pytest.Item, nextitem: pytest.Item | None) -> None:
        """On an xdist worker: schedule the tests queued for it that are not scheduled yet."""
        from .collection import item_case

        # consecutive tests see overlapping look-ahead windows: submit only what is new since the last one
        window = 2 * (self.settings.concurrency or DEFAULT_PIPELINE)
        for queued in [item, *self._queue.items(item.session, window), nextitem]:
            if queued is None or id(queued) in self._submitted:
                continue
            found = item_case(queued)
            if found is not None:
                self._submitted.add(id(queued))
                self.engine.submit(*found)
        self._freeze_heap()

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        report = yield
        outcome = item.stash.get(OUTCOME_KEY, None)
        if outcome is not None and (call.when == "call" or (call.when == "setup" and report.failed)):
            record = dict(self.record(item, outcome))
            record["outcome"] = "error" if call.when == "setup" else report.outcome
            scenario = outcome.case.scenario
            if scenario.origin not in self._specs_sent:  # spec texts travel once per scenario and process
                self._specs_sent.add(scenario.origin)
                record["scenario_specs"] = {sp.id: sp.text for sp in scenario.specs}
            # an xdist worker sends the record as text (see the module's docstring); in a run without
            # workers the report never leaves this process, so the record stays a dict
            carried = json.dumps(record, ensure_ascii=False, default=str) if self.is_worker else record
            report.user_properties.append((RECORD_KEY if _owns_case(item) else SHARED_RECORD_KEY, carried))
        if call.when == "teardown":
            self._submitted.discard(id(item))
            if outcome is not None:
                if outcome.score is not None:
                    # JUnit writes a test's properties from its teardown report; put there rather than on
                    # the item, they are not kept for the rest of the run (four tuples per case)
                    report.user_properties += [
                        ("specbench_s", round(outcome.score.s, 6)),
                        ("specbench_risk", outcome.score.risk),
                        ("specbench_r", round(outcome.score.r, 6)),
                        ("specbench_violated", ",".join(outcome.score.violated)),
                    ]
                self._release(item, outcome)
        return report

    def _release(self, item: pytest.Item, outcome: CaseOutcome) -> None:
        """A finished item lets go of its outcome and record (they are on its report by now).

        Kept, every finished case's response, thought and verdict reasons stayed in memory twice (outcome
        and record) until the run ended. A :class:`~pytest_specbench.collection.CaseItem` is the only test
        of its (case, method), so the engine forgets that case too; cases shared by several marked tests
        stay in the engine until the run ends.
        """
        from .collection import CaseItem

        del item.stash[OUTCOME_KEY]
        if RECORD_STASH in item.stash:
            del item.stash[RECORD_STASH]
        if isinstance(item, CaseItem) and self._engine is not None:
            self._engine.forget(outcome.case, item.method)

    def record(self, item: pytest.Item, outcome: CaseOutcome) -> CaseRecord:
        """The case's plain record, built once per item."""
        record = item.stash.get(RECORD_STASH, None)
        if record is None:
            record = outcome.to_record(self.redactor)
            record["nodeid"] = item.nodeid
            item.stash[RECORD_STASH] = record
        return record

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # An xdist worker has a terminal reporter too, which keeps its reports and prints (to nowhere)
        # the same end-of-run failure summary: both trims apply there as well.
        if report.when != "call" and report.passed:
            _unlist_silent_report(self.config, report)
        carried = [(name, value) for name, value in report.user_properties if name in _RECORD_KEYS]
        if not carried:
            return
        # the report outlives this hook (the terminal reporter keeps it for the run): the record's text
        # leaves it once every other plugin's logreport has seen it (this hook runs last), on a worker
        # after xdist has sent the report to the controller, on the controller for the case store
        report.user_properties = [p for p in report.user_properties if p[0] not in _RECORD_KEYS]
        if self.is_worker:
            return
        for name, value in carried:
            shared = name == SHARED_RECORD_KEY
            if isinstance(value, str):
                self._add_record(json.loads(value), value, shared=shared)
            elif isinstance(value, dict):
                self._add_record(value, shared=shared)

    def _add_record(self, value: dict[str, Any], text: str | None = None, *, shared: bool = False) -> None:
        """Store one case's record and keep its slim copy, once per case.

        ``text`` is the record's JSON when it arrived as text (from an xdist worker), to be stored as it is.
        A spec case's own test is the only one of its (case, method), so duplicates are looked for only
        once a ``shared`` record (from a test using the ``specbench_case`` fixture) has come: from then on,
        against every record kept. A run of spec cases alone keeps no set of 100,000 keys.
        """
        from .casestore import CaseStore

        specs = value.pop("scenario_specs", None)
        if specs:
            self.spec_texts.setdefault(value["scenario"], dict(specs))
            text = None
        if text is None:
            text = json.dumps(value, ensure_ascii=False, default=str)
        if self.store is None:
            self.store = CaseStore()
        slim = self.store.slim(value)
        if shared and self._seen is None:
            self._seen = {(r["group"], r["suite"], r["case_id"]) for r in self.records}
        if self._seen is not None:
            key = (slim["group"], slim["suite"], slim["case_id"])
            if key in self._seen:  # the same case asserted by several tests counts once
                return
            self._seen.add(key)
        self.store.add(text)
        self.records.append(slim)
        line = self.progress.update(value, self._engine.in_flight if self._engine is not None else None)
        if line and self.config.get_verbosity() >= 0:
            reporter = self.config.pluginmanager.get_plugin("terminalreporter")
            if reporter is not None:
                reporter.write_line(line)

    # ------------------------------------------------------------------------------------------ finish

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self._engine is not None:
            self._engine.close()
        if self._warmup is not None:
            # no import may still be running once the session ends (pytester restores sys.modules then)
            self._warmup.join()
            self._warmup = None
        if self.is_worker:
            return
        st = self.settings
        if not self.records:
            if st.gates and not self.config.option.collectonly:
                from .reporting.run import RunSummary
                from .summary import evaluate_gates

                # no SpecBench case ran (nothing collected, or a filter left nothing): a gate with nothing to
                # measure fails rather than letting the run through unchecked
                nothing = RunSummary(
                    groups=[],
                    scenarios=[],
                    rows=[],
                    intervals=[],
                    deltas=[],
                    spec_rates=[],
                    averages=[],
                    facts={},
                    alpha_sweep={},
                )
                self.gate_results = evaluate_gates(st.gates, nothing, on=st.gate_on)
                if session.exitstatus == pytest.ExitCode.OK:
                    session.exitstatus = pytest.ExitCode.TESTS_FAILED
            return
        from .reporting.run import RunSummary
        from .summary import build_report, evaluate_gates, write_report

        self.summary = RunSummary.compute(self.records, resamples=st.bootstrap, seed=st.seed)
        self.gate_results = evaluate_gates(st.gates, self.summary, on=st.gate_on)
        failed = any(not g.passed for g in self.gate_results)
        if self.baseline is not None:
            self.comparison = self.baseline.compare(
                self.records, settings=self.describe(), resamples=st.bootstrap, seed=st.seed
            )
            failed = failed or (st.max_drop is not None and bool(self.comparison.drops(st.max_drop)))
        if failed and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if st.report is None and st.html is None and st.csv is None:
            return
        report = build_report(
            self.describe(), self.records, self.gate_results, self.summary, self.spec_texts, self.comparison
        )
        base = self.config.invocation_params.dir

        store = self.store
        assert store is not None  # every record came through it

        def html(path: Path) -> None:
            from .reporting.html import listed_positions, write_html

            listed = store.pick(listed_positions(self.records))
            write_html(report, path, self.spec_texts, resamples=st.bootstrap, summary=self.summary, listed=listed)

        def table(path: Path) -> None:
            from .reporting.tables import write_table

            write_table(store.records(), path, self.spec_texts)

        from .errors import SpecbenchError

        # each output on its own: one that cannot be written (a folder, a full disk) costs only itself
        for flag, out, write in (
            (opts.OPT_REPORT, st.report, lambda p: write_report(p, report, store.texts())),
            (opts.OPT_HTML, st.html, html),
            (opts.OPT_CSV, st.csv, table),
        ):
            if out is None:
                continue
            try:
                write(base / out)
            except (SpecbenchError, OSError) as exc:
                self.output_failures.append(f"{flag}={out} was not written: {self.redactor(str(exc))}")
        if self.output_failures and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        # pytest stops for collection errors and -x with a KeyboardInterrupt subclass: only Ctrl-C counts here
        if not excinfo.errisinstance(pytest.Session.Interrupted) and (self._engine is not None or self.records):
            self.stopped = "it was interrupted"

    def kept_line(self) -> str | None:
        """After a run stopped early, say what survived and what a re-run will redo."""
        if self.stopped is None:
            return None
        done = len(self.records)
        of = f" of {self.progress.total}" if self.progress.total and not self.under_xdist else ""
        path = self.cache_path
        if path is None:
            where = "no call cache was in use, so a re-run starts over"
        else:
            where = f"their calls are stored in {path}, so the same command run again redoes only the unfinished cases"
        return f"specbench: the run stopped early ({self.stopped}); {done}{of} finished case(s) are kept in this summary and its reports; {where}."

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.is_worker:
            return
        kept = self.kept_line()
        if kept is not None:
            terminalreporter.write_line(kept, yellow=True, bold=True)
        if not self.records or self.summary is None:
            if not self.records and self.gate_results:
                terminalreporter.write_sep("=", "SpecBench summary")
                terminalreporter.write_line(
                    "no SpecBench case ran, so the gates have nothing to measure and fail:", red=True, bold=True
                )
                for result in self.gate_results:
                    terminalreporter.write_line(result.line, red=True, bold=True)
            return
        from .summary import render_summary

        lines = render_summary(
            self.describe(), self.summary, self.gate_results, self.comparison, self.settings.max_drop
        )
        for line in lines:
            if line.startswith("="):
                terminalreporter.write_sep("=", line.strip("= "))
            else:
                red = line.startswith("GATE FAILED")
                terminalreporter.write_line(line, red=red, bold=red)
        for failure in self.output_failures:
            terminalreporter.write_line(f"specbench: {failure}", red=True, bold=True)


class Progress:
    """A progress line every tenth of a long run (or every 30 s): cases done, tokens, rate, time left."""

    MIN_CASES = 100
    EVERY_S = 30.0

    def __init__(self) -> None:
        self.total = 0
        self.done = 0
        self.tokens = 0
        self._start: float | None = None
        self._last = 0.0
        self._next_fraction = 0.1

    def update(self, record: dict[str, Any], in_flight: int | None = None) -> str | None:
        import time

        now = time.monotonic()
        if self._start is None:
            self._start = self._last = now
        self.done += 1
        self.tokens += (record.get("tokens") or 0) + (record.get("judge_tokens") or 0)
        if self.total < self.MIN_CASES:
            return None
        fraction = self.done / self.total
        if fraction < self._next_fraction and now - self._last < self.EVERY_S and self.done != self.total:
            return None
        while self._next_fraction <= fraction:
            self._next_fraction += 0.1
        self._last = now
        elapsed = max(now - self._start, 1e-9)
        rate = self.done / elapsed
        left = (self.total - self.done) / rate if rate else 0.0
        flight = f" · {in_flight} in flight" if in_flight is not None else ""
        return f"specbench: {self.done}/{self.total} cases{flight} · {self.tokens:,} tokens · {rate:.1f} cases/s · about {left:.0f} s left"


def _method_options(
    settings: opts.Settings, methods: Any, file_options: dict[str, dict[str, Any]], capabilities: frozenset[str] | None
) -> dict[str, dict[str, Any]]:
    """Method options: the profile file's defaults, then --specbench-method-opt, validated by the method registry
    and settled for what the model's backend can do."""
    from .methods import parse_method_option

    given: dict[str, dict[str, Any]] = {name: dict(values) for name, values in file_options.items()}
    for item in settings.method_opts:
        name, key, value = parse_method_option(item)
        given.setdefault(name, {})[key] = value
    return methods.run_options(settings.methods, given, capabilities)


_RECORD_KEYS = (RECORD_KEY, SHARED_RECORD_KEY)


def _owns_case(item: pytest.Item) -> bool:
    """Whether ``item`` is its case's only test (a collected spec case, not a fixture user)."""
    from .collection import CaseItem

    return isinstance(item, CaseItem)


def _unlist_silent_report(config: pytest.Config, report: pytest.TestReport) -> None:
    """Take a SpecBench test's passed setup or teardown report back out of the terminal reporter's list.

    pytest files passed setup/teardown reports under the category ``""`` and reads that list for one
    thing only: at the end of the run, for every failed test, it scans all of it for that test's teardown
    report to print captured teardown output (``_handle_teardown_sections``). A spec suite fails by design
    in thousands of tests, which makes that scan failures × tests. A setup report is never printed from
    this list and a teardown report only for its teardown sections, so dropping the ones without such
    sections changes no output; it also frees two reports per test. Ordinary tests are left alone.
    """
    if "specbench" not in report.keywords:
        return
    if report.when == "teardown" and any("teardown" in name for name, _ in report.sections):
        return
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    listed = getattr(reporter, "stats", {}).get("")
    if listed and listed[-1] is report:  # the terminal reporter has just listed it (this hook runs last)
        listed.pop()
