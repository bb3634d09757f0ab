"""A vLLM OpenAI-compatible server (``vllm serve MODEL``), with prefill, thinking switches and structured output.

A thin subclass of :class:`OpenAICompatBackend`: the transport, retries and round-robin over several
``--specbench-base-url`` servers are the parent's. What vLLM adds, and what this class sends:

* **Prefill** (a partial assistant turn for zero_think / more_think / align3). Two routes:

  - ``prefill_template="server"``: chat completions with the partial turn as the last message and
    ``continue_final_message: true`` **and** ``add_generation_prompt: false`` (vLLM refuses the request
    if the generation prompt is left at its default, true).
  - a template name or file (``"chatml"``, ``"llama3"``, ``"deepseek-r1"``, ``path.jinja``): we render
    the prompt ourselves (:mod:`pytest_specbench.templates`) and send it to ``/v1/completions`` with
    ``add_special_tokens: false`` (the rendered text already holds any BOS) and an explicit
    ``max_tokens`` (the route's default is 16; an unset budget becomes the paper's 8,400 for thinking models).

  The second route exists because Qwen3's chat template wraps the *final* assistant turn in its own
  think block: with ``continue_final_message`` a prefilled ``<think>…`` lands after an empty, closed
  ``<think>\\n\\n</think>``, so the model is no longer thinking. DeepSeek-R1's template cuts the
  thought out of the turn altogether. The default (``prefill_template=None``) therefore picks the route
  from the model name (:func:`~pytest_specbench.templates.guess_prefill_template`).

* **Thinking switch**: ``chat_template_kwargs`` (e.g. ``{"enable_thinking": false}`` for Qwen3) from the
  constructor (a profile) merged under the request's ``decoding.extra["chat_template_kwargs"]``.

* **Structured output**: ``response_format`` of type ``json_schema`` on chat requests (the parent's), and
  ``structured_outputs: {"json": …}`` on ``/v1/completions``. Never ``guided_json``: vLLM 0.12 removed it
  and now ignores it *silently* (HTTP 200, unconstrained output), so we refuse it in ``decoding.extra``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from ..errors import ConfigError
from ..templates import (
    SERVER_TEMPLATE,
    guess_prefill_template,
    load_template,
    render_prefill_prompt,
)
from .base import REASONING_MAX_TOKENS, BackendSpec, Completion, GenerationRequest
from .openai_compat import OpenAICompatBackend, _usage

#: Where ``vllm serve`` listens unless told otherwise; used when no base URL is given.
DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"
#: Environment variable that overrides :data:`DEFAULT_BASE_URL`.
ENV_BASE_URL = "SPECBENCH_VLLM_BASE_URL"
#: Fields vLLM removed (0.12) and now ignores without an error: sending one is always a mistake.
REMOVED_FIELDS = (
    "guided_json",
    "guided_regex",
    "guided_choice",
    "guided_grammar",
    "guided_decoding_backend",
    "guided_whitespace_pattern",
)
#: Chat-only request fields that ``/v1/completions`` rejects.
CHAT_ONLY_FIELDS = (
    "chat_template_kwargs",
    "chat_template",
    "continue_final_message",
    "add_generation_prompt",
    "documents",
    "return_prompt_text",
)


class VLLMServerBackend(OpenAICompatBackend):
    """``vllm-server/MODEL``: a running vLLM server (or several, round-robin)."""

    provider = "vllm-server"
    supports_prefill = True
    supports_json_schema = True
    supports_thinking_template = True
    #: vLLM batches whatever is in flight; more concurrent requests mean larger batches.
    default_concurrency = 32

    def __init__(
        self,
        spec: BackendSpec,
        *,
        prefill_template: str | None = None,
        chat_template_kwargs: Mapping[str, Any] | None = None,
    ):
        if not spec.base_urls:
            spec = replace(spec, base_urls=(os.environ.get(ENV_BASE_URL) or DEFAULT_BASE_URL,))
        super().__init__(spec)
        self.prefill_template = prefill_template or spec.option("prefill_template") or guess_prefill_template(spec.name)
        # Read the template now, so a bad name or path fails at setup rather than at the first case.
        self._template_source = (
            None if self.prefill_template == SERVER_TEMPLATE else load_template(self.prefill_template)
        )
        self.chat_template_kwargs = dict(chat_template_kwargs or {})

    # ------------------------------------------------------------------------------------ request bodies

    def _template_kwargs(self, request: GenerationRequest) -> dict[str, Any]:
        return {**self.chat_template_kwargs, **dict(request.decoding.extra.get("chat_template_kwargs") or {})}

    @staticmethod
    def _refuse_removed(request: GenerationRequest) -> None:
        removed = [k for k in REMOVED_FIELDS if k in request.decoding.extra]
        if removed:
            raise ConfigError(
                f"{', '.join(removed)} was removed in vLLM 0.12 and is now ignored silently (unconstrained output); "
                "structured output goes through the request's json_schema (response_format) instead"
            )

    def request_body(self, request: GenerationRequest) -> dict[str, Any]:
        """The chat-completions body: the parent's, plus the thinking switch."""
        self._refuse_removed(request)
        body = super().request_body(request)
        kwargs = self._template_kwargs(request)
        if kwargs:
            body["chat_template_kwargs"] = kwargs
        return body

    def uses_completions_route(self, request: GenerationRequest) -> bool:
        return request.prefill is not None and self._template_source is not None

    def completion_body(self, request: GenerationRequest) -> dict[str, Any]:
        """The ``/v1/completions`` body for a prefilled request rendered on our side."""
        self._refuse_removed(request)
        assert self._template_source is not None and request.prefill is not None
        prompt = render_prefill_prompt(
            self._template_source, request.messages, request.prefill, template_kwargs=self._template_kwargs(request)
        )
        # Sampling fields exactly as a chat request would carry them; then swap messages for the prompt.
        chat = super().request_body(replace(request, prefill=None, json_schema=None))
        body: dict[str, Any] = {k: v for k, v in chat.items() if k != "messages" and k not in CHAT_ONLY_FIELDS}
        body["prompt"] = prompt
        body["add_special_tokens"] = False
        # This route's server default is 16 tokens, so an unset budget cannot be left to the server; the
        # route continues a thought (prefill), so it gets the paper's budget for models that think.
        body.setdefault("max_tokens", REASONING_MAX_TOKENS)
        if request.json_schema is not None:
            body["structured_outputs"] = {"json": dict(request.json_schema)}
        return body

    # ---------------------------------------------------------------------------------------- sending

    async def generate(self, request: GenerationRequest) -> Completion:
        # Checked before the retry loop: a removed field is a configuration mistake, not a failed call.
        self._refuse_removed(request)
        return await super().generate(request)

    async def _generate_once(self, request: GenerationRequest) -> Completion:
        if not self.uses_completions_route(request):
            return await super()._generate_once(request)
        data = await self.post("/completions", self.completion_body(request))
        choice = data["choices"][0]
        return Completion(text=choice.get("text") or "", finish_reason=choice.get("finish_reason"), **_usage(data))
