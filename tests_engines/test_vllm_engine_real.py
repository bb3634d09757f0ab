"""The in-process vllm provider (``vllm.LLM`` inside pytest) on the real CPU engine.

``VLLM_ENABLE_V1_MULTIPROCESSING=0`` keeps the engine core in the pytest process: otherwise vLLM spawns
an engine process, which on CPU costs a second model load and needs a ``__main__`` guard. The profile's
``engine_args`` reach ``vllm.LLM`` (``enforce_eager``, the token budget that avoids chunked prefill).
"""

from __future__ import annotations

import json
from collections import Counter

METHODS = ("vanilla", "zero_think", "more_think", "align3")
CASES = 1


def test_in_process_engine_runs_every_method_with_a_json_schema_judge(suite_dir, pytester, monkeypatch):
    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    result = pytester.runpytest_subprocess(
        "--specbench-model-config=engines.yaml",
        "--specbench-model=smol-engine",
        f"--specbench-method={','.join(METHODS)}",
        "--specbench-judge-max-tokens=1024",
        "--specbench-limit=1",
        "--specbench-max-tokens=32",
        "--specbench-timeout=600",
        "--specbench-concurrency=8",
        "--specbench-cache=none",
        "--specbench-report=report.json",
        "-p",
        "no:cacheprovider",
        timeout=2400,
    )
    assert result.ret in (0, 1), result.stdout.str()  # cases may fail their specs; none may error
    report = json.loads((pytester.path / "report.json").read_text())
    cases = report["cases"]
    assert not [(c["method"], c["error"]) for c in cases if c["error"]]
    scored = Counter(c["method"] for c in cases if c["score"] is not None and len(c["verdicts"]) == 6)
    assert scored == Counter({m: CASES for m in METHODS}), scored
    print(f"smol-engine: cases scored per method {dict(sorted(scored.items()))}")
    assert report["settings"]["model"] == "smol-engine" and report["settings"]["judge_format"] == "json"
    prefilled = [c for c in cases if c["method"] != "vanilla"]
    assert all(c["thought"] or c["method"] == "zero_think" for c in prefilled), (
        "prefill methods keep their thinking apart from the answer"
    )
