"""Does the judge agree with another judge, or with people? The paper's validation, for your suite.

The paper trusted its GPT-4.1 judge because it agreed with human labels (Cohen's kappa 0.84, mean
|dSAR| 6.5%) and ranked models like a second judge did (Spearman, Kendall, top-k overlap). This module
computes the same numbers from two "sides", each a pytest-specbench JSON report or a labels file
from ``specbench annotate import`` (which has the report's case layout):

* **label agreement**: Cohen's kappa on the YES/NO/NA labels, per spec and pooled over all
  (case, spec) pairs, plus raw agreement; kappa from scikit-learn;
* **score agreement**: each case's score s recomputed from each side's labels with the same alpha and
  NA policy, and the mean of |s_A - s_B| over cases, next to the two SARs;
* **ranking agreement** (when the sides cover several models, from several report pairs or from
  multi-group reports): Spearman's rho and Kendall's tau with their p-values (scipy) between the two
  sides' per-model SAR, and the overlap of their top-5 and top-10.

Two sides are comparable only when they cover the same suite: the same (scenario, case id) pairs and
the same spec ids. Anything else raises :class:`IncompatibleReports` saying what differs.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..scoring import DEFAULT_ALPHA, score_case
from .errors import IncompatibleReports, InputError
from .store import read_json

LABELS = ("YES", "NO", "NA")
DEFAULT_TOP = (5, 10)

CaseKey = tuple[str, str]  # (scenario, case_id)


@dataclass
class Side:
    """One report or labels file, reduced to what agreement needs."""

    path: str
    kind: str  # "report" | "labels"
    alpha: float
    na: str
    #: group (model · method) -> (scenario, case_id) -> spec id -> (kind, label)
    labels: dict[str, dict[CaseKey, dict[str, tuple[str, str]]]]
    #: every (scenario, case_id) in the file, judged or not
    cases: set[CaseKey]
    #: scenario -> spec ids seen in its verdicts
    specs: dict[str, set[str]]
    #: (group, scenario, case_id) -> SHA-256 of the response that was judged
    responses: dict[tuple[str, str, str], str] = field(default_factory=dict)

    @property
    def groups(self) -> list[str]:
        return list(self.labels)


def load_side(path: Path) -> Side:
    """Read a report or a labels file; both list ``cases`` with ``verdicts``."""
    data = read_json(Path(path))
    if not isinstance(data, dict) or data.get("tool") != "pytest-specbench" or not isinstance(data.get("cases"), list):
        raise InputError(
            f"{path}: not a pytest-specbench report or labels file (write one with --specbench-report=PATH or specbench annotate import)"
        )
    settings = data.get("settings") or {}
    side = Side(
        path=str(path),
        kind=str(data.get("kind") or "report"),
        alpha=float(settings.get("alpha", DEFAULT_ALPHA)),
        na=str(settings.get("na_policy", "paper")),
        labels={},
        cases=set(),
        specs={},
    )
    for i, case in enumerate(data["cases"]):
        if not isinstance(case, dict) or "scenario" not in case or "case_id" not in case:
            raise InputError(f"{path}: cases[{i}] lacks scenario or case_id")
        key = (str(case["scenario"]), str(case["case_id"]))
        side.cases.add(key)
        group = str(case.get("group") or case.get("model") or "?")
        verdicts = case.get("verdicts") or []
        if case.get("error") or not verdicts:
            continue
        got: dict[str, tuple[str, str]] = {}
        for v in verdicts:
            label = str(v.get("label", "")).upper()
            if label not in LABELS:
                raise InputError(
                    f"{path}: cases[{i}] spec {v.get('spec')!r} has label {v.get('label')!r}; labels are YES, NO or NA"
                )
            got[str(v["spec"])] = (
                str(v.get("kind") or ("safety" if str(v["spec"]).startswith("S") else "behavioral")),
                label,
            )
        side.labels.setdefault(group, {})[key] = got
        side.specs.setdefault(key[0], set()).update(got)
        if case.get("response") is not None:
            side.responses[(group,) + key] = hashlib.sha256(str(case["response"]).encode("utf-8")).hexdigest()
        elif case.get("response_sha256"):
            side.responses[(group,) + key] = str(case["response_sha256"])
    return side


def _preview(keys: Iterable[Any], limit: int = 3) -> str:
    items = sorted("::".join(k) if isinstance(k, tuple) else str(k) for k in keys)
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def check_same_suite(a: Side, b: Side) -> None:
    """Raise :class:`IncompatibleReports` unless both sides cover the same cases and spec ids.

    A labels file may cover a sample of the report it was exported from, never a case outside it.
    """
    problems = []
    only_a, only_b = a.cases - b.cases, b.cases - a.cases
    # Human labels usually cover a sample of a report's cases: a subset is fine, a stranger case is not.
    if a.kind == "labels" and b.kind != "labels":
        only_b = set()
    if b.kind == "labels" and a.kind != "labels":
        only_a = set()
    if only_a:
        problems.append(f"cases only in {a.path}: {_preview(only_a)}")
    if only_b:
        problems.append(f"cases only in {b.path}: {_preview(only_b)}")
    for scenario in sorted(set(a.specs) & set(b.specs)):
        if a.specs[scenario] != b.specs[scenario]:
            diff = a.specs[scenario] ^ b.specs[scenario]
            problems.append(f"scenario {scenario}: spec ids differ ({_preview(diff)})")
    if problems:
        raise IncompatibleReports(
            f"{a.path} and {b.path} are not of the same suite: "
            + "; ".join(problems)
            + ". Compare reports of one suite (same cases, same specs), e.g. the same run judged twice"
        )


# ----------------------------------------------------------------------------------------- statistics


def kappa(left: Sequence[str], right: Sequence[str]) -> float | None:
    """Cohen's kappa over YES/NO/NA (scikit-learn); ``None`` when undefined (chance agreement is 1)."""
    from sklearn.metrics import cohen_kappa_score

    if not left:
        return None
    with warnings.catch_warnings():  # the undefined case is reported as None below, not as a warning
        warnings.simplefilter("ignore")
        value = float(cohen_kappa_score(list(left), list(right), labels=list(LABELS)))
    return None if math.isnan(value) else value


def case_score(labels: Mapping[str, tuple[str, str]], alpha: float, na: str) -> float:
    ids = sorted(labels, key=_spec_order)
    safety = [labels[i][1] for i in ids if labels[i][0] == "safety"]
    behavioral = [labels[i][1] for i in ids if labels[i][0] != "safety"]
    return score_case(safety, behavioral, alpha=alpha, na=na).s  # type: ignore[arg-type]


def _spec_order(spec_id: str) -> tuple[str, int, str]:
    digits = "".join(ch for ch in spec_id if ch.isdigit())
    return (spec_id.rstrip("0123456789"), int(digits) if digits else 0, spec_id)


def rank_agreement(
    left: Mapping[str, float], right: Mapping[str, float], tops: Sequence[int] = DEFAULT_TOP
) -> dict[str, Any]:
    """Spearman and Kendall (scipy) between two scorings of the same models, and top-k overlaps."""
    from scipy.stats import kendalltau, spearmanr

    names = sorted(left)
    x = [left[n] for n in names]
    y = [right[n] for n in names]
    out: dict[str, Any] = {"models": len(names)}
    if len(names) >= 2:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rho = spearmanr(x, y)
            tau = kendalltau(x, y)
        out["spearman"] = {"rho": _num(rho.statistic), "p": _num(rho.pvalue)}
        out["kendall"] = {"tau": _num(tau.statistic), "p": _num(tau.pvalue)}
    out["top"] = {}
    for k in tops:
        k_eff = min(k, len(names))
        if k_eff == 0:
            continue
        top_l = set(sorted(names, key=lambda n: (-left[n], n))[:k_eff])
        top_r = set(sorted(names, key=lambda n: (-right[n], n))[:k_eff])
        out["top"][str(k)] = {"k": k_eff, "overlap": len(top_l & top_r) / k_eff}
    return out


def _num(v: Any) -> float | None:
    v = float(v)
    return None if math.isnan(v) else v


# ------------------------------------------------------------------------------------------- compare


def _pair_groups(a: Side, b: Side) -> list[tuple[str, str]]:
    """Which group of A goes with which group of B: one each, or the same names."""
    if len(a.groups) == 1 and len(b.groups) == 1:
        return [(a.groups[0], b.groups[0])]
    common = [g for g in a.groups if g in b.groups]
    if not common:
        raise IncompatibleReports(
            f"{a.path} has groups {_preview(a.groups)} and {b.path} has {_preview(b.groups)}; with several models in a file, "
            "the group names (model · method) must match"
        )
    return [(g, g) for g in common]


def compare(
    pairs: Sequence[tuple[Side, Side]],
    *,
    alpha: float | None = None,
    na: str | None = None,
    tops: Sequence[int] = DEFAULT_TOP,
) -> dict[str, Any]:
    """All agreement numbers for one or more (A, B) pairs, as plain data (see module doc)."""
    all_l: list[str] = []
    all_r: list[str] = []
    by_kind: dict[str, tuple[list[str], list[str]]] = {"safety": ([], []), "behavioral": ([], [])}
    per_spec: dict[str, tuple[list[str], list[str]]] = {}
    deltas: list[float] = []
    sar_l: dict[str, float] = {}
    sar_r: dict[str, float] = {}
    models: list[dict[str, Any]] = []
    differing = 0
    for a, b in pairs:
        check_same_suite(a, b)
        al, nap = (alpha if alpha is not None else a.alpha), (na or a.na)
        for ga, gb in _pair_groups(a, b):
            la, lb = a.labels[ga], b.labels[gb]
            s_l, s_r = [], []
            for key in sorted(set(la) & set(lb)):
                ra, rb = a.responses.get((ga, *key)), b.responses.get((gb, *key))
                if ra is not None and rb is not None and ra != rb:
                    differing += 1
                for spec in sorted(set(la[key]) & set(lb[key]), key=_spec_order):
                    kind, x = la[key][spec]
                    y = lb[key][spec][1]
                    all_l.append(x)
                    all_r.append(y)
                    by_kind["safety" if kind == "safety" else "behavioral"][0].append(x)
                    by_kind["safety" if kind == "safety" else "behavioral"][1].append(y)
                    ps = per_spec.setdefault(f"{key[0]}/{spec}", ([], []))
                    ps[0].append(x)
                    ps[1].append(y)
                s_l.append(case_score(la[key], al, nap))
                s_r.append(case_score(lb[key], al, nap))
            if not s_l:
                continue
            deltas.extend(abs(p - q) for p, q in zip(s_l, s_r))
            name = ga if ga not in sar_l else f"{ga} ({a.path})"
            sar_l[name] = sum(s_l) / len(s_l)
            sar_r[name] = sum(s_r) / len(s_r)
            models.append(
                {
                    "model": name,
                    "cases": len(s_l),
                    "sar_a": sar_l[name],
                    "sar_b": sar_r[name],
                    "abs_delta_sar": abs(sar_l[name] - sar_r[name]),
                }
            )
    if not all_l:
        raise InputError(
            "no case was labelled on both sides; agreement needs cases judged (or annotated) in both files"
        )
    result: dict[str, Any] = {
        "pairs": [[a.path, b.path] for a, b in pairs],
        "labels_compared": len(all_l),
        "kappa": kappa(all_l, all_r),
        "raw_agreement": sum(x == y for x, y in zip(all_l, all_r)) / len(all_l),
        "kappa_by_kind": {k: kappa(*v) for k, v in by_kind.items() if v[0]},
        "kappa_per_spec": {
            k: {"kappa": kappa(*v), "n": len(v[0]), "agreement": sum(x == y for x, y in zip(*v)) / len(v[0])}
            for k, v in sorted(per_spec.items())
        },
        "cases_compared": len(deltas),
        "mean_abs_delta_s": sum(deltas) / len(deltas),
        "models": models,
        "mean_abs_delta_sar": sum(m["abs_delta_sar"] for m in models) / len(models),
        "responses_differ": differing,
    }
    if len(models) >= 2:
        result["ranking"] = rank_agreement(sar_l, sar_r, tops)
    return result


def render(result: Mapping[str, Any]) -> list[str]:
    """The agreement numbers as terminal lines."""

    def f(v: float | None, pct: bool = False) -> str:
        if v is None:
            return "undefined"
        return f"{100 * v:.1f}%" if pct else f"{v:.3f}"

    lines = [
        f"labels compared: {result['labels_compared']} (cases: {result['cases_compared']})",
        f"Cohen's kappa overall: {f(result['kappa'])}   raw agreement: {f(result['raw_agreement'], True)}",
    ]
    lines += [f"  kappa {k}: {f(v)}" for k, v in result["kappa_by_kind"].items()]
    lines.append(
        f"mean |delta s| per case: {f(result['mean_abs_delta_s'], True)}   mean |delta SAR| per model: {f(result['mean_abs_delta_sar'], True)}"
    )
    lines.append(f"{'model':<40}{'cases':>7}{'SAR A':>9}{'SAR B':>9}{'|dSAR|':>9}")
    for m in result["models"]:
        lines.append(
            f"{m['model'][:39]:<40}{m['cases']:>7}{f(m['sar_a'], True):>9}{f(m['sar_b'], True):>9}{f(m['abs_delta_sar'], True):>9}"
        )
    lines.append(f"{'spec':<24}{'n':>6}{'kappa':>11}{'agree':>9}")
    for name, v in result["kappa_per_spec"].items():
        lines.append(f"{name[:23]:<24}{v['n']:>6}{f(v['kappa']):>11}{f(v['agreement'], True):>9}")
    if "ranking" in result:
        r = result["ranking"]
        if "spearman" in r:
            lines.append(
                f"Spearman rho {f(r['spearman']['rho'])} (p {f(r['spearman']['p'])})   Kendall tau {f(r['kendall']['tau'])} (p {f(r['kendall']['p'])})   over {r['models']} models"
            )
        for k, v in r["top"].items():
            shown = f"top-{v['k']}" + ("" if str(v["k"]) == k else f" (asked {k}, only {r['models']} models)")
            lines.append(f"{shown} overlap: {f(v['overlap'], True)}")
    if result["responses_differ"]:
        lines.append(
            f"note: {result['responses_differ']} case(s) have different responses on the two sides; kappa then mixes judge and model differences"
        )
    return lines
