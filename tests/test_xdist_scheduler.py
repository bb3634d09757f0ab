"""The xdist scheduler the plugin supplies keeps each worker's queue deep enough to fill its pipeline.

xdist's own ``load`` scheduler stops refilling a worker whose last test took 0.1 s or more while two are
still queued; a SpecBench test always "takes" that long, since it waits for its case's calls. These tests
drive the plugin's scheduler through a whole run with two stand-in workers (plain objects with the three
members xdist's scheduler touches) and the durations a latency-bound run reports.
"""

from __future__ import annotations

import pytest

pytest.importorskip("xdist")

from pytest_specbench.xdist_scheduler import PipelinedLoadScheduling  # noqa: E402


class Worker:
    """What a scheduler uses of xdist's WorkerController: an id, a send, a shutdown flag."""

    def __init__(self, name: str):
        self.gateway = type("Gateway", (), {"id": name})()
        self.shutting_down = False
        self.received: list[int] = []

    def send_runtest_some(self, indices: list[int]) -> None:
        self.received += indices

    def shutdown(self) -> None:
        self.shutting_down = True


def drive(
    pytester: pytest.Pytester, nodeids: list[str], depth: int, dataset: bool = False
) -> tuple[list[Worker], list[int]]:
    """Run a scheduler to the end, the workers taking turns to finish their oldest test (equal speed).

    Returns the workers and the queue lengths seen right after each refill decision while tests were
    still unassigned.
    """
    config = pytester.parseconfig("-p", "xdist", "--tx", "2*popen")
    sched = PipelinedLoadScheduling(config, None, depth=depth, dataset=dataset)
    workers = [Worker("gw0"), Worker("gw1")]
    for w in workers:
        sched.add_node(w)
        sched.add_node_collection(w, nodeids)
    sched.schedule()
    queues: list[int] = []
    turn = 0
    while sched.has_pending:
        worker = workers[turn % 2] if sched.node2pending[workers[turn % 2]] else workers[(turn + 1) % 2]
        turn += 1
        had_pending = bool(sched.pending)
        sched.mark_test_complete(worker, sched.node2pending[worker][0], duration=0.4)
        if had_pending:
            queues.append(len(sched.node2pending[worker]))
    return workers, queues


def test_queues_stay_deep_and_every_test_runs_once(pytester):
    ids = [f"specbench_suite.yaml::Suite::case-{i:04d}" for i in range(400)]
    workers, queues = drive(pytester, ids, depth=16)
    sent = sorted(i for w in workers for i in w.received)
    assert sent == list(range(400)), "every test is handed out exactly once"
    assert min(queues) >= 15, f"a worker's queue fell to {min(queues)} while tests were left to hand out"
    assert all(w.shutting_down for w in workers)
    # the last tests are split: neither worker is left with a long queue while the other has none
    assert abs(len(workers[0].received) - len(workers[1].received)) <= 16


def test_runs_without_specbench_cases_keep_xdist_behaviour(pytester):
    """Ordinary test ids: xdist's own rule, which lets a slow worker's queue run down to two."""
    ids = [f"tests/test_plain.py::test_{i}" for i in range(400)]
    _, queues = drive(pytester, ids, depth=16)
    assert min(queues) < 15


def test_dataset_runs_are_pipelined_whatever_the_ids(pytester):
    ids = [f"Child::unsafe-{i:04d}" for i in range(400)]
    _, queues = drive(pytester, ids, depth=16, dataset=True)
    assert min(queues) >= 15
