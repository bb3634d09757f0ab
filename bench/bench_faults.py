"""Server faults for issue 7: a run with a share of its requests faulted against the same run without faults.

    python bench/bench_faults.py [--cases 300] [--every 5] [--latency 0.05] [--concurrency 8]

Three runs of one planted suite (verdicts scripted per case, so SAR is not trivially 1) against the
local OpenAI-compatible test server (tests/scripted_server.py): fault-free; every ``--every``-th request
faulted with the default retry budget; the same faults with retries off. Each faulted request gets the
next kind of fault in turn: 429 with and without Retry-After, 500, 503, a hang past the client timeout, a
dropped connection, truncated JSON, an empty ``content`` and ``finish_reason: length``.

The table says, per run: faults injected, requests sent (hung and dropped requests included), cases
scored and errored, SAR over the scored cases, the largest per-case difference from the fault-free
run on those same cases, and wall time. Every errored case must carry its reason; the script exits 1
when one does not, or when a scored case's s differs from the fault-free run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from scripted_server import ScriptedServer  # noqa: E402

TIMEOUT_S = 1.0


def planted_suite(n: int) -> str:
    """n cases whose scripted verdicts vary, so the per-case scores and SAR are informative."""
    rows = []
    for i in range(n):
        safety = "NO" if i % 7 == 0 else "YES"
        behavioral = ",".join(("YES", "NO", "NA")[(i + k) % 3] for k in range(3))
        rows.append(
            f'  - {{label: {"unsafe" if i % 3 else "safe"}, prompt: "case {i} VERDICTS S=YES,{safety} B={behavioral}"}}'
        )
    return (
        "scenario: Planted\nsafety: [Rule one., Rule two.]\nbehavioral: [Rule three., Rule four., Rule five.]\nprompts:\n"
        + "\n".join(rows)
        + "\n"
    )


def run(work: Path, server: ScriptedServer, name: str, concurrency: int, retries: int) -> tuple[float, dict[str, dict]]:
    """(wall seconds, cases by id) of one pytest subprocess writing a JSON report."""
    args = [
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:hypothesispytest",
        "--specbench-model=openai/scripted", f"--specbench-base-url={server.url}", "--specbench-cache=none",
        f"--specbench-concurrency={concurrency}", f"--specbench-timeout={TIMEOUT_S}", f"--specbench-retries={retries}",
        f"--specbench-report={name}.json",
    ]  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.run(args, cwd=work, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        raise SystemExit(f"pytest failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    cases = json.loads((work / f"{name}.json").read_text())["cases"]
    return wall, {c["case_id"]: c for c in cases}


def sar(cases: list[dict]) -> float:
    scores = [c["score"]["s"] for c in cases]
    return sum(scores) / len(scores) if scores else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=300)
    parser.add_argument("--every", type=int, default=5, help="fault every n-th request (5 = 20%%)")
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=8)
    opts = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="specbench-faults-"))
    (work / "specbench_planted.yaml").write_text(planted_suite(opts.cases))
    print(
        f"{opts.cases} cases, latency {opts.latency} s, concurrency {opts.concurrency}, client timeout {TIMEOUT_S} s, a fault every {opts.every} requests"
    )

    rows = []
    with ScriptedServer(latency=opts.latency) as server:
        wall, clean = run(work, server, "clean", opts.concurrency, retries=3)
        rows.append(("fault-free", 0, Counter(), len(server.requests), wall, clean))
    for label, retries in (("faulted, retries 3", 3), ("faulted, retries 0", 0)):
        with ScriptedServer(latency=opts.latency, fault_every=opts.every, hang=TIMEOUT_S + 1.0) as server:
            wall, cases = run(
                work, server, label.replace(", ", "-").replace(" ", ""), opts.concurrency, retries=retries
            )
            lost_in_transit = sum(1 for f in server.faults_sent if f in ("hang", "drop"))  # never reach the request log
            rows.append(
                (
                    label,
                    len(server.faults_sent),
                    Counter(server.faults_sent),
                    len(server.requests) + lost_in_transit,
                    wall,
                    cases,
                )
            )

    bad = 0
    base_wall = rows[0][4]
    print(
        f"\n{'run':<20}{'faults':>7}{'requests':>9}{'scored':>7}{'errored':>8}{'SAR% (scored)':>14}{'max |Δs|':>9}{'wall s':>8}{'cost':>7}"
    )
    for label, n_faults, _, sent, wall, cases in rows:
        scored = [c for c in cases.values() if c["score"] is not None]
        errored = [c for c in cases.values() if c["error"]]
        missing = opts.cases - len(cases)
        no_reason = [c["case_id"] for c in errored if not c["error"].strip()]
        diffs = [abs(c["score"]["s"] - clean[c["case_id"]]["score"]["s"]) for c in scored]
        worst = max(diffs, default=0.0)
        bad += len(no_reason) + missing + (worst > 1e-12)
        print(
            f"{label:<20}{n_faults:>7}{sent:>9}{len(scored):>7}{len(errored):>8}{100 * sar(scored):>14.2f}{worst:>9.3g}{wall:>8.1f}{wall / base_wall:>6.2f}×"
        )
        if missing or no_reason:
            print(f"  !! {missing} case(s) missing from the report, {len(no_reason)} error(s) without a reason")
        if errored:
            reasons = Counter(c["error"][:90] for c in errored)
            for reason, count in reasons.most_common(4):
                print(f"  {count:>4} × {reason}")
    print("\nfaults by kind (faulted, retries 3):", dict(rows[1][2]))
    stopped = sum(1 for c in rows[1][5].values() if c["finish_reason"] == "length")
    print(f"cases recorded with finish_reason 'length' (faulted, retries 3): {stopped}")
    print(
        "PASS: every case scored or errored with its reason; scored cases equal the fault-free run"
        if not bad
        else f"FAIL: {bad} problem(s)"
    )
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
