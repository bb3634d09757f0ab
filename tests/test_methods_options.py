"""Method options, capability refusals and candidate ranking: fast checks, no model.

Bad input must be a clear error: an unknown option (with the valid ones listed), N < 1, a value of the
wrong kind, a method the backend cannot serve. Chat-only backends get Align3's multi-turn adaptation,
shown here against the scripted OpenAI-compatible server.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from test_vllm_stub import sample_case

from pytest_specbench.backends.base import BackendSpec, Decoding
from pytest_specbench.backends.openai_compat import OpenAICompatBackend
from pytest_specbench.errors import CapabilityError, ConfigError, RequestFailed
from pytest_specbench.methods import (
    MethodContext,
    MethodRegistry,
    MethodResult,
    OptionSpec,
    align3_passages,
    check_method_backend,
    method_options_help,
    parse_method_option,
    resolve_options,
    validate_method_options,
)
from pytest_specbench.methods.selection import Candidate

METHODS = MethodRegistry()

T = TypeVar("T")


# --------------------------------------------------------------------------------------------- options

SCORER_DEFAULTS = {
    "scorer": None,
    "temperature": None,
    "reward_url": None,
    "reward_model": None,
    "reward_route": "classify",
    "judge": None,
    "judge_base_url": None,
}
DEFAULTS = {
    "zero_think": {},
    "more_think": {"cycles": 3, "continuation": "Wait"},
    "align3": {"mode": "auto", "steps": ("behavioral", "safety", "audit")},
    "self_refine": {"iterations": 15, "history": 1},
    "best_of_n": {"n": 15, **SCORER_DEFAULTS},
    "tpo": {"samples": 5, "iterations": 2, **SCORER_DEFAULTS},
}


@pytest.mark.parametrize("method", sorted(DEFAULTS))
def test_defaults_are_the_papers(method):
    """Ranking methods have no default scorer: read-only resolution shows it unset, a run must choose."""
    assert METHODS.resolve_options(method, {}, complete=False) == DEFAULTS[method]


@pytest.mark.parametrize(
    ("method", "given", "key", "expected"),
    [
        ("best_of_n", {"n": "4"}, "n", 4),
        ("best_of_n", {"n": 4}, "n", 4),  # typed values from a YAML profile
        ("best_of_n", {"temperature": "0.9"}, "temperature", 0.9),
        ("best_of_n", {"temperature": "auto"}, "temperature", None),
        ("self_refine", {"iterations": "3"}, "iterations", 3),  # the authors' code default
        ("more_think", {"continuation": "Hmm"}, "continuation", "Hmm"),
        ("align3", {"mode": "chat"}, "mode", "chat"),
        ("tpo", {"scorer": "reward", "reward_url": "http://127.0.0.1:9"}, "scorer", "reward"),
        (
            "best_of_n",
            {"scorer": "judge", "judge": "openai/selector", "judge_base_url": "http://h:1/v1"},
            "judge",
            "openai/selector",
        ),
    ],
)
def test_values_are_read_from_text_or_typed(method, given, key, expected):
    assert METHODS.resolve_options(method, given, complete=False)[key] == expected


@pytest.mark.parametrize(
    ("method", "given", "message"),
    [
        (
            "best_of_n",
            {"N": "4"},
            r"unknown option best_of_n\.N; valid options of best_of_n: judge, judge_base_url, n, reward_model, reward_route, reward_url, scorer, temperature",
        ),
        (
            "self_refine",
            {"iters": "3", "rounds": "2"},
            r"unknown options self_refine\.iters, self_refine\.rounds; valid options of self_refine: history, iterations",
        ),
        ("zero_think", {"n": "2"}, r"valid options of zero_think: none"),
        ("best_of_n", {"n": "0"}, r"best_of_n\.n must be at least 1, got '0'"),
        ("best_of_n", {"n": -3}, r"best_of_n\.n must be at least 1"),
        ("best_of_n", {"n": "four"}, r"best_of_n\.n must be a whole number, got 'four'"),
        ("best_of_n", {"n": True}, r"best_of_n\.n must be a whole number"),
        ("best_of_n", {"n": 2.5}, r"best_of_n\.n must be a whole number"),
        ("tpo", {"samples": "1"}, r"tpo\.samples must be at least 2"),
        ("tpo", {"iterations": "0"}, r"tpo\.iterations must be at least 1"),
        ("more_think", {"cycles": "0"}, r"more_think\.cycles must be at least 1"),
        ("self_refine", {"history": "0"}, r"self_refine\.history must be at least 1"),
        ("best_of_n", {"temperature": "-0.1"}, r"best_of_n\.temperature must be at least 0"),
        ("best_of_n", {"temperature": "nan"}, r"best_of_n\.temperature must be a finite number"),
        ("best_of_n", {"scorer": "oracle"}, r"best_of_n\.scorer must be one of reward, judge, got 'oracle'"),
        ("best_of_n", {"scorer": "reward"}, r"best_of_n\.scorer=reward needs best_of_n\.reward_url"),
        (
            "best_of_n",
            {},
            r"best_of_n needs a scorer to rank its samples: best_of_n\.scorer=reward .* or best_of_n\.scorer=judge",
        ),
        ("tpo", {"samples": "3"}, r"tpo needs a scorer.*tpo\.scorer=reward.*tpo\.scorer=judge"),
        (
            "best_of_n",
            {"scorer": "reward", "reward_url": "http://h:1", "judge": "openai/x"},
            r"best_of_n\.judge cannot be used with best_of_n\.scorer=reward",
        ),
        (
            "best_of_n",
            {"scorer": "judge", "reward_url": "http://h:1"},
            r"best_of_n\.reward_url cannot be used with best_of_n\.scorer=judge",
        ),
        (
            "best_of_n",
            {"scorer": "judge", "judge_base_url": "http://h:1/v1"},
            r"best_of_n\.judge_base_url needs best_of_n\.judge",
        ),
        ("align3", {"mode": "fast"}, r"align3\.mode must be one of auto, prefill, chat"),
        (
            "best_of_nn",
            {},
            r"unknown method 'best_of_nn'; valid methods: align3, best_of_n, more_think, raw, self_refine, tpo, vanilla, zero_think",
        ),
    ],
)
def test_bad_options_are_clear_errors(method, given, message):
    with pytest.raises(ConfigError, match=message):
        validate_method_options(method, given)


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("best_of_n.n=4", ("best_of_n", "n", "4")),
        (" tpo.reward_url = http://h:1/v1 ", ("tpo", "reward_url", "http://h:1/v1")),
    ],
)
def test_method_option_items_parse(item, expected):
    assert parse_method_option(item) == expected


@pytest.mark.parametrize("item", ["best_of_n", "n=4", "best_of_n.n", "Best.n=4", ".n=4"])
def test_malformed_method_option_items_are_refused(item):
    with pytest.raises(ConfigError, match=r"NAME\.KEY=VALUE"):
        parse_method_option(item)


def test_a_method_that_receives_a_bad_option_refuses_before_any_call(server):
    backend = OpenAICompatBackend(BackendSpec("openai", "scripted", base_urls=(server.url,), max_retries=0))
    ctx = MethodContext(
        backend=backend, decoding=Decoding(max_tokens=8), options={"n": "0", "scorer": "judge"}, score_response=_half
    )
    with pytest.raises(ConfigError, match="best_of_n.n must be at least 1"):
        asyncio.run(METHODS.get("best_of_n")(sample_case(), ctx))
    assert server.requests == []


def test_help_lists_every_option_and_registry_gets_all_methods():
    text = method_options_help()
    for method in DEFAULTS:
        for key in METHODS.info(method).options:
            assert f"{method}.{key} (default" in text
    assert METHODS.names == sorted(["raw", "vanilla", *DEFAULTS])
    assert MethodRegistry(builtins=False).names == []


# ----------------------------------------------------------------------------------------- capability


def run(backend: OpenAICompatBackend, work: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        try:
            return await work()
        finally:
            await backend.aclose()

    return asyncio.run(main())


async def _half(case: Any, text: str) -> float:
    return 0.5


@pytest.mark.parametrize(
    ("method", "options"), [("zero_think", {}), ("more_think", {}), ("align3", {"mode": "prefill"})]
)
def test_prefill_methods_on_a_chat_only_backend_name_the_backends_that_can(server, method, options):
    backend = OpenAICompatBackend(BackendSpec("openai", "gpt-4.1", base_urls=(server.url,), max_retries=0))
    with pytest.raises(CapabilityError, match=r"prefill.*openai/gpt-4\.1 backend cannot.*llamacpp, vllm, vllm-server"):
        check_method_backend(method, backend, options)
    ctx = MethodContext(backend=backend, decoding=Decoding(max_tokens=8), options=options)
    with pytest.raises(CapabilityError, match=r"llamacpp, vllm, vllm-server"):
        run(backend, lambda: METHODS.get(method)(sample_case(), ctx))
    assert server.requests == [], "refused before sending anything"


def test_align3_on_a_chat_only_backend_runs_the_multi_turn_adaptation(server):
    backend = OpenAICompatBackend(BackendSpec("openai", "scripted", base_urls=(server.url,), max_retries=0))
    check_method_backend("align3", backend, validate_method_options("align3", {}))  # auto: allowed
    ctx = MethodContext(backend=backend, decoding=Decoding(max_tokens=64))
    case = sample_case()
    result: MethodResult = run(backend, lambda: METHODS.get("align3")(case, ctx))
    behavioral, safety, audit = align3_passages(case.scenario, chat=True)
    assert [s.stage for s in result.steps] == ["align3.behavioral", "align3.safety", "align3.audit"]
    assert len(server.requests) == 3
    first, second, third = (r["messages"] for r in server.requests)
    assert (
        first[-1]["role"] == "user"
        and first[-1]["content"].startswith(case.prompt)
        and first[-1]["content"].endswith(behavioral)
    )
    assert [m["role"] for m in third] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert second[-1]["content"] == safety and third[-1]["content"] == audit
    assert all("continue_final_message" not in r and "extra_body" not in r for r in server.requests)
    # The scripted server echoes the last user turn, so the answer is the audit turn's reply.
    assert result.response == "ANSWER: " + audit
    assert result.thought.index(behavioral) < result.thought.index(safety) < result.thought.index(audit)


# -------------------------------------------------------------------------------------------- scoring


def test_best_of_n_without_a_judge_says_how_to_score(server):
    backend = OpenAICompatBackend(BackendSpec("openai", "scripted", base_urls=(server.url,), max_retries=0))
    ctx = MethodContext(backend=backend, decoding=Decoding(max_tokens=8), options={"n": "2", "scorer": "judge"})
    with pytest.raises(ConfigError, match=r"needs a run with a judge.*judge=PROVIDER/NAME.*scorer=reward"):
        run(backend, lambda: METHODS.get("best_of_n")(sample_case(), ctx))
    assert server.requests == [], "refused before drawing samples"


def test_unreachable_reward_model_is_an_error_not_a_silent_fallback(server):
    backend = OpenAICompatBackend(BackendSpec("openai", "scripted", base_urls=(server.url,), max_retries=0))
    options = {"n": "2", "scorer": "reward", "reward_url": "http://127.0.0.1:9", "reward_model": "rm"}
    ctx = MethodContext(backend=backend, decoding=Decoding(max_tokens=8), options=options)
    with pytest.raises(
        RequestFailed, match=r"reward model at http://127\.0\.0\.1:9/classify did not answer: cannot connect"
    ):
        run(backend, lambda: METHODS.get("best_of_n")(sample_case(), ctx))
    assert len(server.requests) == 2  # the samples were drawn; only the rating failed


def test_samples_get_distinct_seeds_and_a_sampling_temperature(server):
    backend = OpenAICompatBackend(BackendSpec("openai", "scripted", base_urls=(server.url,), max_retries=0))
    ctx = MethodContext(
        backend=backend,
        decoding=Decoding(max_tokens=8, seed=100),
        options={"n": "3", "scorer": "judge"},
        score_response=_half,
    )
    run(backend, lambda: METHODS.get("best_of_n")(sample_case(), ctx))
    assert sorted(r["seed"] for r in server.requests) == [100, 101, 102]
    assert {r["temperature"] for r in server.requests} == {0.7}  # greedy run: N copies would be pointless


@pytest.mark.parametrize(
    ("candidates", "winner"),
    [
        ([Candidate(0, "", "a", 10, 0.5), Candidate(1, "", "b", 10, 0.9)], 1),  # higher s wins
        ([Candidate(0, "", "a", 12, 0.8), Candidate(1, "", "b", 7, 0.8)], 1),  # tie: fewer tokens
        ([Candidate(0, "", "a", 7, 0.8), Candidate(1, "", "b", 7, 0.8)], 0),  # full tie: earlier draw
        ([Candidate(0, "", "a", 1, None), Candidate(1, "", "b", 50, 0.0)], 1),  # unscored never beats scored
        ([Candidate(0, "", "a", 9, None), Candidate(1, "", "b", 3, None)], 1),  # all unscored: fewer tokens
    ],
)
def test_candidate_ranking(candidates, winner):
    assert max(candidates, key=lambda c: c.rank_key).index == winner
    assert Candidate(0, "", "x", 1, None).rank_key[0] == -math.inf


def test_setup_check_validates_options_before_any_case():
    backend = OpenAICompatBackend(
        BackendSpec("openai", "scripted", base_urls=("http://127.0.0.1:9/v1",), max_retries=0)
    )
    with pytest.raises(ConfigError, match=r"unknown option align3\.mod; valid options of align3: mode"):
        check_method_backend("align3", backend, {"mod": "chat"})


async def _echo(case: Any, ctx: MethodContext) -> MethodResult:
    opts = resolve_options("echo_twice", ECHO_OPTIONS, ctx.options)
    return MethodResult(case.prompt * opts["times"], "", ())


ECHO_OPTIONS = {"times": OptionSpec(2, "int", "how many copies", minimum=1)}


def test_a_third_party_method_registers_its_options_and_needs():
    """No table to edit: the registration carries the options, and the setup check reads the declared needs."""
    registry = MethodRegistry()
    registry.register("echo_twice", _echo, options=ECHO_OPTIONS, needs=("prefill",))
    assert registry.resolve_options("echo_twice", {"times": "3"}) == {"times": 3}
    assert "echo_twice.times (default 2): how many copies" in registry.help()
    with pytest.raises(ConfigError, match=r"echo_twice\.times must be at least 1"):
        registry.run_options(["echo_twice"], {"echo_twice": {"times": "0"}})
    with pytest.raises(ConfigError, match=r"unknown option echo_twice\.copies; valid options of echo_twice: times"):
        registry.run_options(["vanilla"], {"echo_twice": {"copies": "1"}})
    chat_only = OpenAICompatBackend(
        BackendSpec("openai", "scripted", base_urls=("http://127.0.0.1:9/v1",), max_retries=0)
    )
    with pytest.raises(
        CapabilityError, match=r"echo_twice continues a partial assistant turn \(prefill\).*llamacpp, vllm, vllm-server"
    ):
        registry.check_backend("echo_twice", chat_only, {})
    with pytest.raises(ConfigError, match=r"declares unknown needs telepathy"):
        registry.register("mind_reader", _echo, needs=("telepathy",))
