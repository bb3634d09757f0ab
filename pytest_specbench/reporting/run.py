"""The run summary: every number the outputs show, computed once from the case records.

Session finish builds one :class:`RunSummary` from the records; the terminal summary, the gates, the JSON
report and the HTML report all render that object, so the bootstrap (the only expensive step) runs once
and every output shows the same numbers. A summary holds numbers and names only, never case texts, so it
stays small whatever the run's size.

A report read back from disk gives its summary through :meth:`RunSummary.from_report`: the intervals and
paired differences stored in the JSON are used as they are; a report that lacks them (assembled by hand,
or by an older version) has them computed from its cases.

What is in it, per (model · method) group:

* ``rows`` — counts and means per (scenario, split) and pooled over scenarios (:func:`scoring.aggregate`);
* ``intervals`` — bootstrap intervals for the same cells; ``deltas`` — paired ΔSAR against the first group;
* ``spec_rates`` — YES / NA / NO counts per spec.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..record import LENGTH
from ..scoring import ALL, Row, aggregate
from .stats import DEFAULT_RESAMPLES, CellIntervals, Interval, PairedDelta, bootstrap_summary, find_cell, paired_deltas
from .tables import SpecRate, spec_rates


@dataclass
class RunSummary:
    """Every aggregate of one run (see the module docstring); build it with :meth:`compute`."""

    groups: list[str]
    scenarios: list[str]
    rows: list[Row]
    intervals: list[CellIntervals]
    deltas: list[PairedDelta]
    spec_rates: list[SpecRate]
    #: Run-wide counts the terminal's notes need.
    errors: int = 0
    length_answers: int = 0
    truncated_for_judge: int = 0
    judge_char_limit: int = 0
    level: float = 0.95

    # ----------------------------------------------------------------------------------- building

    @classmethod
    def compute(
        cls,
        records: Sequence[Mapping[str, Any]],
        *,
        resamples: int | None = DEFAULT_RESAMPLES,
        seed: int | None = 0,
        stratify: bool = True,
        intervals: Sequence[CellIntervals] | None = None,
        deltas: Sequence[PairedDelta] | None = None,
        rates: Sequence[SpecRate] | None = None,
    ) -> RunSummary:
        """Aggregate ``records``; ``intervals``/``deltas``/``rates`` already known (from a saved report) are reused."""
        b = resamples or DEFAULT_RESAMPLES
        groups = list(dict.fromkeys(str(r["group"]) for r in records))
        scenarios = sorted({str(r["scenario"]) for r in records})
        rows = aggregate(records)
        if intervals is None:
            intervals = bootstrap_summary(records, resamples=b, seed=seed, stratify=stratify)
        if deltas is None:
            deltas = paired_deltas(records, resamples=b, seed=seed, stratify=stratify) if len(groups) > 1 else []
        cut = [r for r in records if r.get("truncated_for_judge")]
        level = next((c.sar.level for c in intervals if c.sar is not None), 0.95)
        return cls(
            groups=groups,
            scenarios=scenarios,
            rows=rows,
            intervals=list(intervals),
            deltas=list(deltas),
            spec_rates=list(rates) if rates is not None else spec_rates(records),
            errors=sum(1 for r in records if r.get("error")),
            length_answers=sum(1 for r in records if r.get("finish_reason") == LENGTH),
            truncated_for_judge=len(cut),
            judge_char_limit=max((int(r.get("judge_char_limit") or 0) for r in cut), default=0),
            level=level,
        )

    @classmethod
    def from_report(cls, report: Mapping[str, Any], *, resamples: int | None = DEFAULT_RESAMPLES) -> RunSummary:
        """The summary of a saved JSON report; stored intervals and deltas are used, missing ones computed."""
        records = list(report.get("cases") or [])
        seed = (report.get("settings") or {}).get("seed")
        stored_iv = report.get("intervals")
        stored_d = report.get("paired_deltas")
        stored_r = report.get("spec_rates")
        return cls.compute(
            records,
            resamples=resamples,
            seed=seed if isinstance(seed, int) else 0,
            intervals=None if stored_iv is None else [_cell_from_dict(c) for c in stored_iv],
            deltas=None if stored_d is None else [_delta_from_dict(d) for d in stored_d],
            rates=None if stored_r is None else [_rate_from_dict(r) for r in stored_r],
        )

    # ------------------------------------------------------------------------------------ reading

    def row(self, group: str, scenario: str | None = None, split: str = "all") -> Row | None:
        """The row of ``group`` for ``scenario`` (None: pooled overall, i.e. ``ALL`` or the only scenario)."""
        target = scenario if scenario is not None else (ALL if len(self.scenarios) > 1 else next(iter(self.scenarios), None))
        return next((r for r in self.rows if r.group == group and r.scenario == target and r.split == split), None)

    def cell(self, group: str, scenario: str | None = None, split: str = "all") -> CellIntervals | None:
        return find_cell(self.intervals, group, scenario, split)

    def delta(self, group: str, scenario: str = ALL) -> PairedDelta | None:
        mine = [d for d in self.deltas if d.group == group]
        return next((d for d in mine if d.scenario == scenario), None) or next(iter(mine), None)

    @property
    def multi_scenario(self) -> bool:
        return len(self.scenarios) > 1

    # ------------------------------------------------------------------------------------ writing

    def to_report_keys(self) -> dict[str, Any]:
        """The JSON report's aggregate keys (``summary`` and ``cases`` are added by the report builder)."""
        return {
            "intervals": [c.to_dict() for c in self.intervals],
            "paired_deltas": [d.to_dict() for d in self.deltas],
            "spec_rates": [r.to_dict() for r in self.spec_rates],
        }


# ----------------------------------------------------------------------------------------- pieces


def _interval(data: Mapping[str, Any] | None) -> Interval | None:
    return None if data is None else Interval.from_dict(data)


def _cell_from_dict(d: Mapping[str, Any]) -> CellIntervals:
    return CellIntervals(str(d["group"]), str(d["scenario"]), str(d["split"]), int(d["n"]),
                         _interval(d.get("sar")), _interval(d.get("safety")), _interval(d.get("behavioral")))


def _delta_from_dict(d: Mapping[str, Any]) -> PairedDelta:
    return PairedDelta(str(d["reference"]), str(d["group"]), str(d["scenario"]), str(d["metric"]), _interval(d.get("delta")), int(d.get("unmatched", 0)))


def _rate_from_dict(d: Mapping[str, Any]) -> SpecRate:
    return SpecRate(str(d["group"]), str(d["scenario"]), str(d["spec"]), str(d.get("kind", "")), int(d["yes"]), int(d["na"]), int(d["no"]))
