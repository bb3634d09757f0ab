"""Benchmark of Algorithm 1 (``specbench dedupe``) on 2,000 prompts: vectorised vs the literal algorithm.

    python bench/bench_dedupe.py                 # 2,000 prompts -> keep 1,000, real embeddings
    python bench/bench_dedupe.py --n 2000 --keep 500 --random   # random unit vectors, no embedder

Prompts are SpecBench's (the attack-enhanced and the original text of all 1,500 items, from
SPECBENCH_DATA, ../shared/specbench or the downloaded copy), padded with numbered variants if fewer
than --n are found. They are embedded once with the offline all-MiniLM-L6-v2 (timed separately, and
cached like the command does); both implementations then run on the same distance matrix, their
survivors and d_min are compared, and the timings are printed side by side with their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pytest_specbench.toolkit.dedupe import cosine_distances, embed, select_diverse, select_diverse_reference  # noqa: E402


def specbench_texts() -> list[str]:
    from pytest_specbench.toolkit.download import default_data_dir

    candidates = [os.environ.get("SPECBENCH_DATA"), ROOT.parent / "shared" / "specbench", default_data_dir()]
    for root in (Path(c) for c in candidates if c):
        files = sorted(root.glob("*/prompts.json"))
        if files:
            texts: list[str] = []
            for f in files:
                for rec in json.loads(f.read_text(encoding="utf-8")):
                    texts += [rec["adversarial_prompt"], rec["prompt"]]
            return list(dict.fromkeys(texts))
    return []


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000, help="prompts (default 2000)")
    ap.add_argument("--keep", type=int, default=1000, help="K to keep (default 1000)")
    ap.add_argument("--repeat", type=int, default=5, help="timed runs of the vectorised version (default 5)")
    ap.add_argument("--random", action="store_true", help="random 384-d vectors instead of embedded prompts")
    args = ap.parse_args()

    import numpy as np

    if args.random:
        vectors = np.random.default_rng(0).normal(size=(args.n, 384))
        source = "random 384-d vectors"
    else:
        texts = specbench_texts()
        source = f"SpecBench prompts ({len(texts)} distinct)"
        i = 0
        while len(texts) < args.n:
            texts.append(f"variant {i}: {texts[i % max(1, len(texts))] if texts else 'prompt'}")
            i += 1
        texts = texts[: args.n]
        from pytest_specbench.toolkit.calls import open_embedding_cache

        with tempfile.TemporaryDirectory() as tmp:
            cache = open_embedding_cache(Path(tmp))
            t0 = time.perf_counter()
            vectors = embed(texts, cache=cache)
            t_embed = time.perf_counter() - t0
            t0 = time.perf_counter()
            embed(texts, cache=cache)
            t_cached = time.perf_counter() - t0
            cache.close()
        print(
            f"embedding {args.n} prompts (all-MiniLM-L6-v2, CPU): {t_embed:.1f} s; again from the cache: {t_cached:.2f} s"
        )

    t0 = time.perf_counter()
    dist = cosine_distances(vectors)
    t_dist = time.perf_counter() - t0
    runs = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        fast = select_diverse(dist, args.keep)
        runs.append(time.perf_counter() - t0)
    t_fast = statistics.median(runs)
    listed = dist.tolist()
    t0 = time.perf_counter()
    slow = select_diverse_reference(listed, args.keep)
    t_slow = time.perf_counter() - t0

    same = fast.keep == slow.keep and fast.removed == slow.removed and abs(fast.d_min - slow.d_min) < 1e-12
    print(f"input: {source}; N = {args.n}, K = {args.keep}; distance matrix {t_dist * 1000:.0f} ms")
    print(f"{'implementation':<44}{'seconds':>10}")
    print(f"{'vectorised (numpy, nearest-neighbour cache)':<44}{t_fast:>10.3f}   median of {args.repeat}")
    print(f"{'brute-force reference (literal, pure Python)':<44}{t_slow:>10.3f}")
    print(
        f"speed-up: {t_slow / t_fast:.0f}x; same survivors and d_min: {same}; d_min {fast.d_min:.4f} (before {fast.d_min_before:.4f})"
    )
    if not same:
        raise SystemExit("MISMATCH between the vectorised and the reference implementation")


if __name__ == "__main__":
    main()
