"""Bootstrap confidence intervals for SAR, safety and behavioral scores, paired differences, and gates.

Why bootstrap: an LLM judge is noisy and a suite has a few hundred cases, so SAR moves by points from run
to run. A gate that compares the point estimate to a threshold flaps; comparing the *lower bound* of a 95%
interval only fails when the evidence says the score is below the threshold.

How: the percentile bootstrap of a mean. Each of ``resamples`` replicates draws ``n`` cases with
replacement, and its mean is one bootstrap replicate; the interval is the (2.5%, 97.5%) quantiles of the
replicates. Scores take few distinct values, so a replicate is drawn as how many times it picks each
distinct value (a multinomial draw, exactly equivalent, see :func:`_count_parts`) rather than as ``n``
indices; values that are mostly distinct are drawn by index. Per-case values are those of
:mod:`pytest_specbench.scoring`: ``s`` for SAR, ``1 - Risk`` for safety, ``r`` for behavioral. Errored cases
have no score and are left out, as in the summary table.

Stratification (the default): the plugin's ``--specbench-limit`` keeps a fixed number of cases per
(scenario, label), so resampling inside each (scenario, label) stratum mirrors how the cases were chosen
and does not let the overall interval wander because one bootstrap draw happened to hold more unsafe
prompts than the run did.

Reproducibility: every cell's generator is seeded from the run seed and a CRC of the cell's key (group,
scenario, split), so a cell's interval does not change when another group or scenario is added to the run,
and the HTML, JSON and terminal all show the same numbers for the same seed.

Everything here works on plain case records (dicts) as written in the JSON report; nothing touches pytest.
"""

from __future__ import annotations

import zlib
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ..record import is_scored
from ..scoring import ALL, SPLITS

Metric = Literal["sar", "safety", "behavioral"]
METRICS: tuple[Metric, ...] = ("sar", "safety", "behavioral")
DEFAULT_RESAMPLES = 2000
DEFAULT_LEVEL = 0.95
GATE_ON = ("point", "lower")

# A bootstrap index matrix of resamples x n can be large (2000 x 1500 cases = 3M indices); it is drawn in
# row blocks of at most this many entries so memory stays bounded whatever the suite size (a block and the
# values it gathers are a few MB; numpy's per-block overhead is negligible at this size).
_BLOCK_ENTRIES = 1 << 19


@dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap interval: ``low <= point <= high``, from ``n`` cases."""

    point: float
    low: float
    high: float
    n: int
    level: float = DEFAULT_LEVEL

    def to_dict(self) -> dict[str, Any]:
        return {"point": self.point, "low": self.low, "high": self.high, "n": self.n, "level": self.level}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Interval:
        return cls(
            float(data["point"]),
            float(data["low"]),
            float(data["high"]),
            int(data["n"]),
            float(data.get("level", DEFAULT_LEVEL)),
        )


# ------------------------------------------------------------------------------------------- core


def _check(resamples: int, level: float) -> None:
    if not isinstance(resamples, int) or resamples < 1:
        raise ValueError(f"resamples must be a positive integer, got {resamples!r}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be within (0, 1), got {level!r}")


def _strata_members(codes: np.ndarray | None) -> list[np.ndarray] | None:
    """The case positions of each stratum, from a stratum number 0..k-1 per case; None for the plain bootstrap."""
    return None if codes is None else [np.flatnonzero(codes == c) for c in range(int(codes.max()) + 1)]


def _index_blocks(
    n: int, groups: list[np.ndarray] | None, resamples: int, rng: np.random.Generator
) -> Iterable[np.ndarray]:
    """Yield blocks of the (resamples x n) resample-index matrix; stratified draws stay inside their stratum."""
    rows = max(1, _BLOCK_ENTRIES // max(n, 1))
    done = 0
    while done < resamples:
        b = min(rows, resamples - done)
        if groups is None:
            yield rng.integers(0, n, size=(b, n))
        else:
            yield np.concatenate(
                [members[rng.integers(0, len(members), size=(b, len(members)))] for members in groups], axis=1
            )
        done += b


def _index_means(
    arr2: np.ndarray, groups: list[np.ndarray] | None, resamples: int, rng: np.random.Generator
) -> np.ndarray:
    """(k, resamples) bootstrap means of the rows of ``arr2``, each replicate drawn as ``n`` indices."""
    # one np.take per series rather than one fancy-indexed (k, b, n) gather: the same resamples, ~7x faster
    return np.concatenate(
        [
            np.stack([np.take(series, idx).mean(axis=1) for series in arr2])
            for idx in _index_blocks(arr2.shape[1], groups, resamples, rng)
        ],
        axis=1,
    )


def _strata_codes(strata: Sequence[Hashable] | np.ndarray) -> np.ndarray:
    """Each case's stratum number: strata in the sorted order of their ``str`` forms, as ``np.unique`` of
    those forms would number them; the forms are built and sorted once per distinct stratum, not per case."""
    items = strata.tolist() if isinstance(strata, np.ndarray) else strata
    forms = {s: str(s) for s in dict.fromkeys(items)}
    rank = {form: i for i, form in enumerate(sorted(set(forms.values())))}
    code = {s: rank[form] for s, form in forms.items()}
    return np.fromiter((code[s] for s in items), dtype=np.intp, count=len(items))


def bootstrap_means(
    values: np.ndarray,
    *,
    strata: Sequence[Hashable] | np.ndarray | None = None,
    resamples: int = DEFAULT_RESAMPLES,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Bootstrap replicates of the column means of ``values``.

    ``values`` is (n,) or (k, n): k per-case series over the same n cases (SAR, safety, behavioral) share
    one index matrix, so their intervals come from the same resamples. Returns (resamples,) or
    (k, resamples).
    """
    arr = np.asarray(values, dtype=float)
    flat = arr.ndim == 1
    arr2 = arr[None, :] if flat else arr
    n = arr2.shape[1]
    if n == 0:
        raise ValueError("cannot bootstrap zero cases")
    groups = None
    if strata is not None:
        if len(strata) != n:
            raise ValueError(f"strata has {len(strata)} entries for {n} cases")
        groups = _strata_members(_strata_codes(strata))
    rng = rng if rng is not None else np.random.default_rng(0)
    counted = _count_parts(arr2, groups)
    if counted is not None:
        out = np.concatenate(list(_count_blocks(counted, n, resamples, rng)), axis=1)
    else:
        out = _index_means(arr2, groups, resamples, rng)
    return out[0] if flat else out


#: The count draw is used when the cases hold at most this share of distinct values (scores take a few
#: dozen at most; a column of measurements with every value distinct is drawn by index instead).
_COUNT_SHARE = 0.25


def _count_parts(arr2: np.ndarray, groups: list[np.ndarray] | None) -> list[tuple[int, np.ndarray, np.ndarray]] | None:
    """Per stratum: its size, its distinct value columns (k, d) and their shares; None to draw by index.

    A resample's mean depends only on how many times it drew each distinct value, and drawing ``m`` cases
    with replacement from a stratum draws those counts from a multinomial over the stratum's distinct
    values, with each value's share of the stratum as its probability. So counts drawn that way give
    replicates with exactly the distribution of index resampling, for the cost of a few numbers per
    replicate instead of ``n`` indices. A NaN would turn a zero count into NaN in the sum: such values,
    and values mostly distinct, are drawn by index.
    """
    if not np.isfinite(arr2).all():
        return None
    n = arr2.shape[1]
    parts = []
    distinct = 0
    for members in groups or [np.arange(n)]:
        values, counts = np.unique(arr2[:, members], axis=1, return_counts=True)
        distinct += values.shape[1]
        if distinct > _COUNT_SHARE * n:
            return None
        parts.append((len(members), values, counts / len(members)))
    return parts


def _count_blocks(
    parts: list[tuple[int, np.ndarray, np.ndarray]], n: int, resamples: int, rng: np.random.Generator
) -> Iterable[np.ndarray]:
    """Yield (k, b) blocks of bootstrap means drawn as multinomial counts (see :func:`_count_parts`)."""
    rows = max(1, _BLOCK_ENTRIES // max(values.shape[1] for _, values, _ in parts))
    done = 0
    while done < resamples:
        b = min(rows, resamples - done)
        sums = np.zeros((parts[0][1].shape[0], b))
        for size, values, shares in parts:
            sums += values @ rng.multinomial(size, shares, size=b).T
        yield sums / n
        done += b


def percentile_interval(
    values: Sequence[float] | np.ndarray,
    replicates: np.ndarray,
    *,
    level: float = DEFAULT_LEVEL,
    bounds: tuple[float, float] = (0.0, 1.0),
) -> Interval:
    """The percentile interval of ``replicates`` around the mean of ``values``.

    The interval is widened, if need be, to contain the point estimate: with very few or very lopsided
    cases (and through float rounding when all values are equal) the quantiles of a discrete bootstrap
    distribution can land a hair beside the mean, and a report must never draw a point outside its own
    bar. It is clipped to ``bounds`` (the range a mean of these values can take) for the same reason.
    """
    point = float(np.mean(values))
    tail = (1.0 - level) / 2.0
    low, high = (float(q) for q in np.quantile(replicates, [tail, 1.0 - tail]))
    lo_b, hi_b = bounds
    point = min(max(point, lo_b), hi_b)
    return Interval(point, max(lo_b, min(low, point)), min(hi_b, max(high, point)), len(values), level)


def bootstrap_interval(
    values: Sequence[float] | np.ndarray,
    *,
    strata: Sequence[Hashable] | None = None,
    resamples: int = DEFAULT_RESAMPLES,
    level: float = DEFAULT_LEVEL,
    seed: int | Sequence[int] = 0,
    bounds: tuple[float, float] = (0.0, 1.0),
) -> Interval | None:
    """Percentile bootstrap interval for the mean of per-case ``values``; None when there are none."""
    _check(resamples, level)
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return None
    reps = bootstrap_means(arr, strata=strata, resamples=resamples, rng=np.random.default_rng(seed))
    return percentile_interval(arr, reps, level=level, bounds=bounds)


# --------------------------------------------------------------------------------- case records


def case_values(record: Mapping[str, Any]) -> tuple[float, float, float] | None:
    """(s, 1 - Risk, r) of a scored case record, or None for an errored or unscored one."""
    if not is_scored(record):
        return None
    score = record["score"]
    return float(score["s"]), float(1 - score["risk"]), float(score["r"])


def cell_seed(seed: int | None, *key: str) -> list[int]:
    """A seed for one cell that depends only on the run seed and the cell's own key (see module doc)."""
    return [int(seed or 0) & 0xFFFFFFFF, zlib.crc32("\x1f".join(key).encode("utf-8"))]


def _metric(name: str) -> Metric:
    key = name.lower()
    if key not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {name!r}")
    return key


@dataclass(frozen=True)
class CellIntervals:
    """Intervals for one summary cell (group, scenario, split), keyed like :class:`pytest_specbench.scoring.Row`.

    ``scenario`` is ``"ALL"`` for the overall cell when the run has several scenarios. A metric is None
    when the cell has no scored case.
    """

    group: str
    scenario: str
    split: str
    n: int
    sar: Interval | None
    safety: Interval | None
    behavioral: Interval | None

    def get(self, metric: str) -> Interval | None:
        return getattr(self, _metric(metric))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"group": self.group, "scenario": self.scenario, "split": self.split, "n": self.n}
        for m in METRICS:
            iv = self.get(m)
            out[m] = None if iv is None else iv.to_dict()
        return out


def bootstrap_summary(
    records: Sequence[Mapping[str, Any]],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    level: float = DEFAULT_LEVEL,
    seed: int | None = 0,
    stratify: bool = True,
) -> list[CellIntervals]:
    """Intervals for every (group, scenario, split) cell of :func:`pytest_specbench.scoring.aggregate`.

    Same cells, same order, so the plugin can zip them onto the summary rows. Overall cells (scenario
    ``ALL``) are stratified by (scenario, label), per-scenario cells by label; ``stratify=False`` gives the
    plain bootstrap.
    """
    _check(resamples, level)
    if not records:
        return []
    scenarios = sorted({str(r["scenario"]) for r in records})
    cells: list[CellIntervals] = []
    for group in dict.fromkeys(str(r["group"]) for r in records):
        mine = [r for r in records if r["group"] == group]
        for scenario in [*scenarios, ALL] if len(scenarios) > 1 else scenarios:
            part = mine if scenario == ALL else [r for r in mine if r["scenario"] == scenario]
            for split in SPLITS:
                cell = part if split == "all" else [r for r in part if r["label"] == split]
                if not cell:
                    continue
                cells.append(
                    _cell(cell, group, scenario, split, resamples=resamples, level=level, seed=seed, stratify=stratify)
                )
    return cells


def _cell(
    records: Sequence[Mapping[str, Any]],
    group: str,
    scenario: str,
    split: str,
    *,
    resamples: int,
    level: float,
    seed: int | None,
    stratify: bool,
) -> CellIntervals:
    # the values go straight from the records into arrays, and each (scenario, label) has one shared
    # stratum name: a 100,000-case cell made of per-case tuples and names held some 40 MB more at its peak
    scored = [r for r in records if is_scored(r)]
    n = len(scored)
    if not n:
        return CellIntervals(group, scenario, split, 0, None, None, None)
    matrix = np.empty((3, n))  # sar, safety, behavioral: the (s, 1 - Risk, r) of case_values
    matrix[0] = np.fromiter((r["score"]["s"] for r in scored), dtype=float, count=n)
    matrix[1] = 1.0 - np.fromiter((r["score"]["risk"] for r in scored), dtype=float, count=n)
    matrix[2] = np.fromiter((r["score"]["r"] for r in scored), dtype=float, count=n)
    strata: list[str] | None = None
    if stratify:
        names: dict[tuple[Any, Any], str] = {}
        strata = []
        for r in scored:
            key = (r["scenario"], r["label"])
            name = names.get(key)
            if name is None:
                name = names[key] = f"{key[0]}\x1f{key[1]}"
            strata.append(name)
    reps = bootstrap_means(
        matrix, strata=strata, resamples=resamples, rng=np.random.default_rng(cell_seed(seed, group, scenario, split))
    )
    sar, safety, behavioral = (percentile_interval(matrix[i], reps[i], level=level) for i in range(3))
    return CellIntervals(group, scenario, split, n, sar, safety, behavioral)


def find_cell(
    cells: Sequence[CellIntervals], group: str, scenario: str | None = None, split: str = "all"
) -> CellIntervals | None:
    """The cell of ``group`` for ``scenario`` (None: overall, i.e. ``ALL`` or the run's only scenario)."""
    mine = [c for c in cells if c.group == group]
    if scenario is None:
        keys = {c.scenario for c in mine}
        scenario = ALL if ALL in keys else next(iter(sorted(keys)), None)
    return next((c for c in mine if c.scenario == scenario and c.split == split), None)


# ------------------------------------------------------------------------------------------ paired


def in_scenario(records: Iterable[Mapping[str, Any]], scenario: str) -> list[Mapping[str, Any]]:
    """The records of one scenario, or all of them for the overall key ``ALL``."""
    return [r for r in records if scenario == ALL or r["scenario"] == scenario]


@dataclass(frozen=True)
class PairedDelta:
    """Mean of (``group`` minus ``reference``) per-case values on the cases both scored.

    Pairing by (scenario, case_id) removes the case-difficulty variance that two independent intervals
    would carry, so a real difference between two methods shows up with far fewer cases.
    ``unmatched`` counts cases scored in only one of the two groups (left out of the difference).
    """

    reference: str
    group: str
    scenario: str
    metric: str
    interval: Interval | None
    unmatched: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "group": self.group,
            "scenario": self.scenario,
            "metric": self.metric,
            "delta": None if self.interval is None else self.interval.to_dict(),
            "unmatched": self.unmatched,
        }


def paired_delta(
    reference: Sequence[Mapping[str, Any]],
    candidate: Sequence[Mapping[str, Any]],
    *,
    metric: str = "sar",
    resamples: int = DEFAULT_RESAMPLES,
    level: float = DEFAULT_LEVEL,
    seed: int | Sequence[int] = 0,
    stratify: bool = True,
) -> tuple[Interval | None, int]:
    """Paired bootstrap of mean(candidate - reference) over cases matched by (scenario, case_id).

    Returns the interval (None when no case was scored in both) and the number of unmatched scored cases.
    Differences lie in [-1, 1], which bounds the interval.
    """
    m = METRICS.index(_metric(metric))
    ref = {(str(r["scenario"]), str(r["case_id"])): (r, v) for r in reference if (v := case_values(r)) is not None}
    cand = {(str(r["scenario"]), str(r["case_id"])): v for r in candidate if (v := case_values(r)) is not None}
    common = [k for k in ref if k in cand]
    unmatched = len(ref) + len(cand) - 2 * len(common)
    if not common:
        return None, unmatched
    diffs = np.array([cand[k][m] - ref[k][1][m] for k in common])
    strata = [f"{k[0]}\x1f{ref[k][0]['label']}" for k in common] if stratify else None
    iv = bootstrap_interval(diffs, strata=strata, resamples=resamples, level=level, seed=seed, bounds=(-1.0, 1.0))
    return iv, unmatched


def paired_deltas(
    records: Sequence[Mapping[str, Any]],
    *,
    reference: str | None = None,
    metric: str = "sar",
    resamples: int = DEFAULT_RESAMPLES,
    level: float = DEFAULT_LEVEL,
    seed: int | None = 0,
    stratify: bool = True,
) -> list[PairedDelta]:
    """Each other group against ``reference`` (default: the first group in the run), per scenario and overall.

    Empty when the run has a single group.
    """
    groups = list(dict.fromkeys(str(r["group"]) for r in records))
    if reference is None:
        reference = groups[0] if groups else ""
    elif reference not in groups:
        raise ValueError(f"reference group {reference!r} is not in the run ({', '.join(groups)})")
    scenarios = sorted({str(r["scenario"]) for r in records})
    out: list[PairedDelta] = []
    for group in groups:
        if group == reference:
            continue
        for scenario in [*scenarios, ALL] if len(scenarios) > 1 else scenarios:
            scope = in_scenario(records, scenario)
            iv, unmatched = paired_delta(
                [r for r in scope if r["group"] == reference],
                [r for r in scope if r["group"] == group],
                metric=metric,
                resamples=resamples,
                level=level,
                seed=cell_seed(seed, "paired", reference, group, scenario),
                stratify=stratify,
            )
            out.append(PairedDelta(reference, group, scenario, _metric(metric), iv, unmatched))
    return out


# ------------------------------------------------------------------------------------------- gates


@dataclass(frozen=True)
class GateDecision:
    """What a gate compared (``value``: the point or the lower bound) and whether it passed."""

    value: float | None
    passed: bool
    on: str


def gate_decision(interval: Interval | None, threshold: float, *, on: str = "point") -> GateDecision:
    """Decide a ``metric >= threshold`` gate on the point estimate or on the interval's lower bound.

    ``on="lower"`` passes only when the pessimistic end of the interval clears the threshold, so a gate
    that passes keeps passing when the judge's noise is drawn again on a rerun. The price is that a score
    sitting just above the threshold fails until enough cases narrow the interval. No scored case
    (``interval`` None) fails, as the point gate does.
    """
    if on not in GATE_ON:
        raise ValueError(f"gate-on must be one of {', '.join(GATE_ON)}, got {on!r}")
    if interval is None:
        return GateDecision(None, False, on)
    value = interval.point if on == "point" else interval.low
    return GateDecision(value, value >= threshold, on)
