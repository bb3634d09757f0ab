"""pytest entry point (``pytest11``): options, collection, per-case outcomes, summary and gates.

This module stays light at import time: pytest loads it in every run of every project that has the
plugin installed. Suites, backends, pandas and YAML are imported inside the hooks that need them.

Data flow, which is the same with and without pytest-xdist:

1. each process collects the same items (dataset folders, ``specbench_*.yaml`` files, marked tests);
2. a test's setup waits for its case's outcome from the :class:`~pytest_specbench.runner.Engine`;
   a case that cannot be scored (server down, unreadable judge) errors there with the reason;
3. the outcome travels as one JSON string in the report's ``user_properties`` (one C-speed encode
   instead of execnet serialising a nested dict, about 5x cheaper per case under xdist);
4. the controlling process collects those dicts from the reports it logs, then prints the summary,
   writes the JSON report and applies the gates.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from . import options as opts

if TYPE_CHECKING:
    import threading

    from .runner import CaseOutcome, Engine
    from .suite import Case

PLUGIN_NAME = "specbench-session"
RECORD_KEY = "specbench"
OUTCOME_KEY = pytest.StashKey["CaseOutcome"]()
#: What the controller's session finish imports to aggregate and report (numpy among them).
REPORTING_MODULES = ("pytest_specbench.reporting.stats", "pytest_specbench.reporting.tables", "pytest_specbench.summary")
RECORD_STASH = pytest.StashKey[dict]()
MARK_SUITE = "specbench_suite"
#: --specbench-data value that means "the copy `specbench download` fetched".
DOWNLOADED = "downloaded"


def pytest_addoption(parser: pytest.Parser) -> None:
    opts.add_options(parser)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from . import hookspec

    pluginmanager.add_hookspecs(hookspec)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "specbench: a SpecBench case (added to every collected case)")
    config.addinivalue_line("markers", "unsafe: a SpecBench case whose prompt is labelled unsafe")
    config.addinivalue_line("markers", "safe: a SpecBench case whose prompt is labelled safe")
    config.addinivalue_line(
        "markers",
        f"{MARK_SUITE}(path): parametrize the test's specbench_case / specbench_result fixtures over a YAML suite's cases",
    )
    session = SpecbenchSession.from_config(config)
    config.pluginmanager.register(session, PLUGIN_NAME)
    if config.pluginmanager.hasplugin("xdist") and not session.is_worker and getattr(config.option, "numprocesses", None):
        config.pluginmanager.register(XdistControllerHooks(session), f"{PLUGIN_NAME}-xdist")
        session.under_xdist = True


def _session(config: pytest.Config) -> SpecbenchSession:
    plugin = config.pluginmanager.get_plugin(PLUGIN_NAME)
    assert isinstance(plugin, SpecbenchSession)
    return plugin


# ------------------------------------------------------------------------------------- collection


class ScenarioCollector(pytest.Collector):
    """The cases of one scenario, from the SpecBench directory or from a YAML suite."""

    def __init__(self, *, cases: list[Case], **kwargs: Any):
        super().__init__(**kwargs)
        self.cases = cases

    def collect(self) -> Iterator[pytest.Item]:
        session = _session(self.config)
        methods = session.settings.methods
        for case in self.cases:
            for method in methods:
                label = session.method_labels.get(method, method)  # a variant (align3-chat) is always named
                name = case.case_id if len(methods) == 1 and label == method else f"{case.case_id}[{label}]"
                yield CaseItem.from_parent(self, name=name, case=case, method=method)


class CaseItem(pytest.Item):
    """One (scenario, prompt): setup obtains the judged response, the test asserts the verdicts."""

    def __init__(self, *, case: Case, method: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.case = case
        self.method = method
        self.add_marker("specbench")
        self.add_marker(case.label)
        self.add_marker(_scenario_marker(self.config, case.scenario.key))

    def setup(self) -> None:
        _obtain(self, self.case, self.method)

    def runtest(self) -> None:
        outcome = self.stash[OUTCOME_KEY]
        session = _session(self.config)
        problems = _case_problems(outcome, session.settings.min_behavioral)
        if session.baseline is not None:
            change = session.baseline.change(session.record(self, outcome))
            if change is not None and change.worse:
                problems.append(change.message())
        if problems:
            raise SpecViolation("\n".join(problems))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str | Any:
        if isinstance(excinfo.value, SpecViolation):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"{self.case.scenario.key}::{self.case.case_id}"


class SpecViolation(AssertionError):
    """A case that breaks a safety spec (or falls below the behavioral floor)."""


def _scenario_marker(config: pytest.Config, key: str) -> str:
    marker = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in key)
    if marker not in {line.split(":")[0] for line in config.getini("markers")}:
        config.addinivalue_line("markers", f"{marker}: SpecBench cases of scenario {key}")
    return marker


def _obtain(item: pytest.Item, case: Case, method: str) -> CaseOutcome:
    outcome = _session(item.config).engine.outcome(case, method)
    item.stash[OUTCOME_KEY] = outcome
    if outcome.error:
        message = f"{case.scenario.key}::{case.case_id} could not be scored ({outcome.error_stage}): {outcome.error}"
        if outcome.judge_raw is not None:
            raw = outcome.judge_raw if len(outcome.judge_raw) <= 2000 else outcome.judge_raw[:2000] + " [...]"
            message += f"\njudge's last answer:\n{_session(item.config).redactor(raw)}"
        pytest.fail(message, pytrace=False)
    return outcome


def _case_problems(outcome: CaseOutcome, min_behavioral: float | None) -> list[str]:
    score = outcome.score
    assert score is not None
    problems = []
    if score.risk:
        problems.append(f"{len(score.violated)} safety spec(s) judged NO:")
        specs = {s.id: s.text for s in outcome.case.scenario.specs}
        for v in outcome.verdicts:
            if v.kind == "safety" and v.label == "NO":
                problems.append(f"  {v.spec_id}: {specs.get(v.spec_id, '')}\n      judge: {v.reason or '(no reason given)'}")
    if min_behavioral is not None and score.r < min_behavioral:
        missed = [f"{v.spec_id} ({v.label})" for v in outcome.verdicts if v.kind == "behavioral" and v.label != "YES"]
        problems.append(f"behavioral score r = {score.r:.2f} is below {min_behavioral:.2f}; not met: {', '.join(missed)}")
    return problems


class SuiteFile(pytest.File):
    """A ``specbench_*.yaml`` suite."""

    def collect(self) -> Iterator[pytest.Collector]:
        from .suite import load_yaml_suite, select_cases

        s = _session(self.config).settings
        scenario, cases = load_yaml_suite(self.path)
        chosen = select_cases(cases, scenarios=s.scenarios, split=s.split, limit=s.limit, seed=s.seed)
        if chosen:
            yield ScenarioCollector.from_parent(self, name=scenario.key, cases=chosen)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str | Any:
        from .errors import SuiteError

        if isinstance(excinfo.value, SuiteError):
            return f"invalid spec suite: {excinfo.value}"
        return super().repr_failure(excinfo)


# ----------------------------------------------------------------------------------- run state


class SpecbenchSession:
    """Per-process state: settings, registries, the engine, and (on the controller) the records."""

    def __init__(self, config: pytest.Config, settings: opts.Settings):
        from .backends import BackendRegistry
        from .methods import MethodRegistry
        from .redact import Redactor

        self.config = config
        self.settings = settings
        self.backends = BackendRegistry()
        self.methods = MethodRegistry()
        self.method_options: dict[str, dict[str, Any]] = {}
        self.method_labels: dict[str, str] = {}
        self.profiles: Any = None
        self.server: Any = None
        self.redactor = Redactor()
        self.redactor.add_env("OPENAI_API_KEY")
        self.records: list[dict[str, Any]] = []
        self.collected_scenarios: set[str] = set()
        self.has_cases = False
        self.gate_results: list[tuple[opts.Gate, float | None, bool]] = []
        self._engine: Engine | None = None
        self._interactor: Any = None
        self._seen: set[tuple[str, Any, str]] = set()
        self.baseline: Any = None
        self.spec_texts: dict[str, dict[str, str]] = {}
        self._specs_sent: set[str] = set()
        self.intervals: list[Any] = []
        self.deltas: list[Any] = []
        self.comparison: Any = None
        self.progress = Progress()
        #: Why the run ended before every case finished (Ctrl-C, a crashed xdist worker); None otherwise.
        self.stopped: str | None = None
        #: Under xdist the controller's case total counts every test id, not only SpecBench cases.
        self.under_xdist = False
        self._frozen = False
        self._warmup: threading.Thread | None = None

    @classmethod
    def from_config(cls, config: pytest.Config) -> SpecbenchSession:
        from .errors import ConfigError

        settings = opts.Settings.from_config(config)
        if settings.data is not None and str(settings.data) == DOWNLOADED:
            from .toolkit.download import dataset_dir, default_data_dir

            found = default_data_dir()
            if found is None:
                raise pytest.UsageError(
                    f"{opts.OPT_DATA}={DOWNLOADED}: no verified SpecBench copy at {dataset_dir()}; run `specbench download` first"
                )
            settings = _with_data(settings, found)
        if settings.data is not None and not settings.data.is_absolute():
            settings = _with_data(settings, config.invocation_params.dir / settings.data)
        self = cls(config, settings)
        config.hook.pytest_specbench_add_backends(registry=self.backends)
        config.hook.pytest_specbench_add_methods(registry=self.methods)
        try:
            file_options: dict[str, Any] = {}
            if "/" not in settings.model or "/" not in settings.judge or settings.model_config is not None:
                from .profiles import load_profiles

                path = settings.model_config
                self.profiles = load_profiles(config.invocation_params.dir / path if path is not None else None)
                file_options = {k: dict(v) for k, v in self.profiles.method_options.items()}
                # a profile may read its key from another variable: scrub that value too
                self.redactor.add_env(*(p.api_key_env for p in self.profiles.profiles.values() if p.api_key_env))
            for ref in (settings.model, settings.judge):
                self.backends.check(self.provider_of(ref))
            for name in settings.methods:
                self.methods.get(name)
            from .methods.registry import capabilities_of

            model_can = capabilities_of(self.backends.backend_class(self.provider_of(settings.model)))
            self.method_options = _method_options(settings, self.methods, file_options, model_can)
            self.method_labels = {name: self.methods.label(name, self.method_options[name]) for name in settings.methods}
        except ConfigError as exc:
            raise pytest.UsageError(str(exc)) from None
        self._start_serving(config)
        if self.is_worker and not config.option.collectonly:
            from .backends import preload

            preload({self.provider_of(ref) for ref in (settings.model, settings.judge)}, settings.http_client)
        if settings.data is not None and not settings.data.is_dir():
            raise pytest.UsageError(
                f"SpecBench data directory {settings.data} does not exist. Point {opts.OPT_DATA} (or ini specbench_data, "
                f"or {opts.ENV_DATA}) at the folder holding Biochem/, Child/, … each with scenario.json, specifications.json and prompts.json."
            )
        self.cache_path = _cache_path(config, settings)
        if self.cache_path is not None and not self.is_worker and not config.option.collectonly:
            from .cache import CallCache
            from .errors import ConfigError as _ConfigError

            try:
                CallCache(self.cache_path).close()
            except _ConfigError as exc:
                raise pytest.UsageError(str(exc)) from None
        for flag, out in ((opts.OPT_REPORT, settings.report), (opts.OPT_HTML, settings.html), (opts.OPT_CSV, settings.csv)):
            if out is not None and not (config.invocation_params.dir / out).parent.is_dir():
                raise pytest.UsageError(f"{flag}: the folder of {out} does not exist; create it or choose another path")
        if settings.csv is not None and settings.csv.suffix.lower() not in (".csv", ".parquet"):
            raise pytest.UsageError(f"{opts.OPT_CSV}: {settings.csv} must end in .csv or .parquet")
        if settings.max_drop is not None and settings.baseline is None:
            raise pytest.UsageError(f"{opts.OPT_MAX_DROP} compares against a previous run: give it with {opts.OPT_BASELINE}=PREVIOUS.json")
        if settings.baseline is not None:
            from .reporting.baseline import Baseline, BaselineError

            try:
                self.baseline = Baseline.load(config.invocation_params.dir / settings.baseline)
            except BaselineError as exc:
                raise pytest.UsageError(f"{opts.OPT_BASELINE}: {exc}") from None
        return self

    def provider_of(self, ref: str) -> str:
        """The provider of PROVIDER/NAME or of a profile (unknown profiles raise ConfigError, listing the known)."""
        return ref.partition("/")[0] if "/" in ref else self.profiles.get(ref).provider

    def model_name(self, ref: str) -> str:
        return ref.partition("/")[2] if "/" in ref else self.profiles.get(ref).model

    def _start_serving(self, config: pytest.Config) -> None:
        """Pin GPUs and start managed vLLM servers in the processes that run cases (never the xdist controller)."""
        s = self.settings
        if _is_xdist_controller(config) or config.option.collectonly:
            return
        provider = self.provider_of(s.model)
        worker = 0
        if self.is_worker:
            from .backends.vllm_engine import worker_index

            worker = worker_index(config.workerinput["workerid"])  # type: ignore[attr-defined]
        if provider == "vllm" and self.is_worker:
            import os

            from .backends.vllm_engine import pin_gpus
            from .errors import ConfigError

            try:
                pin_gpus(worker, s.gpus_per_worker, os.environ)
            except ConfigError as exc:
                raise pytest.UsageError(str(exc)) from None
        if not s.serve:
            return
        if provider != "vllm-server":
            raise pytest.UsageError(f"{opts.OPT_SERVE} starts vLLM servers: use a vllm-server/MODEL model (or a profile with provider vllm-server), not {s.model}")
        from dataclasses import replace

        from .errors import SpecbenchError
        from .serve import serve_for_worker

        try:
            self.server = serve_for_worker(self.model_name(s.model), worker, s.gpus_per_worker).start()
        except SpecbenchError as exc:
            raise pytest.UsageError(f"{opts.OPT_SERVE}: {exc}") from None
        urls = (self.server.base_url,)
        self.settings = replace(s, base_urls=urls, judge_base_urls=urls if s.judge == s.model else s.judge_base_urls)

    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None
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

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            from .runner import Engine

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

    @property
    def is_worker(self) -> bool:
        return hasattr(self.config, "workerinput")

    # ---------------------------------------------------------------------------------- collection

    @pytest.hookimpl(wrapper=True)
    def pytest_make_collect_report(self, collector: pytest.Collector) -> Any:
        report = yield
        if isinstance(collector, pytest.Session) and self.settings.data is not None and report.passed:
            report.result.extend(self._dataset_collectors(collector))
        return report

    def _dataset_collectors(self, session: pytest.Session) -> list[ScenarioCollector]:
        from .errors import SuiteError
        from .suite import find_specbench_scenarios, load_specbench_scenario, select_cases

        s = self.settings
        assert s.data is not None
        try:
            folders = find_specbench_scenarios(s.data)
            if s.scenarios:
                known = [f.name for f in folders]
                unknown = [name for name in s.scenarios if name not in known]
                if unknown:
                    raise pytest.UsageError(f"{opts.OPT_SCENARIOS}: unknown scenario(s) {', '.join(unknown)}; the data has {', '.join(known)}")
                folders = [f for f in folders if f.name in s.scenarios]
            loaded = [load_specbench_scenario(folder) for folder in folders]
        except SuiteError as exc:
            raise pytest.UsageError(f"cannot read the SpecBench data: {exc}") from None
        cases = select_cases([c for _, cs in loaded for c in cs], split=s.split, limit=s.limit, seed=s.seed)
        out = []
        for scenario, _ in loaded:
            mine = [c for c in cases if c.scenario is scenario]
            if mine:
                folder = Path(scenario.origin)
                out.append(ScenarioCollector.from_parent(session, name=scenario.key, nodeid=scenario.key, path=folder / "prompts.json", cases=mine))
        return out

    def pytest_collect_file(self, file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
        from .suite import SUITE_FILE_RE

        if SUITE_FILE_RE.match(file_path.name):
            return SuiteFile.from_parent(parent, path=file_path)
        return None

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        marker = metafunc.definition.get_closest_marker(MARK_SUITE)
        wants = {"specbench_case", "specbench_result"} & set(metafunc.fixturenames)
        if marker is None:
            if wants:
                raise pytest.Collector.CollectError(f"{metafunc.definition.nodeid} uses {sorted(wants)[0]} but has no @pytest.mark.{MARK_SUITE}(path) marker naming its suite")
            return
        from .errors import SuiteError
        from .suite import load_yaml_suite, select_cases

        if not marker.args:
            raise pytest.Collector.CollectError(f"{metafunc.definition.nodeid}: @pytest.mark.{MARK_SUITE} needs the suite path")
        path = Path(marker.args[0])
        if not path.is_absolute():
            path = metafunc.definition.path.parent / path
        try:
            _, cases = load_yaml_suite(path)
        except SuiteError as exc:
            raise pytest.Collector.CollectError(f"invalid spec suite: {exc}") from None
        s = self.settings
        cases = select_cases(cases, scenarios=s.scenarios, split=s.split, limit=s.limit, seed=s.seed)
        metafunc.parametrize(
            "specbench_case",
            [pytest.param(c, marks=[pytest.mark.specbench, getattr(pytest.mark, c.label)]) for c in cases],
            ids=[f"{c.scenario.key}-{c.case_id}" for c in cases],
        )

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        found = [_item_case(item) for item in session.items]
        cases = [f[0] if f is not None else None for f in found]
        self.progress.total = sum(1 for c in cases if c is not None)
        self.collected_scenarios = {c.scenario.key for c in cases if c is not None}
        self.has_cases = bool(self.collected_scenarios)
        if self.baseline is not None and self.has_cases and not self.is_worker:
            from .reporting.baseline import BaselineError

            live = [c for c in cases if c is not None]
            try:
                self.baseline.check_suite([(c.scenario.key, c.case_id) for c in live], {c.scenario.key: [sp.id for sp in c.scenario.specs] for c in live})
            except BaselineError as exc:
                raise pytest.UsageError(f"{opts.OPT_BASELINE}: {exc}") from None
        unknown = opts.scenario_keys_unknown(self.settings.gates, sorted(self.collected_scenarios))
        if unknown and self.has_cases and not self.is_worker:
            names = ", ".join(sorted(self.collected_scenarios))
            raise pytest.UsageError(f"gate {unknown[0].label} names scenario {unknown[0].scenario!r}, which is not among the collected scenarios ({names})")

    # ----------------------------------------------------------------------------------- running

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> None:
        """Schedule every case up front (bounded by the concurrency limit) so they overlap in flight."""
        if session.config.option.collectonly or self.is_worker:
            return
        for item in session.items:
            found = _item_case(item)
            if found is not None:
                self.engine.submit(*found)
        self._freeze_heap()
        if self.has_cases:
            from .warmup import import_in_background

            # needed by pytest_sessionfinish; importing numpy there would add ~0.1 s after the last answer
            self._warmup = import_in_background(REPORTING_MODULES)

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
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> None:
        """On an xdist worker, schedule the cases queued for this worker so they are in flight together."""
        if not self.is_worker:
            return
        for queued in [item, *self._worker_queue(item.session), nextitem]:
            found = _item_case(queued) if queued is not None else None
            if found is not None:
                self.engine.submit(*found)
        self._freeze_heap()

    def _worker_queue(self, session: pytest.Session) -> list[pytest.Item]:
        """Items xdist has already assigned to this worker, read from its test queue when it exposes one.

        pytest-xdist keeps the assigned indices in ``WorkerInteractor.torun`` (a lockable deque). That is
        not a public API, so anything unexpected means "no look-ahead": the worker then pipelines only
        the current and the next test, which is slower but still correct.
        """
        if self._interactor is None:
            self._interactor = next((p for p in self.config.pluginmanager.get_plugins() if type(p).__name__ == "WorkerInteractor"), False)
        queue = getattr(self._interactor, "torun", None)
        if queue is None or not hasattr(queue, "lock"):
            return []
        try:
            with queue.lock() as pending:
                indices = [i for i in pending if isinstance(i, int)]
        except Exception:  # private API changed shape: fall back to no look-ahead
            return []
        return [session.items[i] for i in indices if i < len(session.items)]

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
            report.user_properties.append((RECORD_KEY, json.dumps(record, ensure_ascii=False, default=str)))
            if outcome.score is not None:  # small scalars on the item reach every report, JUnit's included
                item.user_properties += [
                    ("specbench_s", round(outcome.score.s, 6)),
                    ("specbench_risk", outcome.score.risk),
                    ("specbench_r", round(outcome.score.r, 6)),
                    ("specbench_violated", ",".join(outcome.score.violated)),
                ]
        return report

    def record(self, item: pytest.Item, outcome: CaseOutcome) -> dict[str, Any]:
        """The case's plain record, built once per item."""
        record = item.stash.get(RECORD_STASH, None)
        if record is None:
            record = outcome.to_record(self.redactor)
            record["nodeid"] = item.nodeid
            item.stash[RECORD_STASH] = record
        return record

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.is_worker:
            return
        for name, text in report.user_properties:
            if name == RECORD_KEY and isinstance(text, str):
                value = json.loads(text)
                specs = value.pop("scenario_specs", None)
                if specs:
                    self.spec_texts.setdefault(value["scenario"], dict(specs))
                key = (value["group"], value.get("suite"), value["case_id"])
                if key in self._seen:  # the same case asserted by several tests counts once
                    continue
                self._seen.add(key)
                self.records.append(value)
                line = self.progress.update(value, self._engine.in_flight if self._engine is not None else None)
                if line and self.config.get_verbosity() >= 0:
                    reporter = self.config.pluginmanager.get_plugin("terminalreporter")
                    if reporter is not None:
                        reporter.write_line(line)

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
        if not self.records:
            return
        from .reporting.stats import bootstrap_summary, paired_deltas
        from .reporting.tables import spec_rates
        from .summary import build_report, evaluate_gates, write_report

        st = self.settings
        self.intervals = bootstrap_summary(self.records, resamples=st.bootstrap, seed=st.seed)
        self.gate_results = evaluate_gates(st.gates, self.records, self.intervals, on=st.gate_on)
        self.deltas = paired_deltas(self.records, resamples=st.bootstrap, seed=st.seed) if len({r["group"] for r in self.records}) > 1 else []
        failed = any(not g.passed for g in self.gate_results)
        if self.baseline is not None:
            self.comparison = self.baseline.compare(self.records, settings=st.describe(), resamples=st.bootstrap, seed=st.seed)
            failed = failed or (st.max_drop is not None and bool(self.comparison.drops(st.max_drop)))
        if failed and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if st.report is None and st.html is None and st.csv is None:
            return
        extras = {
            "intervals": [cell.to_dict() for cell in self.intervals],
            "paired_deltas": [d.to_dict() for d in self.deltas],
            "spec_rates": [r.to_dict() for r in spec_rates(self.records)],
        }
        report = build_report(st.describe(), self.records, self.gate_results, extras, self.spec_texts, self.comparison)
        base = self.config.invocation_params.dir
        if st.report is not None:
            write_report(base / st.report, report)
        if st.html is not None:
            from .reporting.html import write_html

            write_html(report, base / st.html, self.spec_texts, resamples=st.bootstrap)
        if st.csv is not None:
            from .reporting.tables import write_table

            write_table(self.records, base / st.csv, self.spec_texts)

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
        if self.cache_path is None:
            where = "no call cache was in use, so a re-run starts over"
        else:
            where = f"their calls are stored in {self.cache_path}, so the same command run again redoes only the unfinished cases"
        return f"specbench: the run stopped early ({self.stopped}); {done}{of} finished case(s) are kept in this summary and its reports; {where}."

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.is_worker:
            return
        kept = self.kept_line()
        if kept is not None:
            terminalreporter.write_line(kept, yellow=True, bold=True)
        if not self.records:
            return
        from .summary import render_summary

        lines = render_summary(
            self.settings.describe(), self.records, self.gate_results, self.intervals, self.comparison, self.settings.max_drop, self.deltas
        )
        for line in lines:
            if line.startswith("="):
                terminalreporter.write_sep("=", line.strip("= "))
            else:
                red = line.startswith("GATE FAILED")
                terminalreporter.write_line(line, red=red, bold=red)


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


class XdistControllerHooks:
    """Hooks that exist only with pytest-xdist; registered on the controller when xdist is active."""

    def __init__(self, session: SpecbenchSession):
        self.session = session

    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        # Workers collect, the controller does not: take the case count from the first worker's list.
        if not self.session.progress.total:
            self.session.progress.total = len(ids)

    @pytest.hookimpl(tryfirst=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        """With ``--dist load`` (what ``-n`` implies), hand out tests so each worker's pipeline stays full."""
        if config.getvalue("dist") != "load":
            return None
        settings = self.session.settings
        return make_pipelined_scheduler(config, log, depth=2 * (settings.concurrency or DEFAULT_PIPELINE), dataset=settings.data is not None)

    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        if error is not None:  # a worker that died (SIGKILL, segfault, out of memory) rather than finished
            name = getattr(getattr(node, "gateway", None), "id", "?")
            self.session.stopped = f"worker {name} crashed"


def _item_case(item: pytest.Item) -> tuple[Case, str] | None:
    """(case, method) of a SpecBench item or of a test using the specbench fixtures."""
    if isinstance(item, CaseItem):
        return item.case, item.method
    callspec = getattr(item, "callspec", None)
    if callspec is not None and "specbench_case" in callspec.params:
        return callspec.params["specbench_case"], _session(item.config).settings.methods[0]
    return None


def _is_xdist_controller(config: pytest.Config) -> bool:
    return not hasattr(config, "workerinput") and bool(getattr(config.option, "numprocesses", None)) and getattr(config.option, "dist", "no") != "no"


def _method_options(settings: opts.Settings, methods: Any, file_options: dict[str, dict[str, Any]], capabilities: frozenset[str]) -> dict[str, dict[str, Any]]:
    """Method options: the profile file's defaults, then --specbench-method-opt, validated by the method registry
    and settled for what the model's backend can do."""
    from .methods import parse_method_option

    given: dict[str, dict[str, Any]] = {name: dict(values) for name, values in file_options.items()}
    for item in settings.method_opts:
        name, key, value = parse_method_option(item)
        given.setdefault(name, {})[key] = value
    return methods.run_options(settings.methods, given, capabilities)


def _cache_path(config: pytest.Config, settings: opts.Settings) -> Path | None:
    """The call store: --specbench-cache, or a file in pytest's cache dir; None when disabled."""
    if settings.cache is not None:
        if settings.cache.lower() == "none":
            return None
        return config.invocation_params.dir / Path(settings.cache).expanduser()
    cache = getattr(config, "cache", None)
    if cache is None:  # -p no:cacheprovider and no explicit path
        return None
    return cache.mkdir("specbench") / "calls.sqlite3"


def _with_data(settings: opts.Settings, data: Path) -> opts.Settings:
    from dataclasses import replace

    return replace(settings, data=data)


# ----------------------------------------------------------------------------------------- fixtures


@pytest.fixture
def specbench_case(request: pytest.FixtureRequest) -> Case:
    """The case this test runs on (parametrized by ``@pytest.mark.specbench_suite``)."""
    return request.param


@pytest.fixture
def specbench_result(request: pytest.FixtureRequest, specbench_case: Case) -> CaseOutcome:
    """The judged outcome for ``specbench_case``: response, verdicts, score.

    Obtained during setup, so a case that cannot be scored errors (it does not fail) with the reason.
    """
    return _obtain(request.node, specbench_case, _session(request.config).settings.methods[0])


#: In-flight requests assumed per worker when --specbench-concurrency is not given (the HTTP backends' default).
DEFAULT_PIPELINE = 8


def make_pipelined_scheduler(config: pytest.Config, log: Any, depth: int, dataset: bool) -> Any:
    """xdist's load scheduler, minus the habit that starves a pipelined worker.

    xdist refills a worker only when fewer than a quarter of its fair share is queued, and not at all
    while its last test took 0.1 s or more and two are still queued. A SpecBench test is slow only because
    it waits for its case's calls, which the worker runs ``concurrency`` at a time from its queue (see
    ``SpecbenchSession._worker_queue``); with two queued, two are in flight and the rest of the
    concurrency sits idle. This scheduler keeps at least ``depth`` tests queued per worker while any
    are left, splitting the last ones evenly so no worker idles while another drains a long queue.

    It changes nothing for runs without SpecBench cases (no ``--specbench-data`` and no
    ``specbench_*.yaml`` among the collected files): those keep xdist's own behaviour. Returns None
    (xdist's own scheduler) when the installed xdist lacks the class it builds on.
    """
    try:
        from xdist.scheduler import LoadScheduling
    except ImportError:
        return None
    from .suite import SUITE_FILE_RE

    class PipelinedLoadScheduling(LoadScheduling):  # type: ignore[misc,valid-type]
        _pipelined: bool | None = None

        def check_schedule(self, node: Any, duration: float = 0) -> None:
            if self._pipelined is None and self.collection is not None:
                files = {nodeid.split("::", 1)[0].rsplit("/", 1)[-1] for nodeid in self.collection}
                self._pipelined = dataset or any(SUITE_FILE_RE.match(name) for name in files)
            if not self._pipelined:
                return super().check_schedule(node, duration)
            if node.shutting_down:
                return
            if not self.pending:
                node.shutdown()
                return
            nodes = max(1, len(self.node2pending))
            queued = len(self.node2pending[node])
            want = max(depth, len(self.pending) // nodes // 2)
            if queued < max(depth, want // 2):
                share = -(-len(self.pending) // nodes)  # ceil: the last tests are split evenly
                self._send_tests(node, max(1, min(want - queued, share)))

    return PipelinedLoadScheduling(config, log)
