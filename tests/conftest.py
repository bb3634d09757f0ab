"""Shared fixtures: the scripted OpenAI-compatible server, one run of a spec suite through pytest against it,
and the SpecBench data location."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pandas  # noqa: F401  numpy cannot be imported twice; pytester's in-process runs would re-import it
import pytest
from scripted_server import ScriptedServer

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with ScriptedServer() as srv:
        yield srv


@dataclass
class SpecbenchRun:
    """One pytest run of a spec suite: pytest's own result, and the JSON report it wrote (if asked for one)."""

    result: pytest.RunResult
    path: Path
    report_name: str | None

    @property
    def ret(self) -> int | pytest.ExitCode:
        return self.result.ret

    @property
    def stdout(self) -> pytest.LineMatcher:
        return self.result.stdout

    @property
    def stderr(self) -> pytest.LineMatcher:
        return self.result.stderr

    def assert_outcomes(self, **outcomes: int) -> None:
        self.result.assert_outcomes(**outcomes)

    def parseoutcomes(self) -> dict[str, int]:
        return self.result.parseoutcomes()

    def report(self, name: str | None = None) -> dict[str, Any]:
        """The parsed JSON report: ``name``, or the file this run's ``--specbench-report`` named."""
        name = name or self.report_name
        if name is None:
            raise AssertionError("this run wrote no --specbench-report")
        return json.loads((self.path / name).read_text())

    def cases(self, name: str | None = None) -> dict[str, dict[str, Any]]:
        """The report's case records by case id."""
        return {c["case_id"]: c for c in self.report(name)["cases"]}


class RunSuite(Protocol):
    def __call__(
        self,
        *args: str,
        suite: str | None = ...,
        suite_file: str = ...,
        server: ScriptedServer | None = ...,
        model: str | None = ...,
        cacheprovider: bool = ...,
        subprocess: bool = ...,
    ) -> SpecbenchRun: ...


@pytest.fixture
def specbench_run(pytester: pytest.Pytester, server: ScriptedServer) -> RunSuite:
    """``specbench_run(*pytest_args, suite=YAML)`` runs a suite through pytest against the scripted server.

    ``suite`` is written to ``<suite_file>.yaml`` first (leave it out when the test wrote its own files);
    ``server`` defaults to the ``server`` fixture; ``model=None`` leaves ``--specbench-model`` to the args;
    the cache provider is off unless a test needs it (``--lf``); ``subprocess`` runs pytest in a child process
    (xdist, signals). The run's JSON report, when ``--specbench-report=NAME`` is among the args, is read back
    with :meth:`SpecbenchRun.report`.
    """

    def run(
        *args: str,
        suite: str | None = None,
        suite_file: str = "specbench_suite",
        server: ScriptedServer | None = server,
        model: str | None = "openai/scripted",
        cacheprovider: bool = False,
        subprocess: bool = False,
    ) -> SpecbenchRun:
        if suite is not None:
            pytester.makefile(".yaml", **{suite_file: suite})
        common = [f"--specbench-model={model}"] if model is not None else []
        if server is not None:
            common.append(f"--specbench-base-url={server.url}")
        if not cacheprovider:
            common += ["-p", "no:cacheprovider"]
        runner = pytester.runpytest_subprocess if subprocess else pytester.runpytest
        reports = [a.partition("=")[2] for a in args if a.startswith("--specbench-report=")]
        return SpecbenchRun(runner(*common, *args), pytester.path, reports[-1] if reports else None)

    return run


@pytest.fixture(scope="session")
def specbench_data() -> Path:
    """The real SpecBench data (../shared/specbench beside the checkout, or SPECBENCH_DATA)."""
    path = Path(os.environ.get("SPECBENCH_DATA") or REPO.parent / "shared" / "specbench")
    if not (path / "Child" / "prompts.json").is_file():
        pytest.skip(f"SpecBench data not found at {path}; set SPECBENCH_DATA")
    return path
