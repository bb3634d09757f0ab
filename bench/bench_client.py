"""CPU per chat-completion call and import cost of each way to send one, side by side in one run.

    python bench/bench_client.py [--calls 600] [--concurrency 8]

Why this exists: a worker keeps many requests in flight, and what limits it is the CPU each call costs on
its event loop and, for short runs, what the client costs to import before the first request can leave.
Three ways to send the same body to the local test server with no latency:

- ``openai create``: the official client's typed ``chat.completions.create`` (request transform, pydantic
  response models);
- ``openai post``: the same client's raw ``post`` (the ``--specbench-http-client=openai`` transport);
- ``aiohttp``: the default transport, an aiohttp session.

CPU time includes the in-process server's share, which is the same for all three. Rounds alternate so
that drift on a noisy machine hits every side alike; the best of each is printed.
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

from pytest_specbench.backends.http import make_transport  # noqa: E402

BODY: dict[str, Any] = {
    "model": "scripted",
    "messages": [
        {"role": "system", "content": "Follow the product's rules. " * 80},
        {"role": "user", "content": "Tell me a story. " * 150},
    ],
    "max_tokens": 512,
    "temperature": 0.0,
    "seed": 0,
}
KINDS = ("openai create", "openai post", "aiohttp")


async def cpu_per_call(kind: str, url: str, calls: int, concurrency: int) -> float:
    """Milliseconds of process CPU per call."""
    gate = asyncio.Semaphore(concurrency)
    if kind == "openai create":
        import openai

        client = openai.AsyncOpenAI(base_url=url, api_key="bench", max_retries=0, timeout=30)

        async def send() -> str:
            answer = await client.chat.completions.create(**BODY)
            return answer.choices[0].message.content or ""

        close = client.close
    else:
        transport = make_transport(kind.split()[0], api_key="bench", timeout=30, base_urls=(url,))

        async def send() -> str:
            return (await transport.post(url, "/chat/completions", BODY))["choices"][0]["message"]["content"]

        close = transport.aclose

    async def one() -> str:
        async with gate:
            return await send()

    await asyncio.gather(*[one() for _ in range(20)])  # warm the connection pool and code paths
    start = time.process_time()
    await asyncio.gather(*[one() for _ in range(calls)])
    spent = time.process_time() - start
    await close()
    return 1000 * spent / calls


def import_seconds(module: str) -> float:
    """Best of 3 fresh interpreters: seconds to import ``module`` after asyncio (which every run has)."""
    code = f"import asyncio, time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    return min(
        float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
        for _ in range(3)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=600)
    parser.add_argument("--concurrency", type=int, default=8)
    opts = parser.parse_args()
    imports = {m: import_seconds(m) for m in ("openai", "aiohttp")}
    print(
        f"import in a fresh interpreter (best of 3): openai {imports['openai']:.2f} s · aiohttp {imports['aiohttp']:.2f} s · ratio {imports['openai'] / imports['aiohttp']:.1f}×"
    )
    best = {k: float("inf") for k in KINDS}
    with ScriptedServer() as server:
        for _ in range(3):
            for kind in KINDS:
                best[kind] = min(best[kind], asyncio.run(cpu_per_call(kind, server.url, opts.calls, opts.concurrency)))
    print(f"{opts.calls} calls, {opts.concurrency} in flight, best of 3 alternating rounds, ms of CPU per call:")
    for kind in KINDS:
        print(f"  {kind:<14} {best[kind]:5.2f} ms · {best[kind] / best['aiohttp']:.2f}× the aiohttp transport")


if __name__ == "__main__":
    main()
