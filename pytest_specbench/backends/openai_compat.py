"""Any OpenAI-compatible chat server: the OpenAI API, vLLM, SGLang, the llama.cpp server.

The HTTP exchange itself is a :mod:`~pytest_specbench.backends.http` transport (aiohttp by default, the
official openai client on request); neither retries on its own, so exactly one policy, ours, decides
and counts re-sends. Several base URLs are used round-robin, one request each, which is how a team
spreads a run over several serving machines.
"""

from __future__ import annotations

import itertools
import json
import os
from typing import Any, TypedDict

from ..errors import BackendUnavailable, ConfigError
from .base import RETRYABLE_STATUS, Backend, BackendSpec, Completion, GenerationRequest, RetryDecision
from .http import ConnectionFailed, RequestTimeout, StatusError, Transport, check_base_url, make_transport

#: Placeholder sent to local servers that accept any key; a real key always comes from the environment.
NO_KEY = "no-key"


class OpenAICompatBackend(Backend):
    """Chat completions over HTTP, JSON in and JSON out; only the few answer fields we use are read."""

    provider = "openai"
    supports_json_schema = True
    uses_http = True
    default_concurrency = 8

    def __init__(self, spec: BackendSpec):
        super().__init__(spec)
        try:
            __import__(spec.http_client)
        except ImportError as exc:
            raise BackendUnavailable(
                f"the {spec.http_client} HTTP client is not installed ({exc}): pip install {spec.http_client}"
            ) from exc
        self.base_urls = spec.base_urls or (os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1",)
        for url in self.base_urls:  # the options check theirs; OPENAI_BASE_URL and profiles arrive here unchecked
            try:
                check_base_url(url)
            except ValueError as exc:
                raise ConfigError(f"base URL {exc}") from None
        self._transport: Transport | None = None
        self._next = itertools.cycle(self.base_urls)

    @property
    def cache_identity(self) -> str:
        """The label and the set of servers: a stored answer is replayed only for the same servers.

        The servers given together (``--specbench-base-url`` repeated, used round-robin) are declared
        replicas of one model, so they share one identity whichever of them answered, in any order.
        The same name at another server is another model until the user lists it among the replicas.
        """
        if self.spec.managed:  # our own servers for this model, on ports that change from run to run
            return f"{self.label} @ started by --specbench-serve"
        servers = sorted({_server_key(url) for url in self.base_urls})
        return f"{self.label} @ {' '.join(servers)}"

    def _send(self) -> tuple[Transport, str]:
        """The transport and the next base URL, round-robin. The transport is made on first use: a run served from the cache opens none."""
        if self._transport is None:
            key = os.environ.get(self.spec.api_key_env) or NO_KEY
            self._transport = make_transport(
                self.spec.http_client, api_key=key, timeout=self.spec.timeout, base_urls=tuple(self.base_urls)
            )
        return self._transport, next(self._next)

    def request_body(self, request: GenerationRequest) -> dict[str, Any]:
        """The JSON body of a chat-completions request; vendor fields (``Decoding.extra``, prefill switches) at top level."""
        d = request.decoding
        messages = [dict(m) for m in request.messages]
        body: dict[str, Any] = {"model": self.spec.name, "messages": messages}
        if d.max_tokens is not None:  # unset: the server's own limit (what is left of the context window)
            body["max_tokens"] = d.max_tokens
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
        """POST a JSON body to ``path`` under the next base URL and return the decoded answer (it must carry choices)."""
        transport, base = self._send()
        data = await transport.post(base, path, body)
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
            reasoning=reasoning_text(message.get("reasoning_content") or message.get("reasoning")),
            finish_reason=choice.get("finish_reason"),
            **_usage(data),
        )

    def retry_decision(self, exc: BaseException) -> RetryDecision:
        if isinstance(exc, (RequestTimeout, ConnectionFailed)):
            return RetryDecision(True, str(exc))
        if isinstance(exc, StatusError):
            return RetryDecision(exc.status in RETRYABLE_STATUS or exc.status >= 500, str(exc), exc.retry_after)
        if isinstance(exc, ValueError):
            return RetryDecision(True, f"unusable answer: {exc}")
        return RetryDecision(False, f"{type(exc).__name__}: {exc}")

    async def aclose(self) -> None:
        if self._transport is not None:
            await self._transport.aclose()
            self._transport = None


class Usage(TypedDict):
    prompt_tokens: int
    completion_tokens: int


def _usage(data: dict[str, Any]) -> Usage:
    """Token counts of an answer; servers that omit ``usage`` count as zero rather than failing the call."""
    raw = data.get("usage")
    usage: dict[str, Any] = raw if isinstance(raw, dict) else {}
    return {
        "prompt_tokens": int(usage.get("prompt_tokens") or 0),
        "completion_tokens": int(usage.get("completion_tokens") or 0),
    }


def reasoning_text(value: Any) -> str | None:
    """A server's split-off reasoning as text.

    Most servers send a string; some send structured reasoning: an object with the text under ``text``,
    ``content`` or ``summary``, or a list of such parts. Their text is kept, joined by newlines; an object
    of another shape is kept as its JSON, so nothing the server said is dropped and nothing crashes on it.
    """
    if value is None or isinstance(value, str):
        return value or None
    if isinstance(value, dict):
        for key in ("text", "content", "summary"):
            if key in value:
                return reasoning_text(value[key])
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "\n".join(part for part in map(reasoning_text, value) if part) or None
    return str(value)


def _server_key(url: str) -> str:
    """A base URL as the cache tells servers apart: no credentials, no trailing slash, case-blind scheme and host."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower() + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme.lower(), host, parts.path.rstrip("/"), parts.query, ""))
