"""The run's configuration checks, as one pure function from :class:`~pytest_specbench.options.Settings`.

:func:`resolve_run` settles everything that can be decided from the settings and the file system
before a test is collected: where the data and the call store are, that the report folders exist, that
options which only make sense together are given together. It creates nothing, starts nothing and does
not import pytest, so each rule is a row in a parametrize table (``tests/test_runconfig.py``). A broken
rule is a :class:`~pytest_specbench.errors.ConfigError` whose sentence names the option; the plugin shows
it as a usage error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from . import options as opts
from .errors import ConfigError

if TYPE_CHECKING:
    from .profiles import ProfileFile

#: --specbench-data value that means "the copy `specbench download` fetched".
DOWNLOADED = "downloaded"
#: The call store's file name inside pytest's cache folder (``.pytest_cache/d/specbench/``).
CACHE_FOLDER = "specbench"
CACHE_FILE = "calls.sqlite3"


@dataclass(frozen=True)
class RunConfig:
    """Settings with every path made absolute, plus what the run derives from them."""

    settings: opts.Settings
    #: An explicit call store; None with ``in_pytest_cache`` means pytest's cache folder, made on first use.
    cache_path: Path | None
    #: The call store lives in pytest's cache folder (the default; its path exists only once it is made).
    cache_in_pytest_dir: bool
    #: The ``--specbench-*`` options that were given (command line, environment, ini); empty: check nothing yet.
    given: tuple[str, ...] = ()

    @property
    def configured(self) -> bool:
        """Whether the user asked for SpecBench explicitly, so problems are worth reporting before collection."""
        return bool(self.given)


def resolve_run(
    settings: opts.Settings,
    *,
    cwd: Path,
    given: tuple[str, ...] = (),
    has_pytest_cache: bool = True,
    downloaded: Callable[[], tuple[Path | None, str]] | None = None,
    profiles: ProfileFile | None = None,
) -> RunConfig:
    """Check ``settings`` and resolve their paths against ``cwd`` (the invocation directory).

    ``downloaded`` returns the copy ``specbench download`` verified (None: not there) and where it would
    be; it is called only for ``--specbench-data=downloaded``. ``profiles`` is
    needed only when a role names a profile and ``--specbench-serve`` must know its provider.
    """
    s = settings
    if s.data is not None and str(s.data) == DOWNLOADED:
        found, target = downloaded() if downloaded is not None else (None, "the download folder")
        if found is None:
            raise ConfigError(
                f"{opts.OPT_DATA}={DOWNLOADED}: no verified SpecBench copy at {target}; run `specbench download` first"
            )
        s = replace(s, data=found)
    if s.data is not None and not s.data.is_absolute():
        s = replace(s, data=cwd / s.data)
    if s.data is not None and s.data.exists() and not s.data.is_dir():
        raise ConfigError(
            f"SpecBench data directory {s.data} is a file, not a folder. Point {opts.OPT_DATA} at the folder holding Biochem/, Child/, …"
        )
    if s.data is not None and not s.data.is_dir():
        raise ConfigError(
            f"SpecBench data directory {s.data} does not exist. Point {opts.OPT_DATA} (or ini specbench_data, "
            f"or {opts.ENV_DATA}) at the folder holding Biochem/, Child/, … each with scenario.json, specifications.json and prompts.json."
        )
    from .atomic import check_output_path

    for flag, out in ((opts.OPT_REPORT, s.report), (opts.OPT_HTML, s.html), (opts.OPT_CSV, s.csv)):
        problem = None if out is None else check_output_path(cwd / out, shown=out)
        if problem is not None:
            raise ConfigError(f"{flag}: {problem}")
    if s.csv is not None and s.csv.suffix.lower() not in (".csv", ".parquet"):
        raise ConfigError(f"{opts.OPT_CSV}: {s.csv} must end in .csv or .parquet")
    if s.max_drop is not None and s.baseline is None:
        raise ConfigError(
            f"{opts.OPT_MAX_DROP} compares against a previous run: give it with {opts.OPT_BASELINE}=PREVIOUS.json"
        )
    if s.serve:
        from .models import provider_of

        provider = provider_of(s.model, profiles)
        if provider != "vllm-server":
            raise ConfigError(
                f"{opts.OPT_SERVE} starts vLLM servers: use a vllm-server/MODEL model (or a profile with provider vllm-server), not {s.model}"
            )
    cache_path: Path | None = None
    in_pytest_dir = False
    if s.cache is not None:
        if s.cache.lower() != "none":
            cache_path = cwd / Path(s.cache).expanduser()
    else:
        in_pytest_dir = has_pytest_cache  # -p no:cacheprovider and no explicit path: no store
    return RunConfig(settings=s, cache_path=cache_path, cache_in_pytest_dir=in_pytest_dir, given=tuple(given))
