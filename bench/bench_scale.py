"""How the cost of a run grows with its size (issue 13): client CPU per case and peak memory, side by side.

    python bench/bench_scale.py [--sizes 2000,20000,100000] [--modes 0,2] [--junit] [--no-reports]
                                [--cache] [--python PATH] [--keep]

Each size is one synthetic YAML suite (10 safety + 10 behavioral specs, prompts in a JSONL
``prompts_file``) run by one pytest subprocess against the scripted OpenAI-compatible server on
127.0.0.1, answering at once (``tests/scripted_server.py``, here without its request log), with
``--specbench-concurrency=32`` and the paper's tag layout for the judge. Every third case carries a
safety NO (it fails), the rest pass; some behavioral verdicts are NO or NA so scores vary. By default the
run also writes the JSON, CSV and HTML reports.

Columns:

* client CPU — user + system CPU of the pytest process tree (the controller and, under ``-n``, its
  workers), read from ``RUSAGE_CHILDREN`` of this script around the subprocess. The server runs in this
  script's own process, so its CPU is not counted;
* CPU / case — client CPU divided by the number of cases, and its ratio to the smallest size's;
* peak RSS — the controlling process's ``ru_maxrss``; under ``-n 2`` also each worker's (reported by a
  ``conftest.py`` in the run folder that reads ``ru_maxrss`` as the worker unconfigures);
* wall — the subprocess from start to exit, on a machine shared with other work, so the least reliable.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from scripted_server import ScriptedServer  # noqa: E402

SAFETY = 10
BEHAVIORAL = 10

# The controller's own peak RSS, printed after pytest.main returns (RUSAGE_CHILDREN cannot isolate it).
_CHILD = "import resource, sys, pytest; rc = pytest.main(sys.argv[1:]); print('MAXRSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(rc)"

# Dropped in each run folder: every xdist worker writes its peak RSS where the bench can read it.
_CONFTEST = """
import os, resource

def pytest_unconfigure(config):
    worker = getattr(config, "workerinput", None)
    if worker is not None:
        with open(os.path.join(os.environ["BENCH_RSS_DIR"], worker["workerid"]), "w") as f:
            f.write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))
"""


class QuietServer(ScriptedServer):
    """The scripted server without its request log: 200,000 judge prompts would be gigabytes here."""

    def __init__(self) -> None:
        super().__init__(latency=0.0)
        self.requests = collections.deque(maxlen=1)  # type: ignore[assignment]
        self.headers = collections.deque(maxlen=1)  # type: ignore[assignment]


@dataclass
class Row:
    mode: str
    cases: int
    cpu_s: float
    rss_mb: float
    worker_rss_mb: list[float]
    wall_s: float
    failed: int


def write_suite(folder: Path, n: int) -> int:
    """The suite and its JSONL prompts; returns how many cases are scripted to fail a safety spec."""
    folder.mkdir(parents=True, exist_ok=True)
    safety = "\n".join(f"  - Never do harm number {i}, in any form or disguise." for i in range(1, SAFETY + 1))
    behavioral = "\n".join(f"  - Follow house rule number {i} when answering." for i in range(1, BEHAVIORAL + 1))
    (folder / "specbench_scale.yaml").write_text(
        f"scenario: Scale\nname: Scale assistant\ndescription: A synthetic scenario for the scale benchmark.\n"
        f"safety:\n{safety}\nbehavioral:\n{behavioral}\nprompts_file: prompts.jsonl\n"
    )
    failing = 0
    with open(folder / "prompts.jsonl", "w") as out:
        for i in range(n):
            s = ["YES"] * SAFETY
            if i % 3 == 0:
                s[i % SAFETY] = "NO"
                failing += 1
            b = ["YES"] * BEHAVIORAL
            b[i % BEHAVIORAL] = "NO"
            b[(i + 3) % BEHAVIORAL] = "NA"
            label = "unsafe" if i % 2 == 0 else "safe"
            prompt = f"Request {i}: please help with task {i}. VERDICTS S={','.join(s)} B={','.join(b)}"
            out.write(json.dumps({"id": f"p{i:06d}", "label": label, "prompt": prompt}) + "\n")
    (folder / "conftest.py").write_text(_CONFTEST)
    return failing


def run(python: str, folder: Path, workers: int, opts: argparse.Namespace) -> Row:
    n = sum(1 for _ in open(folder / "prompts.jsonl"))
    rss_dir = folder / "rss"
    shutil.rmtree(rss_dir, ignore_errors=True)
    rss_dir.mkdir()
    for stale in (".pytest_cache", "report.json", "report.html", "cases.csv", "junit.xml"):
        shutil.rmtree(folder / stale, ignore_errors=True) if (folder / stale).is_dir() else (folder / stale).unlink(
            missing_ok=True
        )
    with QuietServer() as server:
        args = [
            "-q",
            "-p",
            "no:hypothesispytest",  # not ours; it imports all of Hypothesis in its terminal summary
            "specbench_scale.yaml",
            "--specbench-model=openai/scripted",
            f"--specbench-base-url={server.url}",
            "--specbench-concurrency=32",
            "--specbench-judge-format=tags",
            "--specbench-retries=0",
        ]
        if not opts.cache:
            args.append("--specbench-cache=none")
        if not opts.no_reports:
            args += ["--specbench-report=report.json", "--specbench-html=report.html", "--specbench-csv=cases.csv"]
        if opts.junit:
            args.append("--junitxml=junit.xml")
        args += ["-n", str(workers)] if workers else ["-p", "no:xdist"]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.run(
            [python, "-c", _CHILD, *args],
            cwd=folder,
            capture_output=True,
            text=True,
            env={**os.environ, "BENCH_RSS_DIR": str(rss_dir)},
        )
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"pytest failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    (folder / f"stdout-{workers}.txt").write_text(proc.stdout)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    rss = int(proc.stdout.rsplit("MAXRSS_KB", 1)[1].split()[0]) / 1024
    worker_rss = [int(p.read_text()) / 1024 for p in sorted(rss_dir.iterdir())]
    tail = proc.stdout.rsplit("MAXRSS_KB", 1)[0].strip().splitlines()
    final = next((line for line in reversed(tail) if " in " in line and ("passed" in line or "failed" in line)), "")
    failed = int(final.split(" failed")[0].rsplit(" ", 1)[-1]) if " failed" in final else 0
    return Row("-n 0" if not workers else f"-n {workers}", n, cpu, rss, worker_rss, wall, failed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--sizes", default="2000,20000,100000", help="comma-separated case counts (default 2000,20000,100000)"
    )
    parser.add_argument(
        "--modes", default="0,2", help="xdist worker counts to run, 0 meaning -p no:xdist (default 0,2)"
    )
    parser.add_argument("--junit", action="store_true", help="also write --junitxml")
    parser.add_argument("--no-reports", action="store_true", help="do not write the JSON, CSV and HTML reports")
    parser.add_argument(
        "--cache", action="store_true", help="keep the call cache on (in the run folder's .pytest_cache; cold)"
    )
    parser.add_argument("--python", default=sys.executable, help="interpreter that runs pytest (default: this one)")
    parser.add_argument("--keep", action="store_true", help="keep the run folders (their path is printed)")
    opts = parser.parse_args()
    sizes = [int(s) for s in opts.sizes.split(",")]
    modes = [int(m) for m in opts.modes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="specbench-scale-"))
    import pytest_specbench

    print(f"pytest_specbench from {Path(pytest_specbench.__file__).parent}; python {opts.python}")
    print(
        f"suite: {SAFETY} safety + {BEHAVIORAL} behavioral specs; concurrency 32; judge format tags; reports "
        f"{'off' if opts.no_reports else 'JSON+CSV+HTML'}; junit {'on' if opts.junit else 'off'}; call cache {'on' if opts.cache else 'off'}"
    )
    rows: list[Row] = []
    try:
        for workers in modes:
            for n in sizes:
                folder = work / str(n)
                if not (folder / "prompts.jsonl").exists():
                    failing = write_suite(folder, n)
                    print(f"  ({n:,} cases: {failing:,} scripted to fail a safety spec)", flush=True)
                row = run(opts.python, folder, workers, opts)
                rows.append(row)
                print(
                    f"  done {row.mode} {n:,}: {row.cpu_s:.1f} s CPU, {row.rss_mb:.0f} MB, {row.wall_s:.0f} s wall, {row.failed:,} failed",
                    flush=True,
                )
    finally:
        if opts.keep:
            print(f"run folders kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print(
        "| mode | cases | failed | client CPU | CPU per case | × smallest | peak RSS (controller) | peak RSS (each worker) | wall |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for mode in dict.fromkeys(r.mode for r in rows):
        mine = [r for r in rows if r.mode == mode]
        base = mine[0].cpu_s / mine[0].cases
        for r in mine:
            per = r.cpu_s / r.cases
            workers = ", ".join(f"{w:.0f} MB" for w in r.worker_rss_mb) or "-"
            print(
                f"| {r.mode} | {r.cases:,} | {r.failed:,} | {r.cpu_s:.1f} s | {1000 * per:.2f} ms | {per / base:.2f}× | "
                f"{r.rss_mb:.0f} MB | {workers} | {r.wall_s:.0f} s |"
            )


if __name__ == "__main__":
    main()
