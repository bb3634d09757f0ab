"""The vllm-server provider against a real vLLM server, every request recorded by a proxy in between.

Four methods (vanilla; zero_think, more_think and align3, which prefill a thinking block) on the four
cases of the pantry-chef example suite, judged by the same model through structured output
(``response_format`` of type ``json_schema``). Both prefill routes run: the server's own chat template
with ``continue_final_message`` (profile ``smol-server``) and our ChatML rendering sent to
``/v1/completions`` (profile ``smol-chatml``). What the engine accepted is asserted from the recording,
and written to the record folder for people to read.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from recording_proxy import RecordingProxy

from pytest_specbench.methods.prompts import ALIGN3_AUDIT, ALIGN3_BEHAVIORAL, ALIGN3_SAFETY, ZERO_THINK_PREFILL

METHODS = ("vanilla", "zero_think", "more_think", "align3")
CASES = 2
#: Prefilled requests each route must have sent: every method's first thinking passage and align3's three stages.
PREFILL_STAGES = {"zero_think", "more_think.cycle0", "align3.behavioral", "align3.safety", "align3.audit"}


@pytest.fixture(scope="module")
def proxy(vllm_server: str) -> Iterator[RecordingProxy]:
    with RecordingProxy(vllm_server) as recording:
        yield recording


def run_plugin(pytester: pytest.Pytester, profile: str, url: str, *extra: str) -> tuple[pytest.RunResult, dict]:
    result = pytester.runpytest_subprocess(
        "--specbench-model-config=engines.yaml",
        f"--specbench-model={profile}",
        f"--specbench-base-url={url}",
        f"--specbench-method={','.join(METHODS)}",
        "--specbench-judge-max-tokens=1024",
        "--specbench-limit=2",
        "--specbench-timeout=600",
        "--specbench-concurrency=8",
        "--specbench-cache=none",
        "--specbench-report=report.json",
        "-p",
        "no:cacheprovider",
        *extra,
        timeout=1200,
    )
    return result, json.loads((pytester.path / "report.json").read_text())


def assert_every_case_scored(report: dict) -> Counter:
    cases = report["cases"]
    errors = [(c["method"], c["case_id"], c["error"]) for c in cases if c["error"]]
    assert not errors, errors
    scored = Counter(c["method"] for c in cases if c["score"] is not None and c["verdicts"])
    assert scored == Counter({m: CASES for m in METHODS}), scored
    for case in cases:
        assert {v["label"] for v in case["verdicts"]} <= {"YES", "NO", "NA"}
        assert len(case["verdicts"]) == 6  # every spec of the suite got a label
    print(f"{report['settings']['model']}: cases scored per method {dict(sorted(scored.items()))}")
    return scored


def prefill_kind(prefill: str) -> str:
    """Which method (and stage) a prefilled thinking passage belongs to, from the method's own text."""
    if prefill == ZERO_THINK_PREFILL:
        return "zero_think"
    if prefill == "<think>\n":
        return "more_think.cycle0"
    if ALIGN3_BEHAVIORAL.split("{")[0] in prefill:
        if ALIGN3_AUDIT.split("{")[0] in prefill:
            return "align3.audit"
        return "align3.safety" if ALIGN3_SAFETY.split("{")[0] in prefill else "align3.behavioral"
    return "more_think.later"


def judge_exchanges(proxy: RecordingProxy) -> list:
    return [e for e in proxy.posts("/chat/completions") if "response_format" in (e.request or {})]


def save(record_dir: Path, name: str, value: object) -> None:
    (record_dir / name).write_text(json.dumps(value, indent=1, ensure_ascii=False))


def test_server_route_prefill_and_json_schema_judge_on_a_real_server(suite_dir, pytester, proxy, record_dir):
    """Prefill through the server's template: continue_final_message true with add_generation_prompt false."""
    before = len(proxy.exchanges)
    result, report = run_plugin(pytester, "smol-server", proxy.url)
    assert result.ret == 0 or result.ret == 1, result.stdout.str()  # cases may fail their specs; none may error
    assert_every_case_scored(report)
    result.stdout.fnmatch_lines(["*SpecBench*"])
    chats = [e for e in proxy.exchanges[before:] if e.path == "/v1/chat/completions"]
    assert chats and all(e.status == 200 for e in chats), [e.status for e in chats]
    prefilled = [e for e in chats if e.request.get("continue_final_message")]
    assert prefilled, "the prefill methods reached the server"
    for e in prefilled:
        assert e.request["add_generation_prompt"] is False
        assert e.request["messages"][-1]["role"] == "assistant" and e.request["messages"][-1]["content"].startswith(
            "<think>"
        )
    stages: dict[str, dict] = {}
    for e in prefilled:
        stages.setdefault(prefill_kind(e.request["messages"][-1]["content"]), e.to_dict())
    assert PREFILL_STAGES <= set(stages), sorted(stages)
    judged = judge_exchanges(proxy)[-1]
    assert judged.request["response_format"]["type"] == "json_schema"
    answer = json.loads(judged.response["choices"][0]["message"]["content"])
    assert set(answer) == set(judged.request["response_format"]["json_schema"]["schema"]["properties"])
    save(record_dir, "server_route_prefill_bodies.json", stages)
    save(record_dir, "judge_json_schema_exchange.json", judged.to_dict())


def test_completions_route_prefill_on_a_real_server(suite_dir, pytester, proxy, record_dir):
    """Prefill rendered on our side (ChatML with a think block) and continued through /v1/completions."""
    before = len(proxy.exchanges)
    result, report = run_plugin(pytester, "smol-chatml", proxy.url)
    assert result.ret in (0, 1), result.stdout.str()
    assert_every_case_scored(report)
    completions = [e for e in proxy.exchanges[before:] if e.path == "/v1/completions"]
    assert completions and all(e.status == 200 for e in completions), [e.status for e in completions]
    by_method: dict[str, dict] = {}
    for e in completions:
        body = e.request
        assert body["add_special_tokens"] is False and "messages" not in body
        assert "<|im_start|>assistant\n<think>" in body["prompt"]
        by_method.setdefault(prefill_kind(body["prompt"].rsplit("<|im_start|>assistant\n", 1)[1]), e.to_dict())
    assert PREFILL_STAGES <= set(by_method), sorted(by_method)
    save(record_dir, "completions_route_prefill_bodies.json", by_method)
