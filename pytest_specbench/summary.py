"""What the controller does with the case records: the terminal table, the gates, the JSON report."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .options import Gate
from .scoring import ALL, Row, aggregate, overall

GateResult = tuple[Gate, "float | None", bool]


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def _groups(records: Sequence[Mapping[str, Any]]) -> list[str]:
    return list(dict.fromkeys(r["group"] for r in records))


def gate_value(gate: Gate, rows: Sequence[Row], group: str) -> float | None:
    metric = "sar" if gate.metric == "SAR" else "safety"
    if gate.scenario is None:
        row = overall(rows, group)
    else:
        row = next((r for r in rows if r.group == group and r.scenario == gate.scenario and r.split == "all"), None)
    return None if row is None else getattr(row, metric)


def evaluate_gates(gates: Iterable[Gate], records: Sequence[Mapping[str, Any]]) -> list[GateResult]:
    """Each gate against each (model · method) group; a gate with no scored case fails."""
    rows = aggregate(records)
    results: list[GateResult] = []
    for gate in gates:
        for group in _groups(records) or ["(no cases)"]:
            value = gate_value(gate, rows, group)
            results.append((gate, value, value is not None and value >= gate.threshold))
    return results


def gate_line(gate: Gate, value: float | None, ok: bool) -> str:
    shown = f"no scored cases{' in ' + gate.scenario if gate.scenario else ''}" if value is None else f"{value:.3f}"
    return f"{'gate passed' if ok else 'GATE FAILED'}: {gate.metric} ({gate.scenario or 'overall'}) = {shown}, threshold {gate.threshold:.3f}"


def render_summary(settings: Mapping[str, Any], records: Sequence[Mapping[str, Any]], gates: Sequence[GateResult]) -> list[str]:
    """The SpecBench section of pytest's terminal summary, as lines."""
    rows = aggregate(records)
    lines = ["= SpecBench summary ="]
    na = "NA excluded from r (paper)" if settings["na_policy"] == "paper" else "NA counted as a miss in r (authors' code)"
    lines.append(
        f"model {settings['model']} | method {settings['method']} | judge {settings['judge']} ({settings['judge_format']}, {settings['judge_mode']}) "
        f"| prompt {settings['prompt']} | alpha {settings['alpha']:g} | {na}"
    )
    header = f"{'scenario':<14}{'split':<8}{'cases':>6}{'errors':>7}{'safety%':>9}{'behav%':>8}{'SAR%':>7}{'tokens':>8}"
    for group in _groups(records):
        if len(_groups(records)) > 1:
            lines.append(f"-- {group}")
        lines.append(header)
        for row in (r for r in rows if r.group == group):
            name = "overall" if row.scenario == ALL else row.scenario
            tokens = "-" if row.tokens is None else f"{row.tokens:.0f}"
            lines.append(
                f"{name[:13]:<14}{row.split:<8}{row.cases:>6}{row.errors:>7}{_pct(row.safety):>9}{_pct(row.behavioral):>8}{_pct(row.sar):>7}{tokens:>8}"
            )
    errors = sum(1 for r in records if r.get("error"))
    if errors:
        lines.append(f"{errors} case(s) errored and are not in the scores; their reasons are in the errors above.")
    lines += [gate_line(*g) for g in gates]
    return lines


def write_report(path: Path, settings: Mapping[str, Any], records: Sequence[Mapping[str, Any]], gates: Sequence[GateResult]) -> None:
    """Write the JSON report atomically (a reader never sees half a file)."""
    rows = aggregate(records)
    report = {
        "tool": "pytest-specbench",
        "version": __version__,
        "settings": dict(settings),
        "summary": [r.to_dict() for r in rows],
        "gates": [{"metric": g.metric, "scenario": g.scenario, "threshold": g.threshold, "value": v, "passed": ok} for g, v, ok in gates],
        "cases": list(records),
    }
    fd, tmp = tempfile.mkstemp(prefix=".specbench-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(report, fh, ensure_ascii=False, indent=1)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
