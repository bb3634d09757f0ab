"""A small, real OpenAI-compatible server on 127.0.0.1 whose answers are scripted by the prompts.

Generation requests are answered with ``ANSWER: <the user's message>``, so whatever the test suite
writes in a prompt comes back in the response. Judge requests (recognised by the response boundary the
judge prompt carries) are answered from a directive found in the response under review::

    VERDICTS S=YES,NO B=YES,NA,NO

becomes one verdict per spec, in the layout the request asked for (JSON when it sent a
``response_format``, the paper's tag blocks otherwise). A response with no directive gets all YES.
Every request body is recorded, so tests can assert what the plugin sent and how many calls it made.
``/classify`` and ``/pooling`` answer as a reward model served by vLLM whose reward is the answer's
word count.

Tests that need answers shaped per request (the toolkit's rewrite-then-verify loop, a judge that
misbehaves) pass a ``respond`` hook: it receives each chat request body and returns the answer text,
a :class:`Reply` (a whole message, e.g. with ``reasoning_content``, and a finish reason), a
:class:`Fault` to send instead, or ``None`` for the scripted answer above.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

DIRECTIVE = re.compile(r"VERDICTS\s+S=([A-Z,]*)\s+B=([A-Z,]*)")
BOUNDARY = re.compile(r"<<<(RESPONSE-[0-9a-f]+)>>>\n(.*?)\n<<<END-\1>>>", re.S)


@dataclass(frozen=True)
class Fault:
    """What a ``respond`` hook returns to fail one request: a name from :data:`FAULTS`, ``refuse`` or ``echo-key``."""

    name: str


@dataclass(frozen=True)
class Reply:
    """A whole answer from a ``respond`` hook: the message's fields (``content`` and any others) and its finish reason."""

    message: dict[str, Any]
    finish_reason: str = "stop"


#: ``respond(body)`` -> the answer text, a :class:`Reply`, a :class:`Fault`, or ``None`` for the scripted answer.
Respond = Callable[[dict[str, Any]], str | Reply | Fault | None]


class ScriptedServer:
    """Start with ``with ScriptedServer() as server: server.url``.

    An asyncio HTTP/1.1 server with keep-alive on its own thread: a fixed ``latency`` is an
    ``asyncio.sleep``, so hundreds of requests in flight cost no threads and the server adds almost
    nothing to what a benchmark measures.
    """

    def __init__(
        self,
        latency: float = 0.0,
        fault_every: int = 0,
        hang: float = 5.0,
        faults: tuple[str, ...] = (),
        *,
        respond: Respond | None = None,
        fail_after: int | None = None,
        trickle: float = 0.0,
        echo_key: bool = False,
        reasoning: Any = None,
        suffix: str = "",
        reverse_tags: bool = False,
    ):
        """The keyword-only switches script hostile but well-formed servers (issue 17's findings).

        ``trickle``: send each answer's body one byte every ``trickle`` seconds. ``echo_key``: quote the
        request's Authorization header in every 200 answer, in generations and judge reasons alike.
        ``reasoning``: attach this as ``reasoning_content`` to every message (any JSON value).
        ``suffix``: append this to every generation (e.g. a lone surrogate, which JSON escapes as ``\\ud83d``).
        ``reverse_tags``: write the judge's numbered tag lines last rule first (numbers kept).
        """
        self.reverse_tags = reverse_tags
        self.trickle = trickle
        self.echo_key = echo_key
        self.reasoning = reasoning
        self.suffix = suffix
        self.latency = latency
        self.respond = respond
        # After ``fail_after`` recorded requests every POST is refused (HTTP 400, not retried, not recorded):
        # how tests interrupt a run half-way.
        self.fail_after = fail_after
        # Every ``fault_every``-th request (1-based) gets the next fault of ``faults`` instead of an answer.
        self.fault_every = fault_every
        self.faults = faults or FAULTS
        self.hang = hang
        self.faults_sent: list[str] = []
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.AbstractServer | None = None
        self._port = 0
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}/v1"

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        started = asyncio.run_coroutine_threadsafe(asyncio.start_server(self._serve, "127.0.0.1", 0), self._loop)
        self._server = started.result(timeout=10)
        self._port = self._server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            assert self._server is not None
            self._server.close()
            for task in list(self._connections):
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def judge_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if _is_judge(r)]

    def generation_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if not _is_judge(r)]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {
                    k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)
                }
                body = await reader.readexactly(int(headers.get("content-length", 0)))
                fault = self._next_fault(method)
                if fault == "drop":
                    return  # close the connection without a word
                if fault == "hang":
                    await asyncio.sleep(self.hang)
                    return
                status, payload, hooked = await self._answer(method, path, headers, body)
                fault = fault or hooked
                extra = ""
                if fault == "hang":
                    await asyncio.sleep(self.hang)
                    return
                if fault == "drop":
                    return
                if fault is not None:
                    status, payload, extra = _fault_answer(fault, payload, headers)
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                head = (
                    f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}\r\ncontent-type: application/json\r\n{extra}"
                    f"content-length: {len(data)}\r\n\r\n".encode()
                )
                if self.trickle:
                    writer.write(head)
                    for i in range(len(data)):
                        writer.write(data[i : i + 1])
                        await writer.drain()
                        await asyncio.sleep(self.trickle)
                else:
                    writer.write(head + data)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, asyncio.CancelledError):
            pass
        finally:
            self._connections.discard(task)
            writer.close()

    def _next_fault(self, method: str) -> str | None:
        if not self.fault_every or method != "POST":
            return None
        self._posts = getattr(self, "_posts", 0) + 1
        if self._posts % self.fault_every:
            return None
        fault = self.faults[len(self.faults_sent) % len(self.faults)]
        self.faults_sent.append(fault)
        return fault

    async def _answer(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, Any, str | None]:
        """(status, body, the name of a fault the respond hook asked for, if any)."""
        if method == "GET":
            if path.rstrip("/").endswith("/models"):
                return 200, {"object": "list", "data": [{"id": "scripted", "object": "model"}]}, None
            return 404, {"error": {"message": "not found"}}, None
        if method == "POST" and self.fail_after is not None and len(self.requests) >= self.fail_after:
            return 400, {"error": {"message": "scripted refusal", "type": "invalid_request_error"}}, None
        body = json.loads(raw or b"{}")
        self.requests.append(body)
        self.headers.append(headers)
        if self.latency:
            await asyncio.sleep(self.latency)
        if path.rstrip("/").endswith(("/classify", "/pooling")):
            # A reward model (vLLM's pooling routes) that likes longer answers: the reward is the word count.
            reward = float(len(body["messages"][-1]["content"].split()))
            item = (
                {"index": 0, "probs": [reward], "num_classes": 1}
                if path.rstrip("/").endswith("/classify")
                else {"index": 0, "data": [[reward]]}
            )
            return 200, {"object": "list", "model": body.get("model", "scripted-rm"), "data": [item]}, None
        if not path.rstrip("/").endswith("/chat/completions"):
            return 404, {"error": {"message": f"no route {path}"}}, None
        hooked = self.respond(body) if self.respond is not None else None
        if isinstance(hooked, Fault):
            return 200, _completion(body, ""), hooked.name
        if isinstance(hooked, Reply):
            payload = _completion(body, hooked.message.get("content") or "")
            payload["choices"][0]["message"].update(hooked.message)
            payload["choices"][0]["finish_reason"] = hooked.finish_reason
            return 200, payload, None
        if hooked is not None:
            return 200, _completion(body, hooked), None
        key = headers.get("authorization", "") if self.echo_key else ""
        if _is_judge(body):
            text = _judge_answer(body, quote=key, reverse=self.reverse_tags)
        else:
            text = "ANSWER: " + last_user(body) + (f" (you sent {key})" if key else "") + self.suffix
            if long := LONG.search(text):
                text = text.ljust(int(long.group(1)), "~")
        answer = _completion(body, text)
        if self.reasoning is not None:
            answer["choices"][0]["message"]["reasoning_content"] = self.reasoning
        return 200, answer, None


#: The faults a faulty server cycles through: what real servers and proxies do under load. ``length``
#: is the odd one out: a good answer that says the max-token limit stopped it, which must be recorded,
#: not retried.
FAULTS = ("429-retry-after", "429", "500", "503", "hang", "drop", "truncated-json", "empty-content", "length")
#: ``LONG=<n>`` in a generation prompt pads the answer to n characters (the judge-cut tests).
LONG = re.compile(r"LONG=(\d+)")


def _fault_answer(fault: str, payload: Any, headers: dict[str, str]) -> tuple[int, Any, str]:
    """(status, body, extra header lines) that replace a good answer.

    ``echo-key`` is not in FAULTS: it is the secret-leak test's fault, a 401 whose body quotes the
    Authorization header back, as some gateways do.
    """
    if fault == "refuse":
        return 400, {"error": {"message": "scripted refusal", "type": "invalid_request_error"}}, ""
    if fault == "echo-key":
        return 401, {"error": {"message": f"invalid key: {headers.get('authorization', '')}"}}, ""
    if fault == "429-retry-after":
        return 429, {"error": {"message": "slow down"}}, "retry-after: 0\r\n"
    if fault == "429":
        return 429, {"error": {"message": "rate limited"}}, ""
    if fault in ("500", "503"):
        return int(fault), {"error": {"message": f"server error {fault}"}}, ""
    if fault == "truncated-json":
        return 200, json.dumps(payload).encode()[:40], ""
    if fault == "empty-content":
        broken = json.loads(json.dumps(payload))
        broken["choices"][0]["message"]["content"] = None
        return 200, broken, ""
    if fault == "length":
        stopped = json.loads(json.dumps(payload))
        stopped["choices"][0]["finish_reason"] = "length"
        return 200, stopped, ""
    raise ValueError(f"unknown fault {fault}")


def last_user(body: dict[str, Any]) -> str:
    users = [m["content"] for m in body.get("messages", []) if m.get("role") == "user"]
    return users[-1] if users else ""


def _is_judge(body: dict[str, Any]) -> bool:
    return "<<<RESPONSE-" in last_user(body)


def _judge_answer(body: dict[str, Any], quote: str = "", reverse: bool = False) -> str:
    """Verdicts for the keys the judge prompt asks about (S1…, B1…, possibly a subset).

    The directive's n-th entry answers key n; an empty entry means YES; a key beyond the directive's
    length is left out of the answer, which is how tests script a wrong verdict count.
    """
    prompt = last_user(body)
    asked = re.findall(r"^([SB])(\d+)\. ", prompt, flags=re.M)
    match = BOUNDARY.search(prompt)
    directive = DIRECTIVE.search(match.group(2) if match else "")
    lists = {"S": directive.group(1).split(","), "B": directive.group(2).split(",")} if directive else None
    answers: list[tuple[str, str]] = []
    for kind, n in asked:
        if lists is None:
            answers.append((kind + n, "YES"))
        elif int(n) <= len(lists[kind]):
            answers.append((kind + n, lists[kind][int(n) - 1] or "YES"))
    said = f" {quote}" if quote else ""
    if body.get("response_format"):
        return json.dumps({key: {"reason": f"scripted {label}{said}", "verdict": label} for key, label in answers})
    order = reversed if reverse else list
    s_lines = "\n".join(
        order(
            [
                f"{i}. scripted reason{said} <{lab}>"
                for i, (k, lab) in enumerate([a for a in answers if a[0][0] == "S"], 1)
            ]
        )
    )
    b_lines = "\n".join(
        order(
            [
                f"{i}. scripted reason{said} <{lab}>"
                for i, (k, lab) in enumerate([a for a in answers if a[0][0] == "B"], 1)
            ]
        )
    )
    return f"<safety_specifications>\n{s_lines}\n</safety_specifications>\n<behavioral_specifications>\n{b_lines}\n</behavioral_specifications>"


def _completion(body: dict[str, Any], text: str) -> dict[str, Any]:
    tokens = max(1, len(text.split()))
    return {
        "id": "chatcmpl-scripted",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "scripted"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": tokens, "total_tokens": tokens + 10},
    }


class JsonHandler(BaseHTTPRequestHandler):
    """Plumbing for the few threaded test servers that are not chat APIs: quiet logs, JSON replies."""

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
