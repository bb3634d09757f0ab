"""A recording HTTP proxy on 127.0.0.1: forwards every request to a real server and keeps both sides.

The engine tier puts it between the plugin and a real vLLM server, so a test can read exactly which
request bodies the engine accepted (status 200) and what it answered, e.g. that a prefilled request
carried ``continue_final_message`` and the judge's request a ``json_schema``. Standard library only;
one thread per connection, as the plugin keeps several requests in flight.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Exchange:
    """One forwarded request and the upstream's answer."""

    method: str
    path: str
    status: int
    request: Any
    response: Any

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "request": self.request,
            "response": self.response,
        }


def _json_or_text(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


class RecordingProxy:
    """``with RecordingProxy("http://127.0.0.1:8000") as proxy: proxy.url`` (the ``/v1`` root to give the plugin)."""

    def __init__(self, upstream: str, timeout: float = 600.0):
        self.upstream = upstream.rstrip("/")
        self.timeout = timeout
        self.exchanges: list[Exchange] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else None
                request = urllib.request.Request(proxy.upstream + self.path, data=body, method=self.command)
                if body is not None:
                    request.add_header("content-type", self.headers.get("content-type") or "application/json")
                try:
                    with urllib.request.urlopen(request, timeout=proxy.timeout) as answer:
                        status, payload, kind = (
                            answer.status,
                            answer.read(),
                            answer.headers.get("content-type") or "application/json",
                        )
                except urllib.error.HTTPError as exc:
                    status, payload, kind = exc.code, exc.read(), exc.headers.get("content-type") or "application/json"
                with proxy._lock:
                    proxy.exchanges.append(
                        Exchange(
                            self.command,
                            self.path,
                            status,
                            _json_or_text(body) if body else None,
                            _json_or_text(payload),
                        )
                    )
                self.send_response(status)
                self.send_header("content-type", kind)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = _forward
            do_POST = _forward

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="recording-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def posts(self, path: str) -> list[Exchange]:
        """The recorded POSTs to ``/v1{path}`` (e.g. ``/chat/completions``)."""
        with self._lock:
            return [e for e in self.exchanges if e.method == "POST" and e.path == f"/v1{path}"]

    def __enter__(self) -> RecordingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
