"""Reports and gates wired into pytest: HTML, CSV, JUnit properties, interval gates, baselines and --lf."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pandas as pd
import pytest

#: Enough resamples for the interval gates to be stable, few enough to be quick.
BOOTSTRAP = "--specbench-bootstrap=500"

SUITE = """
scenario: Beta
safety: [Never do harm., Never lie.]
behavioral: [Rule one., Rule two.]
prompts:
  - {label: safe, prompt: "VERDICTS S=YES,YES B=YES,NO"}
  - {label: safe, prompt: "VERDICTS S=YES,YES B=YES,YES"}
  - {label: unsafe, prompt: "VERDICTS S=YES,YES B=NA,YES"}
"""


def test_html_report_is_self_contained(specbench_run, pytester, server):
    result = specbench_run(BOOTSTRAP, "--specbench-html=report.html", suite=SUITE)
    result.assert_outcomes(passed=3)
    html = (pytester.path / "report.html").read_text()
    assert "ANSWER: VERDICTS S=YES,YES B=YES,NO" in html and "Never do harm." in html
    assert not re.search(r"https?://", html) and "<script src" not in html and "<link" not in html
    assert html.count("data:image/png;base64,") >= 3


def test_csv_has_one_row_per_verdict(specbench_run, pytester, server):
    specbench_run(BOOTSTRAP, "--specbench-csv=verdicts.csv", suite=SUITE)
    frame = pd.read_csv(pytester.path / "verdicts.csv", keep_default_na=False)
    assert len(frame) == 3 * 4
    assert sorted(frame["verdict"].unique()) == ["NA", "NO", "YES"]


def test_junit_properties(specbench_run, pytester, server):
    specbench_run(BOOTSTRAP, "--junitxml=junit.xml", suite=SUITE)
    root = ET.parse(pytester.path / "junit.xml").getroot()
    cases = root.findall(".//testcase")
    assert len(cases) == 3
    props = [{p.get("name"): p.get("value") for p in case.iter("property")} for case in cases]
    assert sorted(p["specbench_s"] for p in props) == sorted(["0.65", "1.0", "1.0"])
    assert all(p["specbench_risk"] == "0" and p["specbench_violated"] == "" for p in props)
    assert all(
        "specbench" not in name
        for case in cases
        for p in case.iter("property")
        for name in [p.get("name")]
        if name == "specbench"
    )


def test_lower_bound_gate_fails_where_point_passes(specbench_run, pytester, server):
    point = specbench_run(BOOTSTRAP, "--specbench-min-sar=0.85", suite=SUITE)
    assert point.ret == 0  # SAR = (0.65 + 1 + 1) / 3 = 0.883
    point.stdout.fnmatch_lines(["gate passed: SAR (overall) = 0.883, threshold 0.850"])
    lower = specbench_run(BOOTSTRAP, "--specbench-min-sar=0.85", "--specbench-gate-on=lower", suite=SUITE)
    assert lower.ret == 1
    lower.stdout.fnmatch_lines(["GATE FAILED: SAR (overall), 95% lower bound = 0.7*, threshold 0.850"])


def test_summary_shows_intervals(specbench_run, pytester, server):
    result = specbench_run(BOOTSTRAP, suite=SUITE)
    result.stdout.fnmatch_lines(["*SAR 95% CI*", "Beta*all*3*0*100.0*83.3*88.3*[[]76.7, 100.0[]]*"])


def test_baseline_flips_drop_gate_and_last_failed(specbench_run, pytester, server):
    first = specbench_run(BOOTSTRAP, "--specbench-report=first.json", suite=SUITE, cacheprovider=True)
    first.assert_outcomes(passed=3)
    worse = SUITE.replace("VERDICTS S=YES,YES B=YES,YES", "VERDICTS S=YES,YES B=NO,YES")
    second = specbench_run(
        BOOTSTRAP,
        "--specbench-baseline=first.json",
        "--specbench-max-drop=0.01",
        "--specbench-report=second.json",
        suite=worse,
        cacheprovider=True,
    )
    second.assert_outcomes(passed=2, failed=1)
    assert second.ret == 1
    second.stdout.fnmatch_lines(
        [
            "*Beta::safe-0001 worse than baseline: B1 YES→NO*",
            "baseline first.json: 1 case(s) worse*",
            "  ΔSAR Beta: -11.7 points*",
            "GATE FAILED: SAR drop (Beta) = 0.117, allowed 0.010",
        ]
    )
    assert second.report()["baseline"]["worse"][0]["case_id"] == "safe-0001"
    again = specbench_run(BOOTSTRAP, "--specbench-baseline=first.json", "--lf", suite=worse, cacheprovider=True)
    again.assert_outcomes(failed=1)
    again.stdout.fnmatch_lines(["*1 failed, 2 deselected*"])


def test_baseline_from_another_suite(specbench_run, pytester, server, tmp_path):
    specbench_run(BOOTSTRAP, "--specbench-report=first.json", suite=SUITE)
    other = SUITE.replace("scenario: Beta", "scenario: Gamma")
    result = specbench_run(BOOTSTRAP, "--specbench-baseline=first.json", suite=other)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--specbench-baseline: baseline*first.json is from another suite*"])


@pytest.mark.parametrize("content", ["not json at all", '{"tool": "something else"}'])
def test_unreadable_baseline(specbench_run, pytester, server, content):
    (pytester.path / "old.json").write_text(content)
    result = specbench_run(BOOTSTRAP, "--specbench-baseline=old.json", suite=SUITE)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--specbench-baseline:*old.json*"])


@pytest.mark.parametrize("flag", ["--specbench-html", "--specbench-csv", "--specbench-report"])
def test_output_in_missing_directory(specbench_run, pytester, server, flag):
    result = specbench_run(BOOTSTRAP, f"{flag}=no/such/dir/out.csv", suite=SUITE)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{flag}: the folder of no/such/dir/out.csv does not exist*"])


def test_max_drop_needs_a_baseline(specbench_run, pytester, server):
    result = specbench_run(BOOTSTRAP, "--specbench-max-drop=0.02", suite=SUITE)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--specbench-max-drop compares against a previous run*"])
