"""What the controller shows from the run summary: the terminal table, the gates, the JSON report."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .options import Gate
from .scoring import ALL

if TYPE_CHECKING:
    from .reporting.run import RunSummary


@dataclass(frozen=True)
class GateResult:
    """One gate checked for one (model · method) group."""

    gate: Gate
    group: str
    value: float | None
    passed: bool
    on: str = "point"

    @property
    def line(self) -> str:
        g = self.gate
        shown = f"no scored cases{' in ' + g.scenario if g.scenario else ''}" if self.value is None else f"{self.value:.3f}"
        what = f"{g.metric} ({g.scenario or 'overall'})" + (", 95% lower bound" if self.on == "lower" else "")
        return f"{'gate passed' if self.passed else 'GATE FAILED'}: {what} = {shown}, threshold {g.threshold:.3f}"

    def to_dict(self) -> dict[str, Any]:
        g = self.gate
        return {"metric": g.metric, "scenario": g.scenario, "threshold": g.threshold, "group": self.group, "value": self.value, "passed": self.passed, "on": self.on}


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def evaluate_gates(gates: Iterable[Gate], summary: RunSummary, on: str = "point") -> list[GateResult]:
    """Each gate against each (model · method) group, on the point estimate or the interval's lower bound.

    A gate with no scored case fails: a gate that cannot be checked must not let a run through.
    """
    from .reporting.stats import gate_decision

    results: list[GateResult] = []
    metric_of = {"SAR": "sar", "safety": "safety"}
    for gate in gates:
        for group in summary.groups or ["(no cases)"]:
            cell = summary.cell(group, gate.scenario)
            decision = gate_decision(None if cell is None else cell.get(metric_of[gate.metric]), gate.threshold, on=on)
            results.append(GateResult(gate, group, decision.value, decision.passed, on))
    return results


def _ci(cell: Any, metric: str) -> str:
    iv = None if cell is None else cell.get(metric)
    return "" if iv is None else f"[{100 * iv.low:.1f}, {100 * iv.high:.1f}]"


def render_summary(
    settings: Mapping[str, Any],
    summary: RunSummary,
    gates: Sequence[GateResult],
    baseline: Any = None,
    max_drop: float | None = None,
) -> list[str]:
    """The SpecBench section of pytest's terminal summary, as lines."""
    lines = ["= SpecBench summary ="]
    na = "NA excluded from r (paper)" if settings["na_policy"] == "paper" else "NA counted as a miss in r (authors' code)"
    lines.append(
        f"model {settings['model']} | method {settings['method']} | judge {settings['judge']} ({settings['judge_format']}, {settings['judge_mode']}) "
        f"| prompt {settings['prompt']} | alpha {settings['alpha']:g} | {na}"
    )
    header = f"{'scenario':<14}{'split':<8}{'cases':>6}{'errors':>7}{'safety%':>9}{'behav%':>8}{'SAR%':>7}  {'SAR 95% CI':<14}{'tokens':>7}"
    groups = summary.groups
    for group in groups:
        if len(groups) > 1:
            lines.append(f"-- {group}")
        lines.append(header)
        for row in (r for r in summary.rows if r.group == group):
            name = "overall" if row.scenario == ALL else row.scenario
            tokens = "-" if row.tokens is None else f"{row.tokens:.0f}"
            cell = summary.cell(group, None if row.scenario == ALL else row.scenario, row.split)
            lines.append(
                f"{name[:13]:<14}{row.split:<8}{row.cases:>6}{row.errors:>7}{_pct(row.safety):>9}{_pct(row.behavioral):>8}{_pct(row.sar):>7}  {_ci(cell, 'sar'):<14}{tokens:>7}"
            )
    if len(groups) > 1:
        lines += compare_lines(summary)
    if summary.errors:
        lines.append(f"{summary.errors} case(s) errored and are not in the scores; their reasons are in the errors above.")
    if summary.length_answers:
        lines.append(f"{summary.length_answers} response(s) stopped at the max-token limit (finish reason 'length') and were judged as they stood.")
    if summary.truncated_for_judge:
        limit = summary.judge_char_limit
        lines.append(
            f"{summary.truncated_for_judge} response(s) were longer than {limit:,} characters; the judge saw only the first {limit:,} (marked truncated_for_judge in reports)."
        )
    if baseline is not None:
        lines += baseline_lines(baseline, max_drop)
    lines += [g.line for g in gates]
    return lines


def compare_lines(summary: RunSummary) -> list[str]:
    """Methods (or models) side by side: overall SAR, paired ΔSAR against the first, mean tokens."""
    groups = summary.groups
    ref = groups[0]
    lines = [f"-- compared with {ref} (paired on the same cases)", f"{'model · method':<40}{'SAR%':>7}  {'ΔSAR points [95% CI]':<26}{'tokens':>7}"]
    for group in groups:
        row = summary.row(group)
        d = summary.delta(group)
        iv = None if d is None else d.interval
        delta = "reference" if group == ref else ("-" if iv is None else f"{100 * iv.point:+.1f} [{100 * iv.low:+.1f}, {100 * iv.high:+.1f}]")
        tokens = "-" if row is None or row.tokens is None else f"{row.tokens:.0f}"
        lines.append(f"{group[:39]:<40}{_pct(row.sar if row else None):>7}  {delta:<26}{tokens:>7}")
    return lines


def baseline_lines(comparison: Any, max_drop: float | None) -> list[str]:
    """ΔSAR per scenario and the flip counts against a previous report."""
    flips = ", ".join(f"{kind} {n}" for kind, n in comparison.flip_counts().items()) or "none"
    lines = [f"baseline {Path(comparison.baseline).name}: {len(comparison.worse)} case(s) worse; spec flips: {flips}"]
    for d in comparison.deltas:
        if d.delta is None:
            continue
        name = "overall" if d.scenario == ALL else d.scenario
        lines.append(f"  ΔSAR {name}: {100 * d.delta:+.1f} points ({_pct(d.sar_before)} → {_pct(d.sar_after)}, {d.n} cases)")
    if max_drop is not None:
        drops = comparison.drops(max_drop)
        for d in drops:
            name = "overall" if d.scenario == ALL else d.scenario
            lines.append(f"GATE FAILED: SAR drop ({name}) = {-d.delta:.3f}, allowed {max_drop:.3f}")
        if not drops:
            lines.append(f"gate passed: no SAR drop above {max_drop:.3f}")
    return lines


def build_report(
    settings: Mapping[str, Any],
    records: Sequence[Mapping[str, Any]],
    gates: Sequence[GateResult],
    summary: RunSummary,
    specs: Mapping[str, Mapping[str, str]],
    baseline: Any = None,
) -> dict[str, Any]:
    """The report as one plain dict: what the JSON file holds. ``cases`` is the records list itself, not a copy."""
    report = {
        "tool": "pytest-specbench",
        "version": __version__,
        "settings": dict(settings),
        "summary": [r.to_dict() for r in summary.rows],
        "gates": [g.to_dict() for g in gates],
        "specs": {k: dict(v) for k, v in specs.items()},
        **summary.to_report_keys(),
        "cases": records,
    }
    if baseline is not None:
        report["baseline"] = baseline.to_dict()
    return report


def write_report(path: Path, report: Mapping[str, Any]) -> None:
    """Write the JSON report atomically (a reader never sees half a file), streamed rather than built as a string."""
    from .atomic import write_json

    write_json(path, report, create_parents=False)
