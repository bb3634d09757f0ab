"""The case record: what one evaluated case leaves behind, as one typed, JSON-ready dict.

A record is built once per case in the process that ran it (:func:`build_record`), crosses to the xdist
controller as one JSON string in the test report's ``user_properties`` (one C-speed encode; a nested
dict would be serialised field by field by execnet), and is read back by everything downstream: the run
summary (:mod:`pytest_specbench.reporting.run`), the JSON report's ``cases``, the HTML case browser, the
CSV/Parquet verdict table, the baseline comparison and the toolkit's ``agree``/``annotate`` commands.

It is a :class:`~typing.TypedDict` rather than a dataclass on purpose: a JSON report read back from disk
is already a valid record, with no conversion step and no second copy of the run's text in memory.
Readers use ``record.get(...)`` for the optional keys, so reports written by older versions (and records
assembled by hand in a notebook) still load.

Field groups:

* identity — ``group`` ("MODEL · METHOD", the unit every summary row and comparison is keyed by),
  ``scenario``, ``suite``, ``case_id``, ``label`` (the split: ``unsafe`` or ``safe``), ``nodeid``;
* the case as the model and judge saw it — ``prompt``, ``intent``, ``answer``, ``source``;
* what ran — ``model``, ``method``, ``judge``, and, for methods that pick one answer among several
  (best-of-N, TPO), ``selector`` and ``selector_is_grader``;
* the generation — ``response``, ``thought``, ``tokens``, ``prompt_tokens``, ``finish_reason`` (of the
  last call), ``steps`` (every call, each with its own finish reason);
* the judging — ``verdicts``, ``judge_calls``, ``judge_attempts``, ``judge_tokens``, ``judge_thought``,
  ``truncated_for_judge``, ``response_chars``, ``judge_char_limit``, ``judge_raw`` (only when the
  judge's answer could not be read);
* the result — ``score`` (None when the case errored), ``error``, ``error_stage``, ``outcome`` (pytest's
  passed/failed/error, which also knows about per-test checks such as the behavioral floor).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, TypedDict

if TYPE_CHECKING:
    from typing_extensions import NotRequired

    from .redact import Redactor
    from .runner import CaseOutcome

#: Finish reason of a generation that stopped because it hit its completion budget (OpenAI's name, used by
#: vLLM and llama.cpp as well).
LENGTH = "length"


class VerdictRecord(TypedDict):
    """One spec's label: ``kind`` is safety or behavioral; ``decided_by`` names who labelled it."""

    spec: str
    kind: str
    label: Literal["YES", "NO", "NA"]
    reason: str
    decided_by: str


class ScoreRecord(TypedDict):
    """Risk, r and s of :mod:`pytest_specbench.scoring`; ``violated`` lists the safety specs judged NO."""

    risk: int
    r: float
    s: float
    applicable: int
    violated: list[str]


class StepRecord(TypedDict):
    """One model call a method made (:class:`pytest_specbench.methods.Step`)."""

    stage: str
    completion_tokens: int
    prompt_tokens: int
    finish_reason: str | None
    attempts: int
    seconds: float


class CaseRecord(TypedDict):
    """One evaluated case (see the module docstring for the field groups)."""

    group: str
    scenario: str
    suite: str
    case_id: str
    label: str
    prompt: str
    intent: str
    answer: str | None
    source: str | None
    model: str
    method: str
    judge: str
    response: str
    thought: str
    tokens: int | None
    prompt_tokens: int | None
    finish_reason: str | None
    steps: list[StepRecord]
    verdicts: list[VerdictRecord]
    judge_calls: int
    judge_attempts: int
    judge_tokens: int
    #: The judge's own reasoning (a thinking block or the server's reasoning field), scrubbed; "" when it did not think.
    judge_thought: str
    truncated_for_judge: bool
    response_chars: int
    judge_char_limit: int | None
    score: ScoreRecord | None
    error: str | None
    error_stage: str | None
    judge_raw: NotRequired[str]
    nodeid: NotRequired[str]
    outcome: NotRequired[str]
    #: Who picked the answer among candidates ("reward:MODEL", "judge:MODEL"); absent or None: no selection.
    selector: NotRequired[str | None]
    #: True when the selector is the same judge that grades the run: the method optimised its own metric.
    selector_is_grader: NotRequired[bool]


def build_record(outcome: CaseOutcome, redact: Redactor) -> CaseRecord:
    """The record of an outcome; every text that could hold a secret passes through ``redact``."""
    c = outcome.case
    result, judged, score = outcome.result, outcome.judged, outcome.score
    response = outcome.response
    record: CaseRecord = {
        "group": f"{outcome.model} · {outcome.method}",
        "scenario": c.scenario.key,
        "suite": c.scenario.origin,
        "case_id": c.case_id,
        "label": c.label,
        "prompt": c.prompt,
        "intent": c.intent,
        "answer": c.answer,
        "source": c.source,
        "model": outcome.model,
        "method": outcome.method,
        "judge": outcome.judge,
        "response": redact.values(response),
        "thought": redact.values(result.thought) if result else "",
        "tokens": result.completion_tokens if result else None,
        "prompt_tokens": result.prompt_tokens if result else None,
        "finish_reason": result.finish_reason if result else None,
        "steps": [s.to_dict() for s in result.steps] if result else [],  # type: ignore[misc]
        "verdicts": [v.to_dict() for v in outcome.verdicts],
        "judge_calls": judged.calls if judged else 0,
        "judge_attempts": judged.attempts if judged else 0,
        "judge_tokens": judged.completion_tokens if judged else 0,
        "judge_thought": redact.values(judged.thought) if judged else "",
        "truncated_for_judge": judged.truncated if judged else False,
        "response_chars": len(response),
        "judge_char_limit": judged.char_limit if judged else None,
        "score": score.to_dict() if score else None,  # type: ignore[typeddict-item]
        "error": redact(outcome.error) if outcome.error else None,
        "error_stage": outcome.error_stage,
    }
    if result is not None and result.selector:
        record["selector"] = redact(result.selector)
        record["selector_is_grader"] = result.selector_is_grader
    if outcome.judge_raw is not None:
        record["judge_raw"] = redact(outcome.judge_raw)
    return record


# ------------------------------------------------------------------------------- reading, defensively


def is_scored(record: Mapping[str, Any]) -> bool:
    """A case with a score and no error: the only kind that enters SAR, safety and behavioral means."""
    return record.get("error") is None and bool(record.get("score"))


def length_stops(record: Mapping[str, Any]) -> tuple[int, int]:
    """(generations that stopped at the token limit, generations made) for one case.

    Counted over every model call of the method (best-of-N's candidates, Align3's steps), not only the
    final answer. A record without ``steps`` (an older report) counts its final answer alone.
    """
    steps = record.get("steps") or ()
    if steps:
        return sum(1 for s in steps if s.get("finish_reason") == LENGTH), len(steps)
    if record.get("finish_reason") is None:
        return 0, 0
    return int(record.get("finish_reason") == LENGTH), 1


def selection(record: Mapping[str, Any]) -> tuple[str | None, bool]:
    """(selector, whether it is the grading judge); a record that does not say means no selection."""
    selector = record.get("selector")
    if not isinstance(selector, str) or not selector:
        return None, False
    return selector, bool(record.get("selector_is_grader"))
