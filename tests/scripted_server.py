"""A small, real OpenAI-compatible server on 127.0.0.1 whose answers are scripted by the prompts.

Generation requests are answered with ``ANSWER: <the user's message>``, so whatever the test suite
writes in a prompt comes back in the response. Judge requests (recognised by the response boundary the
judge prompt carries) are answered from a directive found in the response under review::

    VERDICTS S=YES,NO B=YES,NA,NO

becomes one verdict per spec, in the layout the request asked for (JSON when it sent a
``response_format``, the paper's tag blocks otherwise). A response with no directive gets all YES.
Every request body is recorded, so tests can assert what the plugin sent and how many calls it made.
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DIRECTIVE = re.compile(r"VERDICTS\s+S=([A-Z,]*)\s+B=([A-Z,]*)")
BOUNDARY = re.compile(r"<<<(RESPONSE-[0-9a-f]+)>>>\n(.*?)\n<<<END-\1>>>", re.S)


class ScriptedServer:
    """Start with ``with ScriptedServer() as server: server.url``."""

    def __init__(self, latency: float = 0.0):
        self.latency = latency
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def judge_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if _is_judge(r)]

    def generation_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if not _is_judge(r)]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, payload: Any) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, {"object": "list", "data": [{"id": "scripted", "object": "model"}]})
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                with server._lock:
                    server.requests.append(body)
                    server.headers.append(dict(self.headers))
                if server.latency:
                    time.sleep(server.latency)
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                text = _judge_answer(body) if _is_judge(body) else "ANSWER: " + _last_user(body)
                self._send(200, _completion(body, text))

        return Handler


def _last_user(body: dict[str, Any]) -> str:
    users = [m["content"] for m in body.get("messages", []) if m.get("role") == "user"]
    return users[-1] if users else ""


def _is_judge(body: dict[str, Any]) -> bool:
    return "<<<RESPONSE-" in _last_user(body)


def _judge_answer(body: dict[str, Any]) -> str:
    """Verdicts for the keys the judge prompt asks about (S1…, B1…, possibly a subset).

    The directive's n-th entry answers key n; an empty entry means YES; a key beyond the directive's
    length is left out of the answer, which is how tests script a wrong verdict count.
    """
    prompt = _last_user(body)
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
    if body.get("response_format"):
        return json.dumps({key: {"reason": f"scripted {label}", "verdict": label} for key, label in answers})
    s_lines = "\n".join(f"{i}. scripted reason <{lab}>" for i, (k, lab) in enumerate([a for a in answers if a[0][0] == "S"], 1))
    b_lines = "\n".join(f"{i}. scripted reason <{lab}>" for i, (k, lab) in enumerate([a for a in answers if a[0][0] == "B"], 1))
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
