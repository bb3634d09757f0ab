"""Bootstrap intervals, paired differences and interval gates (pytest_specbench.reporting.stats)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_reporting_sample import make_report

from pytest_specbench.reporting.stats import (
    Interval,
    bootstrap_interval,
    bootstrap_summary,
    find_cell,
    gate_decision,
    paired_delta,
    paired_deltas,
)
from pytest_specbench.scoring import aggregate


def _population(size: int, rng: np.random.Generator) -> np.ndarray:
    """Per-case s values shaped like a real run: 20% risky (s = 0), the rest alpha + (1 - alpha) r, r in fifths."""
    risky = rng.random(size) < 0.2
    r = rng.integers(0, 6, size) / 5
    return np.where(risky, 0.0, 0.3 + 0.7 * r)


@pytest.mark.parametrize("stratified", [False, True], ids=["plain", "stratified"])
def test_interval_covers_the_true_sar_about_95_percent_of_the_time(stratified: bool) -> None:
    """400 seeded repeats of drawing 150 cases from a known population; the 95% interval should cover its mean ~95%."""
    rng = np.random.default_rng(20240914)
    population = _population(200_000, rng)
    strata_pop = (rng.random(population.size) < 0.5).astype(int)  # e.g. safe / unsafe prompts
    population = np.where(strata_pop == 1, population * 0.8, population)  # strata differ, as splits do
    truth = population.mean()
    members = [np.flatnonzero(strata_pop == k) for k in (0, 1)]
    stratum_truth = np.mean([population[m].mean() for m in members])
    repeats, n, hits = 400, 150, 0
    for rep in range(repeats):
        if stratified:  # fixed 75 + 75 per stratum, like --specbench-limit's stratified selection
            idx = np.concatenate([rng.choice(m, n // 2) for m in members])
            # equal stratum sizes: the sample mean estimates the equal-weight mean of the stratum means
            target = stratum_truth
        else:
            idx = rng.integers(0, population.size, n)
            target = truth
        iv = bootstrap_interval(
            population[idx], strata=strata_pop[idx] if stratified else None, resamples=1000, seed=rep
        )
        assert iv is not None
        hits += iv.low <= target <= iv.high
    coverage = hits / repeats
    print(f"coverage ({'stratified' if stratified else 'plain'}): {coverage:.3f}")
    assert 0.92 <= coverage <= 0.98, coverage


@pytest.mark.parametrize("stratified", [False, True], ids=["plain", "stratified"])
def test_count_draw_has_the_distribution_of_index_resampling(stratified: bool) -> None:
    """Replicates drawn as counts over distinct values (what bootstrap_means does for scores) against
    replicates drawn as n indices each: same means, spreads, tails and correlation between the series."""
    from pytest_specbench.reporting.stats import (
        _count_parts,
        _index_means,
        _strata_codes,
        _strata_members,
        bootstrap_means,
    )

    rng = np.random.default_rng(11)
    n, resamples = 300, 20_000
    s = _population(n, rng)
    values = np.stack([s, (s > 0).astype(float), np.where(s > 0, (s - 0.3) / 0.7, 0.0)])  # s, 1 - Risk, r
    # strata that split the values (as safe / unsafe splits do): stratified replicates spread less
    strata = np.where(s == 0, 0, 1 + (s > 0.7)) if stratified else None
    groups = _strata_members(_strata_codes(strata)) if strata is not None else None
    assert _count_parts(values, groups) is not None  # scores take the count draw
    counted = bootstrap_means(values, strata=strata, resamples=resamples, rng=np.random.default_rng(1))
    by_index = _index_means(values, groups, resamples, np.random.default_rng(2))
    for a, b in zip(counted, by_index):
        assert a.mean() == pytest.approx(b.mean(), abs=0.002)
        assert a.std() == pytest.approx(b.std(), rel=0.03)
        assert np.quantile(a, [0.025, 0.975]) == pytest.approx(np.quantile(b, [0.025, 0.975]), abs=0.006)
    assert np.corrcoef(counted[0], counted[2])[0, 1] == pytest.approx(
        np.corrcoef(by_index[0], by_index[2])[0, 1], abs=0.03
    )


def test_mostly_distinct_or_missing_values_are_drawn_by_index() -> None:
    from pytest_specbench.reporting.stats import _count_parts

    rng = np.random.default_rng(3)
    assert _count_parts(rng.random((1, 400)), None) is None
    assert _count_parts(np.array([[0.0, 1.0, np.nan, 1.0]]), None) is None
    assert _count_parts(np.array([[0.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0]]), None) is not None
    # either way the interval is a proper one around the mean
    measured = rng.random(400)
    iv = bootstrap_interval(measured, seed=1)
    assert iv is not None and iv.low < measured.mean() < iv.high


def test_lower_bound_gate_fails_where_the_point_estimate_passes() -> None:
    # 60 cases with SAR 0.72 against a 0.70 threshold: above on the point, not convincingly above.
    values = [1.0] * 39 + [0.3] * 14 + [0.0] * 7
    iv = bootstrap_interval(values, seed=1)
    assert iv is not None and iv.point == pytest.approx(0.72)
    point, lower = gate_decision(iv, 0.70, on="point"), gate_decision(iv, 0.70, on="lower")
    assert point.passed and point.value == pytest.approx(0.72)
    assert not lower.passed and lower.value == iv.low < 0.70
    # With ten times the cases the interval is narrow enough for the lower bound to clear a lower bar.
    big = bootstrap_interval(values * 10, seed=1)
    assert gate_decision(big, 0.66, on="lower").passed


@pytest.mark.parametrize(
    ("interval", "threshold", "on", "passed", "value"),
    [
        (Interval(0.8, 0.7, 0.9, 100), 0.75, "point", True, 0.8),
        (Interval(0.8, 0.7, 0.9, 100), 0.75, "lower", False, 0.7),
        (Interval(0.8, 0.7, 0.9, 100), 0.70, "lower", True, 0.7),  # the bound itself is enough
        (Interval(0.8, 0.7, 0.9, 100), 0.81, "point", False, 0.8),
        (None, 0.0, "point", False, None),  # no scored case fails whatever the threshold
        (None, 0.0, "lower", False, None),
    ],
)
def test_gate_decision_table(
    interval: Interval | None, threshold: float, on: str, passed: bool, value: float | None
) -> None:
    decision = gate_decision(interval, threshold, on=on)
    assert (decision.passed, decision.value, decision.on) == (passed, value, on)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"resamples": 0}, "resamples"),
        ({"resamples": 2.5}, "resamples"),
        ({"level": 1.0}, "level"),
        ({"level": 0.0}, "level"),
        ({"strata": ["a"]}, "strata"),
    ],
)
def test_bad_bootstrap_arguments_are_rejected(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        bootstrap_interval([0.1, 0.2, 0.3], **kwargs)


def test_gate_on_must_be_point_or_lower() -> None:
    with pytest.raises(ValueError, match="gate-on"):
        gate_decision(Interval(0.5, 0.4, 0.6, 10), 0.5, on="upper")


def test_no_values_means_no_interval() -> None:
    assert bootstrap_interval([]) is None


@pytest.mark.parametrize(("values", "expected"), [([0.3] * 7, 0.3), ([1.0], 1.0), ([0.0, 0.0], 0.0)])
def test_constant_values_give_a_zero_width_interval(values: list[float], expected: float) -> None:
    assert bootstrap_interval(values) == Interval(expected, expected, expected, len(values))


def test_stratifying_removes_between_stratum_noise() -> None:
    # Every unsafe case scores 0 and every safe case 1: only the mix of strata varies between resamples.
    values, strata = [0.0] * 30 + [1.0] * 30, ["unsafe"] * 30 + ["safe"] * 30
    plain = bootstrap_interval(values, seed=3)
    stratified = bootstrap_interval(values, strata=strata, seed=3)
    assert plain is not None and stratified is not None
    assert plain.high - plain.low > 0.15
    assert (stratified.low, stratified.high) == (0.5, 0.5)


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=1, max_size=40),
    seed=st.integers(0, 2**32 - 1),
    stratify=st.booleans(),
)
def test_interval_contains_its_point_and_stays_in_unit_range(values: list[float], seed: int, stratify: bool) -> None:
    strata = [i % 3 for i in range(len(values))] if stratify else None
    iv = bootstrap_interval(values, strata=strata, resamples=200, seed=seed)
    assert iv is not None
    assert 0.0 <= iv.low <= iv.point <= iv.high <= 1.0
    assert iv.n == len(values)


@settings(max_examples=30, deadline=None)
@given(diffs=st.lists(st.floats(-1.0, 1.0, allow_nan=False), min_size=1, max_size=30), seed=st.integers(0, 1000))
def test_differences_stay_in_minus_one_one(diffs: list[float], seed: int) -> None:
    iv = bootstrap_interval(diffs, resamples=200, seed=seed, bounds=(-1.0, 1.0))
    assert iv is not None and -1.0 <= iv.low <= iv.point <= iv.high <= 1.0


def test_summary_cells_line_up_with_the_aggregate_rows() -> None:
    report = make_report()
    rows = aggregate(report["cases"])
    cells = bootstrap_summary(report["cases"], resamples=300)
    assert [(c.group, c.scenario, c.split) for c in cells] == [(r.group, r.scenario, r.split) for r in rows]
    for cell, row in zip(cells, rows):
        assert cell.n == row.cases - row.errors
        for metric in ("sar", "safety", "behavioral"):
            iv = cell.get(metric)
            assert iv is not None and iv.point == pytest.approx(getattr(row, metric))
            assert iv.low <= iv.point <= iv.high
    assert find_cell(cells, "qwen3-8b · vanilla").scenario == "ALL"
    assert find_cell(cells, "qwen3-8b · vanilla", "Child", "safe").split == "safe"


def test_summary_is_reproducible_and_a_cell_ignores_other_groups() -> None:
    report = make_report()
    both = bootstrap_summary(report["cases"], resamples=300, seed=5)
    assert both == bootstrap_summary(report["cases"], resamples=300, seed=5)
    alone = bootstrap_summary([c for c in report["cases"] if c["group"] == "qwen3-8b · vanilla"], resamples=300, seed=5)
    assert alone == [c for c in both if c.group == "qwen3-8b · vanilla"]
    assert bootstrap_summary(report["cases"], resamples=300, seed=6) != both


def test_a_cell_of_only_errors_has_no_intervals() -> None:
    report = make_report(scenarios=("Child",), cases_per_scenario=2, errored=1, groups={"m · a": (0.1, 0.5)})
    cells = {c.split: c for c in bootstrap_summary(report["cases"], resamples=100)}
    assert cells["safe"].n == 0 and cells["safe"].sar is None
    assert gate_decision(cells["safe"].sar, 0.0).passed is False


def test_paired_delta_of_identical_groups_is_exactly_zero() -> None:
    cases = make_report(groups={"m · a": (0.1, 0.7)})["cases"]
    same = [{**c, "group": "m · b"} for c in cases]
    iv, unmatched = paired_delta(cases, same)
    assert iv is not None and (iv.point, iv.low, iv.high) == (0.0, 0.0, 0.0)
    assert unmatched == 0


def test_paired_delta_matches_cases_by_scenario_and_id() -> None:
    ref = [_case("Child", "a", 0.5), _case("Child", "b", 1.0), _case("Code", "a", 0.0), _case("Code", "z", 1.0)]
    # Reordered, one case missing, one extra: pairing is by key, never by position.
    cand = [_case("Code", "a", 0.2), _case("Child", "b", 1.0), _case("Child", "a", 0.8), _case("Child", "y", 0.0)]
    iv, unmatched = paired_delta(ref, cand, resamples=500)
    assert iv is not None and iv.n == 3
    assert iv.point == pytest.approx((0.3 + 0.0 + 0.2) / 3)
    assert unmatched == 2


def test_paired_deltas_per_scenario_and_overall() -> None:
    report = make_report()
    deltas = paired_deltas(report["cases"], resamples=300)
    assert [(d.reference, d.group, d.scenario) for d in deltas] == [
        ("qwen3-8b · vanilla", "qwen3-8b · self-refine", s) for s in ("Child", "Code", "ALL")
    ]
    overall = deltas[-1]
    # The errored case is the same one in both groups: it drops out of the pairing without being unmatched.
    assert overall.interval is not None and overall.interval.n == 39
    assert overall.unmatched == 0
    assert paired_deltas([c for c in report["cases"] if c["group"] == "qwen3-8b · vanilla"]) == []
    with pytest.raises(ValueError, match="reference group"):
        paired_deltas(report["cases"], reference="nope")


def _case(scenario: str, case_id: str, s: float) -> dict:
    return {
        "group": "g",
        "scenario": scenario,
        "case_id": case_id,
        "label": "safe",
        "error": None,
        "score": {"risk": 0 if s else 1, "r": s, "s": s, "applicable": 1, "violated": []},
    }


@given(
    st.lists(
        st.one_of(
            st.sampled_from(["Code\x1fsafe", "Code\x1funsafe", "Kids\x1fsafe", "b", "B", "10", "9"]), st.integers(0, 12)
        ),
        min_size=1,
        max_size=60,
    )
)
@settings(max_examples=200, deadline=None)
def test_strata_are_numbered_as_numpy_unique_numbers_their_names(strata: list) -> None:
    """The numbering decides which stratum each block of draws comes from: it must stay np.unique's (the
    sorted order of the names; 9 and "9" are one stratum), or the same seed would give other intervals."""
    from pytest_specbench.reporting.stats import _strata_codes

    expected = np.unique(np.array([str(s) for s in strata]), return_inverse=True)[1]
    assert _strata_codes(strata).tolist() == expected.ravel().tolist()
    assert _strata_codes(np.array(strata, dtype=object)).tolist() == expected.ravel().tolist()
