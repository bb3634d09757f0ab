"""CPU per chat-completion call: the openai client's typed ``create`` against its raw ``post``.

    python bench/bench_client.py [--calls 600] [--concurrency 8]

Why this exists: a worker keeps many requests in flight, and what limits it is the CPU each call costs on
its event loop, not the network. The backends send through the official client's ``post`` with a plain
JSON body and read the answer's few fields themselves; this script measures what that saves against
``chat.completions.create`` (typed request transform, pydantic response models), side by side in one
run, against the local test server with no latency. CPU time includes the in-process server's share,
which is the same on both sides. It also prints what ``import openai`` costs a fresh interpreter.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from scripted_server import ScriptedServer  # noqa: E402

BODY: dict[str, Any] = {
    "model": "scripted",
    "messages": [{"role": "system", "content": "Follow the product's rules. " * 80}, {"role": "user", "content": "Tell me a story. " * 150}],
    "max_tokens": 512,
    "temperature": 0.0,
    "seed": 0,
}


async def cpu_per_call(kind: str, url: str, calls: int, concurrency: int) -> float:
    """Milliseconds of process CPU per call."""
    import openai

    httpx = getattr(openai._base_client, "httpx2", None) or openai._base_client.httpx
    client = openai.AsyncOpenAI(base_url=url, api_key="bench", max_retries=0, timeout=30)
    gate = asyncio.Semaphore(concurrency)

    async def one() -> str:
        async with gate:
            if kind == "create":
                answer = await client.chat.completions.create(**BODY)
                return answer.choices[0].message.content or ""
            raw = await client.post("/chat/completions", body=BODY, cast_to=httpx.Response)
            return raw.json()["choices"][0]["message"]["content"]

    await asyncio.gather(*[one() for _ in range(20)])  # warm the connection pool and code paths
    start = time.process_time()
    await asyncio.gather(*[one() for _ in range(calls)])
    spent = time.process_time() - start
    await client.close()
    return 1000 * spent / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=600)
    parser.add_argument("--concurrency", type=int, default=8)
    opts = parser.parse_args()
    code = "import time; t = time.perf_counter(); import openai; print(time.perf_counter() - t)"
    imports = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout) for _ in range(3)]
    print(f"import openai in a fresh interpreter: {min(imports):.2f} s (best of 3)")
    with ScriptedServer() as server:
        rounds = [(asyncio.run(cpu_per_call("create", server.url, opts.calls, opts.concurrency)), asyncio.run(cpu_per_call("post", server.url, opts.calls, opts.concurrency))) for _ in range(3)]
    typed = min(r[0] for r in rounds)
    raw = min(r[1] for r in rounds)
    print(f"{opts.calls} calls, {opts.concurrency} in flight, best of 3 alternating rounds")
    print(f"chat.completions.create: {typed:.2f} ms CPU per call · raw post: {raw:.2f} ms · ratio {typed / raw:.2f}×")


if __name__ == "__main__":
    main()
