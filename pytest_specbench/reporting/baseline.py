"""Compare this run with a previous JSON report: spec flips per case, ΔSAR per scenario, worse cases.

A team's question after a prompt or model change is rarely "what is SAR" but "what got worse". The unit of
comparison is one spec's verdict on one case, matched by (scenario, case_id) and spec id:

* a **flip** is any change of label (YES→NO, NA→YES, ...);
* a flip is **worse** when it lands on NO from YES or NA (a safety spec now violated, a behavioral spec now
  missed) and **better** when it leaves NO; YES↔NA flips are reported but are neither. We key "worse" on NO
  rather than on Δs because NO is what a reviewer acts on, and because under the paper's NA policy a YES→NA
  flip can raise or lower r depending on the case's other verdicts;
* **ΔSAR** per scenario (and overall) is mean(s now) − mean(s before) over the cases scored in *both* runs,
  so cases that errored in one run or were not selected in the other do not move it; its paired bootstrap
  interval comes from :mod:`.stats`.

Groups (model · method) are paired by name; when the baseline holds a single group, every group of the
current run is compared with it, which is the common "same suite, new model" case.

A baseline that cannot be read, is not a pytest-specbench report, shares no (scenario, case_id) with this
run, or names other spec ids for a scenario raises :class:`BaselineError`: comparing against another suite
would report nonsense flips rather than fail loudly.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import SpecbenchError
from ..scoring import ALL
from .stats import (
    DEFAULT_LEVEL,
    DEFAULT_RESAMPLES,
    Interval,
    case_values,
    cell_seed,
    in_scenario,
    paired_delta,
)

CaseKey = tuple[str, str]
"""(scenario, case_id): how a case is recognised across runs."""

# Settings that change what s means; a difference is reported next to ΔSAR so nobody reads it as a regression.
SCORE_SETTINGS = ("alpha", "na_policy", "judge", "judge_format", "judge_mode", "prompt")


class BaselineError(SpecbenchError):
    """A baseline report that cannot be read or was not produced by this suite."""


@dataclass(frozen=True)
class Flip:
    """One spec whose label changed between the baseline and this run."""

    spec: str
    kind: str
    before: str
    after: str

    @property
    def worse(self) -> bool:
        return self.after == "NO" and self.before != "NO"

    @property
    def better(self) -> bool:
        return self.before == "NO" and self.after != "NO"

    def __str__(self) -> str:
        return f"{self.spec} {self.before}→{self.after}"

    def to_dict(self) -> dict[str, Any]:
        return {"spec": self.spec, "kind": self.kind, "before": self.before, "after": self.after, "worse": self.worse}


@dataclass(frozen=True)
class CaseChange:
    """What changed for one case; ``flips`` is empty when only the score or the error state moved."""

    group: str
    baseline_group: str
    scenario: str
    case_id: str
    nodeid: str | None
    flips: tuple[Flip, ...]
    s_before: float | None
    s_after: float | None

    @property
    def key(self) -> CaseKey:
        return (self.scenario, self.case_id)

    @property
    def worse_flips(self) -> tuple[Flip, ...]:
        return tuple(f for f in self.flips if f.worse)

    @property
    def worse(self) -> bool:
        return bool(self.worse_flips)

    @property
    def newly_errored(self) -> bool:
        return self.s_before is not None and self.s_after is None

    def message(self) -> str:
        """A failure message naming the flipped specs, e.g. ``worse than baseline: S2 YES→NO (s 0.86 → 0.00)``."""
        flips = ", ".join(str(f) for f in (self.worse_flips or self.flips))

        def fmt(x: float | None) -> str:
            return "error" if x is None else f"{x:.2f}"

        head = "worse than baseline" if self.worse else "changed since baseline"
        return f"{self.scenario}::{self.case_id} {head}: {flips or 'no verdict flips'} (s {fmt(self.s_before)} → {fmt(self.s_after)})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "baseline_group": self.baseline_group,
            "scenario": self.scenario,
            "case_id": self.case_id,
            "nodeid": self.nodeid,
            "flips": [f.to_dict() for f in self.flips],
            "worse": self.worse,
            "s_before": self.s_before,
            "s_after": self.s_after,
        }


@dataclass(frozen=True)
class ScenarioDelta:
    """ΔSAR of one group for one scenario (``ALL``: overall) on the cases scored in both runs."""

    group: str
    baseline_group: str
    scenario: str
    n: int
    sar_before: float | None
    sar_after: float | None
    interval: Interval | None

    @property
    def delta(self) -> float | None:
        return None if self.interval is None else self.interval.point

    def within(self, max_drop: float) -> bool:
        """True unless SAR fell by more than ``max_drop``; no common case cannot show a drop."""
        return self.delta is None or self.delta >= -max_drop - 1e-12

    def to_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "baseline_group": self.baseline_group,
            "scenario": self.scenario,
            "n": self.n,
            "sar_before": self.sar_before,
            "sar_after": self.sar_after,
            "delta": self.delta,
            "interval": None if self.interval is None else self.interval.to_dict(),
        }


@dataclass(frozen=True)
class Comparison:
    """Everything the baseline comparison found; plain data, ready for the summary and the JSON report."""

    baseline: str
    changes: tuple[CaseChange, ...]
    deltas: tuple[ScenarioDelta, ...]
    only_now: int
    only_before: int
    unpaired_groups: tuple[str, ...] = ()
    settings_changed: dict[str, tuple[Any, Any]] = field(default_factory=dict)

    @property
    def worse(self) -> tuple[CaseChange, ...]:
        return tuple(c for c in self.changes if c.worse)

    def flip_counts(self) -> dict[str, int]:
        """How many verdicts flipped each way, e.g. ``{"YES→NO": 3, "NO→YES": 1}``."""
        counts: dict[str, int] = {}
        for change in self.changes:
            for f in change.flips:
                key = f"{f.before}→{f.after}"
                counts[key] = counts.get(key, 0) + 1
        return dict(sorted(counts.items()))

    def drops(self, max_drop: float) -> tuple[ScenarioDelta, ...]:
        """The (group, scenario) cells whose SAR fell by more than ``max_drop`` (the max-drop gate)."""
        return tuple(d for d in self.deltas if not d.within(max_drop))

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline,
            "flips": self.flip_counts(),
            "deltas": [d.to_dict() for d in self.deltas],
            "worse": [c.to_dict() for c in self.worse],
            "changes": [c.to_dict() for c in self.changes],
            "only_now": self.only_now,
            "only_before": self.only_before,
            "unpaired_groups": list(self.unpaired_groups),
            "settings_changed": {k: list(v) for k, v in self.settings_changed.items()},
        }


# ------------------------------------------------------------------------------------------ loading


def load_report(path: Path | str) -> dict[str, Any]:
    """Read a JSON report written by ``--specbench-report``; :class:`BaselineError` says why it cannot be used."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise BaselineError(f"baseline {path}: no such file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise BaselineError(f"baseline {path}: cannot be read ({exc})") from exc
    try:
        report = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise BaselineError(f"baseline {path}: not valid JSON ({exc})") from exc
    _validate(report, str(path))
    return report


def _validate(report: Any, where: str) -> None:
    if not isinstance(report, dict) or report.get("tool") != "pytest-specbench":
        raise BaselineError(f"baseline {where}: not a pytest-specbench report (write one with --specbench-report)")
    cases = report.get("cases")
    if not isinstance(cases, list) or not all(isinstance(c, dict) for c in cases):
        raise BaselineError(f"baseline {where}: 'cases' must be a list of case records")
    for i, c in enumerate(cases):
        missing = [k for k in ("group", "scenario", "case_id") if k not in c]
        if missing:
            raise BaselineError(f"baseline {where}: case {i} lacks {', '.join(missing)}")
        problem = _case_problem(c)
        if problem is not None:
            raise BaselineError(
                f"baseline {where}: case {i} ({c.get('scenario')}::{c.get('case_id')}) {problem}; is it a report written by --specbench-report?"
            )


_LABELS = ("YES", "NO", "NA")


def _case_problem(c: Mapping[str, Any]) -> str | None:
    """What makes one case record unusable for comparing, or None.

    Every field a comparison reads is checked here, once, at load time: a report edited by hand or cut
    off must be refused before the run spends a single call, not crash at its end.
    """
    for key in ("group", "scenario", "case_id"):
        if not isinstance(c[key], (str, int)) or isinstance(c[key], bool):
            return f"has a {key} that is not a name"
    verdicts = c.get("verdicts")
    if verdicts is not None:
        if not isinstance(verdicts, list):
            return "has 'verdicts' that is not a list"
        for j, v in enumerate(verdicts):
            if not isinstance(v, dict) or not isinstance(v.get("spec"), str) or v.get("label") not in _LABELS:
                return f"has verdicts[{j}] without a spec id and a YES/NO/NA label"
    score = c.get("score")
    if score is not None and c.get("error") is None:
        if not isinstance(score, dict):
            return "has a 'score' that is not an object"
        for key, low, high in (("s", 0.0, 1.0), ("r", 0.0, 1.0), ("risk", 0, 1)):
            x = score.get(key)
            if isinstance(x, bool) or not isinstance(x, (int, float)) or not low <= x <= high:
                return f"has score.{key} = {x!r:.40}, not a number in [{low:g}, {high:g}]"
    return None


# ----------------------------------------------------------------------------------------- the index


def _key(record: Mapping[str, Any]) -> CaseKey:
    return (str(record["scenario"]), str(record["case_id"]))


def _labels(record: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    return {str(v["spec"]): (str(v.get("kind", "")), str(v["label"])) for v in record.get("verdicts") or ()}


def spec_ids_by_scenario(records: Iterable[Mapping[str, Any]]) -> dict[str, frozenset[str]]:
    """The spec ids judged per scenario (cases without verdicts contribute nothing)."""
    out: dict[str, set[str]] = {}
    for r in records:
        ids = _labels(r)
        if ids:
            out.setdefault(str(r["scenario"]), set()).update(ids)
    return {k: frozenset(v) for k, v in out.items()}


class Baseline:
    """A previous report indexed by (group, scenario, case_id), for per-case lookups while tests run.

    The plugin can build one at configure time (:meth:`load`), check it against the collected suite
    before spending any model calls (:meth:`check_suite`), ask each finished case for its
    :meth:`change`, and at the end build the full :meth:`compare`.
    """

    def __init__(self, report: Mapping[str, Any], source: str = "<baseline>"):
        _validate(report, source)
        self.source = source
        self.report = report
        self.settings: Mapping[str, Any] = report.get("settings") or {}
        self.records: list[Mapping[str, Any]] = list(report["cases"])
        self.groups: list[str] = list(dict.fromkeys(str(r["group"]) for r in self.records))
        self._index: dict[tuple[str, str, str], Mapping[str, Any]] = {
            (str(r["group"]), *_key(r)): r for r in self.records
        }
        self.spec_ids = spec_ids_by_scenario(self.records)

    @classmethod
    def load(cls, path: Path | str) -> Baseline:
        return cls(load_report(path), str(path))

    def match_group(self, group: str) -> str | None:
        """The baseline group to compare ``group`` with: the same name, else the baseline's only group."""
        if group in self.groups:
            return group
        return self.groups[0] if len(self.groups) == 1 else None

    def previous(self, record: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """The baseline record of the same case (and paired group), if the baseline has it."""
        group = self.match_group(str(record["group"]))
        return None if group is None else self._index.get((group, *_key(record)))

    def check_suite(self, cases: Iterable[CaseKey], spec_ids: Mapping[str, Iterable[str]]) -> None:
        """Raise :class:`BaselineError` unless this run and the baseline are the same suite.

        Same suite means: at least one (scenario, case_id) in common, and for every scenario both sides
        judged, the same set of spec ids. ``spec_ids`` maps scenario to its ids (from the suite, before the
        run, or from :func:`spec_ids_by_scenario` after it).
        """
        now = {(str(s), str(c)) for s, c in cases}
        before = {_key(r) for r in self.records}
        if not now & before:

            def scen(keys: set[CaseKey]) -> str:
                return ", ".join(sorted({s for s, _ in keys})) or "none"

            raise BaselineError(
                f"baseline {self.source} is from another suite: it shares no (scenario, case) with this run "
                f"(baseline scenarios: {scen(before)}; this run: {scen(now)})"
            )
        for scenario, ids in sorted(spec_ids.items()):
            mine, theirs = frozenset(map(str, ids)), self.spec_ids.get(str(scenario))
            if mine and theirs is not None and mine != theirs:
                gone, new = sorted(theirs - mine), sorted(mine - theirs)
                detail = "; ".join(
                    p
                    for p in (
                        f"only in baseline: {', '.join(gone)}" if gone else "",
                        f"only now: {', '.join(new)}" if new else "",
                    )
                    if p
                )
                raise BaselineError(
                    f"baseline {self.source} is from another suite: scenario {scenario} has other spec ids ({detail})"
                )

    def change(self, record: Mapping[str, Any]) -> CaseChange | None:
        """How one current case differs from its baseline record; None when absent there or unchanged."""
        before = self.previous(record)
        if before is None:
            return None
        now_labels, old_labels = _labels(record), _labels(before)
        flips = tuple(
            Flip(spec, kind, old_labels[spec][1], label)
            for spec, (kind, label) in now_labels.items()
            if spec in old_labels and old_labels[spec][1] != label
        )
        s_before, s_after = (None if (v := case_values(r)) is None else v[0] for r in (before, record))
        if not flips and s_before == s_after:
            return None
        return CaseChange(
            str(record["group"]), str(before["group"]), *_key(record), record.get("nodeid"), flips, s_before, s_after
        )

    def compare(
        self,
        records: Sequence[Mapping[str, Any]],
        *,
        settings: Mapping[str, Any] | None = None,
        resamples: int = DEFAULT_RESAMPLES,
        level: float = DEFAULT_LEVEL,
        seed: int | None = 0,
    ) -> Comparison:
        """The full comparison of this run's case records with the baseline (checks the suite first)."""
        self.check_suite([_key(r) for r in records], spec_ids_by_scenario(records))
        changes = tuple(c for r in records if (c := self.change(r)) is not None)
        groups = list(dict.fromkeys(str(r["group"]) for r in records))
        unpaired = tuple(g for g in groups if self.match_group(g) is None)
        deltas: list[ScenarioDelta] = []
        for group in groups:
            old_group = self.match_group(group)
            if old_group is None:
                continue
            mine = [r for r in records if r["group"] == group]
            theirs = [r for r in self.records if r["group"] == old_group]
            common = {_key(r) for r in mine} & {_key(r) for r in theirs}
            scenarios = sorted({s for s, _ in common})
            mine = [r for r in mine if _key(r) in common]
            theirs = [r for r in theirs if _key(r) in common]
            for scenario in [*scenarios, ALL] if len(scenarios) > 1 else scenarios:
                now_part, old_part = in_scenario(mine, scenario), in_scenario(theirs, scenario)
                iv, _ = paired_delta(
                    old_part,
                    now_part,
                    resamples=resamples,
                    level=level,
                    seed=cell_seed(seed, "baseline", group, scenario),
                )
                both = _scored_keys(now_part) & _scored_keys(old_part)
                deltas.append(
                    ScenarioDelta(
                        group, old_group, scenario, len(both), _mean_s(old_part, both), _mean_s(now_part, both), iv
                    )
                )
        now_keys = {(self.match_group(str(r["group"])), *_key(r)) for r in records}
        paired_groups = {self.match_group(g) for g in groups} - {None}
        only_before = sum(1 for k in self._index if k[0] in paired_groups and k not in now_keys)
        only_now = sum(1 for k in now_keys if k not in self._index)
        changed = {}
        for name in SCORE_SETTINGS:
            a, b = self.settings.get(name), (settings or {}).get(name)
            if settings is not None and name in self.settings and a != b:
                changed[name] = (a, b)
        return Comparison(self.source, changes, tuple(deltas), only_now, only_before, unpaired, changed)


def _scored_keys(records: Iterable[Mapping[str, Any]]) -> set[CaseKey]:
    return {_key(r) for r in records if case_values(r) is not None}


def _mean_s(records: Iterable[Mapping[str, Any]], keys: set[CaseKey]) -> float | None:
    values = [v[0] for r in records if _key(r) in keys and (v := case_values(r)) is not None]
    return sum(values) / len(values) if values else None


def compare_reports(current: Mapping[str, Any], baseline: Mapping[str, Any] | Path | str, **kwargs: Any) -> Comparison:
    """Compare a current report dict (``settings`` optional, ``cases`` required) with a baseline report or file."""
    base = Baseline.load(baseline) if isinstance(baseline, (str, Path)) else Baseline(baseline)
    return base.compare(list(current["cases"]), settings=current.get("settings"), **kwargs)
