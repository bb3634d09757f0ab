"""Self-Refine: answer, then rounds of spec-by-spec feedback and a rewrite from that feedback."""

from __future__ import annotations

from ..suite import Case
from .core import MethodContext, MethodResult, Step, split_thinking
from .options import OptionSpec, resolve_options
from .prompts import (
    REFINE_FEEDBACK_SYSTEM,
    REFINE_FEEDBACK_USER,
    REFINE_REWRITE_SYSTEM,
    REFINE_REWRITE_USER,
    reviewer_system,
    vanilla_messages,
)
from .registry import MethodRegistry

SELF_REFINE_OPTIONS: dict[str, OptionSpec] = {
    "iterations": OptionSpec(15, "int", "feedback-and-rewrite rounds (the paper: 15; the authors' code: 3)", minimum=1),
    "history": OptionSpec(1, "int", "how many past (answer, feedback) rounds the rewrite sees", minimum=1),
}


async def self_refine(case: Case, ctx: MethodContext) -> MethodResult:
    """Self-Refine: answer, then alternate spec-by-spec feedback and a rewrite from that feedback.

    The rewrite sees the last ``history`` rounds of (answer, feedback). The feedback of every round is
    kept as the thought, so a trace shows why the answer changed.
    """
    opts = resolve_options("self_refine", SELF_REFINE_OPTIONS, ctx.options)
    steps: list[Step] = []
    first = await ctx.call("self_refine.answer", vanilla_messages(case, ctx.prompt_field), steps)
    _, answer = split_thinking(first)
    rounds: list[tuple[str, str]] = []
    feedback_system = reviewer_system(REFINE_FEEDBACK_SYSTEM, case, ctx.prompt_field)
    rewrite_system = reviewer_system(REFINE_REWRITE_SYSTEM, case, ctx.prompt_field)
    for _ in range(opts["iterations"]):
        fb = await ctx.call(
            "self_refine.feedback",
            [
                {"role": "system", "content": feedback_system},
                {"role": "user", "content": REFINE_FEEDBACK_USER.format(answer=answer)},
            ],
            steps,
        )
        _, feedback = split_thinking(fb)
        rounds.append((answer, feedback))
        history = "\n".join(
            f"<answer {n}>\n{a}\n</answer {n}>\n<feedback {n}>\n{f}\n</feedback {n}>"
            for n, (a, f) in enumerate(rounds[-opts["history"] :], 1)
        )
        rewrite = await ctx.call(
            "self_refine.rewrite",
            [
                {"role": "system", "content": rewrite_system},
                {"role": "user", "content": REFINE_REWRITE_USER.format(history=history)},
            ],
            steps,
        )
        _, answer = split_thinking(rewrite)
    thought = "\n\n".join(f"feedback {i}:\n{f}" for i, (_, f) in enumerate(rounds, 1))
    return MethodResult(answer, thought, tuple(steps))


def register(registry: MethodRegistry) -> None:
    registry.register("self_refine", self_refine, options=SELF_REFINE_OPTIONS)
