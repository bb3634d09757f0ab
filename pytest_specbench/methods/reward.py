"""A reward model as a candidate rater: vLLM's ``/classify`` or ``/pooling`` route.

The client is an :class:`~pytest_specbench.backends.openai_compat.OpenAICompatBackend` that posts to a
different route, so it shares everything every other call has: the HTTP transport chosen for the run
(``--specbench-http-client``), the one retry policy (408/409/429/5xx and connection faults, Retry-After,
bounded attempts), the key taken from the environment and never printed, and errors whose text the run
scrubs before it is recorded.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..backends.base import BackendSpec, Completion, GenerationRequest, RetryDecision
from ..backends.openai_compat import OpenAICompatBackend
from ..errors import CapabilityError
from ..suite import Case
from .core import Selector
from .prompts import vanilla_messages

#: The routes a vLLM pooling server offers for a reward model, by the option value that picks them.
ROUTES = ("classify", "pooling")


class RewardModelClient(OpenAICompatBackend):
    """Rates (prompt, answer) with a reward model behind vLLM's ``/classify`` or ``/pooling`` route.

    Serve one with ``vllm serve sfairXC/FsfairX-LLaMA3-RM-v0.1 --runner pooling --convert classify``
    (the paper's reward model). The conversation is sent as chat ``messages`` so the server applies the
    reward model's own template. ``/classify`` answers class probabilities: a one-label reward head gives
    one value and we take it; with several labels we take the last ("preferred") class. ``/pooling``
    answers the raw pooled output; we take its last value (the reward at the final token). Without a
    model name the field is left out and the server uses the one model it serves.
    """

    provider = "reward"
    supports_json_schema = False

    def __init__(self, spec: BackendSpec, route: str = "classify"):
        if route not in ROUTES:
            raise ValueError(f"reward route must be one of {', '.join(ROUTES)}, got {route!r}")
        super().__init__(spec)
        self.route = route

    @classmethod
    def at(cls, url: str, model: str | None, route: str, connection: BackendSpec) -> RewardModelClient:
        """A client for the server at ``url`` (its root; a trailing ``/v1`` is dropped), with the run's connection settings."""
        root = url.rstrip("/").removesuffix("/v1")
        spec = BackendSpec(
            "reward",
            model or "",
            base_urls=(root,),
            timeout=connection.timeout,
            max_retries=connection.max_retries,
            http_client=connection.http_client,
        )
        return cls(spec, route)

    @property
    def label(self) -> str:
        return f"reward:{self.spec.name or self.base_urls[0]}"

    async def _generate_once(self, request: GenerationRequest) -> Completion:
        raise CapabilityError(f"{self.label} is a reward model: it rates answers and does not generate")

    async def reward(self, messages: list[dict[str, str]]) -> float:
        """The reward of the conversation's last (assistant) turn, retried under the run's policy."""
        body: dict[str, Any] = {"messages": messages}
        if self.spec.name:
            body["model"] = self.spec.name
        path = f"/{self.route}"

        async def once() -> float:
            self.calls += 1
            transport, base = self._send()
            return _reward_value(await transport.post(base, path, body), self.route)

        def decide(exc: BaseException) -> RetryDecision:
            decision = self.retry_decision(exc)
            return dataclasses.replace(
                decision, reason=f"reward model at {self.base_urls[0]}{path} did not answer: {decision.reason}"
            )

        value, _ = await self.retry_policy.run(once, decide)
        return value

    def selector(self, prompt_field: str) -> Selector:
        async def score(case: Case, text: str) -> float:
            return await self.reward(vanilla_messages(case, prompt_field) + [{"role": "assistant", "content": text}])

        return Selector(self.label, False, score)


def _reward_value(out: Any, route: str) -> float:
    """The score in a ``/classify`` (``probs``) or ``/pooling`` (``data``) answer; ValueError when there is none."""
    try:
        item = out["data"][0]
        values = item["probs"] if route == "classify" else item["data"]
        while isinstance(values, list) and values and isinstance(values[-1], list):
            values = values[-1]
        return float(values[-1] if isinstance(values, list) else values)
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise ValueError(f"reward model answer has no score: {str(out)[:200]}") from exc
