"""A small OpenAI-compatible chat server on 127.0.0.1 whose answers come from a Python function.

The toolkit tests need answers shaped per request (a rewrite, then a verifier's JSON verdict), which
:class:`scripted_server.ScriptedServer` does not give. Here the test passes ``respond(body) -> str``;
every request body is recorded, and ``fail_after`` makes the server answer HTTP 400 (not retried)
after that many requests, which is how the tests interrupt a run half-way.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Responder = Callable[[dict[str, Any]], str]


def last_user(body: dict[str, Any]) -> str:
    users = [m["content"] for m in body.get("messages", []) if m.get("role") == "user"]
    return users[-1] if users else ""


class JsonHandler(BaseHTTPRequestHandler):
    """Request handler plumbing shared by the threaded test servers: quiet logs, JSON replies."""

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class ToolkitServer:
    """``with ToolkitServer(respond) as srv: srv.url``; ``srv.requests`` lists the bodies received."""

    def __init__(self, respond: Responder, *, fail_after: int | None = None):
        self.respond = respond
        self.fail_after = fail_after
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> ToolkitServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(JsonHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                with server._lock:
                    n = len(server.requests)
                    if server.fail_after is not None and n >= server.fail_after:
                        refuse = True
                    else:
                        refuse = False
                        server.requests.append(body)
                if refuse:
                    self._send(400, {"error": {"message": "scripted refusal", "type": "invalid_request_error"}})
                    return
                text = server.respond(body)
                self._send(200, {
                    "id": "chatcmpl-toolkit",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body.get("model", "toolkit"),
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 5, "completion_tokens": max(1, len(text.split())), "total_tokens": 5 + max(1, len(text.split()))},
                })

        return Handler
