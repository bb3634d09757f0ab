"""Align3: hierarchical reflection and revision inside one deliberation (the paper's method).

Three interventions steer the thinking in turn: the behavioral specs open it, the safety specs turn it
back just before the answer, and an audit of all specs revises the draft. On a backend that can continue
a partial turn the passages are written into the model's own thinking (``mode=prefill``); on a chat-only
backend they become user turns (``mode=chat``, the multi-turn adaptation, reported as ``align3-chat``).
``steps`` switches interventions off for the paper's ablation (Table 4); a run with fewer steps is
reported under a name listing the ones it kept (``align3-safety+audit``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..suite import Case
from .core import THINK_CLOSE, THINK_OPEN, MethodContext, MethodResult, Step, continue_split, split_thinking
from .options import OptionSpec, resolve_options
from .prompts import ALIGN3_STEPS, align3_passages, vanilla_messages
from .registry import MethodRegistry, require_capability

ALIGN3_OPTIONS: dict[str, OptionSpec] = {
    "mode": OptionSpec(
        "auto",
        "choice",
        "prefill (thinking intervention), chat (multi-turn adaptation) or auto (prefill where the backend can)",
        choices=("auto", "prefill", "chat"),
    ),
    "steps": OptionSpec(
        ALIGN3_STEPS,
        "subset",
        "interventions to keep, comma-separated subset of behavioral,safety,audit (the ablation of the paper's Table 4)",
        choices=ALIGN3_STEPS,
    ),
}


def _needs(options: Mapping[str, Any]) -> tuple[str, ...]:
    return ("prefill",) if options.get("mode") == "prefill" else ()


def _settle(options: Mapping[str, Any], capabilities: frozenset[str]) -> dict[str, Any]:
    """``mode=auto`` becomes what this backend will run, so the id and the record name it."""
    settled = dict(options)
    if settled.get("mode", "auto") == "auto":
        settled["mode"] = "prefill" if "prefill" in capabilities else "chat"
    return settled


def align3_label(options: Mapping[str, Any]) -> str:
    """``align3``, ``align3-chat`` for the multi-turn adaptation, plus ``-STEP+STEP`` for an ablation."""
    label = "align3-chat" if options.get("mode") == "chat" else "align3"
    steps = tuple(options.get("steps") or ALIGN3_STEPS)
    return label if steps == ALIGN3_STEPS else f"{label}-{'+'.join(steps)}"


async def align3(case: Case, ctx: MethodContext) -> MethodResult:
    """Align3: hierarchical reflection and revision inside one deliberation.

    Prefill path (backends with ``supports_prefill``): the thinking opens with the behavioral passage and
    runs to ``</think>``; the safety passage is appended and it runs to ``</think>`` again; the audit
    passage is appended and the model closes its thinking and answers. Three calls, one deliberation.
    Without the behavioral step the thinking opens freely (stage ``align3.think``) until the model would
    answer; each step left out removes its call.

    Chat path (e.g. OpenAI's API, which cannot continue a partial turn): the same passages become user
    turns, the model's notes after each become assistant turns, and the reply to the last is the answer.
    The notes play the thought's role; the passages and notes are kept, in order, as the thought.
    """
    opts = resolve_options("align3", ALIGN3_OPTIONS, ctx.options)
    mode = opts["mode"]
    if mode == "auto":
        mode = "prefill" if ctx.backend.supports_prefill else "chat"
    if mode == "prefill":
        require_capability("align3 (mode=prefill)", "prefill", ctx.backend)
        return await _align3_prefill(case, ctx, opts["steps"])
    return await _align3_chat(case, ctx, opts["steps"])


async def _align3_prefill(case: Case, ctx: MethodContext, steps_on: Sequence[str]) -> MethodResult:
    passages = dict(zip(steps_on, align3_passages(case.scenario, steps=steps_on)))
    messages = vanilla_messages(case, ctx.prompt_field)
    steps: list[Step] = []
    # (stage name, passage written before that call); the call after the behavioral passage, or a free start
    plan: list[tuple[str, str]] = [
        ("align3.behavioral", passages["behavioral"]) if "behavioral" in passages else ("align3.think", "")
    ]
    plan += [(f"align3.{step}", passages[step]) for step in ("safety", "audit") if step in passages]
    prefill = THINK_OPEN + "\n"
    for stage, passage in plan[:-1]:  # each runs until the model would close its thinking
        prefill += f"{passage}\n" if passage else ""
        completion = await ctx.call(stage, messages, steps, prefill=prefill, stop=(THINK_CLOSE,))
        prefill += f"{completion.text.strip()}\n\n"
    stage, passage = plan[-1]  # the last one may close the thinking and answer
    prefill += f"{passage}\n" if passage else ""
    final = await ctx.call(stage, messages, steps, prefill=prefill)
    thought, response = continue_split(prefill, final.text)
    return MethodResult(response, thought, tuple(steps))


async def _align3_chat(case: Case, ctx: MethodContext, steps_on: Sequence[str]) -> MethodResult:
    passages = align3_passages(case.scenario, chat=True, steps=steps_on)
    stages = [f"align3.{step}" for step in ALIGN3_STEPS if step in steps_on]
    messages = vanilla_messages(case, ctx.prompt_field)
    # The first passage joins the user's own turn: two user turns in a row break some chat templates.
    messages[-1] = {"role": "user", "content": f"{messages[-1]['content']}\n\n---\n{passages[0]}"}
    steps: list[Step] = []
    thought_parts = [passages[0]]
    for stage, passage in zip(stages, passages[1:]):
        notes = await ctx.call(stage, messages, steps)
        note_thought, note_text = split_thinking(notes)
        thought_parts += [p for p in (note_thought, note_text) if p] + [passage]
        messages += [{"role": "assistant", "content": note_text}, {"role": "user", "content": passage}]
    final = await ctx.call(stages[-1], messages, steps)
    final_thought, response = split_thinking(final)
    if final_thought:
        thought_parts.append(final_thought)
    return MethodResult(response, "\n\n".join(thought_parts), tuple(steps))


def register(registry: MethodRegistry) -> None:
    registry.register("align3", align3, options=ALIGN3_OPTIONS, needs=_needs, settle=_settle, label=align3_label)
