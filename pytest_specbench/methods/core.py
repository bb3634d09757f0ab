"""What every method shares: the call context, the per-call record, the result, and thought splitting.

A method is an async function of (case, context) returning a :class:`MethodResult`. The context holds
the backend and decoding settings; the method decides how many calls to make, whether to prefill a
partial assistant turn, and records every call in ``steps`` so token accounting and traces come for free.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..backends.base import Backend, Completion, Decoding, GenerationRequest
from ..suite import Case

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


@dataclass(frozen=True)
class Step:
    """One model call made by a method: which stage it served and what it cost."""

    stage: str
    completion_tokens: int
    prompt_tokens: int
    finish_reason: str | None
    attempts: int = 1
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class MethodResult:
    """The final response (what the judge sees), the thought kept apart, and every call made.

    A method that chose its response among candidates names the rater in ``selector`` (``judge:MODEL``
    or ``reward:MODEL``); ``selector_is_grader`` says the rater is the model that grades the run, whose
    SAR is then optimistic: the method optimised the very score it is graded on.
    """

    response: str
    thought: str
    steps: tuple[Step, ...]
    selector: str | None = None
    selector_is_grader: bool = False

    @property
    def completion_tokens(self) -> int:
        return sum(s.completion_tokens for s in self.steps)

    @property
    def prompt_tokens(self) -> int:
        """Prompt tokens of the first call only: a prefill counts once, as the paper's Tokens column does."""
        return self.steps[0].prompt_tokens if self.steps else 0

    @property
    def finish_reason(self) -> str | None:
        return self.steps[-1].finish_reason if self.steps else None


@dataclass(frozen=True)
class Selector:
    """Rates a candidate response for a case (higher is better), and says who it is for the record."""

    label: str
    is_grader: bool
    score: Callable[[Case, str], Awaitable[float | None]]


class Selectors(Protocol):
    """Where a ranking method gets its rater; the run keeps one, so clients are made once and closed at the end."""

    def judge(self, ref: str | None, base_urls: tuple[str, ...] = ()) -> Selector:
        """An LLM judge as rater: ``ref`` (PROVIDER/NAME or a profile), or the run's grading judge when None."""
        ...

    def reward(self, url: str, model: str | None, route: str, prompt_field: str) -> Selector:
        """A reward model served at ``url`` as rater."""
        ...


@dataclass(frozen=True)
class MethodContext:
    """What a method may use: the backend under test, its decoding, the method's options, and raters.

    ``score_response`` rates a candidate response for the case with the run's own grading judge and
    returns s; the run gives it only to a method that declares the ``judge`` need. ``selectors`` builds
    other raters (a separate judge, a reward model); None outside a run.
    """

    backend: Backend
    decoding: Decoding
    prompt_field: str = "adversarial"
    options: Mapping[str, Any] = field(default_factory=dict)
    score_response: Callable[[Case, str], Awaitable[float]] | None = None
    selectors: Selectors | None = None

    async def call(self, stage: str, messages: list[dict[str, str]], steps: list[Step], **kw: Any) -> Completion:
        start = time.perf_counter()
        completion = await self.backend.generate(
            GenerationRequest(messages=tuple(messages), decoding=self.decoding, **kw)
        )
        elapsed = time.perf_counter() - start
        steps.append(
            Step(
                stage,
                completion.completion_tokens,
                completion.prompt_tokens,
                completion.finish_reason,
                completion.attempts,
                round(elapsed, 4),
            )
        )
        return completion


Method = Callable[[Case, MethodContext], Awaitable[MethodResult]]


def split_thinking(completion: Completion) -> tuple[str, str]:
    """(thought, response): a server-side reasoning field, or text before the last ``</think>``."""
    text = completion.text
    if THINK_CLOSE in text:
        thought, _, response = text.rpartition(THINK_CLOSE)
        thought = thought.replace(THINK_OPEN, "", 1).strip()
        return ((completion.reasoning or "") + thought).strip(), response.strip()
    return (completion.reasoning or "").strip(), text.strip()


def continue_split(prefill: str, completion_text: str) -> tuple[str, str]:
    """(thought, response) of a prefilled final call: the prefill plus the text up to ``</think>`` is thought.

    A model that never closes its thinking (small instruct models often do not) is taken to be answering:
    its continuation is the response, so the judge still sees what it wrote.
    """
    head = prefill.replace(THINK_OPEN, "", 1).lstrip()  # keep its tail: the model continued right after it
    if THINK_CLOSE in completion_text:
        thought, _, response = completion_text.rpartition(THINK_CLOSE)
        return (head + thought).strip(), response.strip()
    return head.strip(), completion_text.strip()
