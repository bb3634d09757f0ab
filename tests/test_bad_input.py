"""Every bad input named in the design gets one clear paragraph, never a traceback."""

from __future__ import annotations

import json
import shutil

import pytest

from pytest_specbench.options import OPT_DATA, OPT_METHOD, OPT_MIN_SAR, OPT_MODEL

GOOD = """
scenario: Alpha
safety: [Never do harm.]
behavioral: [Be brief.]
prompts:
  - {label: safe, prompt: hello}
"""


def no_traceback(result) -> None:
    text = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in text and "INTERNALERROR" not in text


def test_missing_data_dir(pytester):
    result = pytester.runpytest(f"{OPT_DATA}=nowhere")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*SpecBench data directory*nowhere does not exist*--specbench-data*"])
    no_traceback(result)


def test_missing_data_dir_from_environment(pytester, monkeypatch):
    monkeypatch.setenv("SPECBENCH_DATA", "/no/such/dir")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*/no/such/dir does not exist*"])


def test_scenario_folder_missing_a_file(pytester, specbench_data):
    data = pytester.path / "data"
    shutil.copytree(specbench_data / "Child", data / "Child")
    (data / "Child" / "specifications.json").unlink()
    result = pytester.runpytest(f"{OPT_DATA}=data", "--co")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*data/Child: scenario folder lacks specifications.json*"])
    no_traceback(result)


def test_malformed_specbench_prompts(pytester, specbench_data):
    data = pytester.path / "data"
    shutil.copytree(specbench_data / "Child", data / "Child")
    prompts = json.loads((data / "Child" / "prompts.json").read_text())
    prompts[7]["label"] = "harmless"
    (data / "Child" / "prompts.json").write_text(json.dumps(prompts))
    result = pytester.runpytest(f"{OPT_DATA}=data", "--co")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*prompts.json (field [[]7[]].label): label must be 'safe' or 'unsafe', not 'harmless'*"]
    )


@pytest.mark.parametrize(
    ("suite", "expected"),
    [
        ("scenario: A\nsafety: [x\nbehavioral: [y]\n", "*specbench_bad.yaml:3: YAML syntax error*"),
        (
            GOOD.replace("safety: [Never do harm.]\n", ""),
            "*specbench_bad.yaml:1 (field (top level)): 'safety' is required*",
        ),
        (
            GOOD.replace("behavioral: [Be brief.]", "behavioral: []"),
            "*specbench_bad.yaml:3 (field behavioral): [[][]] should be non-empty*",
        ),
        (
            GOOD.replace("prompt: hello", 'prompt: "  "'),
            "*specbench_bad.yaml:5 (field prompts[[]0[]].prompt): must not be empty*",
        ),
        (
            GOOD.replace("{label: safe, prompt: hello}", "{label: safe}"),
            "*specbench_bad.yaml:5 (field prompts[[]0[]]): 'prompt' is required*",
        ),
        (
            GOOD.replace("label: safe", "label: benign"),
            "*specbench_bad.yaml:5 (field prompts[[]0[]].label): 'benign' is not one of [[]'safe', 'unsafe'[]]*",
        ),
        (GOOD.replace("scenario: Alpha", "scenario: Alpha\ncolour: blue"), "*unknown key: 'colour' was unexpected*"),
        ("- just\n- a list\n", "*specbench_bad.yaml: a suite must be a YAML mapping*"),
        ("a: &x [*x]\n", "*specbench_bad.yaml*"),
        ("a: !!python/object/apply:os.system [echo pwned]\n", "*specbench_bad.yaml:1: YAML syntax error*"),
    ],
)
def test_bad_yaml_suites(pytester, suite, expected):
    pytester.makefile(".yaml", specbench_bad=suite)
    result = pytester.runpytest("--co")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert "invalid spec suite:" in result.stdout.str()
    result.stdout.fnmatch_lines([expected])
    no_traceback(result)


def test_prompt_file_problems_name_the_file_and_line(pytester):
    pytester.makefile(
        ".yaml", specbench_bad=GOOD.replace("prompts:\n  - {label: safe, prompt: hello}", "prompts_file: p.jsonl")
    )
    pytester.makefile(".jsonl", p='{"label": "safe", "prompt": "ok"}\n{"label": "safe", "prompt": ""}\n')
    result = pytester.runpytest("--co")
    result.stdout.fnmatch_lines(["*p.jsonl:2 (field [[]1[]].prompt): the prompt text is missing or empty*"])


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([f"{OPT_MODEL}=bedrock/claude"], "*unknown model provider 'bedrock'; valid providers: llamacpp, openai*"),
        ([f"{OPT_MODEL}=openai/"], "*--specbench-model: 'openai/' is not PROVIDER/NAME*"),
        ([f"{OPT_MODEL}=smollm2"], "*no profile 'smollm2'*profiles: Qwen3-14B*"),
        (["--specbench-judge=nope/x"], "*unknown model provider 'nope'*"),
        ([f"{OPT_METHOD}=think_harder"], "*unknown method 'think_harder'; valid methods: *raw*vanilla*"),
        ([f"{OPT_MIN_SAR}=62"], "*--specbench-min-sar: gate '62': threshold must be within [[]0, 1[]]*"),
        ([f"{OPT_MIN_SAR}=Child:1.5"], "*threshold must be within [[]0, 1[]]*"),
        (["--specbench-alpha=-0.1"], "*--specbench-alpha: must be within [[]0, 1[]]*"),
        (["--specbench-split=evil"], "*--specbench-split: 'evil' is not one of all, unsafe, safe*"),
        (["--specbench-limit=0"], "*--specbench-limit: must be at least 1*"),
        (["--specbench-report=missing/dir/r.json"], "*the folder of missing/dir/r.json does not exist*"),
    ],
)
def test_bad_options(pytester, args, expected):
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([expected])
    no_traceback(result)


def test_bad_ini_value_is_a_usage_error(pytester):
    pytester.makeini("[pytest]\nspecbench_alpha = lots\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*ini specbench_alpha: 'lots' is not a number*"])


def test_gate_naming_an_unknown_scenario(pytester):
    pytester.makefile(".yaml", specbench_ok=GOOD)
    result = pytester.runpytest(f"{OPT_MIN_SAR}=Chlid:0.7", "--co")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*gate SAR Chlid >= 0.700 names scenario 'Chlid', which is not among the collected scenarios (Alpha)*"]
    )


def test_unknown_scenario_filter_for_dataset(pytester, specbench_data):
    result = pytester.runpytest(f"{OPT_DATA}={specbench_data}", "--specbench-scenarios=Kids", "--co")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown scenario(s) Kids; the data has Biochem, Child, Code, Health, Travel*"])


def test_fixture_without_suite_marker(pytester):
    pytester.makepyfile("def test_x(specbench_result):\n    pass\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*uses specbench_case but has no @pytest.mark.specbench_suite(path) marker*"])
    no_traceback(result)
