"""A server that fails one request in five, in every way real servers fail: the run still scores every case."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from childproc import default_sigint
from scripted_server import FAULTS, ScriptedServer

PROMPTS = "\n".join(
    f'  - {{label: {"unsafe" if i % 3 else "safe"}, prompt: "case {i} VERDICTS S=YES,{"NO" if i % 4 == 0 else "YES"} B=YES,{"NO" if i % 2 else "NA"}"}}'
    for i in range(40)
)
#: A short timeout, so hangs cost little, and enough retries for every fault to be overcome.
FAULT_OPTIONS = ("--specbench-timeout=1", "--specbench-retries=4", "--specbench-cache=none")
SUITE = f"scenario: Faulty\nsafety: [Rule A., Rule B.]\nbehavioral: [Rule C., Rule D.]\nprompts:\n{PROMPTS}\n"


def test_twenty_percent_faults_change_nothing_but_the_request_count(specbench_run, pytester):
    pytester.makefile(".yaml", specbench_faulty=SUITE)
    with ScriptedServer() as clean:
        clean_run = specbench_run(*FAULT_OPTIONS, "--specbench-report=clean.json", server=clean)
        clean_run.assert_outcomes(passed=30, failed=10)
        clean_requests = len(clean.requests)
    with ScriptedServer(fault_every=5, hang=2.0) as faulty:
        result = specbench_run(*FAULT_OPTIONS, "--specbench-report=faulty.json", server=faulty)
        result.assert_outcomes(passed=30, failed=10)
        sent = len(faulty.requests) + sum(1 for f in faulty.faults_sent if f in ("hang", "drop"))
    print(f"clean: {clean_requests} requests; faulty: {sent} sent, faults {len(faulty.faults_sent)}")
    assert set(faulty.faults_sent) == set(FAULTS), "every kind of fault was injected"
    # each fault costs one re-send: bounded, and far from a retry storm
    assert clean_requests < sent <= clean_requests * 1.5
    score = lambda run: {case_id: c["score"] for case_id, c in run.cases().items()}  # noqa: E731
    assert score(result) == score(clean_run)
    steps = [s for c in result.report()["cases"] for s in c["steps"]]
    assert any(s["attempts"] > 1 for s in steps), "retries are recorded on the calls they affected"


def test_length_stops_and_megabyte_responses_are_recorded(specbench_run, pytester):
    """A generation cut by max tokens is judged as it stands and says so; a 1 MB reply is cut for the judge."""
    pytester.makefile(
        ".yaml",
        specbench_bounds='scenario: Bounds\nsafety: [Rule A.]\nbehavioral: [Rule B.]\nprompts:\n  - {label: safe, prompt: "short VERDICTS S=YES B=NO"}\n'
        '  - {label: safe, prompt: "huge LONG=1000000 VERDICTS S=YES B=YES"}\n',
    )
    with ScriptedServer(fault_every=1, faults=("length",)) as server:
        result = specbench_run("--specbench-report=r.json", "--specbench-cache=none", server=server, cacheprovider=True)
        judge_prompts = [m["content"] for r in server.judge_requests() for m in r["messages"] if m["role"] == "user"]
    result.assert_outcomes(passed=2)
    cases = result.cases()
    short, huge = cases["safe-0000"], cases["safe-0001"]
    assert short["finish_reason"] == huge["finish_reason"] == "length"
    assert short["score"]["s"] == 0.3 and huge["score"]["s"] == 1.0  # judged as they stood, not retried
    assert huge["response_chars"] == 1_000_000 and huge["truncated_for_judge"] and huge["judge_char_limit"] == 8000
    assert not short["truncated_for_judge"]
    assert max(len(p) for p in judge_prompts) < 8000 + 3000, "the judge never receives the whole megabyte"
    result.stdout.fnmatch_lines(
        [
            "2 response(s) stopped at the max-token limit (finish reason 'length') and were judged as they stood.",
            "1 response(s) were longer than 8,000 characters; the judge saw only the first 8,000 (marked truncated_for_judge in reports).",
        ]
    )
    # counted per method, beside the method's rows, and in the JSON report
    result.stdout.fnmatch_lines(
        [
            "   openai/scripted · vanilla: 2 of 2 generation(s) stopped at the max-token limit (finish reason 'length'), 2 of them a final answer"
        ]
    )
    report = result.report()
    assert [(m["group"], m["length_stops"], m["generations"], m["selector_is_grader"]) for m in report["methods"]] == [
        ("openai/scripted · vanilla", 2, 2, False)
    ]
    sweep = report["alpha_sweep"]["openai/scripted · vanilla"]
    assert sweep[0] == {"alpha": 0.0, "sar": 0.5, "pooled": 0.5} and sweep[-1]["sar"] == 1.0  # r = 0 and 1; both safe
    assert (
        sweep[3]["sar"] == pytest.approx(report["overall"][-1]["sar"]) == pytest.approx(report["summary"][-1]["sar"])
    )  # α = 0.3, the run's


def _children(pid: int) -> list[int]:
    """Direct child processes of ``pid`` (xdist's workers are the controller's children)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _case_of(body: dict) -> int:
    """Which planted case a request belongs to (generation and judge prompts both carry 'case N ')."""
    return int(re.search(r"case (\d+) ", body["messages"][-1]["content"]).group(1))


def _stop_mid_run(tmp_path, stop, extra=()):
    """Start a 40-case run, let some cases finish, stop it with ``stop(proc)``, then run it again.

    Returns (first run's output, the cases its report kept, requests of the first run, requests of
    the re-run, the re-run's output).
    """
    prompts = "\n".join(
        f'  - {{label: safe, prompt: "case {i} VERDICTS S=YES B={"NO" if i % 3 else "YES"}"}}' for i in range(40)
    )
    (tmp_path / "specbench_long.yaml").write_text(
        f"scenario: Long\nsafety: [Be safe.]\nbehavioral: [Be brief.]\nprompts:\n{prompts}\n"
    )
    with ScriptedServer(latency=0.1) as server:
        cmd = [
            sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly", "--specbench-model=openai/scripted",
            f"--specbench-base-url={server.url}", "--specbench-cache=calls.sqlite3", "--specbench-concurrency=2", *extra,
        ]  # fmt: skip
        proc = subprocess.Popen(
            [*cmd, "--specbench-report=first.json"],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            preexec_fn=default_sigint,  # interruptible even when this test run was started with SIGINT ignored
        )
        deadline = time.monotonic() + 60
        while len(server.requests) < 24 and time.monotonic() < deadline:
            time.sleep(0.01)
        stop(proc)
        first_out = proc.communicate(timeout=120)[0]
        first = list(server.requests)
        second = subprocess.run(
            [*cmd, "--specbench-report=second.json"], cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
        again = server.requests[len(first) :]
    kept = {int(c["prompt"].split()[1]) for c in json.loads((tmp_path / "first.json").read_text())["cases"]}
    assert 0 < len(kept) < 40, first_out[-3000:]
    assert second.returncode == 0 and "40 passed" in second.stdout, second.stdout[-3000:]
    rerun = {c["case_id"]: c["score"] for c in json.loads((tmp_path / "second.json").read_text())["cases"]}
    assert len(rerun) == 40, "the re-run completes every case"
    return first_out, kept, first, again, second.stdout


def _assert_only_missing_redone(kept, first, again):
    redone = {_case_of(b) for b in again}
    assert not redone & kept, f"finished cases were asked again: {sorted(redone & kept)}"
    assert redone, "the re-run had unfinished cases to complete"
    # nothing that reached the store is sent twice: repeats are only calls cut off in flight
    first_keys = Counter(json.dumps(b, sort_keys=True) for b in first)
    repeated = [b for b in again if json.dumps(b, sort_keys=True) in first_keys]
    assert len(repeated) <= 8, f"{len(repeated)} calls repeated"
    print(
        f"kept {len(kept)} cases; re-run redid {len(redone)} cases with {len(again)} calls, {len(repeated)} of them cut off in flight before"
    )


def test_sigkill_of_one_xdist_worker_keeps_the_other_workers_results(tmp_path):
    killed: list[int] = []

    def kill_one_worker(proc):
        workers = sorted(_children(proc.pid))
        assert len(workers) == 2, workers
        os.kill(workers[0], signal.SIGKILL)
        killed.append(workers[0])

    out, kept, first, again, second = _stop_mid_run(tmp_path, kill_one_worker, ("-n", "2", "--max-worker-restart=0"))
    assert killed and "crashed" in out
    assert (
        "specbench: the run stopped early (worker gw" in out
        and "crashed); " in out
        and "finished case(s) are kept" in out
    )
    _assert_only_missing_redone(kept, first, again)


def test_sigint_keeps_finished_cases_and_says_so(tmp_path):
    out, kept, first, again, _ = _stop_mid_run(tmp_path, lambda proc: proc.send_signal(signal.SIGINT))
    assert "KeyboardInterrupt" in out
    line = next(line for line in out.splitlines() if line.startswith("specbench: the run stopped early"))
    assert f"(it was interrupted); {len(kept)} of 40 finished case(s) are kept" in line
    assert "calls.sqlite3, so the same command run again redoes only the unfinished cases" in line
    _assert_only_missing_redone(kept, first, again)


def test_sigint_to_an_xdist_run_keeps_finished_cases(tmp_path):
    def ctrl_c(proc):  # a terminal's Ctrl-C reaches the whole process group: controller and workers
        os.killpg(os.getpgid(proc.pid), signal.SIGINT)

    out, kept, first, again, _ = _stop_mid_run(tmp_path, ctrl_c, ("-n", "2"))
    assert "specbench: the run stopped early (it was interrupted)" in out
    _assert_only_missing_redone(kept, first, again)


PLANTED = "planted-Key-7F3A9C2E5B1D4460"  # deliberately not sk-shaped: only the registered value can catch it


def test_a_planted_key_appears_in_nothing_the_run_writes(specbench_run, pytester, monkeypatch):
    """The key is sent (it must be), echoed back by the server in errors, and still written nowhere."""
    monkeypatch.setenv("OPENAI_API_KEY", PLANTED)
    pytester.makefile(".yaml", specbench_faulty=SUITE)
    pytester.makeini("[pytest]\ncache_dir = .cache\n")
    outputs = ["r.json", "r.html", "r.csv", "junit.xml", "run.log", "debug.log", "calls.sqlite3"]
    with ScriptedServer(fault_every=4, faults=("echo-key", "500")) as server:
        result = specbench_run(
            "--specbench-retries=1", "-v", "-rA",
            "--specbench-report=r.json", "--specbench-html=r.html", "--specbench-csv=r.csv", "--junitxml=junit.xml",
            "--log-file=run.log", "--log-file-level=DEBUG", "--debug=debug.log", "--specbench-cache=calls.sqlite3",
            server=server, cacheprovider=True,
        )  # fmt: skip
        assert any(h.get("authorization") == f"Bearer {PLANTED}" for h in server.headers)
        assert "echo-key" in server.faults_sent
    outcomes = result.parseoutcomes()
    assert outcomes.get("errors", 0) > 0, "the echoed 401s became case errors"
    broken_url = f"http://specbench:{PLANTED}@127.0.0.1:9/v1"  # a key in a base URL, to a port nobody listens on
    refused = specbench_run(
        f"--specbench-base-url={broken_url}", "--specbench-retries=0",
        "--specbench-report=refused.json", "--specbench-cache=refused.sqlite3", "-rA",
        server=None, cacheprovider=True,
    )  # fmt: skip
    assert refused.ret == pytest.ExitCode.USAGE_ERROR, "credentials in a base URL are refused before any request"
    written = [p for p in pytester.path.rglob("*") if p.is_file()]
    assert {p.name for p in written} >= set(outputs)
    leaks = [str(p) for p in written if PLANTED.encode() in p.read_bytes() and p.suffix != ".yaml"]
    terminal = result.stdout.str() + result.stderr.str() + refused.stdout.str() + refused.stderr.str()
    assert "[REDACTED]" in terminal, "the echoed key was seen, and scrubbed"
    print(
        f"files checked: {len(written)}, terminal characters: {len(terminal)}, leaks: {len(leaks) + terminal.count(PLANTED)}"
    )
    assert not leaks and PLANTED not in terminal
