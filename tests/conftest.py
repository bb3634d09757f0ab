"""Shared fixtures: the scripted OpenAI-compatible server and the SpecBench data location."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pandas  # noqa: F401  numpy cannot be imported twice; pytester's in-process runs would re-import it
import pytest
from scripted_server import ScriptedServer

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with ScriptedServer() as srv:
        yield srv


@pytest.fixture(scope="session")
def specbench_data() -> Path:
    """The real SpecBench data (../shared/specbench beside the checkout, or SPECBENCH_DATA)."""
    path = Path(os.environ.get("SPECBENCH_DATA") or REPO.parent / "shared" / "specbench")
    if not (path / "Child" / "prompts.json").is_file():
        pytest.skip(f"SpecBench data not found at {path}; set SPECBENCH_DATA")
    return path
