"""Command-line options, their ini twins, and the validated :class:`Settings` built from them.

Option names are module constants so tests and other plugins can refer to them without retyping
strings. Every value goes through one converter, whether it came from the command line, the ini file
or the environment, and a bad value is a :class:`pytest.UsageError` with a sentence the user can act on.
Precedence: command line, then environment (where one exists), then ini, then the default.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

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
    if x < 0:
        raise ValueError(f"must be 0 or more, got {value}")
    return x


def model_ref(value: str) -> str:
    """PROVIDER/NAME, or the name of a model profile (no slash), resolved when the run starts."""
    provider, sep, name = value.partition("/")
    if (sep and (not provider or not name)) or not value.strip():
        raise ValueError(f"{value!r} is not PROVIDER/NAME (e.g. llamacpp/smollm2 or openai/gpt-4.1) or a profile name")
    return value


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
    flag: str
    help: str
    convert: Callable[[str], Any] | None = None
    default: Any = None
    repeat: bool = False
    env: str | None = None
    metavar: str | None = None
    switch: bool = False

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")

    @property
    def ini(self) -> str:
        return self.dest


OPTIONS: tuple[OptionDef, ...] = (
    OptionDef(OPT_DATA, f"SpecBench data directory (one folder per scenario); env {ENV_DATA}.", str, env=ENV_DATA, metavar="DIR"),
    OptionDef(OPT_SCENARIOS, "Only these scenarios (comma list, e.g. Child,Code).", name_list, metavar="LIST"),
    OptionDef(OPT_SPLIT, "Which prompts: unsafe, safe or all.", choice(*SPLIT_CHOICES), "all"),
    OptionDef(OPT_LIMIT, "At most N cases, stratified by scenario and split (deterministic under --specbench-seed).", positive_int, metavar="N"),
    OptionDef(OPT_SEED, "Seed for case sampling and for decoding.", non_negative_int, 0),
    OptionDef(OPT_PROMPT, "What the model receives: the attack-enhanced prompt (adversarial) or the original intent.", choice(*PROMPT_CHOICES), "adversarial"),
    OptionDef(OPT_MODEL, f"Model under test as PROVIDER/NAME or a profile name (default {DEFAULT_MODEL}, offline).", model_ref, DEFAULT_MODEL),
    OptionDef(OPT_MODEL_CONFIG, "YAML file of model profiles (default: the shipped paper profiles).", str, metavar="PATH"),
    OptionDef(OPT_SERVE, "Start `vllm serve MODEL` per worker on its own GPUs and stop it at the end (vllm-server models).", None, False, switch=True),
    OptionDef(OPT_GPUS_PER_WORKER, "GPUs per xdist worker for vllm and --specbench-serve (tensor parallel when > 1).", positive_int, 1),
    OptionDef(OPT_BASE_URL, "OpenAI-compatible server URL; repeat for round-robin. Default OPENAI_BASE_URL.", str, repeat=True, metavar="URL"),
    OptionDef(OPT_JUDGE, "Judge model as PROVIDER/NAME (default: the model under test).", model_ref),
    OptionDef(OPT_JUDGE_BASE_URL, "Judge server URL; repeatable (default: --specbench-base-url).", str, repeat=True, metavar="URL"),
    OptionDef(OPT_TEMPERATURE, "Sampling temperature of the model (default: the backend's; 0 in-process).", non_negative_float),
    OptionDef(OPT_MAX_TOKENS, "Max completion tokens per model call (default: the profile's, else 512).", positive_int),
    OptionDef(OPT_JUDGE_TEMPERATURE, "Judge temperature (the paper uses 0).", non_negative_float, 0.0),
    OptionDef(OPT_JUDGE_MAX_TOKENS, "Max completion tokens per judge call.", positive_int, 2048),
    OptionDef(OPT_METHOD, "Deliberation method, or a comma list to compare (e.g. vanilla,align3).", name_list, ["vanilla"]),
    OptionDef(OPT_METHOD_OPT, "A method option NAME.KEY=VALUE (e.g. best_of_n.n=4); repeatable.", str, repeat=True, metavar="NAME.KEY=VALUE"),
    OptionDef(OPT_JUDGE_FORMAT, "json (schema-constrained), json_object (llama.cpp server dialect) or tags (the paper's layout).", choice("json", "json_object", "tags"), "json"),
    OptionDef(OPT_JUDGE_MODE, "joint (all specs in one call) or sequential (one call per spec).", choice("joint", "sequential"), "joint"),
    OptionDef(OPT_JUDGE_RETRIES, "Re-asks when the judge's answer cannot be read.", non_negative_int, 2),
    OptionDef(OPT_RETRIES, "Re-sends of a failed request (429, 5xx, timeouts, connection errors).", non_negative_int, 3),
    OptionDef(OPT_TIMEOUT, "Seconds before one HTTP request times out.", non_negative_float, 120.0),
    OptionDef(OPT_HTTP_CLIENT, "HTTP client of OpenAI-compatible backends: aiohttp (fast) or openai (the official client).", choice(*HTTP_CLIENTS), HTTP_CLIENTS[0]),
    OptionDef(OPT_CONCURRENCY, "Cases in flight per process (default: 8 for servers, 1 in-process).", positive_int),
    OptionDef(OPT_N_CTX, "Context window for in-process llama.cpp models.", positive_int, 4096),
    OptionDef(OPT_ALPHA, "Weight alpha in s = (1-Risk)(alpha + (1-alpha) r).", fraction, 0.3),
    OptionDef(OPT_NA, "NA in r: paper (excluded from the denominator) or miss (counted as not YES, like the authors' code).", choice("paper", "miss"), "paper"),
    OptionDef(OPT_MIN_BEHAVIORAL, "Fail a case whose behavioral score r is below this fraction.", fraction),
    OptionDef(OPT_MIN_SAR, "Gate: overall SAR (0.62) or one scenario's (Child:0.7); repeatable.", gate("SAR"), repeat=True, metavar="[SCENARIO:]X"),
    OptionDef(OPT_MIN_SAFETY, "Gate on the safety score, like --specbench-min-sar; repeatable.", gate("safety"), repeat=True, metavar="[SCENARIO:]X"),
    OptionDef(OPT_REPORT, "Write a JSON report of every case and the aggregates to PATH.", str, metavar="PATH"),
    OptionDef(OPT_HTML, "Write a self-contained HTML report (figures, per-spec rates, every case) to PATH.", str, metavar="PATH"),
    OptionDef(OPT_CSV, "Write one row per (case, spec verdict) to PATH (.csv, or .parquet with pyarrow).", str, metavar="PATH"),
    OptionDef(OPT_GATE_ON, "Gates compare the point estimate or the 95% bootstrap interval's lower bound.", choice("point", "lower"), "point"),
    OptionDef(OPT_BASELINE, "A previous JSON report: show spec flips and ΔSAR, fail cases whose verdicts got worse.", str, metavar="PATH"),
    OptionDef(OPT_MAX_DROP, "Gate: fail when SAR (overall or any scenario) fell by more than this against the baseline.", fraction),
    OptionDef(OPT_BOOTSTRAP, "Bootstrap resamples for the confidence intervals.", positive_int, 2000),
    OptionDef(OPT_CACHE, "SQLite store of model calls (default: in pytest's cache dir); 'none' disables it.", str, metavar="PATH"),
    OptionDef(OPT_REFRESH, "Ignore stored results for responses, verdicts or all (they are recomputed and replaced).", choice("responses", "verdicts", "all")),
)


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup(GROUP, "SpecBench: specification alignment of LLM applications")
    for opt in OPTIONS:
        kwargs: dict[str, Any] = {"dest": opt.dest, "default": None, "help": opt.help + (f" [ini {opt.ini}]" if opt.ini else "")}
        if opt.switch:
            kwargs["action"] = "store_true"
        elif opt.convert is not None:
            kwargs["type"] = _argtype(opt.convert)
        if opt.repeat:
            kwargs["action"] = "append"
        if opt.metavar:
            kwargs["metavar"] = opt.metavar
        group.addoption(opt.flag, **kwargs)
        ini_type = "linelist" if opt.repeat else ("bool" if opt.switch else "string")
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


@dataclass(frozen=True)
class Settings:
    """Everything a run needs from the configuration, validated, as plain values."""

    data: Path | None
    scenarios: tuple[str, ...]
    split: str
    limit: int | None
    seed: int
    prompt: str
    model: str
    base_urls: tuple[str, ...]
    judge: str
    judge_base_urls: tuple[str, ...]
    temperature: float | None
    max_tokens: int | None
    judge_temperature: float
    judge_max_tokens: int
    methods: tuple[str, ...]
    method_opts: tuple[str, ...]
    judge_format: str
    judge_mode: str
    judge_retries: int
    retries: int
    timeout: float
    concurrency: int | None
    n_ctx: int
    alpha: float
    na: str
    min_behavioral: float | None
    gates: tuple[Gate, ...] = field(default_factory=tuple)
    report: Path | None = None
    cache: str | None = None
    refresh: str | None = None
    html: Path | None = None
    csv: Path | None = None
    gate_on: str = "point"
    baseline: Path | None = None
    max_drop: float | None = None
    bootstrap: int = 2000
    model_config: Path | None = None
    serve: bool = False
    gpus_per_worker: int = 1
    http_client: str = HTTP_CLIENTS[0]

    @classmethod
    def from_config(cls, config: pytest.Config) -> Settings:
        v = {opt.dest: _value(config, opt) for opt in OPTIONS}
        data = v["specbench_data"]
        base_urls = tuple(v["specbench_base_url"])
        model = v["specbench_model"]
        return cls(
            data=Path(data).expanduser() if data else None,
            scenarios=tuple(v["specbench_scenarios"] or ()),
            split=v["specbench_split"],
            limit=v["specbench_limit"],
            seed=v["specbench_seed"],
            prompt=v["specbench_prompt"],
            model=model,
            base_urls=base_urls,
            judge=v["specbench_judge"] or model,
            judge_base_urls=tuple(v["specbench_judge_base_url"]) or base_urls,
            temperature=v["specbench_temperature"],
            max_tokens=v["specbench_max_tokens"],
            judge_temperature=v["specbench_judge_temperature"],
            judge_max_tokens=v["specbench_judge_max_tokens"],
            methods=tuple(dict.fromkeys(v["specbench_method"])),
            method_opts=tuple(v["specbench_method_opt"]),
            judge_format=v["specbench_judge_format"],
            judge_mode=v["specbench_judge_mode"],
            judge_retries=v["specbench_judge_retries"],
            retries=v["specbench_retries"],
            timeout=v["specbench_timeout"],
            concurrency=v["specbench_concurrency"],
            n_ctx=v["specbench_n_ctx"],
            alpha=v["specbench_alpha"],
            na=v["specbench_na"],
            min_behavioral=v["specbench_min_behavioral"],
            gates=tuple(v["specbench_min_sar"]) + tuple(v["specbench_min_safety"]),
            report=Path(v["specbench_report"]) if v["specbench_report"] else None,
            cache=v["specbench_cache"],
            refresh=v["specbench_refresh"],
            html=Path(v["specbench_html"]) if v["specbench_html"] else None,
            csv=Path(v["specbench_csv"]) if v["specbench_csv"] else None,
            gate_on=v["specbench_gate_on"],
            baseline=Path(v["specbench_baseline"]) if v["specbench_baseline"] else None,
            max_drop=v["specbench_max_drop"],
            bootstrap=v["specbench_bootstrap"],
            model_config=Path(v["specbench_model_config"]) if v["specbench_model_config"] else None,
            serve=v["specbench_serve"],
            gpus_per_worker=v["specbench_gpus_per_worker"],
            http_client=v["specbench_http_client"],
        )

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
