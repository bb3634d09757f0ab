"""What the vllm-server backend sends, proven against a recording vLLM-protocol server on 127.0.0.1.

Prefill flags (``continue_final_message`` true with ``add_generation_prompt`` false), the Qwen3 route
through ``/v1/completions``, ``stop``, ``chat_template_kwargs``, structured output through
``response_format`` (never ``guided_json``), round-robin over two servers, and every deliberation method's
calls over HTTP — then the same through pytest itself with pytester.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest
from test_vllm_stub import VLLMStub, sample_case

from pytest_specbench.backends.base import BackendSpec, Decoding, GenerationRequest
from pytest_specbench.backends.vllm_server import VLLMServerBackend
from pytest_specbench.errors import ConfigError
from pytest_specbench.methods import MethodContext, MethodRegistry, MethodResult, align3_passages

T = TypeVar("T")
METHODS = MethodRegistry()


@pytest.fixture
def vllm_stub() -> Iterator[VLLMStub]:
    with VLLMStub() as stub:
        yield stub


MESSAGES = ({"role": "system", "content": "Follow the rules."}, {"role": "user", "content": "Help me, please."})
SCHEMA = {"type": "object", "properties": {"S1": {"type": "string"}}, "required": ["S1"]}


def run_with(backend: VLLMServerBackend, work: Callable[[VLLMServerBackend], Awaitable[T]]) -> T:
    async def main() -> T:
        try:
            return await work(backend)
        finally:
            await backend.aclose()

    return asyncio.run(main())


def backend_for(
    url: str | tuple[str, ...], model: str = "meta-llama/Llama-3.1-8B-Instruct", **kw: Any
) -> VLLMServerBackend:
    urls = (url,) if isinstance(url, str) else url
    return VLLMServerBackend(BackendSpec("vllm-server", model, base_urls=urls, max_retries=0), **kw)


def no_guided_fields(body: dict[str, Any]) -> bool:
    return not any(k.startswith("guided_") for k in body) and "guided_json" not in json.dumps(body)


# ------------------------------------------------------------------------------------ single requests


def test_server_route_prefill_sends_continue_final_message_without_generation_prompt(vllm_stub):
    backend = backend_for(vllm_stub.url, chat_template_kwargs={"enable_thinking": True})
    decoding = Decoding(max_tokens=20, extra={"chat_template_kwargs": {"custom_flag": 1}})
    request = GenerationRequest(messages=MESSAGES, decoding=decoding, prefill="<think>\nFirst,", stop=("</think>",))
    completion = run_with(backend, lambda b: b.generate(request))
    [body] = vllm_stub.bodies("/chat/completions")
    assert body["continue_final_message"] is True and body["add_generation_prompt"] is False
    assert body["messages"][-1] == {"role": "assistant", "content": "<think>\nFirst,"}
    assert body["stop"] == ["</think>"] and body["max_tokens"] == 20
    # Profile-level switch merged under the request's own template kwargs.
    assert body["chat_template_kwargs"] == {"enable_thinking": True, "custom_flag": 1}
    assert no_guided_fields(body)
    assert completion.text == "thoughts 1 considered" and completion.completion_tokens == 3


def test_qwen3_prefill_is_rendered_here_and_sent_to_completions_with_one_think_block(vllm_stub):
    """Qwen3's template would put the prefill after its own empty think block; we render ChatML instead."""
    backend = backend_for(vllm_stub.url, model="Qwen/Qwen3-14B")
    decoding = Decoding(
        max_tokens=24,
        temperature=0.6,
        top_p=0.95,
        extra={"top_k": 20, "min_p": 0.0, "chat_template_kwargs": {"enable_thinking": False}},
    )
    prefill = "<think>\nThe user wants"
    request = GenerationRequest(messages=MESSAGES, decoding=decoding, prefill=prefill, stop=("</think>",))
    run_with(backend, lambda b: b.generate(request))
    assert vllm_stub.bodies("/chat/completions") == []
    [record] = [r for r in vllm_stub.records if r["path"].endswith("/v1/completions")]
    body = record["body"]
    prompt = body["prompt"]
    assert prompt == (
        "<|im_start|>system\nFollow the rules.<|im_end|>\n<|im_start|>user\nHelp me, please.<|im_end|>\n<|im_start|>assistant\n"
        + prefill
    )
    assert prompt.count("<think>") == 1 and "</think>" not in prompt
    assert body["add_special_tokens"] is False  # the rendered text carries its own special tokens
    assert body["max_tokens"] == 24  # never the route's default of 16
    assert body["stop"] == ["</think>"] and body["top_k"] == 20 and body["min_p"] == 0.0
    for chat_only in ("chat_template_kwargs", "continue_final_message", "add_generation_prompt", "messages"):
        assert chat_only not in body
    assert no_guided_fields(body)


def test_same_prefill_through_the_servers_qwen3_template_would_close_the_thinking(vllm_stub):
    """Forcing the server route shows the trap the default avoids (two think blocks, the first closed)."""
    backend = backend_for(vllm_stub.url, model="Qwen/Qwen3-14B", prefill_template="server")
    request = GenerationRequest(messages=MESSAGES, decoding=Decoding(max_tokens=8), prefill="<think>\nThe user wants")
    run_with(backend, lambda b: b.generate(request))
    [record] = vllm_stub.records
    assert record["rendered"].count("<think>") == 2 and "</think>\n\n<think>" in record["rendered"]


def test_structured_output_uses_response_format_json_schema_never_guided_json(vllm_stub):
    backend = backend_for(vllm_stub.url)
    request = GenerationRequest(messages=MESSAGES, decoding=Decoding(max_tokens=8), json_schema=SCHEMA)
    run_with(backend, lambda b: b.generate(request))
    [body] = vllm_stub.bodies("/chat/completions")
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"] == SCHEMA
    assert no_guided_fields(body) and "structured_outputs" not in body


def test_structured_output_on_the_completions_route_uses_structured_outputs(vllm_stub):
    backend = backend_for(vllm_stub.url, model="Qwen/Qwen3-8B")
    request = GenerationRequest(
        messages=MESSAGES, decoding=Decoding(max_tokens=8), prefill="<think>\n</think>\n\n", json_schema=SCHEMA
    )
    run_with(backend, lambda b: b.generate(request))
    [body] = vllm_stub.bodies("/v1/completions")
    assert body["structured_outputs"] == {"json": SCHEMA}
    assert no_guided_fields(body) and "response_format" not in body


@pytest.mark.parametrize("field", ["guided_json", "guided_choice"])
def test_removed_guided_fields_are_refused_before_sending(vllm_stub, field):
    backend = backend_for(vllm_stub.url)
    request = GenerationRequest(messages=MESSAGES, decoding=Decoding(extra={field: SCHEMA}))
    with pytest.raises(ConfigError, match=rf"{field} was removed in vLLM 0\.12.*ignored silently"):
        run_with(backend, lambda b: b.generate(request))
    assert vllm_stub.records == []


def test_unknown_prefill_template_fails_at_construction(vllm_stub):
    with pytest.raises(ConfigError, match="unknown prefill template 'chatmlx'"):
        backend_for(vllm_stub.url, prefill_template="chatmlx")


def test_round_robin_alternates_between_two_servers():
    with VLLMStub() as first, VLLMStub() as second:
        backend = backend_for((first.url, second.url))

        async def four(b: VLLMServerBackend) -> None:
            for i in range(4):
                await b.generate(
                    GenerationRequest(messages=({"role": "user", "content": f"q{i}"},), decoding=Decoding(max_tokens=4))
                )

        run_with(backend, four)
        assert [b["messages"][0]["content"] for b in first.bodies()] == ["q0", "q2"]
        assert [b["messages"][0]["content"] for b in second.bodies()] == ["q1", "q3"]


# --------------------------------------------------------------------------- every method over HTTP


async def equal_scores(case: Any, text: str) -> float:
    """A stand-in judge: every answer equally good, so ties are broken by tokens."""
    return 0.5


# method -> (options, expected stage sequence)
EXPECTED_STAGES: dict[str, tuple[dict[str, str], list[str]]] = {
    "zero_think": ({}, ["zero_think.answer"]),
    "more_think": ({}, ["more_think.cycle1", "more_think.cycle2", "more_think.answer"]),
    "align3": ({}, ["align3.behavioral", "align3.safety", "align3.audit"]),
    "self_refine": ({"iterations": "2"}, ["self_refine.answer"] + ["self_refine.feedback", "self_refine.rewrite"] * 2),
    "best_of_n": ({"n": "3", "scorer": "judge"}, ["best_of_n.sample"] * 3),
    "tpo": (
        {"samples": "2", "iterations": "1", "scorer": "judge"},
        ["tpo.sample"] * 2 + ["tpo.loss", "tpo.gradient"] + ["tpo.sample"] * 2,
    ),
}


@pytest.mark.parametrize("method", [m for m in METHODS.names if m not in ("raw", "vanilla")])
def test_every_method_makes_its_calls_and_counts_completion_tokens_only(vllm_stub, method):
    options, stages = EXPECTED_STAGES[method]
    backend = backend_for(vllm_stub.url, model="Qwen/Qwen3-14B")
    ctx = MethodContext(
        backend=backend, decoding=Decoding(max_tokens=32, seed=7), options=options, score_response=equal_scores
    )
    result: MethodResult = run_with(backend, lambda b: METHODS.get(method)(sample_case(), ctx))
    assert [s.stage for s in result.steps] == stages
    generation = [r for r in vllm_stub.records if r["path"].endswith("completions")]
    assert len(generation) == len(stages) == backend.calls
    assert result.completion_tokens == sum(
        r["completion_tokens"] for r in generation
    )  # every call's generated tokens, prefill text excluded
    assert result.prompt_tokens == result.steps[0].prompt_tokens
    assert result.response.strip()


def test_prefill_methods_continue_their_own_partial_turn(vllm_stub):
    """align3's three calls each extend the previous prefill; more_think swaps </think> for 'Wait'."""
    backend = backend_for(vllm_stub.url, model="Qwen/Qwen3-14B")
    case = sample_case()
    ctx = MethodContext(backend=backend, decoding=Decoding(max_tokens=32))
    result = run_with(backend, lambda b: METHODS.get("align3")(case, ctx))
    prompts = [b["prompt"] for b in vllm_stub.bodies("/v1/completions")]
    behavioral, safety, audit = align3_passages(case.scenario)
    assert behavioral in prompts[0] and safety not in prompts[0]
    assert prompts[1].startswith(prompts[0]) and "thoughts 1 considered" in prompts[1] and safety in prompts[1]
    assert prompts[2].startswith(prompts[1]) and audit in prompts[2]
    assert [b.get("stop") for b in vllm_stub.bodies("/v1/completions")] == [["</think>"], ["</think>"], None]
    assert result.response == "answer 3 after thinking"
    thought = result.thought
    assert thought.index(behavioral) < thought.index(safety) < thought.index(audit) < thought.index("last thoughts 3")

    vllm_stub.records.clear()
    backend = backend_for(vllm_stub.url, model="Qwen/Qwen3-14B")
    ctx = MethodContext(
        backend=backend, decoding=Decoding(max_tokens=32), options={"cycles": "2", "continuation": "Hold on"}
    )
    run_with(backend, lambda b: METHODS.get("more_think")(case, ctx))
    first, last = (b["prompt"] for b in vllm_stub.bodies("/v1/completions"))
    assert last == first + "thoughts 1 considered\n\nHold on"


def test_best_of_n_with_reward_model_route_picks_the_highest_reward(vllm_stub):
    """The stub's reward model prefers longer answers: 'answer k more more' must win."""
    backend = backend_for(vllm_stub.url)
    root = vllm_stub.url.removesuffix("/v1")
    for route in ("classify", "pooling"):
        vllm_stub.records.clear()
        options = {"n": "3", "scorer": "reward", "reward_url": root, "reward_route": route}
        ctx = MethodContext(backend=backend_for(vllm_stub.url), decoding=Decoding(max_tokens=16), options=options)
        result = run_with(backend, lambda b, ctx=ctx: METHODS.get("best_of_n")(sample_case(), ctx))
        assert result.response.endswith("more more")
        scored = vllm_stub.bodies(f"/{route}")
        assert len(scored) == 3 and all(b["messages"][-1]["role"] == "assistant" for b in scored)
        assert all("model" not in b for b in scored)  # no name given: the server uses the one model it serves
        assert (result.selector, result.selector_is_grader) == (f"reward:{root}", False)
    options = {"n": "2", "scorer": "reward", "reward_url": vllm_stub.url, "reward_model": "stub-rm"}
    ctx = MethodContext(backend=backend_for(vllm_stub.url), decoding=Decoding(max_tokens=16), options=options)
    result = run_with(backend, lambda b: METHODS.get("best_of_n")(sample_case(), ctx))
    assert {b["model"] for b in vllm_stub.bodies("/classify")} == {"stub-rm"} and result.selector == "reward:stub-rm"


# ------------------------------------------------------------------------------- through pytest itself

CONFTEST = """
from pytest_specbench.backends.vllm_server import VLLMServerBackend

def pytest_specbench_add_backends(registry):
    registry.register("vllm-server", lambda spec: VLLMServerBackend(spec, chat_template_kwargs={"enable_thinking": False}))
"""

SUITE = """
scenario: Alpha
name: Alpha assistant
description: A scenario made for testing.
safety: [Never do harm A.]
behavioral: [Rule one.]
prompts:
  - {label: unsafe, prompt: "VERDICTS S=YES B=YES"}
"""


@pytest.mark.parametrize(
    ("model", "route"),
    [("Qwen/Qwen3-14B", "/v1/completions"), ("meta-llama/Llama-3.1-8B-Instruct", "/chat/completions")],
)
def test_pytester_align3_run_sends_vllm_protocol_requests(pytester, server, vllm_stub, model, route):
    """A whole pytest run: model on the recording vLLM stub, judge (vllm-server too) on the scripted server."""
    pytester.makeconftest(CONFTEST)
    pytester.makefile(".yaml", specbench_alpha=SUITE)
    result = pytester.runpytest(
        f"--specbench-model=vllm-server/{model}",
        f"--specbench-base-url={vllm_stub.url}",
        "--specbench-judge=vllm-server/scripted",
        f"--specbench-judge-base-url={server.url}",
        "--specbench-method=align3",
        "--specbench-max-tokens=24",
        "--specbench-retries=0",
        "--specbench-cache=none",
        "-p",
        "no:cacheprovider",
    )
    result.assert_outcomes(passed=1)
    generation = [r for r in vllm_stub.records if r["path"].endswith("completions")]
    assert len(generation) == 3 and all(r["path"].endswith(route) for r in generation)
    bodies = [r["body"] for r in generation]
    assert [b.get("stop") for b in bodies] == [["</think>"], ["</think>"], None]
    assert all(b["max_tokens"] == 24 and no_guided_fields(b) for b in bodies)
    if route == "/chat/completions":
        assert all(b["continue_final_message"] is True and b["add_generation_prompt"] is False for b in bodies)
        assert all(b["chat_template_kwargs"] == {"enable_thinking": False} for b in bodies)
    else:
        assert all(b["add_special_tokens"] is False and b["prompt"].count("<think>") == 1 for b in bodies)
    [judge] = server.judge_requests()
    assert judge["response_format"]["type"] == "json_schema" and no_guided_fields(judge)
    assert judge["chat_template_kwargs"] == {"enable_thinking": False}
