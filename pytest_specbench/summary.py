"""What the controller shows from the run summary: the terminal table, the gates, the JSON report."""

from __future__ import annotations

import json
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
        shown = (
            f"no scored cases{' in ' + g.scenario if g.scenario else ''}" if self.value is None else f"{self.value:.3f}"
        )
        what = f"{g.metric} ({g.scenario or 'overall'})" + (", 95% lower bound" if self.on == "lower" else "")
        return f"{'gate passed' if self.passed else 'GATE FAILED'}: {what} = {shown}, threshold {g.threshold:.3f}"

    def to_dict(self) -> dict[str, Any]:
        g = self.gate
        return {
            "metric": g.metric,
            "scenario": g.scenario,
            "threshold": g.threshold,
            "group": self.group,
            "value": self.value,
            "passed": self.passed,
            "on": self.on,
        }


#: How the overall rows are labelled: the paper's "Avg." is the mean over scenarios of each scenario's mean.
AVG_LABEL = "Avg. (paper)"
POOLED_LABEL = "pooled"
AVG_NOTE = "Avg. (paper) = mean over scenarios of the per-scenario means, as in the paper's tables."
POOLED_NOTE = " Scenarios differ in scored cases here (a selection or errors), so the mean pooled over all cases is shown beside it."


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
    na = (
        "NA excluded from r (paper)"
        if settings["na_policy"] == "paper"
        else "NA counted as a miss in r (authors' code)"
    )
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
            tokens = "-" if row.tokens is None else f"{row.tokens:.0f}"
            cell = summary.cell(group, None if row.scenario == ALL else row.scenario, row.split)
            avg = summary.average(group, row.split) if row.scenario == ALL else None
            # a scenario row, or an overall row whose scenarios are equal in size (the mean over scenarios
            # is then the pooled mean, interval included): one line
            if avg is None or avg.equal:
                label = AVG_LABEL if row.scenario == ALL else row.scenario
                ci = _ci(cell, "sar")
                lines.append(
                    _row_line(label, row.split, row.cases, row.errors, row.safety, row.behavioral, row.sar, ci, tokens)
                )
                continue
            lines.append(
                _row_line(AVG_LABEL, row.split, row.cases, row.errors, avg.safety, avg.behavioral, avg.sar, "", tokens)
            )
            lines.append(
                _row_line(
                    POOLED_LABEL,
                    row.split,
                    row.cases,
                    row.errors,
                    row.safety,
                    row.behavioral,
                    row.sar,
                    _ci(cell, "sar"),
                    tokens,
                )
            )
        lines += group_notes(summary, group)
    if summary.multi_scenario:
        lines.append(AVG_NOTE if all(a.equal for a in summary.averages) else AVG_NOTE + POOLED_NOTE)
    if len(groups) > 1:
        lines += compare_lines(summary)
    if summary.errors:
        lines.append(
            f"{summary.errors} case(s) errored and are not in the scores; their reasons are in the errors above."
        )
    if summary.length_answers:
        lines.append(
            f"{summary.length_answers} response(s) stopped at the max-token limit (finish reason 'length') and were judged as they stood."
        )
    if summary.truncated_for_judge:
        limit = summary.judge_char_limit
        lines.append(
            f"{summary.truncated_for_judge} response(s) were longer than {limit:,} characters; the judge saw only the first {limit:,} (marked truncated_for_judge in reports)."
        )
    if baseline is not None:
        lines += baseline_lines(baseline, max_drop)
    lines += [g.line for g in gates]
    return lines


def _row_line(
    name: str,
    split: str,
    cases: int,
    errors: int,
    safety: float | None,
    behavioral: float | None,
    sar: float | None,
    ci: str,
    tokens: str,
) -> str:
    return f"{name[:13]:<14}{split:<8}{cases:>6}{errors:>7}{_pct(safety):>9}{_pct(behavioral):>8}{_pct(sar):>7}  {ci:<14}{tokens:>7}"


def group_notes(summary: RunSummary, group: str) -> list[str]:
    """What a reader of one group's rows must know: answers cut at the token limit, answers picked by the grader."""
    facts = summary.facts.get(group)
    if facts is None:
        return []
    lines = []
    if facts.length_stops:
        lines.append(
            f"   {group}: {facts.length_stops} of {facts.generations} generation(s) stopped at the max-token limit "
            f"(finish reason 'length'), {facts.length_answers} of them a final answer"
        )
    if facts.selection_note:
        lines.append(
            f"   {group}: {facts.selection_note} (selector {', '.join(facts.selectors)} is the judge that grades this run)"
        )
    return lines


def compare_lines(summary: RunSummary) -> list[str]:
    """Methods (or models) side by side: overall SAR (mean over scenarios), paired ΔSAR against the first, tokens.

    ``len-stop`` counts the method's generations that hit the token limit; a method whose answers were
    picked by the grading judge is flagged on its row, since its SAR is optimistic by construction.
    """
    groups = summary.groups
    ref = groups[0]
    sar_head = "SAR%" if not summary.multi_scenario else "Avg.%"
    lines = [
        f"-- compared with {ref} (paired on the same cases)",
        f"{'model · method':<40}{sar_head:>7}  {'ΔSAR points [95% CI]':<26}{'tokens':>7}{'len-stop':>10}",
    ]
    for group in groups:
        row = summary.row(group)
        avg = summary.average(group)
        d = summary.delta(group)
        iv = None if d is None else d.interval
        delta = (
            "reference"
            if group == ref
            else ("-" if iv is None else f"{100 * iv.point:+.1f} [{100 * iv.low:+.1f}, {100 * iv.high:+.1f}]")
        )
        tokens = "-" if row is None or row.tokens is None else f"{row.tokens:.0f}"
        facts = summary.facts.get(group)
        stops = "-" if facts is None else f"{facts.length_stops}/{facts.generations}"
        sar = avg.sar if avg is not None else (row.sar if row else None)
        flag = f"  <- {facts.selection_note}" if facts is not None and facts.selection_note else ""
        lines.append(f"{group[:39]:<40}{_pct(sar):>7}  {delta:<26}{tokens:>7}{stops:>10}{flag}")
    return lines


def baseline_lines(comparison: Any, max_drop: float | None) -> list[str]:
    """ΔSAR per scenario and the flip counts against a previous report."""
    flips = ", ".join(f"{kind} {n}" for kind, n in comparison.flip_counts().items()) or "none"
    lines = [f"baseline {Path(comparison.baseline).name}: {len(comparison.worse)} case(s) worse; spec flips: {flips}"]
    for d in comparison.deltas:
        if d.delta is None:
            continue
        name = "overall" if d.scenario == ALL else d.scenario
        lines.append(
            f"  ΔSAR {name}: {100 * d.delta:+.1f} points ({_pct(d.sar_before)} → {_pct(d.sar_after)}, {d.n} cases)"
        )
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


def write_report(path: Path, report: Mapping[str, Any], case_texts: Iterable[str] | None = None) -> None:
    """Write the JSON report atomically (a reader never sees half a file), one case per line.

    ``case_texts`` are the cases as compact JSON texts (the run's case store streams them from disk);
    without it, ``report["cases"]`` is encoded here. Either way the cases are written one at a time by
    the C encoder: the settings, summary and specs above them are indented, the cases are not, because
    ``indent`` switches :mod:`json` to its pure-Python encoder, several times slower per case.
    """
    from .atomic import atomic_open

    head = json.dumps({k: v for k, v in report.items() if k != "cases"}, ensure_ascii=False, indent=1)
    if case_texts is None:
        case_texts = (json.dumps(c, ensure_ascii=False) for c in report.get("cases") or ())
    with atomic_open(path, "w", create_parents=False) as fh:
        fh.write(head[: head.rindex("}")].rstrip())
        fh.write(',\n "cases": [' if len(head) > 2 else '"cases": [')
        for n, text in enumerate(case_texts):
            fh.write("\n  " if n == 0 else ",\n  ")
            fh.write(text)
        fh.write("\n ]\n}\n")
