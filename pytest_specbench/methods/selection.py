"""Methods that sample several answers and keep the best-rated: ``best_of_n`` and ``tpo``.

Only the *model under test* appears in a result's ``steps``: the rater's calls (a judge or a reward
model) are not the model's tokens, and the paper's Tokens column leaves them out.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

from ..backends.base import BackendSpec
from ..errors import ConfigError, JudgeError, RequestFailed
from ..suite import Case
from .core import MethodContext, MethodResult, Selector, Step, split_thinking
from .options import OptionSpec, resolve_options
from .prompts import (
    TPO_GRADIENT_USER,
    TPO_LOSS_SYSTEM,
    TPO_LOSS_USER,
    TPO_UPDATE_SUFFIX,
    reviewer_system,
    vanilla_messages,
)
from .registry import MethodRegistry
from .reward import RewardModelClient

#: Sampling methods need different draws; a greedy run would give ``n`` copies of one answer.
DEFAULT_SAMPLING_TEMPERATURE = 0.7
#: How ranking methods can rate candidates. There is deliberately no default: see :func:`check_scorer`.
SCORERS = ("reward", "judge")


def scorer_options() -> dict[str, OptionSpec]:
    """Options every ranking method shares: which rater ranks the candidates, and how samples are drawn."""
    return {
        "scorer": OptionSpec(
            None,
            "choice",
            "required: reward (a reward-model server, the paper's setting) or judge (an LLM judge; the grading judge unless judge= names another)",
            choices=SCORERS,
            optional=True,
        ),
        "temperature": OptionSpec(
            None,
            "float",
            f"sampling temperature of the draws (auto: the run's if above 0, else {DEFAULT_SAMPLING_TEMPERATURE})",
            minimum=0.0,
            optional=True,
        ),
        "reward_url": OptionSpec(
            None,
            "text",
            "root URL of a `vllm serve RM --runner pooling --convert classify` server (scorer=reward)",
            optional=True,
        ),
        "reward_model": OptionSpec(
            None, "text", "model name the reward server serves (default: the one it serves)", optional=True
        ),
        "reward_route": OptionSpec(
            "classify",
            "choice",
            "classify (probability of the last class) or pooling (last pooled value)",
            choices=("classify", "pooling"),
        ),
        "judge": OptionSpec(
            None,
            "text",
            "selector judge for scorer=judge, PROVIDER/NAME or a profile (default: the run's grading judge)",
            optional=True,
        ),
        "judge_base_url": OptionSpec(
            None,
            "text",
            "base URL(s) of the selector judge's server, comma-separated (default: the provider's)",
            optional=True,
        ),
    }


BEST_OF_N_OPTIONS: dict[str, OptionSpec] = {"n": OptionSpec(15, "int", "samples drawn", minimum=1), **scorer_options()}
TPO_OPTIONS: dict[str, OptionSpec] = {
    "samples": OptionSpec(5, "int", "answers sampled per round", minimum=2),
    "iterations": OptionSpec(2, "int", "optimisation rounds after the initial one", minimum=1),
    **scorer_options(),
}


def check_scorer(name: str, options: Mapping[str, Any]) -> None:
    """A ranking method must be told what ranks its samples, and its rater's options must fit that choice.

    There is no default on purpose: ranking with the run's grading judge optimises the very score the
    method is then graded on, which inflates its SAR; the paper ranked with a reward model.
    """
    scorer = options.get("scorer")
    if scorer is None:
        raise ConfigError(
            f"{name} needs a scorer to rank its samples: {name}.scorer=reward with {name}.reward_url=URL "
            f"(a reward-model server, the paper's setting) or {name}.scorer=judge (an LLM judge; the run's grading "
            f"judge, whose SAR is then optimistic, unless {name}.judge=PROVIDER/NAME names another)"
        )
    if scorer == "reward":
        if not options.get("reward_url"):
            raise ConfigError(
                f"{name}.scorer=reward needs {name}.reward_url (the root URL of a vLLM server running the reward model)"
            )
        stray = [k for k in ("judge", "judge_base_url") if options.get(k)]
    else:
        stray = [k for k in ("reward_url", "reward_model") if options.get(k)]
        if options.get("judge_base_url") and not options.get("judge"):
            raise ConfigError(f"{name}.judge_base_url needs {name}.judge (the selector judge's PROVIDER/NAME)")
    if stray:
        raise ConfigError(f"{', '.join(f'{name}.{k}' for k in stray)} cannot be used with {name}.scorer={scorer}")


def scorer_needs(options: Mapping[str, Any]) -> tuple[str, ...]:
    """The run's grading judge is needed only when it is the rater."""
    return ("judge",) if options.get("scorer") == "judge" and not options.get("judge") else ()


def _options(name: str, table: Mapping[str, OptionSpec], ctx: MethodContext) -> dict[str, Any]:
    opts = resolve_options(name, table, ctx.options)
    check_scorer(name, opts)
    return opts


class SelectorPool:
    """The raters of a run's ranking methods, each made once; :meth:`aclose` releases their connections.

    ``grader`` is the run's grading judge as a rater; ``make_judge`` builds another judge from
    PROVIDER/NAME (or a profile) and base URLs. Reward clients take their transport, timeout, retry bound
    and HTTP client from ``connection``, the run's own settings.
    """

    def __init__(
        self,
        connection: BackendSpec,
        grader: Selector | None = None,
        make_judge: Callable[[str, tuple[str, ...]], Selector] | None = None,
    ):
        self.connection = connection
        self.grader = grader
        self.make_judge = make_judge
        self._judges: dict[tuple[str, tuple[str, ...]], Selector] = {}
        self._rewards: dict[tuple[str, str | None, str], RewardModelClient] = {}

    @classmethod
    def for_context(cls, ctx: MethodContext) -> SelectorPool:
        """Raters for a method called outside a run: the context's grading judge, reward models, no other judges."""
        grader = None if ctx.score_response is None else Selector("judge:run", True, ctx.score_response)
        return cls(ctx.backend.spec, grader)

    def judge(self, ref: str | None, base_urls: tuple[str, ...] = ()) -> Selector:
        if ref is None:
            if self.grader is None:
                raise ConfigError(
                    "ranking with the run's judge needs a run with a judge; name a selector judge (judge=PROVIDER/NAME) or use scorer=reward"
                )
            return self.grader
        key = (ref, base_urls)
        if key not in self._judges:
            if self.make_judge is None:
                raise ConfigError(
                    f"a selector judge ({ref}) is built by the pytest run; outside it, pass score_response or use scorer=reward"
                )
            self._judges[key] = self.make_judge(ref, base_urls)
        return self._judges[key]

    def reward(self, url: str, model: str | None, route: str, prompt_field: str) -> Selector:
        key = (url, model, route)
        if key not in self._rewards:
            self._rewards[key] = RewardModelClient.at(url, model, route, self.connection)
        return self._rewards[key].selector(prompt_field)

    async def aclose(self) -> None:
        for client in self._rewards.values():
            await client.aclose()
        self._rewards.clear()


def split_urls(value: str | None) -> tuple[str, ...]:
    return tuple(u.strip() for u in (value or "").split(",") if u.strip())


@asynccontextmanager
async def selector_for(name: str, ctx: MethodContext, opts: Mapping[str, Any]) -> AsyncIterator[Selector]:
    """The rater the options ask for, from the run's pool (or a temporary one, closed after the case)."""
    pool = ctx.selectors
    owned = SelectorPool.for_context(ctx) if pool is None else None
    try:
        source = pool or owned
        assert source is not None
        if opts["scorer"] == "judge":
            yield source.judge(opts["judge"], split_urls(opts["judge_base_url"]))
        else:
            yield source.reward(opts["reward_url"], opts["reward_model"], opts["reward_route"], ctx.prompt_field)
    finally:
        if owned is not None:
            await owned.aclose()


@dataclass(frozen=True)
class Candidate:
    """One sampled answer and how it was rated; ``score`` None means unscored (empty or unreadable)."""

    index: int
    thought: str
    response: str
    completion_tokens: int
    score: float | None = None

    @property
    def rank_key(self) -> tuple[float, int, int]:
        """Higher is better: score first, then fewer tokens, then the earlier draw."""
        score = -math.inf if self.score is None else self.score
        return (score, -self.completion_tokens, -self.index)


async def rate(
    scorer: Callable[[Case, str], Awaitable[float | None]], case: Case, candidates: Sequence[Candidate]
) -> list[Candidate]:
    """Score every non-empty candidate concurrently.

    An unreadable verdict leaves that candidate unscored (it can still win only if nothing was scored).
    If the rater could not be *reached* for any candidate (a reward server that is down), that is an
    error, not a silent fall-back to "fewest tokens".
    """
    unreachable: list[RequestFailed] = []

    async def one(c: Candidate) -> Candidate:
        if not c.response.strip():
            return c
        try:
            score = await scorer(case, c.response)
        except JudgeError:
            return c
        except RequestFailed as exc:
            unreachable.append(exc)
            return c
        return replace(c, score=None if score is None else float(score))

    rated = list(await asyncio.gather(*(one(c) for c in candidates)))
    attempted = sum(1 for c in candidates if c.response.strip())
    if attempted and len(unreachable) == attempted:
        raise unreachable[0]
    return rated


async def draw(
    ctx: MethodContext, stage: str, messages: list[dict[str, str]], steps: list[Step], first_index: int, count: int
) -> list[Candidate]:
    """``count`` independent samples; ``sample`` offsets the seed and keeps cache keys apart."""

    async def one(i: int) -> tuple[Candidate, Step]:
        local: list[Step] = []
        completion = await ctx.call(stage, messages, local, sample=i)
        thought, response = split_thinking(completion)
        return Candidate(i, thought, response, completion.completion_tokens), local[0]

    results = await asyncio.gather(*(one(first_index + k) for k in range(count)))
    candidates = []
    for candidate, step in results:  # steps in draw order, whatever order the calls finished in
        steps.append(step)
        candidates.append(candidate)
    return candidates


def best(candidates: Sequence[Candidate]) -> Candidate:
    return max(candidates, key=lambda c: c.rank_key)


def worst(candidates: Sequence[Candidate]) -> Candidate:
    return min(candidates, key=lambda c: c.rank_key)


def sampling_context(ctx: MethodContext, temperature: float | None) -> MethodContext:
    """The context with a temperature that actually samples (see :data:`DEFAULT_SAMPLING_TEMPERATURE`)."""
    if temperature is None:
        current = ctx.decoding.temperature
        temperature = current if current else DEFAULT_SAMPLING_TEMPERATURE
    return replace(ctx, decoding=replace(ctx.decoding, temperature=temperature))


async def best_of_n(case: Case, ctx: MethodContext) -> MethodResult:
    """Best-of-N: draw ``n`` answers to the vanilla prompt and keep the best-rated one.

    Every draw's tokens count (that is the method's cost); the rater's calls do not.
    """
    opts = _options("best_of_n", BEST_OF_N_OPTIONS, ctx)
    async with selector_for("best_of_n", ctx, opts) as selector:
        sampling = sampling_context(ctx, opts["temperature"])
        steps: list[Step] = []
        candidates = await draw(
            sampling, "best_of_n.sample", vanilla_messages(case, ctx.prompt_field), steps, 0, opts["n"]
        )
        chosen = best(await rate(selector.score, case, candidates))
    return MethodResult(chosen.response, chosen.thought, tuple(steps), selector.label, selector.is_grader)


async def tpo(case: Case, ctx: MethodContext) -> MethodResult:
    """Test-time preference optimisation (Li et al., 2025) over the run's scorer.

    Round 0 draws ``samples`` answers and rates them. Each later round contrasts the best and the worst
    answer seen so far into a textual loss, turns the loss into update instructions (a textual
    gradient), and draws ``samples`` new answers from the prompt plus the best answer and the
    instructions. The result is the best answer seen in any round.
    """
    opts = _options("tpo", TPO_OPTIONS, ctx)
    async with selector_for("tpo", ctx, opts) as selector:
        return await _tpo(case, ctx, opts, selector)


async def _tpo(case: Case, ctx: MethodContext, opts: Mapping[str, Any], selector: Selector) -> MethodResult:
    scorer = selector.score
    sampling = sampling_context(ctx, opts["temperature"])
    n = opts["samples"]
    base = vanilla_messages(case, ctx.prompt_field)
    steps: list[Step] = []
    pool = await rate(scorer, case, await draw(sampling, "tpo.sample", base, steps, 0, n))
    loss_system = reviewer_system(TPO_LOSS_SYSTEM, case, ctx.prompt_field)
    trace: list[str] = []
    for round_no in range(1, opts["iterations"] + 1):
        top, bottom = best(pool), worst(pool)
        loss_messages = [
            {"role": "system", "content": loss_system},
            {
                "role": "user",
                "content": TPO_LOSS_USER.format(
                    best=top.response, worst=bottom.response, best_score=_fmt(top.score), worst_score=_fmt(bottom.score)
                ),
            },
        ]
        loss_completion = await ctx.call("tpo.loss", loss_messages, steps)
        _, loss = split_thinking(loss_completion)
        gradient_messages = loss_messages + [
            {"role": "assistant", "content": loss},
            {"role": "user", "content": TPO_GRADIENT_USER.format(loss=loss)},
        ]
        gradient_completion = await ctx.call("tpo.gradient", gradient_messages, steps)
        _, instructions = split_thinking(gradient_completion)
        trace.append(f"round {round_no} loss:\n{loss}\n\nround {round_no} instructions:\n{instructions}")
        update = [dict(m) for m in base]
        update[-1] = {
            "role": "user",
            "content": update[-1]["content"] + TPO_UPDATE_SUFFIX.format(best=top.response, instructions=instructions),
        }
        fresh = await draw(sampling, "tpo.sample", update, steps, round_no * n, n)
        pool += await rate(scorer, case, fresh)
    chosen = best(pool)
    thought = "\n\n".join(([chosen.thought] if chosen.thought else []) + trace)
    return MethodResult(chosen.response, thought, tuple(steps), selector.label, selector.is_grader)


def _fmt(score: float | None) -> str:
    return "unscored" if score is None else f"{score:.2f}"


def register(registry: MethodRegistry) -> None:
    registry.register("best_of_n", best_of_n, options=BEST_OF_N_OPTIONS, needs=scorer_needs, check=check_scorer)
    registry.register("tpo", tpo, options=TPO_OPTIONS, needs=scorer_needs, check=check_scorer)
