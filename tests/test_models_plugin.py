"""The resolver through pytest and the toolkit: completion budgets, judge profiles, a third-party provider,
and a plugin that costs nothing in a project without spec suites."""

from __future__ import annotations

import json

import pytest

from pytest_specbench.cli import main

SUITE = """
scenario: Gamma
safety: [Never do harm.]
behavioral: [Rule one.]
prompts:
  - {label: safe, prompt: "VERDICTS S=YES B=YES"}
  - {label: unsafe, prompt: "VERDICTS S=YES B=NO"}
"""

JUDGES = """
profiles:
  strict-judge:
    provider: openai
    model: scripted-judge
    temperature: 0.25
    max_tokens: 777
"""

GATEWAY = '''
"""A third-party provider, registered through the plugin's hook."""
from pytest_specbench.backends.openai_compat import OpenAICompatBackend


class GatewayBackend(OpenAICompatBackend):
    provider = "gateway"

    def request_body(self, request):
        body = super().request_body(request)
        body["via_gateway"] = True  # what the server sees proves this class sent the request
        return body


def pytest_specbench_add_backends(registry):
    registry.register("gateway", GatewayBackend)
'''


def test_a_server_model_without_a_budget_sends_none(specbench_run, pytester, server):
    """No silent cap: ``openai/NAME`` with no max-tokens leaves the budget to the server, for model and judge."""
    ran = specbench_run("--specbench-report=r.json", suite=SUITE)
    ran.assert_outcomes(passed=2)
    assert server.generation_requests() and server.judge_requests()
    assert all("max_tokens" not in body for body in server.requests)
    assert all(body["temperature"] == 0.0 for body in server.judge_requests()), (
        "the judge is greedy by default, as in the paper"
    )
    settings = ran.report()["settings"]
    assert settings["max_tokens"] is None and settings["judge_temperature"] == 0.0


def test_a_given_budget_is_sent(specbench_run, pytester, server):
    specbench_run("--specbench-max-tokens=99", "--specbench-judge-max-tokens=55", suite=SUITE).assert_outcomes(passed=2)
    assert {b["max_tokens"] for b in server.generation_requests()} == {99}
    assert {b["max_tokens"] for b in server.judge_requests()} == {55}


def test_a_judge_profile_sets_the_judges_budget_and_temperature(specbench_run, pytester, server):
    pytester.makefile(".yaml", judges=JUDGES)
    args = (
        "--specbench-model=openai/scripted",
        "--specbench-judge=strict-judge",
        "--specbench-model-config=judges.yaml",
    )
    specbench_run(*args, suite=SUITE, model=None).assert_outcomes(passed=2)
    judged = server.judge_requests()
    assert judged and all(
        (b["model"], b["max_tokens"], b["temperature"]) == ("scripted-judge", 777, 0.25) for b in judged
    )
    assert all("max_tokens" not in b for b in server.generation_requests())


def test_judge_flags_override_the_profile_only_when_given(specbench_run, pytester, server):
    pytester.makefile(".yaml", judges=JUDGES)
    args = (
        "--specbench-model=openai/scripted",
        "--specbench-judge=strict-judge",
        "--specbench-model-config=judges.yaml",
    )
    specbench_run(
        *args, "--specbench-judge-temperature=0", "--specbench-judge-max-tokens=300", suite=SUITE, model=None
    ).assert_outcomes(passed=2)
    assert {(b["max_tokens"], b["temperature"]) for b in server.judge_requests()} == {(300, 0.0)}


def test_a_third_party_provider_serves_pytest_and_the_toolkit(
    specbench_run, pytester, server, tmp_path, monkeypatch, capsys
):
    """One hook, one registry: ``pytest -p MODULE`` and ``specbench -p MODULE synthesize`` reach the same class."""
    pytester.makepyfile(gateway_plugin=GATEWAY)
    pytester.syspathinsert()
    result = specbench_run(
        "-p",
        "gateway_plugin",
        "--specbench-model=gateway/scripted",
        "--specbench-judge=gateway/scripted",
        suite=SUITE,
        model=None,
    )
    result.assert_outcomes(passed=2)
    assert len(server.requests) == 4 and all(body.get("via_gateway") for body in server.requests)

    monkeypatch.syspath_prepend(str(pytester.path))
    suite = tmp_path / "specbench_app.yaml"
    suite.write_text("scenario: App\nsafety: [Never do harm.]\nbehavioral: [Be brief.]\n")
    before = len(server.requests)
    status = main(
        [
            "-p",
            "gateway_plugin",
            "synthesize",
            str(suite),
            "-o",
            str(tmp_path / "specbench_app_synth.yaml"),
            "--model",
            "gateway/scripted",
            "--base-url",
            server.url,
            "--no-cache",
            "--per-spec",
            "1",
            "--safe",
            "1",
        ]
    )
    assert status == 0, capsys.readouterr().err
    made = server.requests[before:]
    assert len(made) == 2 and all(body.get("via_gateway") for body in made)


def test_the_toolkit_without_the_plugin_module_names_the_valid_providers(tmp_path, capsys):
    suite = tmp_path / "specbench_app.yaml"
    suite.write_text("scenario: App\nsafety: [Never do harm.]\nbehavioral: [Be brief.]\n")
    assert main(["synthesize", str(suite), "--model", "gateway/x", "--no-cache"]) == 2
    assert (
        "unknown model provider 'gateway'; valid providers: llamacpp, openai, vllm, vllm-server"
        in capsys.readouterr().err
    )
    assert main(["-p", "no_such_plugin_module", "synthesize", str(suite), "--model", "gateway/x", "--no-cache"]) == 2
    assert "-p no_such_plugin_module: the plugin module cannot be imported" in capsys.readouterr().err


MODULES_CONFTEST = """
import json, sys

def pytest_unconfigure(config):
    names = sorted(m for m in sys.modules if m.startswith(("pytest_specbench", "yaml", "aiohttp", "openai", "numpy", "llama_cpp", "sqlite3")))
    with open("modules.json", "w") as f:
        json.dump(names, f)
"""
#: What a project without spec suites must never import (the option table's list of HTTP-client names,
#: ``pytest_specbench.backends.http``, is a constant in a module that imports nothing).
HEAVY = (
    "pytest_specbench.methods",
    "pytest_specbench.suite",
    "pytest_specbench.cache",
    "pytest_specbench.runner",
    "pytest_specbench.judge",
    "pytest_specbench.profiles",
    "pytest_specbench.models",
    "pytest_specbench.backends.base",
    "pytest_specbench.backends.openai_compat",
    "pytest_specbench.backends.llamacpp",
    "pytest_specbench.backends.vllm",
    "pytest_specbench.reporting",
    "pytest_specbench.summary",
    "pytest_specbench.toolkit",
    "pytest_specbench.templates",
    "pytest_specbench.warmup",
    "yaml",
    "aiohttp",
    "openai",
    "numpy",
    "llama_cpp",
    "sqlite3",
)


def _loaded(pytester: pytest.Pytester, *args: str) -> list[str]:
    result = pytester.runpytest_subprocess(*args)
    result.assert_outcomes(passed=1)
    return json.loads((pytester.path / "modules.json").read_text())


def test_a_plain_project_gets_options_and_nothing_else(pytester):
    pytester.makepyfile(test_one="def test_one():\n    assert 1 + 1 == 2\n")
    pytester.makeconftest(MODULES_CONFTEST)
    loaded = _loaded(pytester)
    assert [m for m in loaded if m.startswith(HEAVY)] == []
    assert [p for p in (pytester.path / ".pytest_cache").rglob("*") if "specbench" in p.name] == []
    # the check above can fail: an explicit --specbench-* option does set the run up at configure
    loaded = _loaded(pytester, "--specbench-model=openai/x")
    assert "pytest_specbench.methods.registry" in loaded and "pytest_specbench.methods.align3" in loaded
