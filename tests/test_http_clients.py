"""The two HTTP transports of the OpenAI-compatible backend answer every server fault the same way.

Each fault the scripted server can inject is sent through both transports: the reason a case would
error with, and whether the retry policy re-sends, must not depend on which client carried the request.
"""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING

import pytest
from scripted_server import ScriptedServer

from pytest_specbench.backends.base import BackendSpec, Decoding, GenerationRequest
from pytest_specbench.backends.http import HTTP_CLIENTS, PROXY_VARIABLES
from pytest_specbench.backends.openai_compat import OpenAICompatBackend
from pytest_specbench.errors import RequestFailed
from pytest_specbench.options import OPT_HTTP_CLIENT

if TYPE_CHECKING:
    from conftest import RunSuite

REQUEST = GenerationRequest(messages=({"role": "user", "content": "hello"},), decoding=Decoding(max_tokens=16))

#: fault -> (the reason's pattern, whether the policy retries it)
FAULT_OUTCOMES = {
    "429-retry-after": (r"HTTP 429: slow down", True),
    "429": (r"HTTP 429: rate limited", True),
    "500": (r"HTTP 500: server error 500", True),
    "503": (r"HTTP 503: server error 503", True),
    "hang": (r"request timed out after 0\.5 s", True),
    "drop": (r"cannot connect to the server: \w+", True),
    "truncated-json": (r"unusable answer: the server's answer is not valid JSON", True),
    "empty-content": (r"unusable answer: the server answered with empty content", True),
    "echo-key": (r"HTTP 401: invalid key: Bearer no-key", False),
}


def backend(url: str, client: str, retries: int) -> OpenAICompatBackend:
    return OpenAICompatBackend(
        BackendSpec("openai", "scripted", base_urls=(url,), max_retries=retries, timeout=0.5, http_client=client)
    )


async def generate_all(b: OpenAICompatBackend, n: int) -> list[object]:
    try:
        return list(await asyncio.gather(*(b.generate(REQUEST) for _ in range(n)), return_exceptions=True))
    finally:
        await b.aclose()


@pytest.mark.parametrize("client", HTTP_CLIENTS)
@pytest.mark.parametrize("fault", sorted(FAULT_OUTCOMES))
def test_each_fault_gives_the_same_reason_through_either_client(fault: str, client: str) -> None:
    pattern, retryable = FAULT_OUTCOMES[fault]
    with ScriptedServer(fault_every=1, faults=(fault,), hang=2.0) as server:
        b = backend(server.url, client, retries=0)
        (outcome,) = asyncio.run(generate_all(b, 1))
    assert isinstance(outcome, RequestFailed), outcome
    assert re.search(pattern, str(outcome)), str(outcome)
    assert b.retry_decision(outcome.__cause__).retry is retryable


@pytest.mark.parametrize("client", HTTP_CLIENTS)
def test_a_fault_on_the_first_try_is_retried_and_the_answer_is_read(client: str) -> None:
    # every second POST fails, a different kind each time: each call's retry lands on a good answer
    faults = ("429-retry-after", "500", "drop", "truncated-json", "empty-content")
    with ScriptedServer(fault_every=2, faults=faults) as server:
        b = backend(server.url, client, retries=1)

        async def run() -> list[object]:
            out = []
            try:
                for _ in range(len(faults) + 1):
                    out.append(await b.generate(REQUEST))
            finally:
                await b.aclose()
            return out

        completions = asyncio.run(run())
        assert server.faults_sent == list(faults)
    assert [c.attempts for c in completions] == [1] + [2] * len(faults)
    assert all(c.text == "ANSWER: hello" for c in completions)


@pytest.mark.parametrize("client", HTTP_CLIENTS)
def test_length_stop_is_an_answer_not_a_fault(client: str) -> None:
    with ScriptedServer(fault_every=1, faults=("length",)) as server:
        (completion,) = asyncio.run(generate_all(backend(server.url, client, retries=0), 1))
    assert completion.finish_reason == "length" and completion.attempts == 1


@pytest.mark.parametrize("client", HTTP_CLIENTS)
def test_requests_go_through_a_configured_proxy(client: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """With HTTP_PROXY set, the request reaches the proxy (a scripted server that answers absolute-form requests)."""
    for name in PROXY_VARIABLES + ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    with ScriptedServer() as target, ScriptedServer() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url.rsplit("/v1", 1)[0])
        (completion,) = asyncio.run(generate_all(backend(target.url, client, retries=0), 1))
        assert completion.text == "ANSWER: hello"
        assert (len(proxy.requests), len(target.requests)) == (1, 0)


@pytest.mark.parametrize("client", HTTP_CLIENTS)
def test_round_robin_over_base_urls_with_either_client(client: str) -> None:
    with ScriptedServer() as one, ScriptedServer() as two:
        b = OpenAICompatBackend(
            BackendSpec("openai", "scripted", base_urls=(one.url, two.url + "/"), max_retries=0, http_client=client)
        )
        asyncio.run(generate_all(b, 6))
        assert (len(one.requests), len(two.requests)) == (3, 3)


def test_an_unknown_http_client_is_a_usage_error_listing_the_valid_ones(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(f"{OPT_HTTP_CLIENT}=requests")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{OPT_HTTP_CLIENT}*'requests' is not one of aiohttp, openai*"])


SUITE = """
scenario: Alpha
safety: [Never do harm A.]
behavioral: [Rule one.]
prompts:
  - {label: unsafe, prompt: "VERDICTS S=NO B=YES"}
  - {label: safe, prompt: "VERDICTS S=YES B=YES"}
"""


@pytest.mark.parametrize(("client", "agent"), [("aiohttp", "pytest-specbench"), ("openai", "AsyncOpenAI/Python")])
def test_the_option_chooses_the_client_end_to_end(specbench_run: RunSuite, client: str, agent: str) -> None:
    """Through pytest: the flag reaches the transport (the server sees that client's User-Agent) and the summary is the same."""
    with ScriptedServer() as server:
        result = specbench_run(
            "--specbench-retries=0", f"{OPT_HTTP_CLIENT}={client}", suite=SUITE, server=server, subprocess=True
        )
        agents = {h.get("user-agent", "").split(" ")[0] for h in server.headers}
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["Alpha*all*2*0*50.0*100.0*50.0*"])
    assert agents == {agent}, agents
