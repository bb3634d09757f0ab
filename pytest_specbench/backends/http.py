"""How the OpenAI-compatible backends put a JSON body on the wire and get JSON back.

Two transports, one contract (:class:`Transport`): ``post`` returns the decoded answer or raises one of
the :class:`TransportError` kinds below, which is all the retry decision needs to know.

- ``aiohttp`` (the default): aiohttp's client session, the transport openai-python itself offers for
  high concurrency (its ``openai[aiohttp]`` extra), used directly. A worker keeping many requests in
  flight is limited by the CPU each call costs on its event loop; ``python bench/bench_client.py``
  measures that side by side, and the import cost a run pays before its first request.
- ``openai``: the official ``AsyncOpenAI`` client's raw ``post`` (its typed models skipped). Choose it
  with ``--specbench-http-client=openai`` when a gateway or proxy setup is only known to work with it.

Neither retries on its own: the backend's :class:`~pytest_specbench.backends.base.RetryPolicy` is the
one place that decides and counts re-sends.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Protocol

from ..errors import BackendError

#: Transports by the name given to ``--specbench-http-client``, each also the module it imports; the first is the default.
HTTP_CLIENTS = ("aiohttp", "openai")
USER_AGENT = "pytest-specbench"
#: Environment variables that route HTTP through a proxy (any case, as aiohttp and httpx read them).
PROXY_VARIABLES = tuple(v for name in ("http_proxy", "https_proxy", "all_proxy") for v in (name, name.upper()))


def check_base_url(url: str) -> str:
    """``url`` if it can serve as an OpenAI-compatible base URL; ValueError with a reason a user can act on.

    Only http and https are spoken (a ``file://`` or ``ftp://`` URL would otherwise fail once per case).
    Credentials in the URL (``user:password@``) are refused: the key travels as a bearer token in the
    Authorization header, which one request cannot carry beside Basic credentials (aiohttp refuses the
    pair, httpx would send the Basic credentials instead of the key). The message never shows a password.
    """
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError as exc:
        raise ValueError(f"{_masked(url)} is not a URL ({exc})") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"{_masked(url)} is not an http:// or https:// URL with a host (e.g. http://127.0.0.1:8000/v1)"
        )
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            f"{_masked(url)} carries credentials (user:password@); they cannot be sent beside the API key. "
            "Drop them from the URL and put the key in OPENAI_API_KEY (or the profile's api_key_env)"
        )
    return url


def _masked(url: str) -> str:
    return re.sub(r"(://[^/\s:@]*:)[^@\s/]*@", r"\1[REDACTED]@", url)


class TransportError(BackendError):
    """One HTTP exchange that did not produce a JSON answer; the retry policy reads its kind."""


class RequestTimeout(TransportError):
    """No complete answer within the timeout."""


class ConnectionFailed(TransportError):
    """The connection could not be made, or broke before the answer was complete."""


class StatusError(TransportError):
    """The server answered with an HTTP error status."""

    def __init__(self, status: int, message: str, retry_after: float | None = None):
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message
        self.retry_after = retry_after


class Transport(Protocol):
    async def post(self, base_url: str, path: str, body: dict[str, Any]) -> Any:
        """POST ``body`` as JSON to ``path`` under ``base_url`` (one of those the transport was made for); the decoded JSON answer.

        Raises :class:`TransportError` for timeouts, connection failures and error statuses, and
        ``ValueError`` when a 2xx answer is not JSON.
        """
        ...

    async def aclose(self) -> None: ...


def make_transport(name: str, *, api_key: str, timeout: float, base_urls: tuple[str, ...]) -> Transport:
    if name == "aiohttp":
        return AiohttpTransport(api_key=api_key, timeout=timeout)
    if name == "openai":
        return OpenAIClientTransport(api_key=api_key, timeout=timeout, base_urls=base_urls)
    raise ValueError(f"unknown HTTP client {name!r}; valid: {', '.join(HTTP_CLIENTS)}")


class AiohttpTransport:
    """One aiohttp session for every base URL, made on first use inside the running loop."""

    def __init__(self, *, api_key: str, timeout: float):
        import asyncio

        import aiohttp

        self._aiohttp = aiohttp
        # asyncio.TimeoutError, not the builtin: they differ on Python 3.10
        self._timeout_error = asyncio.TimeoutError
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
        }
        # One deadline for the whole exchange: a per-read bound alone lets a server that trickles a byte
        # now and then hold a request (and a run) for as long as it likes. Nothing queues for a
        # connection here (the connector has no limit), so the total counts only the exchange itself.
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=timeout)
        self._seconds = timeout
        self._session: Any = None

    def _open(self) -> Any:
        aiohttp = self._aiohttp
        # limit=0: the engine's concurrency limit already bounds what is in flight; a second, smaller cap
        # here would queue requests out of sight of that limit.
        connector = aiohttp.TCPConnector(limit=0)
        # trust_env makes aiohttp re-read the proxy variables and ~/.netrc on every request (1.5 ms of CPU
        # and about 3 ms of latency per call here), so it is on only when a proxy is configured.
        proxied = any(os.environ.get(name) for name in PROXY_VARIABLES)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=self._timeout, headers=self._headers, trust_env=proxied
        )
        return self._session

    async def post(self, base_url: str, path: str, body: dict[str, Any]) -> Any:
        aiohttp = self._aiohttp
        session = self._session or self._open()
        try:
            async with session.post(
                base_url.rstrip("/") + path, data=json.dumps(body, ensure_ascii=False).encode()
            ) as response:
                raw = await response.read()
                status, retry_after = response.status, response.headers.get("retry-after")
        except self._timeout_error as exc:  # aiohttp's ServerTimeoutError is also a connection error: test it first
            raise RequestTimeout(f"request timed out after {self._seconds:g} s") from exc
        except aiohttp.ClientPayloadError as exc:
            raise ConnectionFailed(f"the answer was cut off: {exc}") from exc
        except (aiohttp.ClientConnectionError, OSError) as exc:
            raise ConnectionFailed(f"cannot connect to the server: {type(exc).__name__}: {exc}") from exc
        if status >= 400:
            raise StatusError(status, _error_message(raw), _retry_after(retry_after))
        return decode_json(raw)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class OpenAIClientTransport:
    """The official client, one per base URL, with its own retries off."""

    def __init__(self, *, api_key: str, timeout: float, base_urls: tuple[str, ...]):
        import openai

        self._openai = openai
        # the HTTP library this openai release sends with: httpx2 from 3.0, httpx before
        # (read from the module's namespace: the type checker only knows the installed release's name)
        base_client = vars(openai._base_client)
        self._httpx = base_client.get("httpx2") or base_client["httpx"]
        self._clients = {
            url: openai.AsyncOpenAI(base_url=url, api_key=api_key, max_retries=0, timeout=timeout) for url in base_urls
        }
        self._seconds = timeout

    async def post(self, base_url: str, path: str, body: dict[str, Any]) -> Any:
        import asyncio

        openai = self._openai
        try:
            # The client's timeout bounds each phase (connect, each read), not the request; the deadline
            # around the call is the total, as aiohttp's ClientTimeout(total=...) is in the other transport.
            response = await asyncio.wait_for(
                self._clients[base_url].post(path, body=body, cast_to=self._httpx.Response), self._seconds
            )
        except asyncio.TimeoutError as exc:  # noqa: UP041 (not the builtin on Python 3.10)
            raise RequestTimeout(f"request timed out after {self._seconds:g} s") from exc
        except openai.APITimeoutError as exc:  # subclass of APIConnectionError: test it first
            raise RequestTimeout(f"request timed out after {self._seconds:g} s") from exc
        except openai.APIConnectionError as exc:
            cause = exc.__cause__ or exc
            raise ConnectionFailed(f"cannot connect to the server: {type(cause).__name__}: {cause}") from exc
        except openai.APIStatusError as exc:
            # the body's own message, as the aiohttp transport reports it, not the client's "Error code: …" wrapping
            raise StatusError(
                exc.status_code,
                _error_message(exc.response.content),
                _retry_after(exc.response.headers.get("retry-after")),
            ) from exc
        return decode_json(response.content)

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.close()


#: A JSON escape of a UTF-16 surrogate: the only way a lone surrogate can reach a decoded answer.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def decode_json(raw: bytes) -> Any:
    """The decoded JSON answer, with any lone surrogate replaced by U+FFFD.

    JSON may escape half of a surrogate pair (``"\\ud83d"``), and Python decodes that into a string no
    UTF-8 file, SQLite row, execnet message or later request body can hold: it would crash the cache,
    the reports and the judge's request for every case it touched. Well-formed answers (pairs decode to
    one character) are returned unchanged; the scan for such escapes runs only over the raw bytes.
    """
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"the server's answer is not valid JSON ({exc})") from exc
    return _well_formed(data) if _SURROGATE_ESCAPE.search(raw) else data


def _well_formed(value: Any) -> Any:
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_well_formed(v) for v in value]
    if isinstance(value, dict):
        return {_well_formed(k): _well_formed(v) for k, v in value.items()}
    return value


def _error_message(raw: bytes) -> str:
    """The ``error.message`` of an OpenAI-style error body, else the body's start."""
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if isinstance(data, dict):
        error = data.get("error")
        message = (
            error.get("message")
            if isinstance(error, dict)
            else error
            if isinstance(error, str)
            else data.get("message")
        )
        if isinstance(message, str) and message:
            return _short(message)
    return _short(raw.decode("utf-8", "replace").strip() or "(empty body)")


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "…"
