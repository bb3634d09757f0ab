"""Deterministic spec checks: rules that code decides better than an LLM judge.

"Keep it under 250 words" or "start with a title" are facts about the text, and a judge (a small one
above all) gets them wrong. A spec can carry a check instead; the judge then labels only the other specs,
and each verdict records who decided it (``decided_by``: ``judge``, ``check:words``, ``python:<name>``…).

Built-ins, written in a YAML suite under the spec's ``check`` key::

    - id: short
      text: Keep the story under 250 words.
      check: {words: {max: 250}}            # also min; inclusive
    - text: Use the headings Ingredients then Steps.
      check: {headings: [Ingredients, Steps]}   # in this order, as Markdown headings or "Name:" lines
    - check: {starts_with: "Dear"}          # also ends_with; case-insensitive, surrounding space ignored
    - check: {regex: "\\\\bminutes?\\\\b"}      # must match somewhere (Python syntax, case-insensitive)
    - check: {not_regex: "(?i)as an ai"}    # must not match

In Python, in a test file or conftest.py::

    from pytest_specbench.checks import spec_check

    @spec_check("Recipes", "B2")
    def numbered_steps(response: str, case) -> bool:
        return "1." in response and "2." in response

A check returns True (YES), False (NO), None (NA), or a (label, reason) pair.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from .scoring import Verdict
from .suite import Case, Spec

CheckResult = "bool | None | tuple[str, str]"
PythonCheck = Callable[[str, Case], Any]
BUILTIN_KINDS = ("words", "headings", "starts_with", "ends_with", "regex", "not_regex")

#: (scenario key, spec id) -> check function; filled by :func:`spec_check` when test modules are imported.
_PYTHON_CHECKS: dict[tuple[str, str], PythonCheck] = {}


def spec_check(scenario: str, spec_id: str) -> Callable[[PythonCheck], PythonCheck]:
    """Register a Python function that decides one spec of one scenario instead of the judge."""

    def register(fn: PythonCheck) -> PythonCheck:
        _PYTHON_CHECKS[(scenario, spec_id)] = fn
        return fn

    return register


def python_check(scenario: str, spec_id: str) -> PythonCheck | None:
    return _PYTHON_CHECKS.get((scenario, spec_id))


def is_checked(case: Case, spec: Spec) -> bool:
    return spec.check is not None or python_check(case.scenario.key, spec.id) is not None


def _headings(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("#"):
            out.append(s.lstrip("#").strip().rstrip(":").strip().lower())
        elif (bare := s.strip("*_ ")).endswith(":") and 0 < len(bare) <= 80:
            out.append(bare.rstrip(":").strip("*_ ").lower())
    return out


def run_builtin(check: Mapping[str, Any], response: str) -> tuple[str, str, str]:
    """(label, reason, kind) for one built-in check."""
    kind, arg = next(iter(check.items()))
    text = response.strip()
    if kind == "words":
        n = len(re.findall(r"\S+", text))
        lo, hi = arg.get("min"), arg.get("max")
        ok = (lo is None or n >= lo) and (hi is None or n <= hi)
        bounds = f"{lo if lo is not None else 0}–{hi if hi is not None else '∞'}"
        return ("YES" if ok else "NO"), f"{n} words (allowed {bounds})", kind
    if kind == "headings":
        found, position = _headings(text), 0
        for wanted in arg:
            try:
                position = found.index(str(wanted).lower(), position) + 1
            except ValueError:
                return "NO", f"heading {wanted!r} missing or out of order (found: {', '.join(found) or 'none'})", kind
        return "YES", "all headings present in order", kind
    if kind in ("starts_with", "ends_with"):
        target = str(arg).strip().lower()
        ok = text.lower().startswith(target) if kind == "starts_with" else text.lower().endswith(target)
        return (
            ("YES" if ok else "NO"),
            f"{'starts' if kind == 'starts_with' else 'ends'} with {arg!r}: {'yes' if ok else 'no'}",
            kind,
        )
    if kind in ("regex", "not_regex"):
        hit = re.search(str(arg), text, flags=re.I | re.M) is not None
        ok = hit if kind == "regex" else not hit
        return ("YES" if ok else "NO"), f"pattern {arg!r} {'found' if hit else 'not found'}", kind
    raise ValueError(f"unknown check kind {kind!r}; known: {', '.join(BUILTIN_KINDS)}")


def decide(case: Case, spec: Spec, response: str) -> Verdict:
    """The verdict of a checked spec (built-in or Python)."""
    fn = python_check(case.scenario.key, spec.id)
    if fn is not None:
        result = fn(response, case)
        name = getattr(fn, "__name__", "check")
        if isinstance(result, tuple):
            label, reason = result
        else:
            label, reason = {True: "YES", False: "NO", None: "NA"}[result], f"decided by {name}()"
        if label not in ("YES", "NO", "NA"):
            raise ValueError(
                f"check {name} for {case.scenario.key}/{spec.id} returned {label!r}; use True, False, None or (label, reason)"
            )
        return Verdict(spec.id, spec.kind, label, reason, decided_by=f"python:{name}")
    assert spec.check is not None
    label, reason, kind = run_builtin(spec.check, response)
    return Verdict(spec.id, spec.kind, label, reason, decided_by=f"check:{kind}")  # type: ignore[arg-type]
