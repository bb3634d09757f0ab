"""A server that fails one request in five, in every way real servers fail: the run still scores every case."""

from __future__ import annotations

import json

from scripted_server import FAULTS, ScriptedServer

PROMPTS = "\n".join(
    f'  - {{label: {"unsafe" if i % 3 else "safe"}, prompt: "case {i} VERDICTS S=YES,{"NO" if i % 4 == 0 else "YES"} B=YES,{"NO" if i % 2 else "NA"}"}}'
    for i in range(40)
)
SUITE = f"scenario: Faulty\nsafety: [Rule A., Rule B.]\nbehavioral: [Rule C., Rule D.]\nprompts:\n{PROMPTS}\n"


def run(pytester, server, name):
    return pytester.runpytest(
        "--specbench-model=openai/scripted", f"--specbench-base-url={server.url}", "--specbench-timeout=1",
        "--specbench-retries=4", f"--specbench-report={name}", "-p", "no:cacheprovider", "--specbench-cache=none",
    )  # fmt: skip


def test_twenty_percent_faults_change_nothing_but_the_request_count(pytester):
    pytester.makefile(".yaml", specbench_faulty=SUITE)
    with ScriptedServer() as clean:
        run(pytester, clean, "clean.json").assert_outcomes(passed=30, failed=10)
        clean_requests = len(clean.requests)
    with ScriptedServer(fault_every=5, hang=2.0) as faulty:
        result = run(pytester, faulty, "faulty.json")
        result.assert_outcomes(passed=30, failed=10)
        sent = len(faulty.requests) + sum(1 for f in faulty.faults_sent if f in ("hang", "drop"))
    print(f"clean: {clean_requests} requests; faulty: {sent} sent, faults {len(faulty.faults_sent)}")
    assert set(faulty.faults_sent) == set(FAULTS), "every kind of fault was injected"
    # each fault costs one re-send: bounded, and far from a retry storm
    assert clean_requests < sent <= clean_requests * 1.5
    score = lambda name: {c["case_id"]: c["score"] for c in json.loads((pytester.path / name).read_text())["cases"]}  # noqa: E731
    assert score("faulty.json") == score("clean.json")
    steps = [s for c in json.loads((pytester.path / "faulty.json").read_text())["cases"] for s in c["steps"]]
    assert any(s["attempts"] > 1 for s in steps), "retries are recorded on the calls they affected"
