"""Align3: hierarchical reflection and revision inside one deliberation (the paper's method).

Three passages steer the thinking in turn: the behavioral specs, then the safety specs, then an audit of
all specs. On a backend that can continue a partial turn the passages are written into the model's own
thinking (``mode=prefill``); on a chat-only backend they become user turns (``mode=chat``, the
multi-turn adaptation). ``mode=auto`` picks by the backend's ``supports_prefill``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..suite import Case
from .core import THINK_CLOSE, THINK_OPEN, MethodContext, MethodResult, Step, continue_split, split_thinking
from .options import OptionSpec, resolve_options
from .prompts import align3_passages, vanilla_messages
from .registry import MethodRegistry, require_capability

ALIGN3_OPTIONS: dict[str, OptionSpec] = {
    "mode": OptionSpec("auto", "choice", "prefill (thinking intervention), chat (multi-turn adaptation) or auto (prefill where the backend can)", choices=("auto", "prefill", "chat")),
}


def _needs(options: Mapping[str, Any]) -> tuple[str, ...]:
    return ("prefill",) if options.get("mode") == "prefill" else ()


async def align3(case: Case, ctx: MethodContext) -> MethodResult:
    """Align3: hierarchical reflection and revision inside one deliberation.

    Prefill path (backends with ``supports_prefill``): the thinking opens with the behavioral passage and
    runs to ``</think>``; the safety passage is appended and it runs to ``</think>`` again; the audit
    passage is appended and the model closes its thinking and answers. Three calls, one deliberation.

    Chat path (e.g. OpenAI's API, which cannot continue a partial turn): the same three passages become
    three user turns, the model's notes after each become assistant turns, and the third reply is the
    answer. The notes play the thought's role; the passages and notes are kept, in order, as the thought.
    """
    opts = resolve_options("align3", ALIGN3_OPTIONS, ctx.options)
    mode = opts["mode"]
    if mode == "auto":
        mode = "prefill" if ctx.backend.supports_prefill else "chat"
    if mode == "prefill":
        require_capability("align3 (mode=prefill)", "prefill", ctx.backend)
        return await _align3_prefill(case, ctx)
    return await _align3_chat(case, ctx)


async def _align3_prefill(case: Case, ctx: MethodContext) -> MethodResult:
    behavioral, safety, audit = align3_passages(case.scenario)
    messages = vanilla_messages(case, ctx.prompt_field)
    steps: list[Step] = []
    prefill = f"{THINK_OPEN}\n{behavioral}\n\n"
    first = await ctx.call("align3.behavioral", messages, steps, prefill=prefill, stop=(THINK_CLOSE,))
    prefill = f"{prefill}{first.text.strip()}\n\n{safety}\n\n"
    second = await ctx.call("align3.safety", messages, steps, prefill=prefill, stop=(THINK_CLOSE,))
    prefill = f"{prefill}{second.text.strip()}\n\n{audit}\n\n"
    third = await ctx.call("align3.audit", messages, steps, prefill=prefill)
    thought, response = continue_split(prefill, third.text)
    return MethodResult(response, thought, tuple(steps))


async def _align3_chat(case: Case, ctx: MethodContext) -> MethodResult:
    behavioral, safety, audit = align3_passages(case.scenario, chat=True)
    messages = vanilla_messages(case, ctx.prompt_field)
    # The first passage joins the user's own turn: two user turns in a row break some chat templates.
    messages[-1] = {"role": "user", "content": f"{messages[-1]['content']}\n\n---\n{behavioral}"}
    steps: list[Step] = []
    thought_parts = [behavioral]
    for stage, passage in (("align3.behavioral", safety), ("align3.safety", audit)):
        notes = await ctx.call(stage, messages, steps)
        note_thought, note_text = split_thinking(notes)
        thought_parts += [p for p in (note_thought, note_text) if p] + [passage]
        messages += [{"role": "assistant", "content": note_text}, {"role": "user", "content": passage}]
    final = await ctx.call("align3.audit", messages, steps)
    final_thought, response = split_thinking(final)
    if final_thought:
        thought_parts.append(final_thought)
    return MethodResult(response, "\n\n".join(thought_parts), tuple(steps))


def register(registry: MethodRegistry) -> None:
    registry.register("align3", align3, options=ALIGN3_OPTIONS, needs=_needs)
