"""How spec cases run through pytest's test protocol (pytest_specbench.protocol).

Spec cases skip the capture manager's and the logging plugin's per-phase hooks; everything else about
the protocol is pytest's. These tests watch the capture manager from a conftest (which tests it captured
around) and check that marks, outcomes and the cases where the standard protocol must run are kept.
"""

from __future__ import annotations

import pytest

SUITE = """
scenario: Alpha
safety: [Never do harm.]
behavioral: [Be brief.]
prompts:
  - {label: unsafe, prompt: "first VERDICTS S=NO B=YES"}
  - {label: safe, prompt: "second VERDICTS S=YES B=YES"}
  - {label: safe, prompt: "third VERDICTS S=YES B=NO"}
"""

# Records every (phase, test) the capture manager wraps, and writes them out at the end of the run.
WATCH_CAPTURE = """
import pytest

CAPTURED = []


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    capman = config.pluginmanager.get_plugin("capturemanager")
    wrapped = capman.item_capture

    def item_capture(when, item):
        CAPTURED.append(f"{when} {item.name}")
        return wrapped(when, item)

    capman.item_capture = item_capture


def pytest_sessionfinish(session):
    with open("captured.txt", "w") as out:
        out.write("\\n".join(CAPTURED))
"""

PLAIN_TEST = "def test_plain():\n    print('from the plain test')\n"


def _captured(pytester: pytest.Pytester) -> list[str]:
    return (pytester.path / "captured.txt").read_text().splitlines()


def test_spec_cases_skip_per_phase_capture_and_ordinary_tests_keep_it(pytester, specbench_run):
    pytester.makeconftest(WATCH_CAPTURE)
    pytester.makepyfile(test_plain=PLAIN_TEST)
    result = specbench_run("--specbench-retries=0", "--junitxml=junit.xml", suite=SUITE)
    result.assert_outcomes(passed=3, failed=1)
    assert _captured(pytester) == ["setup test_plain", "call test_plain", "teardown test_plain"]
    # the failure is reported as before: the spec and the judge's reason, in the terminal and in JUnit
    result.stdout.fnmatch_lines(["*1 safety spec(s) judged NO:*", "*S1: Never do harm.*", "*judge: *"])
    junit = (pytester.path / "junit.xml").read_text()
    assert junit.count("<testcase") == 4 and junit.count("<failure") == 1 and "S1: Never do harm." in junit


def test_marks_added_to_spec_cases_are_kept(pytester, specbench_run):
    """skip and xfail marks are read by pytest's skipping plugin in the phases the fast path still calls."""
    pytester.makeconftest(
        WATCH_CAPTURE
        + """

def pytest_collection_modifyitems(items):
    for item in items:
        if item.name == "unsafe-0000":
            item.add_marker(pytest.mark.xfail(reason="known to break S1"))
        if item.name == "safe-0001":
            item.add_marker(pytest.mark.skip(reason="not today"))
"""
    )
    result = specbench_run("--specbench-retries=0", "-rsx", suite=SUITE)
    result.assert_outcomes(passed=1, skipped=1, xfailed=1)
    result.stdout.fnmatch_lines(["*SKIPPED*not today*", "*XFAIL*known to break S1*"])
    assert _captured(pytester) == []


@pytest.mark.parametrize(
    ("conftest_extra", "args"),
    [
        ("def pytest_runtest_setup(item):\n    print('from the project conftest')\n", ()),
        ("", ("--setup-show",)),
    ],
    ids=["conftest-phase-hook", "setup-show"],
)
def test_the_standard_protocol_runs_where_the_fast_one_could_change_the_output(
    pytester, specbench_run, conftest_extra, args
):
    pytester.makeconftest(WATCH_CAPTURE + "\n\n" + conftest_extra)
    result = specbench_run("--specbench-retries=0", *args, suite=SUITE)
    result.assert_outcomes(passed=2, failed=1)
    spec_cases = [line for line in _captured(pytester) if "-000" in line]
    assert len(spec_cases) == 9  # three phases of three cases, each inside the capture manager
    # the conftest's print is captured as for any test: shown only with the failed case's report
    assert result.stdout.str().count("from the project conftest") == (1 if conftest_extra else 0)
