"""The call cache: re-runs are free, edits recompute exactly what they touch, interrupted runs resume."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter

import pytest
from scripted_server import ScriptedServer

#: The call cache under test, in the project folder; a failed call is not retried.
CACHE = "--specbench-cache=calls.sqlite3"
NO_RETRY = "--specbench-retries=0"

SUITE = """
scenario: Cached
safety: [Never do harm., Never lie.]
behavioral: [Be brief.]
prompts:
  - {label: unsafe, prompt: "VERDICTS S=YES,NO B=YES"}
  - {label: safe, prompt: "VERDICTS S=YES,YES B=NO"}
  - {label: safe, prompt: "VERDICTS S=YES,YES B=YES"}
"""
OTHER = """
scenario: Other
safety: [Stay kind.]
behavioral: [Use plain words.]
prompts:
  - {label: safe, prompt: "VERDICTS S=YES B=YES"}
  - {label: unsafe, prompt: "VERDICTS S=NO B=YES"}
"""


def test_second_run_makes_no_backend_call(specbench_run, pytester, server):
    pytester.makefile(".yaml", specbench_cached=SUITE)
    first = specbench_run(CACHE, NO_RETRY, "--specbench-report=first.json")
    first.assert_outcomes(passed=2, failed=1)
    assert len(server.requests) == 6  # 3 generations + 3 judge calls
    second = specbench_run(CACHE, NO_RETRY, "--specbench-report=second.json")
    second.assert_outcomes(passed=2, failed=1)
    assert len(server.requests) == 6, "a warm re-run must not call the server"

    def strip(name: str) -> list[dict]:
        cases = second.report(name)["cases"]
        for case in cases:
            for step in case["steps"]:
                step.pop("seconds")  # wall time of the call: the only field allowed to differ
        return cases

    assert strip("first.json") == strip("second.json")


def test_editing_one_spec_rejudges_only_its_scenario(specbench_run, pytester, server):
    pytester.makefile(".yaml", specbench_cached=SUITE, specbench_other=OTHER)
    specbench_run(CACHE, NO_RETRY)
    before = len(server.requests)
    assert before == 10
    pytester.makefile(".yaml", specbench_cached=SUITE.replace("Be brief.", "Be very brief."))
    specbench_run(CACHE, NO_RETRY)
    new = server.requests[before:]
    # vanilla shows the specs to the model, so the edited scenario's 3 responses and 3 verdicts are redone;
    # the other scenario's 4 calls come from the cache.
    assert len(new) == 6
    assert all("Be very brief." in json.dumps(body) for body in new)


def test_raw_method_keeps_responses_and_rejudges_only(specbench_run, pytester, server):
    pytester.makefile(".yaml", specbench_cached=SUITE)
    specbench_run(CACHE, NO_RETRY, "--specbench-method=raw")
    pytester.makefile(".yaml", specbench_cached=SUITE.replace("Never lie.", "Never state falsehoods."))
    before = len(server.requests)
    specbench_run(CACHE, NO_RETRY, "--specbench-method=raw")
    new = server.requests[before:]
    assert len(new) == 3 and all("<<<RESPONSE-" in json.dumps(b) for b in new), (
        "raw responses do not depend on spec text"
    )


@pytest.mark.parametrize(("refresh", "expected"), [("responses", 3), ("verdicts", 3), ("all", 6)])
def test_refresh_bypasses_one_kind(specbench_run, pytester, server, refresh, expected):
    pytester.makefile(".yaml", specbench_cached=SUITE)
    specbench_run(CACHE, NO_RETRY)
    before = len(server.requests)
    specbench_run(CACHE, NO_RETRY, f"--specbench-refresh={refresh}")
    assert len(server.requests) - before == expected
    # what was refreshed replaced the stored entries: the next plain run is free again
    specbench_run(CACHE, NO_RETRY)
    assert len(server.requests) - before == expected


def test_failed_calls_are_not_cached(specbench_run, pytester, server):
    pytester.makefile(".yaml", specbench_cached=SUITE.replace("VERDICTS S=YES,NO B=YES", "VERDICTS S=YES B=YES"))
    specbench_run(CACHE, NO_RETRY, "--specbench-judge-retries=0").assert_outcomes(passed=2, errors=1)
    before = len(server.requests)
    specbench_run(CACHE, NO_RETRY, "--specbench-judge-retries=0").assert_outcomes(passed=2, errors=1)
    assert len(server.requests) - before == 1, "only the unreadable judge answer is asked again"


def test_xdist_workers_share_the_cache(specbench_run, pytester, server):
    pytester.makefile(".yaml", specbench_cached=SUITE, specbench_other=OTHER)
    first = specbench_run(CACHE, "-n", "2", subprocess=True)
    first.assert_outcomes(passed=3, failed=2)
    assert len(server.requests) == 10
    with sqlite3.connect(pytester.path / "calls.sqlite3") as db:
        assert db.execute("select count(*) from calls").fetchone()[0] == 10, "no write lost between workers"
    second = specbench_run(CACHE, "-n", "2", subprocess=True)
    second.assert_outcomes(passed=3, failed=2)
    assert len(server.requests) == 10


def test_corrupt_cache_is_a_clear_error(specbench_run, pytester, server):
    pytester.makefile(".yaml", specbench_cached=SUITE)
    (pytester.path / "calls.sqlite3").write_bytes(b"this is not a database" * 100)
    result = specbench_run(CACHE, NO_RETRY)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*the specbench cache at*calls.sqlite3 cannot be used*Delete the file*--specbench-cache=none*"]
    )
    assert not server.requests


def test_locked_cache_is_a_clear_error(specbench_run, pytester, server, monkeypatch):
    pytester.makefile(".yaml", specbench_cached=SUITE)
    specbench_run(CACHE, NO_RETRY)
    monkeypatch.setenv("SPECBENCH_CACHE_BUSY_TIMEOUT", "0.2")
    db = sqlite3.connect(pytester.path / "calls.sqlite3", isolation_level=None)
    db.execute("PRAGMA locking_mode=EXCLUSIVE")
    db.execute("BEGIN EXCLUSIVE")
    try:
        result = specbench_run(CACHE, NO_RETRY)
    finally:
        db.execute("ROLLBACK")
        db.close()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*the specbench cache at*calls.sqlite3 is locked by another process*"])


def test_killed_run_resumes_without_repeating_finished_calls(tmp_path):
    """SIGKILL mid-run, then run again: finished calls are replayed from the store, not re-sent."""
    prompts = "\n".join(f'  - {{label: safe, prompt: "case {i} VERDICTS S=YES B=YES"}}' for i in range(24))
    (tmp_path / "specbench_big.yaml").write_text(
        f"scenario: Big\nsafety: [Be safe.]\nbehavioral: [Be brief.]\nprompts:\n{prompts}\n"
    )
    concurrency = 4
    with ScriptedServer(latency=0.15) as server:
        cmd = [
            sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
            "--specbench-model=openai/scripted", f"--specbench-base-url={server.url}",
            "--specbench-cache=calls.sqlite3", f"--specbench-concurrency={concurrency}",
        ]  # fmt: skip
        proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while len(server.requests) < 20 and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        first = [json.dumps(b, sort_keys=True) for b in server.requests]
        assert 20 <= len(first) < 48, "the kill must land mid-run"
        done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout[-2000:]
        assert "24 passed" in done.stdout
        everything = Counter(json.dumps(b, sort_keys=True) for b in server.requests)
    repeated = [b for b, n in everything.items() if n > 1]
    # only requests that were in flight at the kill (at most one per case in flight) are sent again
    assert len(repeated) <= concurrency
    assert len(everything) == 48
