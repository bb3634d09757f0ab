"""Command-line options, their ini twins, and the validated :class:`Settings` built from them.

Option names are module constants so tests and other plugins can refer to them without retyping
strings. Every value goes through one converter, whether it came from the command line, the ini file
or the environment, and a bad value is a :class:`pytest.UsageError` with a sentence the user can act on.
Precedence: command line, then environment (where one exists), then ini, then the default.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, TypeVar

import pytest

from .backends.http import HTTP_CLIENTS

T = TypeVar("T")

GROUP = "specbench"
OPT_DATA = "--specbench-data"
OPT_SCENARIOS = "--specbench-scenarios"
OPT_SPLIT = "--specbench-split"
OPT_LIMIT = "--specbench-limit"
OPT_SEED = "--specbench-seed"
OPT_PROMPT = "--specbench-prompt"
OPT_MODEL = "--specbench-model"
OPT_BASE_URL = "--specbench-base-url"
OPT_JUDGE = "--specbench-judge"
OPT_JUDGE_BASE_URL = "--specbench-judge-base-url"
OPT_TEMPERATURE = "--specbench-temperature"
OPT_MAX_TOKENS = "--specbench-max-tokens"
OPT_JUDGE_TEMPERATURE = "--specbench-judge-temperature"
OPT_JUDGE_MAX_TOKENS = "--specbench-judge-max-tokens"
OPT_METHOD = "--specbench-method"
OPT_METHOD_OPT = "--specbench-method-opt"
OPT_MODEL_CONFIG = "--specbench-model-config"
OPT_SERVE = "--specbench-serve"
OPT_SERVE_ARGS = "--specbench-serve-args"
OPT_GPUS_PER_WORKER = "--specbench-gpus-per-worker"
OPT_JUDGE_FORMAT = "--specbench-judge-format"
OPT_JUDGE_MODE = "--specbench-judge-mode"
OPT_JUDGE_RETRIES = "--specbench-judge-retries"
OPT_RETRIES = "--specbench-retries"
OPT_TIMEOUT = "--specbench-timeout"
OPT_HTTP_CLIENT = "--specbench-http-client"
OPT_CONCURRENCY = "--specbench-concurrency"
OPT_N_CTX = "--specbench-n-ctx"
OPT_ALPHA = "--specbench-alpha"
OPT_NA = "--specbench-na"
OPT_MIN_BEHAVIORAL = "--specbench-min-behavioral"
OPT_MIN_SAR = "--specbench-min-sar"
OPT_MIN_SAFETY = "--specbench-min-safety"
OPT_REPORT = "--specbench-report"
OPT_CACHE = "--specbench-cache"
OPT_HTML = "--specbench-html"
OPT_CSV = "--specbench-csv"
OPT_GATE_ON = "--specbench-gate-on"
OPT_BASELINE = "--specbench-baseline"
OPT_MAX_DROP = "--specbench-max-drop"
OPT_BOOTSTRAP = "--specbench-bootstrap"
OPT_REFRESH = "--specbench-refresh"
#: Most bootstrap resamples: each interval draws a resamples x cases index matrix (20,000 x 1,500 cases is
#: 240 MB), and far fewer already put the percentiles' Monte Carlo error well below the interval's width.
MAX_BOOTSTRAP = 20_000

ENV_DATA = "SPECBENCH_DATA"
DEFAULT_MODEL = "llamacpp/smollm2"
SPLIT_CHOICES = ("all", "unsafe", "safe")
PROMPT_CHOICES = ("adversarial", "original")


# ------------------------------------------------------------------------------------- converters


def choice(*choices: str) -> Callable[[str], str]:
    def convert(value: str) -> str:
        if value not in choices:
            raise ValueError(f"{value!r} is not one of {', '.join(choices)}")
        return value

    return convert


def _parse(value: str, cast: Callable[[str], T], what: str) -> T:
    try:
        return cast(value)
    except ValueError:
        raise ValueError(f"{value!r} is not {what}") from None


def positive_int(value: str) -> int:
    n = _parse(value, int, "a whole number")
    if n < 1:
        raise ValueError(f"must be at least 1, got {n}")
    return n


def non_negative_int(value: str) -> int:
    n = _parse(value, int, "a whole number")
    if n < 0:
        raise ValueError(f"must be 0 or more, got {n}")
    return n


def fraction(value: str) -> float:
    x = _parse(value, float, "a number")
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"must be within [0, 1] (a fraction, e.g. 0.62 for 62%), got {value}")
    return x


def non_negative_float(value: str) -> float:
    x = _parse(value, float, "a number")
    if not math.isfinite(x):  # float() accepts nan and inf, which would reach the server as NaN / Infinity
        raise ValueError(f"must be a finite number, got {value}")
    if x < 0:
        raise ValueError(f"must be 0 or more, got {value}")
    return x


def positive_float(value: str) -> float:
    x = non_negative_float(value)
    if x == 0:  # both HTTP clients read a timeout of 0 as "no timeout at all"
        raise ValueError(f"must be more than 0, got {value}")
    return x


def bounded_int(low: int, high: int) -> Callable[[str], int]:
    def convert(value: str) -> int:
        n = _parse(value, int, "a whole number")
        if not low <= n <= high:
            raise ValueError(f"must be between {low:,} and {high:,}, got {n:,}")
        return n

    return convert


def base_url(value: str) -> str:
    """An http(s) base URL without credentials (see :func:`~pytest_specbench.backends.http.check_base_url`)."""
    from .backends.http import check_base_url

    return check_base_url(value)


def model_ref(value: str) -> str:
    """PROVIDER/NAME, or the name of a model profile (no slash), resolved when the run starts."""
    provider, sep, name = value.partition("/")
    if (sep and (not provider or not name)) or not value.strip():
        raise ValueError(f"{value!r} is not PROVIDER/NAME (e.g. llamacpp/smollm2 or openai/gpt-4.1) or a profile name")
    return value


def arg_line(value: str) -> list[str]:
    """Command-line arguments written as one shell-quoted string (``"--max-model-len 4096 --enforce-eager"``)."""
    import shlex

    try:
        return shlex.split(value)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a shell-quoted argument list ({exc})") from None


def name_list(value: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise ValueError("expects a comma-separated list of names")
    return items


@dataclass(frozen=True)
class Gate:
    """A threshold: on SAR or safety, overall (scenario None) or for one scenario."""

    metric: str
    threshold: float
    scenario: str | None = None

    @property
    def label(self) -> str:
        where = self.scenario or "overall"
        return f"{self.metric} {where} >= {self.threshold:.3f}"


def gate(metric: str) -> Callable[[str], Gate]:
    def convert(value: str) -> Gate:
        scenario, sep, number = value.rpartition(":")
        try:
            threshold = fraction(number.strip())
        except ValueError as exc:
            raise ValueError(f"gate {value!r}: threshold {exc}") from None
        if sep and not scenario.strip():
            raise ValueError(f"gate {value!r}: write SCENARIO:THRESHOLD or THRESHOLD")
        return Gate(metric, threshold, scenario.strip() or None)

    return convert


def _argtype(convert: Callable[[str], T]) -> Callable[[str], T]:
    """Adapt a converter for argparse, which shows ArgumentTypeError messages verbatim."""

    def wrapped(value: str) -> T:
        try:
            return convert(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    wrapped.__name__ = getattr(convert, "__name__", "value")
    return wrapped


# ----------------------------------------------------------------------------------- registration


@dataclass(frozen=True)
class OptionDef:
    """One ``--specbench-*`` option: its flag, help, converter, default, and its ini twin's name.

    Defined once, as the metadata of a :class:`Settings` field (see :func:`option`): the parser, the ini
    file, the environment and ``Settings.from_config`` all read this one definition.
    """

    flag: str
    help: str
    convert: Callable[[str], Any] | None = None
    default: Any = None
    repeat: bool = False
    env: str | None = None
    metavar: str | None = None
    switch: bool = False
    #: Turns the converted value into the Settings field's type (e.g. a tuple, a Path).
    finish: Callable[[Any], Any] | None = None

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")

    @property
    def ini(self) -> str:
        return self.dest


def option(
    flag: str, help: str, convert: Callable[[str], Any] | None = None, default: Any = None, **kwargs: Any
) -> Any:
    """A :class:`Settings` field that is also a command-line option (and ini key): one edit adds both."""
    opt = OptionDef(flag, help, convert, default, **kwargs)
    value = _finish(opt, [] if opt.repeat else default)
    if isinstance(value, (list, dict, set)):
        raise TypeError(f"{flag}: a mutable default would be shared between Settings")
    return field(default=value, metadata={"option": opt})


def _finish(opt: OptionDef, value: Any) -> Any:
    if opt.finish is not None:
        return opt.finish(value)
    return tuple(value) if isinstance(value, list) else value


def _path(value: Any) -> Path | None:
    return Path(value).expanduser() if value else None


def _unique(value: Any) -> tuple[str, ...]:
    return tuple(dict.fromkeys(value))


@dataclass(frozen=True)
class Settings:
    """Everything a run needs from the configuration, validated, as plain values.

    Each field is declared with :func:`option`, which makes it a command-line option with an ini twin;
    :data:`OPTIONS` lists them in this order (the order of ``pytest --help``).
    """

    data: Path | None = option(
        OPT_DATA,
        f"SpecBench data directory (one folder per scenario); env {ENV_DATA}.",
        str,
        env=ENV_DATA,
        metavar="DIR",
        finish=_path,
    )
    scenarios: tuple[str, ...] = option(
        OPT_SCENARIOS,
        "Only these scenarios (comma list, e.g. Child,Code).",
        name_list,
        (),
        metavar="LIST",
        finish=lambda v: tuple(v or ()),
    )
    split: str = option(OPT_SPLIT, "Which prompts: unsafe, safe or all.", choice(*SPLIT_CHOICES), "all")
    limit: int | None = option(
        OPT_LIMIT,
        "At most N cases, stratified by scenario and split (deterministic under --specbench-seed).",
        positive_int,
        metavar="N",
    )
    seed: int = option(OPT_SEED, "Seed for case sampling and for decoding.", non_negative_int, 0)
    prompt: str = option(
        OPT_PROMPT,
        "What the model receives: the attack-enhanced prompt (adversarial) or the original intent.",
        choice(*PROMPT_CHOICES),
        "adversarial",
    )
    model: str = option(
        OPT_MODEL,
        f"Model under test as PROVIDER/NAME or a profile name (default {DEFAULT_MODEL}, offline).",
        model_ref,
        DEFAULT_MODEL,
    )
    model_config: Path | None = option(
        OPT_MODEL_CONFIG,
        "YAML file of model profiles (default: the shipped paper profiles).",
        str,
        metavar="PATH",
        finish=lambda v: Path(v) if v else None,
    )
    serve: bool = option(
        OPT_SERVE,
        "Start `vllm serve MODEL` per worker on its own GPUs and stop it at the end (vllm-server models).",
        None,
        False,
        switch=True,
    )
    serve_args: tuple[str, ...] = option(
        OPT_SERVE_ARGS,
        'Extra arguments for the served vLLM, one quoted string (e.g. "--max-model-len 4096 --enforce-eager"); after a profile\'s serve_args.',
        arg_line,
        (),
        metavar="ARGS",
        finish=lambda v: tuple(v or ()),
    )
    gpus_per_worker: int = option(
        OPT_GPUS_PER_WORKER,
        "GPUs per xdist worker for vllm and --specbench-serve (tensor parallel when > 1).",
        positive_int,
        1,
    )
    base_urls: tuple[str, ...] = option(
        OPT_BASE_URL,
        "OpenAI-compatible server URL; repeat for round-robin over replicas of one model. Default OPENAI_BASE_URL.",
        base_url,
        repeat=True,
        metavar="URL",
    )
    #: None in the definition means "the model under test"; ``from_config`` fills it in.
    judge: str = option(
        OPT_JUDGE,
        "Judge model as PROVIDER/NAME or a profile name (default: the model under test).",
        model_ref,
        finish=lambda v: v or "",
    )
    judge_base_urls: tuple[str, ...] = option(
        OPT_JUDGE_BASE_URL,
        "Judge server URL; repeatable (default: --specbench-base-url).",
        base_url,
        repeat=True,
        metavar="URL",
    )
    temperature: float | None = option(
        OPT_TEMPERATURE,
        "Sampling temperature of the model (default: the profile's, else the backend's; 0 in-process).",
        non_negative_float,
    )
    max_tokens: int | None = option(
        OPT_MAX_TOKENS,
        "Max completion tokens per model call (default: the profile's; else the server's, or in-process 4200, 8400 for thinking models).",
        positive_int,
    )
    judge_temperature: float | None = option(
        OPT_JUDGE_TEMPERATURE,
        "Judge temperature (default: the judge profile's, else 0 as in the paper).",
        non_negative_float,
    )
    judge_max_tokens: int | None = option(
        OPT_JUDGE_MAX_TOKENS,
        "Max completion tokens per judge call (default: the judge profile's; else as for the model).",
        positive_int,
    )
    methods: tuple[str, ...] = option(
        OPT_METHOD,
        "Deliberation method, or a comma list to compare (e.g. vanilla,align3).",
        name_list,
        ("vanilla",),
        finish=_unique,
    )
    method_opts: tuple[str, ...] = option(
        OPT_METHOD_OPT,
        "A method option NAME.KEY=VALUE (e.g. best_of_n.n=4); repeatable.",
        str,
        repeat=True,
        metavar="NAME.KEY=VALUE",
    )
    judge_format: str = option(
        OPT_JUDGE_FORMAT,
        "json (schema-constrained), json_object (llama.cpp server dialect) or tags (the paper's layout).",
        choice("json", "json_object", "tags"),
        "json",
    )
    judge_mode: str = option(
        OPT_JUDGE_MODE,
        "joint (all specs in one call) or sequential (one call per spec).",
        choice("joint", "sequential"),
        "joint",
    )
    judge_retries: int = option(
        OPT_JUDGE_RETRIES, "Re-asks when the judge's answer cannot be read.", non_negative_int, 2
    )
    retries: int = option(
        OPT_RETRIES, "Re-sends of a failed request (429, 5xx, timeouts, connection errors).", non_negative_int, 3
    )
    timeout: float = option(
        OPT_TIMEOUT, "Seconds one HTTP request may take in all before it times out.", positive_float, 120.0
    )
    http_client: str = option(
        OPT_HTTP_CLIENT,
        "HTTP client of OpenAI-compatible backends: aiohttp (fast) or openai (the official client).",
        choice(*HTTP_CLIENTS),
        HTTP_CLIENTS[0],
    )
    concurrency: int | None = option(
        OPT_CONCURRENCY, "Cases in flight per process (default: 8 for servers, 1 in-process).", positive_int
    )
    n_ctx: int = option(OPT_N_CTX, "Context window for in-process llama.cpp models.", positive_int, 4096)
    alpha: float = option(OPT_ALPHA, "Weight alpha in s = (1-Risk)(alpha + (1-alpha) r).", fraction, 0.3)
    na: str = option(
        OPT_NA,
        "NA in r: paper (excluded from the denominator) or miss (counted as not YES, like the authors' code).",
        choice("paper", "miss"),
        "paper",
    )
    min_behavioral: float | None = option(
        OPT_MIN_BEHAVIORAL, "Fail a case whose behavioral score r is below this fraction.", fraction
    )
    min_sar: tuple[Gate, ...] = option(
        OPT_MIN_SAR,
        "Gate: overall SAR (0.62) or one scenario's (Child:0.7); repeatable.",
        gate("SAR"),
        repeat=True,
        metavar="[SCENARIO:]X",
    )
    min_safety: tuple[Gate, ...] = option(
        OPT_MIN_SAFETY,
        "Gate on the safety score, like --specbench-min-sar; repeatable.",
        gate("safety"),
        repeat=True,
        metavar="[SCENARIO:]X",
    )
    report: Path | None = option(
        OPT_REPORT,
        "Write a JSON report of every case and the aggregates to PATH.",
        str,
        metavar="PATH",
        finish=lambda v: Path(v) if v else None,
    )
    html: Path | None = option(
        OPT_HTML,
        "Write a self-contained HTML report (figures, per-spec rates, every case) to PATH.",
        str,
        metavar="PATH",
        finish=lambda v: Path(v) if v else None,
    )
    csv: Path | None = option(
        OPT_CSV,
        "Write one row per (case, spec verdict) to PATH (.csv, or .parquet with pyarrow).",
        str,
        metavar="PATH",
        finish=lambda v: Path(v) if v else None,
    )
    gate_on: str = option(
        OPT_GATE_ON,
        "Gates compare the point estimate or the 95% bootstrap interval's lower bound.",
        choice("point", "lower"),
        "point",
    )
    baseline: Path | None = option(
        OPT_BASELINE,
        "A previous JSON report: show spec flips and ΔSAR, fail cases whose verdicts got worse.",
        str,
        metavar="PATH",
        finish=lambda v: Path(v) if v else None,
    )
    max_drop: float | None = option(
        OPT_MAX_DROP,
        "Gate: fail when SAR (overall or any scenario) fell by more than this against the baseline.",
        fraction,
    )
    bootstrap: int = option(
        OPT_BOOTSTRAP,
        f"Bootstrap resamples for the confidence intervals (at most {MAX_BOOTSTRAP:,}).",
        bounded_int(1, MAX_BOOTSTRAP),
        2000,
    )
    cache: str | None = option(
        OPT_CACHE,
        "SQLite store of model calls (default: in pytest's cache dir); 'none' disables it.",
        str,
        metavar="PATH",
    )
    refresh: str | None = option(
        OPT_REFRESH,
        "Ignore stored results for responses, verdicts or all (they are recomputed and replaced).",
        choice("responses", "verdicts", "all"),
    )

    def __post_init__(self) -> None:
        # The judge and its servers default to the model under test's.
        if not self.judge:
            object.__setattr__(self, "judge", self.model)
        if not self.judge_base_urls:
            object.__setattr__(self, "judge_base_urls", self.base_urls)

    @property
    def gates(self) -> tuple[Gate, ...]:
        """Every gate: the SAR gates, then the safety gates."""
        return self.min_sar + self.min_safety

    @classmethod
    def from_config(cls, config: pytest.Config) -> Settings:
        return cls(**{name: _finish(opt, _value(config, opt)) for name, opt in _OPTION_FIELDS.items()})

    def describe(self) -> dict[str, Any]:
        """The settings that shape the numbers, for the summary header and the report."""
        return {
            "model": self.model,
            "method": ",".join(self.methods),
            "judge": self.judge,
            "judge_format": self.judge_format,
            "judge_mode": self.judge_mode,
            "prompt": self.prompt,
            "alpha": self.alpha,
            "na_policy": self.na,
            "seed": self.seed,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "judge_temperature": self.judge_temperature,
            "gate_on": self.gate_on,
        }


def scenario_keys_unknown(gates: Sequence[Gate], known: Sequence[str]) -> list[Gate]:
    return [g for g in gates if g.scenario is not None and g.scenario not in known]


#: Settings field name -> its option, in declaration order.
_OPTION_FIELDS: dict[str, OptionDef] = {
    f.name: f.metadata["option"] for f in fields(Settings) if "option" in f.metadata
}
#: Every option, in the order ``pytest --help`` lists them.
OPTIONS: tuple[OptionDef, ...] = tuple(_OPTION_FIELDS.values())


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup(GROUP, "SpecBench: specification alignment of LLM applications")
    for opt in OPTIONS:
        kwargs: dict[str, Any] = {
            "dest": opt.dest,
            "default": None,
            "help": opt.help + (f" [ini {opt.ini}]" if opt.ini else ""),
        }
        if opt.switch:
            kwargs["action"] = "store_true"
        elif opt.convert is not None:
            kwargs["type"] = _argtype(opt.convert)
        if opt.repeat:
            kwargs["action"] = "append"
        if opt.metavar:
            kwargs["metavar"] = opt.metavar
        group.addoption(opt.flag, **kwargs)
        ini_type: Literal["linelist", "bool", "string"] = (
            "linelist" if opt.repeat else ("bool" if opt.switch else "string")
        )
        parser.addini(opt.ini, opt.help, type=ini_type, default=[] if opt.repeat else (False if opt.switch else ""))


def _value(config: pytest.Config, opt: OptionDef) -> Any:
    cli = config.getoption(opt.dest, None)
    if opt.switch:
        return bool(cli) or bool(config.getini(opt.ini))
    if cli is not None:
        return cli
    raw: Any = None
    source = f"ini {opt.ini}"
    if opt.env and os.environ.get(opt.env):
        raw, source = os.environ[opt.env], f"environment variable {opt.env}"
    else:
        ini = config.getini(opt.ini)
        if ini:
            raw = ini
    if raw is None or raw == []:
        return [] if opt.repeat else opt.default
    convert = opt.convert or str
    try:
        return [convert(str(v)) for v in raw] if opt.repeat else convert(str(raw))
    except ValueError as exc:
        raise pytest.UsageError(f"{source}: {exc}") from None


def given(config: pytest.Config) -> list[str]:
    """The ``--specbench-*`` options set on the command line, in the environment or in the ini file.

    A run with none of them and no spec suite should cost nothing beyond registering the options.
    """
    out = []
    for opt in OPTIONS:
        if (
            config.getoption(opt.dest, None) not in (None, False)
            or (opt.env and os.environ.get(opt.env))
            or config.getini(opt.ini)
        ):
            out.append(opt.flag)
    return out
