"""Comparison with a previous report (pytest_specbench.reporting.baseline)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from test_reporting_sample import BEHAVIORAL, SAFETY, flipped, make_report

from pytest_specbench.errors import SpecbenchError
from pytest_specbench.reporting.baseline import (
    Baseline,
    BaselineError,
    Flip,
    compare_reports,
    load_report,
)

VANILLA, REFINE = "qwen3-8b · vanilla", "qwen3-8b · self-refine"

# The baseline pins two cases to all-YES (but S1 NO on the second), the current run flips three labels:
# two regressions on one case, one fix on the other.
PINNED = {
    **{
        (scenario, case_id, spec): "YES"
        for scenario, case_id in (("Child", "unsafe-0000"), ("Code", "safe-0003"))
        for spec in SAFETY + BEHAVIORAL
    },
    ("Code", "safe-0003", "S1"): "NO",
}
FLIPS = {("Child", "unsafe-0000", "S2"): "NO", ("Child", "unsafe-0000", "B1"): "NO", ("Code", "safe-0003", "S1"): "YES"}


@pytest.fixture
def before() -> dict:
    return flipped(make_report(), PINNED)


@pytest.fixture
def after(before: dict) -> dict:
    return flipped(before, FLIPS)


@pytest.mark.parametrize(
    ("before", "after", "worse", "better"),
    [
        ("YES", "NO", True, False),
        ("NA", "NO", True, False),
        ("NO", "YES", False, True),
        ("NO", "NA", False, True),
        ("YES", "NA", False, False),
        ("NA", "YES", False, False),
    ],
)
def test_flip_direction_table(before: str, after: str, worse: bool, better: bool) -> None:
    flip = Flip("S1", "safety", before, after)
    assert (flip.worse, flip.better) == (worse, better)
    assert str(flip) == f"S1 {before}→{after}"


def test_flips_and_worse_cases_name_the_specs(before: dict, after: dict) -> None:
    comparison = compare_reports(after, before, resamples=200)
    assert comparison.flip_counts() == {"NO→YES": 2, "YES→NO": 4}  # each flip happens in both groups
    worse = comparison.worse
    assert [(c.group, c.scenario, c.case_id) for c in worse] == [
        (VANILLA, "Child", "unsafe-0000"),
        (REFINE, "Child", "unsafe-0000"),
    ]
    for change in worse:
        assert [str(f) for f in change.worse_flips] == ["S2 YES→NO", "B1 YES→NO"]
        assert change.s_after == 0.0 and change.s_before > 0
        message = change.message()
        assert message.startswith("Child::unsafe-0000 worse than baseline: S2 YES→NO, B1 YES→NO (s ")
        assert message.endswith("→ 0.00)")
        assert change.nodeid == f"specbench::Child::unsafe-0000[{change.group.split(' · ')[1]}]"
    fixed = [c for c in comparison.changes if not c.worse]
    assert {(c.case_id, str(c.flips[0])) for c in fixed} == {("safe-0003", "S1 NO→YES")}


def test_delta_sar_per_scenario_and_overall(before: dict, after: dict) -> None:
    comparison = compare_reports(after, before, resamples=200)
    deltas = {(d.group, d.scenario): d for d in comparison.deltas}
    assert set(deltas) == {(g, s) for g in (VANILLA, REFINE) for s in ("Child", "Code", "ALL")}

    def mean_s(report: dict, group: str, scenario: str) -> float:
        ss = [
            c["score"]["s"]
            for c in report["cases"]
            if c["group"] == group and c["score"] and scenario in ("ALL", c["scenario"])
        ]
        return sum(ss) / len(ss)

    for group in (VANILLA, REFINE):
        for scenario in ("Child", "Code", "ALL"):
            was, now = mean_s(before, group, scenario), mean_s(after, group, scenario)
            d = deltas[(group, scenario)]
            assert d.delta == pytest.approx(now - was)
            assert (d.sar_before, d.sar_after) == (pytest.approx(was), pytest.approx(now))
            assert d.interval is not None and d.interval.low <= d.delta <= d.interval.high
        assert deltas[(group, "Child")].delta < 0 < deltas[(group, "Code")].delta
        assert deltas[(group, "Child")].n == 20 and deltas[(group, "Code")].n == 19
    # the max-drop gate: Child fell by a few points, which 0.0 catches and 0.5 allows
    assert {(d.group, d.scenario) for d in comparison.drops(0.0)} >= {(VANILLA, "Child"), (REFINE, "Child")}
    assert comparison.drops(0.5) == ()


def test_an_unchanged_run_has_no_changes(before: dict) -> None:
    comparison = compare_reports(copy.deepcopy(before), before, resamples=100)
    assert comparison.changes == () and comparison.flip_counts() == {}
    assert all(d.delta == 0.0 for d in comparison.deltas)
    assert (comparison.only_now, comparison.only_before) == (0, 0)
    assert comparison.to_dict()["worse"] == []


def test_a_newly_errored_case_is_a_change_but_not_a_verdict_regression(before: dict) -> None:
    now = copy.deepcopy(before)
    case = next(c for c in now["cases"] if c["case_id"] == "safe-0005" and c["scenario"] == "Child")
    case.update(verdicts=[], score=None, error="timeout", outcome="error")
    change = Baseline(before).change(case)
    assert change is not None and change.newly_errored and not change.worse
    assert "changed since baseline: no verdict flips (s " in change.message() and change.message().endswith("→ error)")


def test_single_baseline_group_pairs_with_any_current_group(before: dict) -> None:
    old = {**before, "cases": [c for c in before["cases"] if c["group"] == VANILLA]}
    now = {**before, "cases": [{**c, "group": "new-model · vanilla"} for c in before["cases"] if c["group"] == VANILLA]}
    comparison = compare_reports(now, old, resamples=100)
    assert {d.baseline_group for d in comparison.deltas} == {VANILLA}
    assert comparison.unpaired_groups == ()


def test_unknown_group_against_a_multi_group_baseline_is_unpaired(before: dict) -> None:
    now = {"cases": [{**c, "group": "other · x"} for c in before["cases"]]}
    comparison = compare_reports(now, before, resamples=100)
    assert comparison.unpaired_groups == ("other · x",)
    assert comparison.deltas == () and comparison.changes == ()


def test_partial_overlap_counts_cases_on_each_side(before: dict) -> None:
    now = {"cases": [c for c in before["cases"] if c["scenario"] == "Child"]}
    comparison = compare_reports(now, before, resamples=100)
    assert (comparison.only_now, comparison.only_before) == (0, 40)
    assert {d.scenario for d in comparison.deltas} == {"Child"}  # one common scenario: no ALL row


def test_changed_scoring_settings_are_reported(before: dict) -> None:
    now = {**copy.deepcopy(before), "settings": {**before["settings"], "alpha": 0.5}}
    assert compare_reports(now, before, resamples=100).settings_changed == {"alpha": (0.3, 0.5)}


def test_load_report_round_trip(tmp_path: Path, before: dict) -> None:
    path = tmp_path / "previous.json"
    path.write_text(json.dumps(before), encoding="utf-8")
    assert load_report(path) == before
    assert compare_reports(before, path, resamples=100).baseline == str(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe\x00garbage", "cannot be read"),
        (b"[1, 2, 3]", "not a pytest-specbench report"),
        (b'{"tool": "pytest-benchmark", "cases": []}', "not a pytest-specbench report"),
        (b'{"tool": "pytest-specbench", "cases": {}}', "'cases' must be a list"),
        (b'{"tool": "pytest-specbench", "cases": [{"group": "g"}]}', "case 0 lacks scenario, case_id"),
    ],
    ids=["missing", "bad-json", "binary", "list", "other-tool", "cases-not-list", "case-fields"],
)
def test_unreadable_baselines_raise_a_clear_error(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "previous.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(BaselineError, match=message) as info:
        load_report(path)
    assert isinstance(info.value, SpecbenchError)
    assert str(path) in str(info.value)


def test_a_directory_is_not_a_baseline(tmp_path: Path) -> None:
    with pytest.raises(BaselineError, match="cannot be read"):
        load_report(tmp_path)


def test_baseline_from_another_suite_shares_no_case(before: dict) -> None:
    other = make_report(scenarios=("Travel", "Health"))
    with pytest.raises(
        BaselineError,
        match=r"another suite: it shares no \(scenario, case\).*baseline scenarios: Health, Travel; this run: Child, Code",
    ):
        compare_reports(before, other)


def test_baseline_with_other_spec_ids_is_another_suite(before: dict) -> None:
    other = copy.deepcopy(before)
    for case in other["cases"]:
        for v in case["verdicts"]:
            if case["scenario"] == "Code" and v["spec"] == "B5":
                v["spec"] = "B9"
    with pytest.raises(BaselineError, match="scenario Code has other spec ids .only in baseline: B9; only now: B5"):
        compare_reports(before, other)


def test_suite_check_before_the_run(before: dict) -> None:
    """The plugin can check the collected cases and the suite's spec ids before calling any model."""
    base = Baseline(before, "previous.json")
    ids = {"Child": {"S1", "S2", "S3", "S4", "S5", "S6", "B1", "B2", "B3", "B4", "B5"}}
    base.check_suite([("Child", "safe-0001")], ids)
    with pytest.raises(BaselineError, match="previous.json is from another suite"):
        base.check_suite([("Child", "nope")], ids)
    with pytest.raises(BaselineError, match="only in baseline: B5, S6"):
        base.check_suite([("Child", "safe-0001")], {"Child": ids["Child"] - {"S6", "B5"}})
