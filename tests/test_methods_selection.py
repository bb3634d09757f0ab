"""Ranking methods (best_of_n, tpo) are told what ranks their samples, and the record says who ranked.

Everything runs through pytest on scripted OpenAI-compatible servers on 127.0.0.1; a second server plays
the selector judge or the reward model, so request counts per server show which model did what.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from scripted_server import ScriptedServer
from test_vllm_stub import sample_case

from pytest_specbench.backends.base import BackendSpec, Decoding
from pytest_specbench.backends.openai_compat import OpenAICompatBackend
from pytest_specbench.methods import MethodContext, MethodRegistry

SUITE = """
scenario: Gamma
safety: [Never do harm.]
behavioral: [Rule one., Rule two.]
prompts:
  - {label: safe, prompt: "VERDICTS S=YES B=YES,NO"}
  - {label: unsafe, prompt: "VERDICTS S=YES B=YES,YES"}
"""


def cases(pytester: pytest.Pytester) -> list[dict[str, Any]]:
    return json.loads(Path(pytester.path / "r.json").read_text())["cases"]


@pytest.mark.parametrize("method", ["best_of_n", "tpo"])
def test_without_a_scorer_the_run_stops_and_names_both_choices(specbench_run, pytester, server, method):
    result = specbench_run(f"--specbench-method={method}", suite=SUITE)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            f"*{method} needs a scorer to rank its samples: {method}.scorer=reward with {method}.reward_url=URL*or {method}.scorer=judge*"
        ]
    )
    assert server.requests == []


def test_ranking_with_the_grading_judge_is_flagged_in_the_record_and_the_json_report(specbench_run, pytester, server):
    result = specbench_run(
        "--specbench-method=best_of_n",
        "--specbench-method-opt=best_of_n.n=2",
        "--specbench-method-opt=best_of_n.scorer=judge",
        "--specbench-report=r.json",
        suite=SUITE,
    )
    result.assert_outcomes(passed=2)
    assert {(c["selector"], c["selector_is_grader"]) for c in cases(pytester)} == {("judge:openai/scripted", True)}
    assert len(server.judge_requests()) == 2 * (2 + 1), "each case: two candidates rated, then the chosen one graded"


@pytest.mark.parametrize(("selector_model", "is_grader"), [("openai/selector", False), ("openai/scripted", True)])
def test_a_selector_judge_on_a_second_server_is_the_one_that_ranks(
    specbench_run, pytester, server, selector_model, is_grader
):
    """The selector ranks, the grading judge grades; the same model name elsewhere still counts as the grader."""
    with ScriptedServer() as selector:
        result = specbench_run(
            "--specbench-method=best_of_n",
            "--specbench-method-opt=best_of_n.n=3",
            "--specbench-method-opt=best_of_n.scorer=judge",
            f"--specbench-method-opt=best_of_n.judge={selector_model}",
            f"--specbench-method-opt=best_of_n.judge_base_url={selector.url}",
            "--specbench-report=r.json",
            suite=SUITE,
        )
        result.assert_outcomes(passed=2)
        assert len(selector.judge_requests()) == 2 * 3 and selector.generation_requests() == []
        assert {r["model"] for r in selector.requests} == {selector_model.partition("/")[2]}
    assert len(server.judge_requests()) == 2, "the grading judge only grades the chosen answers"
    assert len(server.generation_requests()) == 2 * 3
    assert {(c["selector"], c["selector_is_grader"]) for c in cases(pytester)} == {
        (f"judge:{selector_model}", is_grader)
    }


def test_a_reward_model_ranks_through_the_run_transport_and_retries_a_503(specbench_run, pytester, server):
    """Every second reward request gets a 503: each is retried once under the run's policy and the run passes."""
    with ScriptedServer(fault_every=2, faults=("503",)) as reward:
        result = specbench_run(
            "--specbench-method=best_of_n",
            "--specbench-method-opt=best_of_n.n=2",
            "--specbench-method-opt=best_of_n.scorer=reward",
            f"--specbench-method-opt=best_of_n.reward_url={reward.url}",
            "--specbench-method-opt=best_of_n.reward_model=rm",
            "--specbench-report=r.json",
            suite=SUITE,
        )
        result.assert_outcomes(passed=2)
        assert reward.faults_sent == ["503"] * 3 and len(reward.requests) == 4 + 3
        assert {r["model"] for r in reward.requests} == {"rm"} and {
            r["messages"][-1]["role"] for r in reward.requests
        } == {"assistant"}
        assert all(h["user-agent"].startswith("pytest-specbench") for h in reward.headers), "the run's own transport"
    assert {(c["selector"], c["selector_is_grader"]) for c in cases(pytester)} == {("reward:rm", False)}
    assert len(server.judge_requests()) == 2


def test_a_reward_server_that_echoes_the_key_leaves_no_key_in_the_report(specbench_run, pytester, server, monkeypatch):
    key = "sk-planted-reward-key-0123456789"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    with ScriptedServer(fault_every=1, faults=("echo-key",)) as reward:
        result = specbench_run(
            "--specbench-method=best_of_n",
            "--specbench-method-opt=best_of_n.n=2",
            "--specbench-method-opt=best_of_n.scorer=reward",
            f"--specbench-method-opt=best_of_n.reward_url={reward.url}",
            "--specbench-report=r.json",
            suite=SUITE,
        )
        assert reward.headers and all(h["authorization"] == f"Bearer {key}" for h in reward.headers)
    result.assert_outcomes(errors=2)
    report = (pytester.path / "r.json").read_text()
    assert key not in report and key not in result.stdout.str()
    assert all("reward model at" in c["error"] and "HTTP 401" in c["error"] for c in cases(pytester))


def test_reward_client_retries_a_503_then_succeeds():
    """Directly, without pytest: the second reward request gets a 503, is re-sent, and both candidates are scored."""
    with ScriptedServer() as model, ScriptedServer(fault_every=2, faults=("503",)) as reward:
        # the reward client takes the run's retry bound from the backend under test's settings
        backend = OpenAICompatBackend(BackendSpec("openai", "scripted", base_urls=(model.url,), max_retries=2))
        options = {"n": "2", "scorer": "reward", "reward_url": reward.url}
        ctx = MethodContext(backend=backend, decoding=Decoding(max_tokens=8), options=options)

        async def main() -> Any:
            try:
                return await MethodRegistry().get("best_of_n")(sample_case(), ctx)
            finally:
                await backend.aclose()

        result = asyncio.run(main())
    assert reward.faults_sent == ["503"] and len(reward.requests) == 3
    assert result.selector == f"reward:{reward.url.removesuffix('/v1')}" and result.response.startswith("ANSWER: ")
