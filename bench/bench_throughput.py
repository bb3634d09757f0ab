"""Throughput benchmarks for issue 4, measured side by side in one run on this machine.

    python bench/bench_throughput.py [--latency 0.2] [--concurrency 8] [--quick] [--parts abce] [--repeat 1]
                                     [--python PATH]

(a) wall time of a SpecBench run against the ideal, requests × latency ÷ concurrency, on a local
    OpenAI-compatible server with a fixed latency (tests/scripted_server.py), judge included;
(b) a warm-cache re-run of 1,500 cases against plain pytest running 1,500 trivial parametrized tests;
(c) ``-n 2`` against ``-n 0`` on the latency-bound server;
(e) peak memory (max RSS) of the controlling pytest process for 1,500 cases.

Every figure is one pytest subprocess timed from start to exit, so start-up and collection are counted.
That includes every pytest plugin installed beside the project (their import is part of any run):
``--python`` runs pytest with another interpreter, e.g. a virtual environment holding only what
``pip install -e .[test]`` installs, and the script prints which plugins that interpreter loads.
(d), the embedded model's tokens per second, is bench/bench_embedded.py.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from scripted_server import ScriptedServer  # noqa: E402

DATA = Path(os.environ.get("SPECBENCH_DATA") or REPO.parent / "shared" / "specbench")


# Runs pytest in this child and prints the child's own peak RSS, which RUSAGE_CHILDREN cannot isolate.
_CHILD = "import resource, sys, pytest; rc = pytest.main(sys.argv[1:]); print('MAXRSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(rc)"


PYTHON = sys.executable


def pytest_run(args: list[str], cwd: Path) -> tuple[float, int]:
    """(wall seconds, peak RSS in MiB) of one pytest subprocess."""
    cwd.mkdir(exist_ok=True)
    start = time.perf_counter()
    # Hypothesis's pytest plugin imports all of Hypothesis in its terminal summary (1.5-3 s here) whether or
    # not a test used it; it is not ours, so it is off on both sides of every comparison.
    proc = subprocess.run(
        [PYTHON, "-c", _CHILD, "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-q", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        raise SystemExit(f"pytest failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    rss_kb = int(proc.stdout.rsplit("MAXRSS_KB", 1)[1].split()[0])
    return wall, rss_kb // 1024


def specbench_args(server: ScriptedServer, limit: int, method: str, concurrency: int, *extra: str) -> list[str]:
    return [
        f"--specbench-data={DATA}",
        f"--specbench-limit={limit}",
        "--specbench-model=openai/scripted",
        f"--specbench-base-url={server.url}",
        f"--specbench-method={method}",
        f"--specbench-concurrency={concurrency}",
        "--specbench-retries=0",
        *extra,
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="300 cases only, vanilla only")
    parser.add_argument("--methods", default="vanilla,align3")
    parser.add_argument("--parts", default="abce", help="which measurements to run, e.g. c for the xdist one only")
    parser.add_argument(
        "--repeat", type=int, default=1, help="repeat (a) and (c), alternating sides, to show their spread"
    )
    parser.add_argument("--python", default=sys.executable, help="interpreter that runs pytest (default: this one)")
    opts = parser.parse_args()
    global PYTHON
    PYTHON = opts.python
    plugins = subprocess.run(
        [
            PYTHON,
            "-c",
            "import importlib.metadata as m; print(' '.join(sorted(e.name for e in m.entry_points(group='pytest11'))))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    print(f"pytest runs under {PYTHON}; pytest plugins installed there: {plugins}")
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        # every run then recompiles the project and pytest re-rewrites each plugin module (~0.3 s here)
        print("PYTHONDONTWRITEBYTECODE is set: no .pyc caches, so each run compiles its modules again")
    sizes = [300] if opts.quick else [300, 1500]
    methods = ["vanilla"] if opts.quick else opts.methods.split(",")
    work = Path(tempfile.mkdtemp(prefix="specbench-bench-"))
    print(f"latency {opts.latency} s, concurrency {opts.concurrency}, data {DATA}")

    if "a" in opts.parts:
        part_a(opts, sizes, methods, work)
    if "b" in opts.parts:
        part_b(opts, work)
    if "c" in opts.parts:
        part_c(opts, work)
    if "e" in opts.parts:
        part_e(work)


def part_a(opts: argparse.Namespace, sizes: list[int], methods: list[str], work: Path) -> None:
    print("\n(a) wall time against ideal = requests × latency ÷ concurrency")
    print(f"{'cases':>6} {'method':<9} {'requests':>9} {'ideal s':>8} {'wall s':>8} {'ratio':>6}")
    runs = [(method, n) for method in methods for n in sizes for _ in range(opts.repeat if n <= 300 else 1)]
    for method, n in runs:
        with ScriptedServer(latency=opts.latency) as server:
            wall, _ = pytest_run(specbench_args(server, n, method, opts.concurrency, "--specbench-cache=none"), work)
            requests = len(server.requests)
        ideal = requests * opts.latency / opts.concurrency
        print(f"{n:>6} {method:<9} {requests:>9} {ideal:>8.1f} {wall:>8.1f} {wall / ideal:>6.2f}")


def part_b(opts: argparse.Namespace, work: Path) -> None:
    print("\n(b) warm-cache re-run of 1,500 cases against 1,500 trivial parametrized tests")
    (work / "test_trivial.py").write_text(
        "import pytest\n\n@pytest.mark.parametrize('i', range(1500))\ndef test_trivial(i):\n    assert i >= 0\n"
    )
    cache = work / "warm.sqlite3"
    with ScriptedServer(latency=0.0) as server:
        pytest_run(
            specbench_args(server, 1500, "vanilla", opts.concurrency, f"--specbench-cache={cache}"), work / "empty"
        )
        filled = len(server.requests)
        warm, _ = pytest_run(
            specbench_args(server, 1500, "vanilla", opts.concurrency, f"--specbench-cache={cache}"), work / "empty"
        )
        calls = len(server.requests) - filled
    plain, _ = pytest_run(["test_trivial.py"], work)
    print(f"warm re-run {warm:.2f} s ({calls} backend calls) · plain pytest {plain:.2f} s · ratio {warm / plain:.2f}×")


def part_c(opts: argparse.Namespace, work: Path) -> None:
    print("\n(c) -n 2 against -n 0, latency-bound")
    n_cases = 300 if opts.quick else 1500
    for _ in range(opts.repeat):
        with ScriptedServer(latency=opts.latency) as server:
            serial, _ = pytest_run(
                specbench_args(
                    server, n_cases, "vanilla", opts.concurrency, "--specbench-cache=none", "-p", "no:xdist"
                ),
                work,
            )
        with ScriptedServer(latency=opts.latency) as server:
            parallel, _ = pytest_run(
                specbench_args(server, n_cases, "vanilla", opts.concurrency, "--specbench-cache=none", "-n", "2"), work
            )
        print(f"{n_cases} cases: -n 0 {serial:.1f} s · -n 2 {parallel:.1f} s · speed-up {serial / parallel:.2f}×")


def part_e(work: Path) -> None:
    print("\n(e) peak memory of the controlling process, 1,500 cases")
    with ScriptedServer(latency=0.0) as server:
        _, rss = pytest_run(
            specbench_args(server, 1500, "vanilla", 32, "--specbench-cache=none", "-p", "no:xdist"), work
        )
    print(f"max RSS {rss} MiB")


if __name__ == "__main__":
    main()
