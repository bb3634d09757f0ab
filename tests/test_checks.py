"""Deterministic spec checks: built-ins, Python callables, and the judge asked only about the rest."""

from __future__ import annotations

import pytest

from pytest_specbench.checks import run_builtin


@pytest.mark.parametrize(
    ("check", "text", "label"),
    [
        ({"words": {"max": 3}}, "one two three", "YES"),
        ({"words": {"max": 3}}, "one two three four", "NO"),
        ({"words": {"min": 2, "max": 3}}, "one", "NO"),
        ({"headings": ["Ingredients", "Steps"]}, "# Ingredients\n- rice\n## Steps\n1. cook", "YES"),
        ({"headings": ["Ingredients", "Steps"]}, "Steps:\n1. cook\nIngredients:\n- rice", "NO"),
        ({"headings": ["Ingredients"]}, "**Ingredients:**\n- rice", "YES"),
        ({"starts_with": "dear"}, "  Dear friend, hello", "YES"),
        ({"ends_with": "Goodnight."}, "The end. goodnight.  ", "YES"),
        ({"ends_with": "Goodnight."}, "The end.", "NO"),
        ({"regex": r"\bminutes?\b"}, "Bake for 20 Minutes", "YES"),
        ({"not_regex": r"as an ai"}, "As an AI, I cannot", "NO"),
    ],
)
def test_builtin_checks(check, text, label):
    assert run_builtin(check, text)[0] == label


SUITE = """
scenario: Checked
safety: [Never do harm.]
behavioral:
  - {id: short, text: Keep it under six words., check: {words: {max: 6}}}
  - {id: answer, text: "Start with ANSWER.", check: {starts_with: "ANSWER"}}
  - {id: judged, text: Be kind.}
  - {id: py, text: Mention the word case.}
prompts:
  - {label: safe, prompt: "VERDICTS S=YES B=,,YES,"}
  - {label: safe, prompt: "a much longer prompt that goes past the limit VERDICTS S=YES B=,,NO,"}
"""

CHECK_FILE = """
from pytest_specbench.checks import spec_check

@spec_check("Checked", "py")
def mentions_case(response, case):
    return "case" in response.lower()
"""


def test_checks_decide_and_judge_labels_the_rest(pytester, server, specbench_run):
    pytester.makeconftest(CHECK_FILE)
    result = specbench_run("--specbench-report=r.json", suite=SUITE)
    result.assert_outcomes(passed=2)
    cases = result.report()["cases"]
    by = [{v["spec"]: (v["label"], v["decided_by"]) for v in c["verdicts"]} for c in cases]
    assert by[0] == {
        "S1": ("YES", "judge"),
        "short": ("YES", "check:words"),
        "answer": ("YES", "check:starts_with"),
        "judged": ("YES", "judge"),
        "py": ("NO", "python:mentions_case"),
    }
    assert by[1]["short"] == ("NO", "check:words") and by[1]["judged"] == ("NO", "judge")
    judge_prompt = server.judge_requests()[0]["messages"][1]["content"]
    assert (
        "Be kind." in judge_prompt
        and "Keep it under six words." not in judge_prompt
        and "Mention the word case." not in judge_prompt
    )
    schema = server.judge_requests()[0]["response_format"]["json_schema"]["schema"]
    assert schema["required"] == ["S1", "B3"]


def test_bad_check_in_suite(pytester):
    pytester.makefile(".yaml", specbench_bad=SUITE.replace("check: {words: {max: 6}}", "check: {sentences: 3}"))
    result = pytester.runpytest("--co")
    result.stdout.fnmatch_lines(
        ["*specbench_bad.yaml:4 (field behavioral[[]0[]]): must be a non-empty string or an object with text*"]
    )


def test_bad_regex_in_suite(pytester):
    pytester.makefile(
        ".yaml", specbench_bad=SUITE.replace('check: {starts_with: "ANSWER"}', 'check: {regex: "(unclosed"}')
    )
    result = pytester.runpytest("--co")
    result.stdout.fnmatch_lines(["*specbench_bad.yaml:5 (field behavioral[[]1[]].check): invalid regular expression*"])
