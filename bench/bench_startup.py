"""What the installed plugin costs a project that does not use it: ``pytest`` start-up on a 1-test project.

    python bench/bench_startup.py [--runs 20] [--python PATH]

Runs ``python -m pytest -q`` on a project with one ordinary test, alternately with the plugin and with
``-p no:specbench`` (the same interpreter, the same other plugins), and prints the median wall time of
each and their ratio. Alternating keeps a machine's drifting load from favouring either side. The
target is a ratio of at most 1.05: a plugin that is installed everywhere must stay out of the way.
Hypothesis's plugin is turned off on both sides, as in bench_throughput.py (its import dominates and
is not ours).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def one_run(python: str, project: Path, *extra: str) -> float:
    start = time.perf_counter()
    proc = subprocess.run(
        [python, "-m", "pytest", "-q", "-p", "no:hypothesispytest", *extra], cwd=project, capture_output=True, text=True
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"pytest failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="runs per side (default: %(default)s)")
    parser.add_argument("--python", default=sys.executable, help="interpreter whose pytest and plugins are measured")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="specbench-startup-") as tmp:
        project = Path(tmp)
        (project / "test_one.py").write_text("def test_one():\n    assert 1 + 1 == 2\n")
        one_run(args.python, project)  # warm the file-system cache and write __pycache__ on both sides
        one_run(args.python, project, "-p", "no:specbench")
        with_plugin: list[float] = []
        without: list[float] = []
        for i in range(args.runs):
            order = [(with_plugin, ()), (without, ("-p", "no:specbench"))]
            for times, extra in order if i % 2 == 0 else reversed(order):
                times.append(one_run(args.python, project, *extra))
        left = [p.name for p in project.rglob("*") if "specbench" in p.name]
    a, b = statistics.median(with_plugin), statistics.median(without)
    print(f"pytest start-up on a 1-test project, median of {args.runs} alternating runs each ({args.python})")
    print(f"  with pytest-specbench     {a * 1000:7.1f} ms")
    print(f"  with -p no:specbench      {b * 1000:7.1f} ms")
    print(f"  ratio                     {a / b:7.3f}x   (target <= 1.05x)")
    print(f"  specbench files left in the project: {left or 'none'}")


if __name__ == "__main__":
    main()
