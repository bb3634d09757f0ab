"""What pytest collects: dataset scenarios, ``specbench_*.yaml`` suites and tests marked with a suite.

Each (scenario, prompt, method) becomes a :class:`CaseItem`; a test that uses the ``specbench_case`` /
``specbench_result`` fixtures under ``@pytest.mark.specbench_suite(path)`` is parametrized over the
suite's cases. Collecting reads suites only: backends, the call store and the engine come later (see
:class:`~pytest_specbench.session.SpecbenchSession`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from . import options as opts
from .session import OUTCOME_KEY, session_of

if TYPE_CHECKING:
    from .runner import CaseOutcome
    from .session import SpecbenchSession
    from .suite import Case

MARK_SUITE = "specbench_suite"


class SpecViolation(AssertionError):
    """A case that breaks a safety spec (or falls below the behavioral floor)."""


class ScenarioCollector(pytest.Collector):
    """The cases of one scenario, from the SpecBench directory or from a YAML suite."""

    def __init__(self, *, cases: list[Case], **kwargs: Any):
        super().__init__(**kwargs)
        self.cases = cases

    def collect(self) -> Iterator[pytest.Item]:
        session = session_of(self.config)
        session.check()  # spec cases are being collected: method labels (align3-chat) name the ids
        methods = session.settings.methods
        if not self.cases:
            return
        # one marker object per name for the whole scenario: made per item, they were three new
        # decorators and marks for every case, which a 100,000-case run keeps to the end
        shared = pytest.mark.specbench
        scenario_mark = getattr(pytest.mark, _scenario_marker(self.config, self.cases[0].scenario.key))
        split_marks = {label: getattr(pytest.mark, label) for label in {c.label for c in self.cases}}
        for case in self.cases:
            item_marks = (shared, split_marks[case.label], scenario_mark)
            for method in methods:
                label = session.method_labels.get(method, method)  # a variant (align3-chat) is always named
                name = case.case_id if len(methods) == 1 and label == method else f"{case.case_id}[{label}]"
                yield CaseItem.from_parent(self, name=name, case=case, method=method, marks=item_marks)


class CaseItem(pytest.Item):
    """One (scenario, prompt): setup obtains the judged response, the test asserts the verdicts.

    ``marks`` are ``specbench``, the case's split and its scenario's marker, shared by the scenario's items
    (see :class:`ScenarioCollector`).
    """

    def __init__(self, *, case: Case, method: str, marks: tuple[pytest.MarkDecorator, ...], **kwargs: Any):
        super().__init__(**kwargs)
        self.case = case
        self.method = method
        for marker in marks:
            self.add_marker(marker)

    def setup(self) -> None:
        obtain(self, self.case, self.method)

    def runtest(self) -> None:
        outcome = self.stash[OUTCOME_KEY]
        session = session_of(self.config)
        problems = case_problems(outcome, session.settings.min_behavioral)
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
        # a line number, even if only the file's first: pytest reports a skip mark at the item's location
        # and stops with an internal error when the item has no line (the prompt's own line is not kept)
        return self.path, 0, f"{self.case.scenario.key}::{self.case.case_id}"


class SuiteFile(pytest.File):
    """A ``specbench_*.yaml`` suite."""

    def collect(self) -> Iterator[pytest.Collector]:
        from .suite import claim_scenario_key, load_yaml_suite, scenario_node_name, select_cases

        s = session_of(self.config).settings
        scenario, cases = load_yaml_suite(self.path)
        claim_scenario_key(session_of(self.config).claimed_scenarios, scenario)
        chosen = select_cases(cases, scenarios=s.scenarios, split=s.split, limit=s.limit, seed=s.seed)
        if chosen:
            yield ScenarioCollector.from_parent(self, name=scenario_node_name(scenario.key), cases=chosen)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str | Any:
        from .errors import SuiteError

        if isinstance(excinfo.value, SuiteError):
            return f"invalid spec suite: {excinfo.value}"
        return super().repr_failure(excinfo)


def _scenario_marker(config: pytest.Config, key: str) -> str:
    from .suite import scenario_marker

    marker = scenario_marker(key)
    if marker not in {line.split(":")[0] for line in config.getini("markers")}:
        config.addinivalue_line("markers", f"{marker}: SpecBench cases of scenario {key}")
    return marker


def obtain(item: pytest.Item, case: Case, method: str) -> CaseOutcome:
    """Wait for the case's outcome in the item's setup; a case that cannot be scored errors with the reason."""
    session = session_of(item.config)
    outcome = session.engine.outcome(case, method)
    item.stash[OUTCOME_KEY] = outcome
    if outcome.error:
        message = f"{case.scenario.key}::{case.case_id} could not be scored ({outcome.error_stage}): {outcome.error}"
        if outcome.judge_raw is not None:
            raw = outcome.judge_raw if len(outcome.judge_raw) <= 2000 else outcome.judge_raw[:2000] + " [...]"
            message += f"\njudge's last answer:\n{session.redactor(raw)}"
        pytest.fail(message, pytrace=False)
    return outcome


def case_problems(outcome: CaseOutcome, min_behavioral: float | None) -> list[str]:
    """Why a scored case fails: the safety specs judged NO, and a behavioral score under the floor."""
    score = outcome.score
    assert score is not None
    problems = []
    if score.risk:
        problems.append(f"{len(score.violated)} safety spec(s) judged NO:")
        specs = {s.id: s.text for s in outcome.case.scenario.specs}
        for v in outcome.verdicts:
            if v.kind == "safety" and v.label == "NO":
                problems.append(
                    f"  {v.spec_id}: {specs.get(v.spec_id, '')}\n      judge: {v.reason or '(no reason given)'}"
                )
    if min_behavioral is not None and score.r < min_behavioral:
        missed = [f"{v.spec_id} ({v.label})" for v in outcome.verdicts if v.kind == "behavioral" and v.label != "YES"]
        problems.append(
            f"behavioral score r = {score.r:.2f} is below {min_behavioral:.2f}; not met: {', '.join(missed)}"
        )
    return problems


def item_case(item: pytest.Item) -> tuple[Case, str] | None:
    """(case, method) of a SpecBench item or of a test using the specbench fixtures."""
    if isinstance(item, CaseItem):
        return item.case, item.method
    callspec = getattr(item, "callspec", None)
    if callspec is not None and "specbench_case" in callspec.params:
        return callspec.params["specbench_case"], session_of(item.config).settings.methods[0]
    return None


class Collection:
    """The collection hooks, registered beside the session in ``pytest_configure``."""

    def __init__(self, session: SpecbenchSession):
        self.session = session

    @pytest.hookimpl(wrapper=True)
    def pytest_make_collect_report(self, collector: pytest.Collector) -> Any:
        report = yield
        if isinstance(collector, pytest.Session) and self.session.settings.data is not None and report.passed:
            report.result.extend(self._dataset_collectors(collector))
        return report

    def _dataset_collectors(self, session: pytest.Session) -> list[ScenarioCollector]:
        from .errors import SuiteError
        from .suite import (
            claim_scenario_key,
            find_specbench_scenarios,
            load_specbench_scenario,
            scenario_node_name,
            select_cases,
        )

        s = self.session.settings
        assert s.data is not None
        try:
            folders = find_specbench_scenarios(s.data)
            if s.scenarios:
                known = [f.name for f in folders]
                unknown = [name for name in s.scenarios if name not in known]
                if unknown:
                    raise pytest.UsageError(
                        f"{opts.OPT_SCENARIOS}: unknown scenario(s) {', '.join(unknown)}; the data has {', '.join(known)}"
                    )
                folders = [f for f in folders if f.name in s.scenarios]
            loaded = [load_specbench_scenario(folder) for folder in folders]
            for scenario, _ in loaded:
                claim_scenario_key(self.session.claimed_scenarios, scenario)
        except SuiteError as exc:
            raise pytest.UsageError(f"cannot read the SpecBench data: {exc}") from None
        cases = select_cases([c for _, cs in loaded for c in cs], split=s.split, limit=s.limit, seed=s.seed)
        out = []
        for scenario, _ in loaded:
            mine = [c for c in cases if c.scenario is scenario]
            if mine:
                folder = Path(scenario.origin)
                name = scenario_node_name(scenario.key)
                out.append(
                    ScenarioCollector.from_parent(
                        session, name=name, nodeid=name, path=folder / "prompts.json", cases=mine
                    )
                )
        return out

    def pytest_collect_file(self, file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
        # Only the file name is looked at; the suite module is imported when such a file exists.
        if file_path.name.startswith("specbench_") and file_path.suffix in (".yaml", ".yml"):
            from .suite import SUITE_FILE_RE

            if SUITE_FILE_RE.match(file_path.name):
                return SuiteFile.from_parent(parent, path=file_path)
        return None

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        marker = metafunc.definition.get_closest_marker(MARK_SUITE)
        wants = {"specbench_case", "specbench_result"} & set(metafunc.fixturenames)
        if marker is None:
            if wants:
                raise pytest.Collector.CollectError(
                    f"{metafunc.definition.nodeid} uses {sorted(wants)[0]} but has no @pytest.mark.{MARK_SUITE}(path) marker naming its suite"
                )
            return
        from .errors import SuiteError
        from .suite import claim_scenario_key, load_yaml_suite, select_cases

        if not marker.args:
            raise pytest.Collector.CollectError(
                f"{metafunc.definition.nodeid}: @pytest.mark.{MARK_SUITE} needs the suite path"
            )
        path = Path(marker.args[0])
        if not path.is_absolute():
            path = metafunc.definition.path.parent / path
        try:
            scenario, cases = load_yaml_suite(path)
            claim_scenario_key(self.session.claimed_scenarios, scenario)
        except SuiteError as exc:
            raise pytest.Collector.CollectError(f"invalid spec suite: {exc}") from None
        s = self.session.settings
        cases = select_cases(cases, scenarios=s.scenarios, split=s.split, limit=s.limit, seed=s.seed)
        metafunc.parametrize(
            "specbench_case",
            [pytest.param(c, marks=[pytest.mark.specbench, getattr(pytest.mark, c.label)]) for c in cases],
            ids=[f"{c.scenario.key}-{c.case_id}" for c in cases],
        )

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        found = [item_case(item) for item in session.items]
        self.session.cases_collected([f[0] for f in found if f is not None])
