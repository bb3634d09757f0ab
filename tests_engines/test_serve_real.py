"""``--specbench-serve`` starting real vLLM servers: health wait, normal end, failure, Ctrl-C, a killed
pytest, and two xdist workers each with its own engine.

Under vLLM's CPU build the plugin starts ``python -m vllm.entrypoints.openai.api_server`` (its ``vllm``
script cannot run); the server arguments come from the profile's ``serve_args`` and
``--specbench-serve-args``. Every engine process of a served model lives in the process group led by
the plugin's guard, so "nothing outlived the run" is checked as: that group has no member left.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

#: Written into the pytester folder: each process that served a model records where and under which pid.
CONFTEST = """
import json, os

def pytest_sessionfinish(session):
    plugin = session.config.pluginmanager.get_plugin("specbench-session")
    server = getattr(plugin, "server", None)
    if server is not None and server.process is not None:
        with open(f"served-{os.getpid()}.json", "w") as fh:
            json.dump({"base_url": server.base_url, "guard": server.process.pid, "command": server.command}, fh)
"""
SMALL = (
    "--specbench-method=vanilla",
    "--specbench-max-tokens=32",
    "--specbench-judge-max-tokens=1024",
    "--specbench-limit=2",
    "--specbench-timeout=600",
    "--specbench-cache=none",
    "-p",
    "no:cacheprovider",
)


def live_processes() -> dict[int, tuple[int, int]]:
    """(parent pid, process group) of every live process, from /proc: a zombie waiting for its parent has ended."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            state, ppid, pgrp = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, IndexError, ValueError):
            continue
        if state not in ("Z", "X"):
            found[int(entry.name)] = (int(ppid), int(pgrp))
    return found


def group_members(pgid: int) -> list[int]:
    """Live processes of a process group."""
    return [pid for pid, (_, pgrp) in live_processes().items() if pgrp == pgid]


def guards_of(owner: int) -> list[int]:
    """Pids of the serve guards that ``owner`` started (their groups hold the engines)."""
    found = []
    for pid, (ppid, _) in live_processes().items():
        if ppid != owner:
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(part.endswith(b"_serve_guard.py") for part in cmdline):
            found.append(pid)
    return found


@pytest.fixture
def served_dir(suite_dir: Path) -> Path:
    (suite_dir / "conftest.py").write_text(CONFTEST)
    return suite_dir


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="sbe-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def served_records(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("served-*.json"))]


def test_serve_with_zero_and_two_workers_gives_the_same_summary(served_dir, pytester):
    """-n 0 then -n 2: each run starts, health-waits and stops its own engine(s); the scores agree.

    One request at a time and temperature 0: every request runs alone in its engine, so both runs
    decode the same tokens and the summaries can be compared exactly.
    """
    common = (
        "--specbench-model-config=engines.yaml",
        "--specbench-model=smol-server",
        "--specbench-serve",
        "--specbench-temperature=0",
        "--specbench-concurrency=1",
        *SMALL,
    )
    single = pytester.runpytest_subprocess(*common, "-n", "0", "--specbench-report=single.json", timeout=900)
    assert single.ret in (0, 1), single.stdout.str()
    first = served_records(served_dir)
    assert len(first) == 1 and first[0]["command"][1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    assert "--enforce-eager" in first[0]["command"], "the profile's serve_args reach the server"
    assert not group_members(first[0]["guard"]), "the engine is gone after a normal end"
    for p in served_dir.glob("served-*.json"):
        p.unlink()

    double = pytester.runpytest_subprocess(*common, "-n", "2", "--specbench-report=double.json", timeout=900)
    assert double.ret == single.ret, double.stdout.str()
    workers = served_records(served_dir)
    assert len(workers) == 2 and workers[0]["base_url"] != workers[1]["base_url"], "each worker served its own engine"
    assert all(not group_members(w["guard"]) for w in workers)

    one, two = (json.loads((served_dir / name).read_text()) for name in ("single.json", "double.json"))
    assert len(one["cases"]) == len(two["cases"]) == 2
    assert not [c["error"] for c in one["cases"] + two["cases"] if c["error"]]
    assert one["summary"] == two["summary"]
    print(f"smol-server, -n 0 and -n 2: {len(one['cases'])} cases scored each, the same summary")
    verdicts = lambda report: {c["case_id"]: [v["label"] for v in c["verdicts"]] for c in report["cases"]}  # noqa: E731
    assert verdicts(one) == verdicts(two)


def test_a_server_that_cannot_start_is_a_usage_error_quoting_its_log(served_dir, pytester):
    result = pytester.runpytest_subprocess(
        "--specbench-model-config=engines.yaml",
        "--specbench-model=smol-server",
        "--specbench-serve",
        "--specbench-serve-args=--max-model-len not-a-number",
        *SMALL,
        timeout=600,
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--specbench-serve*exited with code*before it was ready*", "*max-model-len*"])
    assert not guards_of(os.getpid())


def start_owner(folder: Path, tmpdir: Path) -> subprocess.Popen[str]:
    """pytest with --specbench-serve in the background, its output readable line by line."""
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-v",
        "--specbench-model-config=engines.yaml",
        "--specbench-model=smol-server",
        "--specbench-serve",
        "--specbench-concurrency=1",
        *SMALL,
    ]
    # A killed owner cannot remove the server's log, so it goes to a folder of the test's. A short one in the
    # system's temporary folder: vLLM also puts its ZeroMQ socket files in TMPDIR, whose paths may not exceed 107 bytes.
    env = {**os.environ, "TMPDIR": str(tmpdir)}
    return subprocess.Popen(
        command,
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def guard_port(guard: int) -> int | None:
    cmdline = Path(f"/proc/{guard}/cmdline").read_bytes().split(b"\0")
    return int(cmdline[cmdline.index(b"--port") + 1]) if b"--port" in cmdline else None


def descendants(pid: int) -> set[int]:
    """``pid`` and every live process below it (an engine process that left the group is still found)."""
    children: dict[int, list[int]] = {}
    for child, (ppid, _) in live_processes().items():
        children.setdefault(ppid, []).append(child)
    found, todo = set(), [pid]
    while todo:
        current = todo.pop()
        found.add(current)
        todo.extend(children.get(current, ()))
    return found


def alive(pids: set[int]) -> set[int]:
    """Those of ``pids`` that still run."""
    return pids & live_processes().keys()


def wait_gone(pids: set[int], within: float) -> set[int]:
    deadline = time.monotonic() + within
    while (left := alive(pids)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=5) as answer:
            return answer.status == 200
    except OSError:
        return False


def wait_guard(owner: subprocess.Popen[str], within: float = 900) -> int:
    """The pid of the serve guard ``owner`` started (the plugin starts it once cases are collected)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline and owner.poll() is None:
        guards = guards_of(owner.pid)
        if guards:
            assert len(guards) == 1, guards
            return guards[0]
        time.sleep(0.2)
    raise AssertionError(f"no server was started (owner exit status {owner.poll()})")


def wait_serving(owner: subprocess.Popen[str], guard: int, within: float = 900) -> None:
    """Wait until the owner's engine answers ``/v1/models``."""
    deadline = time.monotonic() + within
    port = guard_port(guard)
    assert port is not None
    while time.monotonic() < deadline and owner.poll() is None:
        if answers(port):
            assert len(group_members(guard)) >= 3, "the guard, the server and its engine process"
            return
        time.sleep(1)
    raise AssertionError(f"the served engine never answered (owner exit status {owner.poll()})")


#: Seconds pytest may take, after Ctrl-C, to stop its engine itself: the plugin's stop grace (SIGTERM, then
#: SIGKILL after 30 s) and the engine's shutdown, with room for a loaded machine.
CTRL_C_STOP_S = 120


@pytest.mark.parametrize("how", ["ctrl-c", "ctrl-c-while-loading", "sigkill"])
def test_the_served_engine_ends_with_its_pytest(served_dir, short_tmp, how):
    """Ctrl-C (SIGINT to pytest's process group, as a terminal sends it) makes pytest stop the server
    itself before it exits, whether cases are running or the engine is still loading; after SIGKILL the
    guard stops it. Either way every process of the served engine, found by ancestry, is gone.
    """
    owner = start_owner(served_dir, short_tmp)
    try:
        guard = wait_guard(owner)
        port = guard_port(guard)
        assert port is not None
        if how == "ctrl-c-while-loading":
            time.sleep(2)  # the guard has started the server, which is loading the model
        else:
            wait_serving(owner, guard)
            time.sleep(3)  # past the plugin's own health wait: cases are running
        served = descendants(guard)
        if how == "sigkill":
            owner.send_signal(signal.SIGKILL)
        else:
            os.killpg(owner.pid, signal.SIGINT)
        out, _ = owner.communicate(timeout=CTRL_C_STOP_S + 60)
        ended = alive(served)
    finally:
        if owner.poll() is None:
            owner.kill()
    if how == "sigkill":
        assert owner.returncode == -signal.SIGKILL
        assert wait_gone(served, within=90) == set(), "the guard stops the engine of a killed pytest"
    else:
        assert owner.returncode == pytest.ExitCode.INTERRUPTED, out
        assert "KeyboardInterrupt" in out, out
        # pytest stopped its engine before exiting: nothing was left for the guard to do.
        assert ended == set(), f"still running when pytest exited: {sorted(ended)}\n{out}"
    assert len(served) >= 2, served
    assert not group_members(guard)
    assert not answers(port), "nothing answers on the served port any more"
