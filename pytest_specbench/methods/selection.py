"""Methods that sample several answers and keep the best-rated: ``best_of_n`` and ``tpo``.

Only the *model under test* appears in a result's ``steps``: the rater's calls (a judge or a reward
model) are not the model's tokens, and the paper's Tokens column leaves them out.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..errors import ConfigError, JudgeError, RequestFailed
from ..suite import Case
from .core import MethodContext, MethodResult, Step, split_thinking
from .options import OptionSpec, resolve_options
from .prompts import TPO_GRADIENT_USER, TPO_LOSS_SYSTEM, TPO_LOSS_USER, TPO_UPDATE_SUFFIX, reviewer_system, vanilla_messages
from .registry import MethodRegistry
from .reward import RewardModelScorer

#: Sampling methods need different draws; a greedy run would give ``n`` copies of one answer.
DEFAULT_SAMPLING_TEMPERATURE = 0.7


def scorer_options() -> dict[str, OptionSpec]:
    """Options every ranking method shares: which scorer rates candidates, and how samples are drawn."""
    return {
        "scorer": OptionSpec("judge", "choice", "judge: the run's spec judge (s; ties go to fewer tokens); reward: a reward model served by vLLM", choices=("judge", "reward")),
        "temperature": OptionSpec(None, "float", f"sampling temperature of the draws (auto: the run's if above 0, else {DEFAULT_SAMPLING_TEMPERATURE})", minimum=0.0, optional=True),
        "reward_url": OptionSpec(None, "text", "root URL of a `vllm serve RM --runner pooling --convert classify` server (scorer=reward)", optional=True),
        "reward_model": OptionSpec(None, "text", "model name the reward server serves (default: its first model)", optional=True),
        "reward_route": OptionSpec("classify", "choice", "classify (probability of the last class) or pooling (last pooled value)", choices=("classify", "pooling")),
    }


BEST_OF_N_OPTIONS: dict[str, OptionSpec] = {"n": OptionSpec(15, "int", "samples drawn", minimum=1), **scorer_options()}
TPO_OPTIONS: dict[str, OptionSpec] = {
    "samples": OptionSpec(5, "int", "answers sampled per round", minimum=2),
    "iterations": OptionSpec(2, "int", "optimisation rounds after the initial one", minimum=1),
    **scorer_options(),
}


def check_scorer(name: str, options: Mapping[str, Any]) -> None:
    if options.get("scorer") == "reward" and not options.get("reward_url"):
        raise ConfigError(f"{name}.scorer=reward needs {name}.reward_url (the root URL of a vLLM server running the reward model)")


def scorer_needs(options: Mapping[str, Any]) -> tuple[str, ...]:
    return ("judge",) if options.get("scorer") == "judge" else ()


def _options(name: str, table: Mapping[str, OptionSpec], ctx: MethodContext) -> dict[str, Any]:
    opts = resolve_options(name, table, ctx.options)
    check_scorer(name, opts)
    return opts


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


def make_scorer(name: str, ctx: MethodContext, opts: Mapping[str, Any]) -> Callable[[Case, str], Any]:
    """The async rating function a sampling method uses: the run's judge, or a served reward model."""
    if opts["scorer"] == "judge":
        if ctx.score_response is None:
            raise ConfigError(
                f"{name} ranks its samples with the run's judge, but this run has no judge scorer; configure a judge, "
                f"or use a reward model: {name}.scorer=reward {name}.reward_url=http://HOST:PORT"
            )
        return ctx.score_response
    return RewardModelScorer(opts["reward_url"], opts.get("reward_model"), opts["reward_route"], ctx.prompt_field)


async def rate(scorer: Callable[[Case, str], Any], case: Case, candidates: Sequence[Candidate]) -> list[Candidate]:
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


async def draw(ctx: MethodContext, stage: str, messages: list[dict[str, str]], steps: list[Step], first_index: int, count: int) -> list[Candidate]:
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
    scorer = make_scorer("best_of_n", ctx, opts)
    sampling = sampling_context(ctx, opts["temperature"])
    steps: list[Step] = []
    candidates = await draw(sampling, "best_of_n.sample", vanilla_messages(case, ctx.prompt_field), steps, 0, opts["n"])
    chosen = best(await rate(scorer, case, candidates))
    return MethodResult(chosen.response, chosen.thought, tuple(steps))


async def tpo(case: Case, ctx: MethodContext) -> MethodResult:
    """Test-time preference optimisation (Li et al., 2025) over the run's scorer.

    Round 0 draws ``samples`` answers and rates them. Each later round contrasts the best and the worst
    answer seen so far into a textual loss, turns the loss into update instructions (a textual
    gradient), and draws ``samples`` new answers from the prompt plus the best answer and the
    instructions. The result is the best answer seen in any round.
    """
    opts = _options("tpo", TPO_OPTIONS, ctx)
    scorer = make_scorer("tpo", ctx, opts)
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
            {"role": "user", "content": TPO_LOSS_USER.format(best=top.response, worst=bottom.response, best_score=_fmt(top.score), worst_score=_fmt(bottom.score))},
        ]
        loss_completion = await ctx.call("tpo.loss", loss_messages, steps)
        _, loss = split_thinking(loss_completion)
        gradient_messages = loss_messages + [{"role": "assistant", "content": loss}, {"role": "user", "content": TPO_GRADIENT_USER.format(loss=loss)}]
        gradient_completion = await ctx.call("tpo.gradient", gradient_messages, steps)
        _, instructions = split_thinking(gradient_completion)
        trace.append(f"round {round_no} loss:\n{loss}\n\nround {round_no} instructions:\n{instructions}")
        update = [dict(m) for m in base]
        update[-1] = {"role": "user", "content": update[-1]["content"] + TPO_UPDATE_SUFFIX.format(best=top.response, instructions=instructions)}
        fresh = await draw(sampling, "tpo.sample", update, steps, round_no * n, n)
        pool += await rate(scorer, case, fresh)
    chosen = best(pool)
    thought = "\n\n".join(([chosen.thought] if chosen.thought else []) + trace)
    return MethodResult(chosen.response, thought, tuple(steps))


def _fmt(score: float | None) -> str:
    return "unscored" if score is None else f"{score:.2f}"


def register(registry: MethodRegistry) -> None:
    registry.register("best_of_n", best_of_n, options=BEST_OF_N_OPTIONS, needs=scorer_needs, check=check_scorer)
    registry.register("tpo", tpo, options=TPO_OPTIONS, needs=scorer_needs, check=check_scorer)
