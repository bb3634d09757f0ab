"""The package's static checks, run by the same `pytest` as everything else so CI cannot skip them.

The package ships ``py.typed``: its annotations are a promise to users, so mypy (configured in
pyproject.toml) must pass on it; ruff keeps the lint rules the project chose.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_mypy_passes_on_the_package() -> None:
    done = _run(sys.executable, "-m", "mypy")
    assert done.returncode == 0, done.stdout + done.stderr


def test_ruff_finds_nothing() -> None:
    # the test extra installs ruff beside this interpreter; a missing one is a broken install, not a skip
    ruff = (
        str(Path(sys.executable).with_name("ruff"))
        if Path(sys.executable).with_name("ruff").exists()
        else shutil.which("ruff") or "ruff"
    )
    done = _run(ruff, "check", ".")
    assert done.returncode == 0, done.stdout + done.stderr
    formatted = _run(ruff, "format", "--check", ".")
    assert formatted.returncode == 0, formatted.stdout + formatted.stderr
