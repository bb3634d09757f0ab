"""Methods, method options and model profiles through pytest itself, on the scripted server."""

from __future__ import annotations

import json

import pytest

SUITE = """
scenario: Gamma
safety: [Never do harm.]
behavioral: [Rule one., Rule two.]
prompts:
  - {label: safe, prompt: "VERDICTS S=YES B=YES,NO"}
  - {label: unsafe, prompt: "VERDICTS S=YES B=YES,YES"}
"""


def test_method_list_parametrizes_and_compares(specbench_run, pytester, server):
    result = specbench_run(
        "--specbench-method=vanilla,raw,self_refine",
        "--specbench-method-opt=self_refine.iterations=2",
        "-v",
        "--specbench-report=r.json",
        suite=SUITE,
    )
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(
        ["*Gamma::safe-0000[[]vanilla[]] PASSED*", "*Gamma::safe-0000[[]self_refine[]] PASSED*"]
    )
    result.stdout.fnmatch_lines(["*compared with openai/scripted · vanilla*", "openai/scripted · raw*+0.0*"])
    cases = result.report()["cases"]
    refine = [c for c in cases if c["method"] == "self_refine"]
    assert all(len(c["steps"]) == 1 + 2 * 2 for c in refine), "one answer, then feedback and rewrite per iteration"
    assert {c["group"] for c in cases} == {
        "openai/scripted · vanilla",
        "openai/scripted · raw",
        "openai/scripted · self_refine",
    }


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--specbench-method-opt=best_of_n.m=3"], "*unknown option best_of_n.m; valid options of best_of_n:*n*"),
        (["--specbench-method-opt=best_of_n.n=0"], "*best_of_n.n must be at least 1*"),
        (["--specbench-method-opt=bestofn"], "*method options are written NAME.KEY=VALUE*"),
        (["--specbench-method-opt=nope.n=3"], "*unknown method 'nope'*"),
        (
            ["--specbench-method=vanilla,think"],
            "*unknown method 'think'; valid methods: align3, best_of_n, more_think, raw, self_refine, tpo, vanilla, zero_think*",
        ),
    ],
)
def test_bad_method_input(specbench_run, pytester, server, args, expected):
    result = specbench_run(*args, suite=SUITE)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([expected])


def test_prefill_method_on_chat_only_backend_errors_each_case_clearly(specbench_run, pytester, server):
    result = specbench_run("--specbench-method=zero_think", suite=SUITE)
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*zero_think continues a partial assistant turn (prefill)*cannot do*vllm-server*"])
    assert not server.requests


def test_profile_supplies_provider_and_sampling(specbench_run, pytester, server):
    pytester.makefile(
        ".yaml",
        models=f"""
profiles:
  tiny-qwen:
    provider: vllm-server
    model: scripted
    base_urls: ["{server.url}"]
    thinking: false
    temperature: 0.7
    top_p: 0.8
    top_k: 20
    max_tokens: 64
method_options:
  self_refine: {{iterations: 1}}
""",
    )
    result = specbench_run(
        "--specbench-model=tiny-qwen", "--specbench-model-config=models.yaml", "--specbench-judge=openai/scripted", f"--specbench-judge-base-url={server.url}",
        suite=SUITE, model=None, server=None,
    )  # fmt: skip
    result.assert_outcomes(passed=2)
    body = server.generation_requests()[0]
    assert (body["temperature"], body["top_p"], body["top_k"], body["max_tokens"]) == (0.7, 0.8, 20, 64)
    assert body["chat_template_kwargs"] == {"enable_thinking": False}
    assert "guided_json" not in json.dumps(server.requests)


def test_profile_typo_is_a_clear_error(specbench_run, pytester, server):
    pytester.makefile(".yaml", models="profiles:\n  mine:\n    provider: openai\n    model: x\n    temprature: 0.3\n")
    result = specbench_run("--specbench-model=mine", "--specbench-model-config=models.yaml", suite=SUITE, model=None)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*models.yaml*mine*temprature*temperature*"])


PLUGIN_METHOD = """
from pytest_specbench.methods import MethodResult, OptionSpec, resolve_options, split_thinking, vanilla_messages

POLITE_OPTIONS = {"phrase": OptionSpec("Thank you.", "text", "sentence every answer must end with"), "times": OptionSpec(1, "int", "how often", minimum=1)}

async def polite(case, ctx):
    opts = resolve_options("polite", POLITE_OPTIONS, ctx.options)
    steps = []
    messages = vanilla_messages(case, ctx.prompt_field)
    messages[-1]["content"] += " " + " ".join([opts["phrase"]] * opts["times"])
    completion = await ctx.call("polite.answer", messages, steps)
    thought, response = split_thinking(completion)
    return MethodResult(response, thought, tuple(steps))

def pytest_specbench_add_methods(registry):
    registry.register("polite", polite, options=POLITE_OPTIONS)
"""


def test_a_plugin_method_registers_through_the_hook_with_its_options(specbench_run, pytester, server):
    pytester.makeconftest(PLUGIN_METHOD)
    result = specbench_run(
        "--specbench-method=polite",
        "--specbench-method-opt=polite.phrase=Cheers!",
        "--specbench-method-opt=polite.times=2",
        suite=SUITE,
    )
    result.assert_outcomes(passed=2)
    assert all(r["messages"][-1]["content"].endswith("Cheers! Cheers!") for r in server.generation_requests())
    bad = specbench_run("--specbench-method=polite", "--specbench-method-opt=polite.times=0", suite=SUITE)
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*polite.times must be at least 1*"])
    typo = specbench_run("--specbench-method=polite", "--specbench-method-opt=polite.phrases=Hi", suite=SUITE)
    typo.stderr.fnmatch_lines(["*unknown option polite.phrases; valid options of polite: phrase, times*"])
