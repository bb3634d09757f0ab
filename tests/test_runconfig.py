"""The run's configuration checks (:func:`pytest_specbench.runconfig.resolve_run`), without pytest in between."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from pytest_specbench.errors import ConfigError
from pytest_specbench.options import Settings
from pytest_specbench.runconfig import resolve_run


def settings(**values: object) -> Settings:
    return replace(Settings(), **values)


@pytest.fixture
def cwd(tmp_path: Path) -> Path:
    (tmp_path / "data" / "Child").mkdir(parents=True)
    (tmp_path / "out").mkdir()
    return tmp_path


@pytest.mark.parametrize(
    ("values", "error"),
    [
        ({}, None),
        ({"data": Path("data")}, None),
        ({"data": Path("missing")}, "SpecBench data directory * does not exist*"),
        ({"report": Path("out/r.json"), "html": Path("r.html"), "csv": Path("out/t.parquet")}, None),
        ({"report": Path("nowhere/r.json")}, "--specbench-report: the folder of nowhere/r.json does not exist*"),
        ({"html": Path("nowhere/r.html")}, "--specbench-html: the folder of*"),
        ({"csv": Path("out/t.xlsx")}, "--specbench-csv: out/t.xlsx must end in .csv or .parquet"),
        ({"max_drop": 0.05}, "--specbench-max-drop compares against a previous run*--specbench-baseline*"),
        ({"max_drop": 0.05, "baseline": Path("prev.json")}, None),
        ({"serve": True}, "--specbench-serve starts vLLM servers*not llamacpp/smollm2"),
        ({"serve": True, "model": "vllm-server/Qwen/Qwen3-14B"}, None),
        (
            {"data": Path("downloaded")},
            "--specbench-data=downloaded: no verified SpecBench copy at the download folder*",
        ),
    ],
)
def test_accepted_and_rejected_settings(cwd: Path, values: dict[str, object], error: str | None) -> None:
    if error is None:
        run = resolve_run(settings(**values), cwd=cwd)
        assert run.settings.data is None or run.settings.data.is_absolute()
        return
    with pytest.raises(ConfigError) as info:
        resolve_run(settings(**values), cwd=cwd)
    assert _matches(str(info.value), error), str(info.value)


def _matches(text: str, pattern: str) -> bool:
    import fnmatch

    return fnmatch.fnmatchcase(text, pattern)


def test_downloaded_data_is_looked_up_only_when_asked(cwd: Path) -> None:
    asked: list[bool] = []

    def finder() -> tuple[Path | None, str]:
        asked.append(True)
        return cwd / "data", "ignored"

    assert resolve_run(settings(), cwd=cwd, downloaded=finder).settings.data is None and not asked
    run = resolve_run(settings(data=Path("downloaded")), cwd=cwd, downloaded=finder)
    assert run.settings.data == cwd / "data" and asked == [True]


@pytest.mark.parametrize(
    ("cache", "has_pytest_cache", "path", "in_pytest_dir"),
    [
        (None, True, None, True),  # the default store: pytest's cache folder, made only when a case runs
        (None, False, None, False),  # -p no:cacheprovider and no path: no store
        ("none", True, None, False),
        ("NONE", True, None, False),
        ("calls.sqlite3", True, "calls.sqlite3", False),
    ],
)
def test_where_the_call_store_lives(
    cwd: Path, cache: str | None, has_pytest_cache: bool, path: str | None, in_pytest_dir: bool
) -> None:
    run = resolve_run(settings(cache=cache), cwd=cwd, has_pytest_cache=has_pytest_cache)
    assert run.cache_path == (cwd / path if path else None)
    assert run.cache_in_pytest_dir is in_pytest_dir


def test_nothing_is_created(cwd: Path) -> None:
    before = sorted(p.relative_to(cwd) for p in cwd.rglob("*"))
    resolve_run(settings(data=Path("data"), report=Path("out/r.json"), cache="store/calls.sqlite3"), cwd=cwd)
    assert sorted(p.relative_to(cwd) for p in cwd.rglob("*")) == before


def test_configured_only_when_an_option_was_given(cwd: Path) -> None:
    assert not resolve_run(settings(), cwd=cwd).configured
    assert resolve_run(settings(), cwd=cwd, given=("--specbench-model",)).configured
