"""A reward model as a candidate scorer: vLLM's ``/classify`` or ``/pooling`` route."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from ..errors import RequestFailed
from ..suite import Case
from .prompts import vanilla_messages


class RewardModelScorer:
    """Rates (prompt, answer) with a reward model behind vLLM's ``/classify`` or ``/pooling`` route.

    Serve one with ``vllm serve sfairXC/FsfairX-LLaMA3-RM-v0.1 --runner pooling --convert classify``
    (the paper's reward model). The conversation is sent as chat ``messages`` so the server applies the
    reward model's own template. ``/classify`` answers class probabilities: a one-label reward head gives
    one value and we take it; with several labels we take the last ("preferred") class. ``/pooling``
    answers the raw pooled output; we take its last value (the reward at the final token).
    """

    def __init__(self, url: str, model: str | None, route: str, prompt_field: str = "adversarial", timeout: float = 120.0):
        root = url.rstrip("/")
        self.root = root.removesuffix("/v1")
        self.model = model
        self.route = route
        self.prompt_field = prompt_field
        self.timeout = timeout

    def _post(self, path: str, body: Mapping[str, Any] | None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.root}{path}", data=data, headers={"content-type": "application/json"}, method="GET" if body is None else "POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise RequestFailed(f"reward model at {self.root}{path} did not answer: {exc}", attempts=1) from exc

    def _score_sync(self, case: Case, text: str) -> float:
        if self.model is None:
            models = self._post("/v1/models", None)
            self.model = models["data"][0]["id"]
        messages = vanilla_messages(case, self.prompt_field) + [{"role": "assistant", "content": text}]
        out = self._post(f"/{self.route}", {"model": self.model, "messages": messages})
        try:
            item = out["data"][0]
            values = item["probs"] if self.route == "classify" else item["data"]
            while isinstance(values, list) and values and isinstance(values[-1], list):
                values = values[-1]
            return float(values[-1] if isinstance(values, list) else values)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise RequestFailed(f"reward model answer has no score: {str(out)[:200]}", attempts=1) from exc

    async def __call__(self, case: Case, text: str) -> float:
        return await asyncio.to_thread(self._score_sync, case, text)
