"""The in-process vLLM backend: GPU pinning for xdist workers, request batching, and (on a GPU) the engine.

Pinning and batching are plain code and run everywhere. The engine itself needs vLLM, a CUDA GPU and a
local model; without them those tests skip and say which is missing.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest

from pytest_specbench.backends.base import BackendSpec, Decoding, GenerationRequest
from pytest_specbench.backends.vllm_engine import (
    ENV_GPUS_PER_WORKER,
    MicroBatcher,
    pin_gpus,
    visible_gpus,
    worker_index,
)
from pytest_specbench.errors import BackendUnavailable, ConfigError

# --------------------------------------------------------------------------------------------- pinning


@pytest.mark.parametrize(
    ("worker", "per_worker", "pool", "expected"),
    [
        (0, 1, None, ["0"]),
        (3, 1, None, ["3"]),
        (1, 2, None, ["2", "3"]),
        (0, 1, ["4", "5", "6", "7"], ["4"]),  # inside an already restricted set
        (1, 2, ["4", "5", "6", "7"], ["6", "7"]),
        (2, 1, ["GPU-aa", "GPU-bb", "GPU-cc"], ["GPU-cc"]),  # UUIDs pass through
    ],
)
def test_pin_gpus_gives_each_worker_its_own_slice(worker, per_worker, pool, expected):
    env: dict[str, str] = {}
    assert pin_gpus(worker, per_worker, env, available=pool) == expected
    assert env["CUDA_VISIBLE_DEVICES"] == ",".join(expected)
    assert env[ENV_GPUS_PER_WORKER] == str(per_worker)


def test_pin_gpus_reads_the_visible_set_from_the_environment():
    env = {"CUDA_VISIBLE_DEVICES": "2,3,5"}
    assert visible_gpus(env) == ["2", "3", "5"]
    assert pin_gpus(1, 1, env) == ["3"] and env["CUDA_VISIBLE_DEVICES"] == "3"


@pytest.mark.parametrize(
    ("worker", "per_worker", "pool", "message"),
    [
        (
            4,
            1,
            ["0", "1", "2", "3"],
            r"worker 4 needs 1 GPU\(s\) starting at position 4, but only 4 are visible \(0,1,2,3\); run at most -n 4",
        ),
        (1, 2, ["0", "1", "2"], r"only 3 are visible.*at most -n 1"),
        (0, 0, None, r"GPUs per worker must be at least 1"),
        (-1, 1, None, r"worker index must be 0 or more"),
    ],
)
def test_pin_gpus_refuses_what_cannot_fit(worker, per_worker, pool, message):
    with pytest.raises(ConfigError, match=message):
        pin_gpus(worker, per_worker, {}, available=pool)


@pytest.mark.parametrize(("worker_id", "index"), [("gw0", 0), ("gw7", 7), ("gw12", 12), ("master", 0)])
def test_worker_index_from_xdist_ids(worker_id, index):
    assert worker_index(worker_id) == index


# -------------------------------------------------------------------------------------------- batching


def run_batches(batcher: MicroBatcher[int, int], items: Sequence[int]) -> list[int | BaseException]:
    async def main() -> list[int | BaseException]:
        return await asyncio.gather(*(batcher.submit(i) for i in items), return_exceptions=True)

    return asyncio.run(main())


def test_concurrent_requests_share_one_batch():
    calls: list[list[int]] = []

    def square(items: Sequence[int]) -> list[int]:
        calls.append(list(items))
        return [i * i for i in items]

    with ThreadPoolExecutor(1) as pool:
        batcher = MicroBatcher(square, pool)
        assert run_batches(batcher, [1, 2, 3, 4, 5]) == [1, 4, 9, 16, 25]
    assert calls == [[1, 2, 3, 4, 5]] and batcher.sizes == [5]


def test_requests_arriving_during_a_batch_form_the_next_one():
    first_running = threading.Event()
    release = threading.Event()

    def slow(items: Sequence[int]) -> list[int]:
        if not first_running.is_set():
            first_running.set()
            release.wait(5)
        return list(items)

    async def main(batcher: MicroBatcher[int, int]) -> list[int]:
        early = [asyncio.ensure_future(batcher.submit(i)) for i in (1, 2)]
        while not first_running.is_set():
            await asyncio.sleep(0.01)
        late = [asyncio.ensure_future(batcher.submit(i)) for i in (3, 4, 5)]
        await asyncio.sleep(0.05)
        release.set()
        return list(await asyncio.gather(*early, *late))

    with ThreadPoolExecutor(1) as pool:
        batcher = MicroBatcher(slow, pool)
        assert asyncio.run(main(batcher)) == [1, 2, 3, 4, 5]
    assert batcher.sizes == [2, 3]


def test_a_failing_request_fails_alone():
    def picky(items: Sequence[int]) -> list[int]:
        if 13 in items:
            raise ValueError("prompt 13 is too long for the context window")
        return [i + 100 for i in items]

    with ThreadPoolExecutor(1) as pool:
        batcher = MicroBatcher(picky, pool)
        results = run_batches(batcher, [1, 13, 2])
    assert results[0] == 101 and results[2] == 102
    assert isinstance(results[1], ValueError) and "too long" in str(results[1])
    assert batcher.sizes == [3, 1, 1, 1]  # the batch, then each alone to find the culprit


# -------------------------------------------------------------------------------------------- the engine

HAS_VLLM = importlib.util.find_spec("vllm") is not None


@pytest.mark.skipif(HAS_VLLM, reason="vLLM is installed here; this checks the message shown without it")
def test_without_vllm_the_provider_says_what_to_install():
    from pytest_specbench.backends.vllm_engine import VLLMEngineBackend

    with pytest.raises(
        BackendUnavailable, match=r'needs vLLM \(and a CUDA GPU\): pip install "pytest-specbench\[vllm\]"'
    ):
        VLLMEngineBackend(BackendSpec("vllm", "Qwen/Qwen3-0.6B"))


def _engine_or_skip() -> str:
    """The local model to load, or a skip that names what is missing."""
    if not HAS_VLLM:
        pytest.skip(
            'vLLM is not installed (pip install "pytest-specbench[vllm]"); the in-process engine needs it and a CUDA GPU'
        )
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU visible; the in-process vLLM engine needs one")
    model = os.environ.get("SPECBENCH_VLLM_TEST_MODEL")
    if not model:
        pytest.skip(
            "set SPECBENCH_VLLM_TEST_MODEL to a local chat model directory (e.g. a Qwen3-0.6B snapshot) to run the engine tests"
        )
    return model


@pytest.mark.slow
def test_engine_batches_concurrent_requests_prefills_and_follows_a_schema():
    from pytest_specbench.backends.vllm_engine import VLLMEngineBackend

    model = _engine_or_skip()
    backend = VLLMEngineBackend(
        BackendSpec("vllm", model), engine_kwargs={"max_model_len": 4096, "gpu_memory_utilization": 0.5}
    )
    messages = ({"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Name a colour."})
    decoding = Decoding(max_tokens=32, temperature=0.0, seed=1)
    schema = {"type": "object", "properties": {"colour": {"type": "string"}}, "required": ["colour"]}

    async def main():
        try:
            plain = [
                backend.generate(GenerationRequest(messages=messages, decoding=decoding, sample=i)) for i in range(4)
            ]
            think = backend.generate(
                GenerationRequest(messages=messages, decoding=decoding, prefill="<think>\nThe user", stop=("</think>",))
            )
            structured = backend.generate(GenerationRequest(messages=messages, decoding=decoding, json_schema=schema))
            return await asyncio.gather(*plain, think, structured)
        finally:
            await backend.aclose()

    *plain, think, structured = asyncio.run(main())
    assert backend.batches[0] == 6, "six concurrent requests, one LLM.generate call"
    assert all(c.completion_tokens > 0 and c.text for c in plain)
    assert "</think>" not in think.text and think.prompt_tokens > plain[0].prompt_tokens
    assert "colour" in json.loads(structured.text)
