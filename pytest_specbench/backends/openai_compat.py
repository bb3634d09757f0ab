"""Any OpenAI-compatible chat server: the OpenAI API, vLLM, SGLang, the llama.cpp server.

The openai client's own retries are switched off (``max_retries=0``) so that exactly one policy, ours,
decides and counts retries. Several base URLs are used round-robin, one request each, which is how a
team spreads a run over several serving machines.
"""

from __future__ import annotations

import itertools
import os
from typing import Any

from ..errors import BackendUnavailable
from .base import RETRYABLE_STATUS, Backend, BackendSpec, Completion, GenerationRequest, RetryDecision

#: Placeholder sent to local servers that accept any key; a real key always comes from the environment.
NO_KEY = "no-key"


class OpenAICompatBackend(Backend):
    """Chat completions over HTTP with the official async client."""

    provider = "openai"
    supports_json_schema = True
    default_concurrency = 8

    def __init__(self, spec: BackendSpec):
        super().__init__(spec)
        try:
            import openai
        except ImportError as exc:  # pragma: no cover - openai is a hard dependency
            raise BackendUnavailable("the openai provider needs the openai package: pip install openai") from exc
        self._openai = openai
        # the HTTP library this openai release sends with: httpx2 from 3.0, httpx before
        self._httpx = getattr(openai._base_client, "httpx2", None) or openai._base_client.httpx
        self.base_urls = spec.base_urls or (os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1",)
        self._clients: list[Any] = []
        self._next = itertools.cycle(range(len(self.base_urls)))

    def _client(self) -> Any:
        """The next client, round-robin. Clients are made on first use: a run served from the cache makes none."""
        if not self._clients:
            key = os.environ.get(self.spec.api_key_env) or NO_KEY
            self._clients = [
                self._openai.AsyncOpenAI(base_url=url, api_key=key, max_retries=0, timeout=self.spec.timeout) for url in self.base_urls
            ]
        return self._clients[next(self._next)]

    def request_body(self, request: GenerationRequest) -> dict[str, Any]:
        """The JSON body of a chat-completions request; vendor fields (``Decoding.extra``, prefill switches) at top level."""
        d = request.decoding
        messages = [dict(m) for m in request.messages]
        body: dict[str, Any] = {"model": self.spec.name, "messages": messages, "max_tokens": d.max_tokens}
        extra: dict[str, Any] = dict(d.extra)
        if d.temperature is not None:
            body["temperature"] = d.temperature
        if d.top_p is not None:
            body["top_p"] = d.top_p
        if request.seed is not None:
            body["seed"] = request.seed
        if request.stop:
            body["stop"] = list(request.stop)
        if request.prefill is not None:
            messages.append({"role": "assistant", "content": request.prefill})
            extra.update(continue_final_message=True, add_generation_prompt=False)
        if request.json_schema is not None:
            if request.schema_dialect == "json_object":
                # llama.cpp's server: json_schema type answers HTTP 500, json_object + schema is enforced.
                body["response_format"] = {"type": "json_object", "schema": dict(request.json_schema)}
            else:
                body["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": "verdicts", "schema": dict(request.json_schema), "strict": True},
                }
        body.update(extra)
        return body

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST a JSON body and return the decoded JSON answer.

        The official client still sends the request (base URL, key, timeout, its error types), but its
        typed request transform and response models are skipped: they cost more CPU than the HTTP call
        itself (2.8 against 1.8 ms per call here, bench/bench_client.py), and that CPU is what limits a worker
        keeping dozens of requests in flight. We read only a handful of fields of the answer anyway.
        """
        response = await self._client().post(path, body=body, cast_to=self._httpx.Response)
        try:
            data = response.json()
        except ValueError as exc:
            raise ValueError(f"the server's answer is not valid JSON ({exc})") from exc
        choices = data.get("choices") if isinstance(data, dict) else None
        if not choices or not isinstance(choices[0], dict):
            raise ValueError("the server answered with no choices")
        return data

    async def _generate_once(self, request: GenerationRequest) -> Completion:
        data = await self.post("/chat/completions", self.request_body(request))
        choice = data["choices"][0]
        message = choice.get("message")
        text = message.get("content") if isinstance(message, dict) else None
        if not isinstance(text, str):
            raise ValueError("the server answered with empty content")
        return Completion(
            text=text,
            reasoning=message.get("reasoning_content") or message.get("reasoning"),
            finish_reason=choice.get("finish_reason"),
            **_usage(data),
        )

    def retry_decision(self, exc: BaseException) -> RetryDecision:
        openai = self._openai
        if isinstance(exc, openai.APITimeoutError):  # subclass of APIConnectionError: test it first
            return RetryDecision(True, f"request timed out after {self.spec.timeout:g} s")
        if isinstance(exc, openai.APIConnectionError):
            cause = exc.__cause__ or exc
            return RetryDecision(True, f"cannot connect to the server: {type(cause).__name__}: {cause}")
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            retry_after = _retry_after(exc.response.headers.get("retry-after") if exc.response is not None else None)
            reason = f"HTTP {status}: {_short(exc.message)}"
            return RetryDecision(status in RETRYABLE_STATUS or status >= 500, reason, retry_after)
        if isinstance(exc, (ValueError, openai.APIResponseValidationError)):
            return RetryDecision(True, f"unusable answer: {exc}")
        return RetryDecision(False, f"{type(exc).__name__}: {exc}")

    async def aclose(self) -> None:
        for client in self._clients:
            await client.close()


def _usage(data: dict[str, Any]) -> dict[str, int]:
    """Token counts of an answer; servers that omit ``usage`` count as zero rather than failing the call."""
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    return {"prompt_tokens": int(usage.get("prompt_tokens") or 0), "completion_tokens": int(usage.get("completion_tokens") or 0)}


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "…"
