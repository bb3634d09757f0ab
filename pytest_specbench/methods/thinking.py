"""Methods that steer a model's thinking by prefilling it: ``zero_think`` and ``more_think``.

Both continue a partial assistant turn, so both need a backend with ``supports_prefill``. A prefilled
passage is prompt, not completion: only the tokens the model generated count.
"""

from __future__ import annotations

from typing import Any

from ..suite import Case
from .core import THINK_CLOSE, THINK_OPEN, MethodContext, MethodResult, Step, continue_split
from .options import OptionSpec, resolve_options
from .prompts import ZERO_THINK_PREFILL, vanilla_messages
from .registry import MethodRegistry, require_capability

MORE_THINK_OPTIONS: dict[str, OptionSpec] = {
    "cycles": OptionSpec(
        3, "int", "thinking cycles; every cycle but the last ends in the continuation word", minimum=1
    ),
    "continuation": OptionSpec("Wait", "text", "word that replaces </think> to make the model think again"),
}


async def zero_think(case: Case, ctx: MethodContext) -> MethodResult:
    """Thinking pre-filled empty: the model must answer at once (the paper's no-deliberation control)."""
    resolve_options("zero_think", {}, ctx.options)
    require_capability("zero_think", "prefill", ctx.backend)
    steps: list[Step] = []
    completion = await ctx.call(
        "zero_think.answer", vanilla_messages(case, ctx.prompt_field), steps, prefill=ZERO_THINK_PREFILL
    )
    thought, response = continue_split("", completion.text)
    return MethodResult(response, thought, tuple(steps))


async def more_think(case: Case, ctx: MethodContext) -> MethodResult:
    """Budget forcing: when the model closes its thinking, swap ``</think>`` for "Wait" and let it go on.

    The first ``cycles - 1`` calls stop at ``</think>``; the last one may close the thinking and answer.
    """
    opts: dict[str, Any] = resolve_options("more_think", MORE_THINK_OPTIONS, ctx.options)
    require_capability("more_think", "prefill", ctx.backend)
    messages = vanilla_messages(case, ctx.prompt_field)
    steps: list[Step] = []
    prefill = f"{THINK_OPEN}\n"
    for cycle in range(1, opts["cycles"]):
        completion = await ctx.call(f"more_think.cycle{cycle}", messages, steps, prefill=prefill, stop=(THINK_CLOSE,))
        prefill = f"{prefill}{completion.text.rstrip()}\n\n{opts['continuation']}"
    completion = await ctx.call("more_think.answer", messages, steps, prefill=prefill)
    thought, response = continue_split(prefill, completion.text)
    return MethodResult(response, thought, tuple(steps))


def register(registry: MethodRegistry) -> None:
    registry.register("zero_think", zero_think, needs=("prefill",))
    registry.register("more_think", more_think, options=MORE_THINK_OPTIONS, needs=("prefill",))
