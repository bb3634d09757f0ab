"""The source checkout and an installed wheel hold the same package: data files live inside it, not mapped in from elsewhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_every_declared_package_is_a_real_folder_with_its_data() -> None:
    """No ``package-dir`` remapping: ``python -m pytest`` in a checkout imports ``./pytest_specbench``, which must be complete."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    assert "package-dir" not in config
    for package in config["packages"]:
        folder = ROOT.joinpath(*package.split("."))
        assert (folder / "__init__.py").is_file(), f"{package} is not a folder of the checkout"
        for pattern in config.get("package-data", {}).get(package, []):
            assert list(folder.glob(pattern)), f"{package}: nothing matches {pattern}"
    assert (ROOT / "pytest_specbench" / "specs" / "suite.schema.json").is_file()
    assert (ROOT / "pytest_specbench" / "datasets" / "specbench.json").is_file()
    assert (ROOT / "specs").is_dir() and (ROOT / "datasets").is_dir()  # their documentation stays at the top


def test_the_checkout_first_on_the_path_finds_the_schema_and_the_manifest() -> None:
    """What ``python -m pytest`` does: the current folder comes first on sys.path, ahead of any installed copy."""
    code = (
        "import pytest_specbench, json; "
        "from pytest_specbench.suite import suite_schema; "
        "from pytest_specbench.toolkit.download import builtin_manifest_path; "
        "print(json.dumps([pytest_specbench.__file__, suite_schema()['title'], str(builtin_manifest_path())]))"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    module, title, manifest = json.loads(done.stdout)
    assert Path(module).resolve().is_relative_to(ROOT)
    assert title == "pytest-specbench spec suite"
    assert Path(manifest).is_file() and Path(manifest).resolve().is_relative_to(ROOT / "pytest_specbench")


def test_the_example_in_specs_readme_is_a_valid_suite(tmp_path: Path) -> None:
    from pytest_specbench.suite import load_yaml_suite

    readme = (ROOT / "specs" / "README.md").read_text(encoding="utf-8")
    example = readme.split("```yaml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "specbench_recipes.yaml"
    path.write_text(example, encoding="utf-8")
    scenario, cases = load_yaml_suite(path)
    assert scenario.key == "Recipes" and len(scenario.safety) == 1 and len(scenario.behavioral) == 1
    assert [c.label for c in cases] == ["unsafe", "safe"]
