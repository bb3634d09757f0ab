"""Chat templates rendered on our side, for continuing a partial assistant turn (prefill).

Why render ourselves: a server's own template decides what happens to the last assistant turn, and some
templates rewrite it. Qwen3's wraps the final assistant turn in its own (empty) think block, so a
prefilled ``<think>…`` ends up *inside* a second, closed block; DeepSeek-R1's drops everything before
``</think>``. The paper's authors ship a patched template for that. We take a simpler route that works
with any template: render the conversation **with the generation prompt** (the opening of an empty
assistant turn), then append the prefill text verbatim. No template ever sees the partial turn, so none
can rewrite it.

Templates are Jinja2 sources: a GGUF's ``tokenizer.chat_template``, a Hugging Face tokenizer's
``chat_template``, a file path, or one of the layouts shipped here by name (:data:`NAMED_TEMPLATES`).
They run in Jinja's immutable sandbox, as llama.cpp and transformers run them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import ConfigError

#: Layouts shipped with pytest-specbench, by the name a profile's ``prefill_template`` may use.
NAMED_TEMPLATES: dict[str, str] = {
    "chatml": "chatml.jinja",
    "llama3": "llama3.jinja",
    "deepseek-r1": "deepseek_r1.jinja",
}
#: ``prefill_template`` value meaning "let the server apply its own template" (continue_final_message).
SERVER_TEMPLATE = "server"

THINK_OPEN = "<think>"
#: A generation prompt that already holds a closed, empty think block (Qwen3 with thinking switched off).
_EMPTY_THINK_TAIL = re.compile(r"<think>\s*</think>\s*$")
#: Template variables that only switch the model's own thinking on or off; a prefill decides that itself.
_THINKING_SWITCHES = ("enable_thinking", "thinking")


def guess_prefill_template(model: str) -> str:
    """The safest way to prefill for a served model, judged from its name.

    Qwen3's and DeepSeek-R1's templates rewrite a final assistant turn (see the module docstring), so
    for them we render ChatML / the R1 layout ourselves; every other model keeps the server's template.
    """
    name = model.lower()
    if "qwen3" in name or "qwq" in name:
        return "chatml"
    if "deepseek-r1" in name or "deepseek_r1" in name:
        return "deepseek-r1"
    return SERVER_TEMPLATE


def thinks_by_default(model: str) -> bool:
    """Whether a model, judged from its name, thinks before it answers unless told not to.

    Qwen3 (its template's ``enable_thinking`` defaults to on), QwQ and the DeepSeek-R1 family do; the
    resolver gives such models the paper's reasoning budget where it must choose one.
    """
    name = model.lower()
    return any(key in name for key in ("qwen3", "qwq", "deepseek-r1", "deepseek_r1"))


def load_template(name_or_path: str) -> str:
    """The Jinja source of a shipped layout (by name) or of a ``.jinja`` file."""
    if name_or_path in NAMED_TEMPLATES:
        return resources.files(__name__).joinpath(NAMED_TEMPLATES[name_or_path]).read_text(encoding="utf-8")
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path.read_text(encoding="utf-8")
    names = ", ".join(sorted(NAMED_TEMPLATES))
    raise ConfigError(
        f"unknown prefill template {name_or_path!r}: use {SERVER_TEMPLATE!r}, one of {names}, or a path to a .jinja file"
    )


@lru_cache(maxsize=16)
def _compile(source: str) -> Any:
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = _tojson
    try:
        return env.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(f"the chat template does not parse (line {exc.lineno}): {exc.message}") from exc


def _tojson(value: Any, ensure_ascii: bool = False, indent: int | None = None, **_: Any) -> str:
    import json

    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent)


def _raise(message: str) -> None:
    raise ConfigError(f"the chat template refused the conversation: {message}")


def render_prompt(
    source: str,
    messages: Sequence[Mapping[str, Any]],
    *,
    add_generation_prompt: bool = True,
    bos_token: str = "",
    eos_token: str = "",
    template_kwargs: Mapping[str, Any] | None = None,
) -> str:
    """Render ``messages`` with a chat template, the way transformers' ``apply_chat_template`` does."""
    template = _compile(source)
    return template.render(
        messages=[dict(m) for m in messages],
        add_generation_prompt=add_generation_prompt,
        bos_token=bos_token,
        eos_token=eos_token,
        raise_exception=_raise,
        strftime_now=lambda fmt: datetime.now().strftime(fmt),
        **dict(template_kwargs or {}),
    )


def render_prefill_prompt(
    source: str,
    messages: Sequence[Mapping[str, Any]],
    prefill: str,
    *,
    bos_token: str = "",
    eos_token: str = "",
    template_kwargs: Mapping[str, Any] | None = None,
) -> str:
    """The raw prompt that makes the model continue ``prefill`` as its own partial answer.

    The thinking switch (``enable_thinking``) is not passed to the template: a prefill that opens
    ``<think>`` already decides whether the model thinks. Where a template still opens or closes a think
    block in its generation prompt, that block is dropped so that exactly one ``<think>`` remains.
    """
    kwargs = {k: v for k, v in (template_kwargs or {}).items() if k not in _THINKING_SWITCHES}
    opening = render_prompt(
        source, messages, add_generation_prompt=True, bos_token=bos_token, eos_token=eos_token, template_kwargs=kwargs
    )
    return join_prefill(opening, prefill)


def join_prefill(opening: str, prefill: str) -> str:
    """Append ``prefill`` to a rendered generation prompt without doubling a think block."""
    if prefill.lstrip().startswith(THINK_OPEN):
        match = _EMPTY_THINK_TAIL.search(opening)
        if match:
            opening = opening[: match.start()]
        stripped = opening.rstrip()
        if stripped.endswith(THINK_OPEN):
            opening = stripped[: -len(THINK_OPEN)]
    return opening + prefill
