"""The one backend interface: an async ``generate`` from a request to a completion.

Methods (vanilla, align3, …) and the judge only ever talk to :class:`Backend`. Concrete backends differ
in how they reach a model (in-process llama.cpp, an OpenAI-compatible HTTP server) and in what they can
do (continue a partial assistant turn, constrain output to a JSON Schema); those abilities are class
attributes so a method can refuse early with a clear message instead of failing mid-run.

Retries live here, once, as :class:`RetryPolicy`; a backend only decides *whether* an exception is worth
retrying (:meth:`Backend.retry_decision`).
"""

from __future__ import annotations

import abc
import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from ..errors import RequestFailed
from .http import HTTP_CLIENTS

T = TypeVar("T")

# Retry policy, in the spirit of openai-python's client: retry timeouts, connection errors, 408, 409,
# 429 and 5xx; honour Retry-After up to a cap; otherwise back off exponentially with jitter.
DEFAULT_MAX_RETRIES = 3
INITIAL_BACKOFF_S = 0.5
MAX_BACKOFF_S = 8.0
RETRY_AFTER_CAP_S = 60.0
JITTER_FRACTION = 0.25
RETRYABLE_STATUS = frozenset({408, 409, 429})

# Completion budgets of the paper's set-up, used only where the plugin must choose one (an in-process
# engine has no server default to fall back on): instruct models, and models that think before answering.
INSTRUCT_MAX_TOKENS = 4200
REASONING_MAX_TOKENS = 8400


@dataclass(frozen=True)
class Decoding:
    """Sampling settings for one role (the model under test, or the judge).

    ``None`` means "not set": the server's default applies (an HTTP backend leaves the field out of the
    request). In-process backends never see ``max_tokens=None`` from a run: the resolver
    (:func:`pytest_specbench.models.resolve_model`) gives them the paper's budget.
    """

    temperature: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    top_p: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_key(self) -> dict[str, Any]:
        return {
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "seed": self.seed,
            "top_p": self.top_p,
            "extra": dict(self.extra),
        }


@dataclass(frozen=True)
class GenerationRequest:
    """Everything one model call needs.

    ``prefill`` is a partial assistant turn the model must continue (thinking interventions);
    ``json_schema`` asks for output constrained to that schema where the backend can enforce it;
    ``sample`` tells apart otherwise identical requests (best-of-N draws): it offsets the seed and is
    part of the cache key.
    """

    messages: tuple[Mapping[str, str], ...]
    decoding: Decoding
    prefill: str | None = None
    stop: tuple[str, ...] = ()
    json_schema: Mapping[str, Any] | None = None
    schema_dialect: str = "json_schema"
    sample: int = 0

    @property
    def seed(self) -> int | None:
        return None if self.decoding.seed is None else self.decoding.seed + self.sample


@dataclass(frozen=True)
class Completion:
    """What came back. ``reasoning`` carries a server-side split thought (DeepSeek-style)."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None
    reasoning: str | None = None
    attempts: int = 1


@dataclass(frozen=True)
class RetryDecision:
    retry: bool
    reason: str
    retry_after: float | None = None


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries with exponential backoff and jitter; ``max_retries`` counts re-sends."""

    max_retries: int = DEFAULT_MAX_RETRIES
    initial_backoff: float = INITIAL_BACKOFF_S
    max_backoff: float = MAX_BACKOFF_S
    retry_after_cap: float = RETRY_AFTER_CAP_S

    def delay(self, retry_number: int, retry_after: float | None) -> float:
        if retry_after is not None and retry_after >= 0:
            return min(retry_after, self.retry_after_cap)
        base = min(self.initial_backoff * 2 ** (retry_number - 1), self.max_backoff)
        return base * (1 - JITTER_FRACTION * random.random())

    async def run(
        self, call: Callable[[], Awaitable[T]], decide: Callable[[BaseException], RetryDecision]
    ) -> tuple[T, int]:
        """Run ``call`` until it succeeds or the policy gives up; returns (result, attempts)."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return await call(), attempt
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                decision = decide(exc)
                if not decision.retry or attempt > self.max_retries:
                    raise RequestFailed(decision.reason, attempts=attempt) from exc
                await asyncio.sleep(self.delay(attempt, decision.retry_after))


@dataclass(frozen=True)
class BackendSpec:
    """How to build a backend: ``provider/name`` plus connection settings. Hashable, so equal specs share one backend."""

    provider: str
    name: str
    base_urls: tuple[str, ...] = ()
    api_key_env: str = "OPENAI_API_KEY"
    timeout: float = 120.0
    max_retries: int = DEFAULT_MAX_RETRIES
    n_ctx: int = 4096
    #: The HTTP transport of OpenAI-compatible backends (see :mod:`pytest_specbench.backends.http`).
    http_client: str = HTTP_CLIENTS[0]
    #: The servers at ``base_urls`` were started by this run for this model (``--specbench-serve``): their
    #: addresses (free ports) change from run to run and say nothing about which model answers.
    managed: bool = False
    #: Constructor options of the backend class, as sorted (key, value) pairs so the spec stays hashable:
    #: e.g. ``(("prefill_template", "chatml"),)`` from a vLLM profile. Only classes with
    #: ``supports_thinking_template`` receive them; see :meth:`option`.
    options: tuple[tuple[str, Any], ...] = ()

    def option(self, key: str, default: Any = None) -> Any:
        return dict(self.options).get(key, default)

    @property
    def label(self) -> str:
        return f"{self.provider}/{self.name}"


class Backend(abc.ABC):
    """A model reachable by :meth:`generate`.

    Subclasses set the capability flags and implement :meth:`_generate_once`; retries wrap it here.
    """

    provider: ClassVar[str]
    #: Can continue a partial assistant turn (needed by zero_think, more_think, align3).
    supports_prefill: ClassVar[bool] = False
    #: Can constrain output to a JSON Schema (the judge's structured format).
    supports_json_schema: ClassVar[bool] = False
    #: Renders prompts with a chosen chat template (``prefill_template`` option) and thinking switches.
    supports_thinking_template: ClassVar[bool] = False
    #: Sends requests over an HTTP transport (:mod:`pytest_specbench.backends.http`), which a worker may preload.
    uses_http: ClassVar[bool] = False
    #: Runs in this process, with no server default for the completion budget: a run must choose one.
    needs_max_tokens: ClassVar[bool] = False
    #: How a JSON Schema constraint is phrased for this backend: ``json_schema`` (OpenAI's strict subset,
    #: also vLLM and SGLang) or ``json_object`` (llama.cpp's grammar, which accepts more keywords).
    schema_dialect: ClassVar[str] = "json_schema"
    #: In-flight requests that make sense; in-process engines serialise calls themselves.
    default_concurrency: ClassVar[int] = 8

    def __init__(self, spec: BackendSpec):
        self.spec = spec
        self.retry_policy = RetryPolicy(max_retries=spec.max_retries)
        self.calls = 0

    @property
    def label(self) -> str:
        return self.spec.label

    @property
    def cache_identity(self) -> str:
        """Which model answers, for the call cache's key: the label, plus whatever else tells models apart.

        A model name alone does not: the same name at two servers may be two different models (another
        fine-tune, another quantisation). Backends that reach servers add them (see the HTTP backend).
        """
        return self.label

    async def generate(self, request: GenerationRequest) -> Completion:
        """One completion, retried under the policy; raises :class:`RequestFailed` when it gives up."""

        async def once() -> Completion:
            self.calls += 1
            return await self._generate_once(request)

        completion, attempts = await self.retry_policy.run(once, self.retry_decision)
        if attempts == 1:
            return completion
        return Completion(**{**completion.__dict__, "attempts": attempts})

    @abc.abstractmethod
    async def _generate_once(self, request: GenerationRequest) -> Completion:
        """Send one request, no retries."""

    def retry_decision(self, exc: BaseException) -> RetryDecision:
        """Whether ``exc`` is transient. The default retries nothing; HTTP backends override it."""
        return RetryDecision(False, f"{type(exc).__name__}: {exc}")

    async def aclose(self) -> None:  # noqa: B027 - optional: most backends hold nothing to release
        """Release connections or engines."""
