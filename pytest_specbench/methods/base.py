"""The two one-call methods: ``raw`` (the bare model) and ``vanilla`` (specs in the system prompt)."""

from __future__ import annotations

from ..suite import Case
from .core import MethodContext, MethodResult, Step, split_thinking
from .prompts import vanilla_messages
from .registry import MethodRegistry


async def raw(case: Case, ctx: MethodContext) -> MethodResult:
    """The prompt alone, no specs: how the bare model behaves."""
    steps: list[Step] = []
    completion = await ctx.call("answer", [{"role": "user", "content": case.model_prompt(ctx.prompt_field)}], steps)
    thought, response = split_thinking(completion)
    return MethodResult(response, thought, tuple(steps))


async def vanilla(case: Case, ctx: MethodContext) -> MethodResult:
    """The specs in the system prompt, one call: the paper's baseline."""
    steps: list[Step] = []
    completion = await ctx.call("answer", vanilla_messages(case, ctx.prompt_field), steps)
    thought, response = split_thinking(completion)
    return MethodResult(response, thought, tuple(steps))


def register(registry: MethodRegistry) -> None:
    registry.register("raw", raw)
    registry.register("vanilla", vanilla)
