"""specbench download: a real HTTP server on 127.0.0.1 serving a dataset the test makes (and the real one)."""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pytest_specbench.cli import main
from pytest_specbench.suite import load_specbench_scenario
from pytest_specbench.toolkit.download import STAMP_NAME, Manifest, builtin_manifest_path, default_data_dir, verify


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def serve() -> Iterator:
    """``serve(folder)`` -> base URL of a static file server for that folder; records the paths asked."""
    servers = []

    def start(folder: Path) -> str:
        asked: list[str] = []

        class Handler(Quiet):
            def do_GET(self) -> None:
                asked.append(self.path)
                super().do_GET()

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
        httpd.daemon_threads = True
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        servers.append(httpd)
        start.asked = asked  # type: ignore[attr-defined]
        return f"http://127.0.0.1:{httpd.server_address[1]}/"

    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


def make_dataset(root: Path) -> Path:
    """A two-scenario dataset in SpecBench's layout, and its manifest."""
    for name in ("Alpha", "Beta"):
        d = root / "site" / name
        d.mkdir(parents=True)
        (d / "scenario.json").write_text(json.dumps({"name": f"{name} scenario", "description": "test"}))
        (d / "specifications.json").write_text(
            json.dumps({"safety_specifications": ["No harm."], "behavioral_specifications": ["Be brief."]})
        )
        (d / "prompts.json").write_text(
            json.dumps(
                [
                    {
                        "adversarial_prompt": f"{name} q",
                        "prompt": f"{name} q",
                        "label": "safe",
                        "source": "t",
                        "answer": "",
                    }
                ]
            )
        )
    files = {}
    for p in sorted((root / "site").rglob("*.json")):
        files[p.relative_to(root / "site").as_posix()] = {
            "sha256": hashlib.sha256(p.read_bytes()).hexdigest(),
            "size": p.stat().st_size,
        }
    manifest = root / "manifest.json"
    manifest.write_text(json.dumps({"name": "tiny", "sources": {}, "files": files}))
    return manifest


def test_download_verifies_writes_and_resumes(tmp_path, serve, capsys):
    manifest = make_dataset(tmp_path)
    url = serve(tmp_path / "site")
    dest = tmp_path / "data"
    assert main(["download", "--to", str(dest), "--base-url", url, "--manifest", str(manifest), "--progress"]) == 0
    out = capsys.readouterr()
    assert "6 file(s) fetched, 0 already verified" in out.out
    assert "B/s" in out.err  # the bar shows a byte rate
    scenario, cases = load_specbench_scenario(dest / "Alpha")  # the plugin reads what was fetched
    assert scenario.name == "Alpha scenario" and cases[0].prompt == "Alpha q"
    assert (dest / STAMP_NAME).is_file() and not list(dest.rglob("*.part"))
    assert verify(dest, Manifest.load(manifest)) == []
    # Run again after losing one file: only that file is fetched.
    (dest / "Beta" / "prompts.json").unlink()
    serve.asked.clear()  # type: ignore[attr-defined]
    assert main(["download", "--to", str(dest), "--base-url", url, "--manifest", str(manifest)]) == 0
    assert "1 file(s) fetched, 5 already verified" in capsys.readouterr().out
    assert serve.asked == ["/Beta/prompts.json"]  # type: ignore[attr-defined]


def test_a_file_that_does_not_match_its_checksum_is_refused_and_not_kept(tmp_path, serve, capsys):
    manifest = make_dataset(tmp_path)
    (tmp_path / "site" / "Beta" / "prompts.json").write_text('[{"label": "safe", "adversarial_prompt": "tampered"}]')
    dest = tmp_path / "data"
    status = main(
        [
            "download",
            "--to",
            str(dest),
            "--base-url",
            serve(tmp_path / "site"),
            "--manifest",
            str(manifest),
            "--scenario",
            "Beta",
        ]
    )
    assert status == 1
    err = capsys.readouterr().err
    assert "Beta/prompts.json: checksum mismatch" in err and "was not kept" in err
    assert not (dest / "Beta" / "prompts.json").exists() and not list(dest.rglob("*.part"))
    assert not (dest / "Alpha").exists()  # --scenario Beta fetched only Beta


def test_missing_file_on_the_server_is_a_clear_error(tmp_path, serve, capsys):
    manifest = make_dataset(tmp_path)
    (tmp_path / "site" / "Alpha" / "scenario.json").unlink()
    status = main(
        ["download", "--to", str(tmp_path / "d"), "--base-url", serve(tmp_path / "site"), "--manifest", str(manifest)]
    )
    assert status == 1
    assert "Alpha/scenario.json: HTTP 404" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scenario", "Gamma"], "--scenario Gamma: not in the manifest; choose from Alpha, Beta"),
        ([], "names no source to fetch from; give --base-url"),
    ],
)
def test_bad_options_are_clear_errors(tmp_path, capsys, args, message):
    manifest = make_dataset(tmp_path)
    assert main(["download", "--to", str(tmp_path / "d"), "--manifest", str(manifest), *args]) == 2
    assert message in capsys.readouterr().err


def test_a_broken_manifest_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "m.json"
    bad.write_text(json.dumps({"files": {"../escape.json": {"sha256": "0" * 64, "size": 1}}}))
    assert (
        main(["download", "--to", str(tmp_path / "d"), "--manifest", str(bad), "--base-url", "http://127.0.0.1:9/"])
        == 2
    )
    assert "must be a relative path inside the dataset" in capsys.readouterr().err


REAL = Path(__file__).resolve().parents[1].parent / "shared" / "specbench"


def test_the_shipped_manifest_matches_the_published_specbench():
    if not (REAL / "Child" / "prompts.json").is_file():
        pytest.skip(f"no SpecBench copy at {REAL}")
    manifest = Manifest.load(builtin_manifest_path())
    assert len(manifest.files) == 15
    assert {f.path.split("/")[0] for f in manifest.files} == {"Biochem", "Child", "Code", "Health", "Travel"}
    assert verify(REAL, manifest) == []
    assert "raw.githubusercontent.com/zzzhr97/SpecBench/" in manifest.sources["github"]


def test_default_data_dir_is_the_verified_download(tmp_path, serve, monkeypatch, capsys):
    """Fetch the real dataset (served locally) into the default cache; the plugin's default follows."""
    if not (REAL / "Child" / "prompts.json").is_file():
        pytest.skip(f"no SpecBench copy at {REAL}")
    monkeypatch.setenv("SPECBENCH_CACHE_DIR", str(tmp_path / "cache"))
    assert default_data_dir() is None
    site = tmp_path / "site"
    shutil.copytree(REAL, site)
    assert main(["download", "--base-url", serve(site)]) == 0
    expected = tmp_path / "cache" / "specbench"
    assert default_data_dir() == expected
    assert f"pytest --specbench-data {expected}" in capsys.readouterr().out
    # A file changed after the download: no longer a verified copy, so no default.
    target = expected / "Child" / "scenario.json"
    target.write_text(target.read_text() + " ")
    assert default_data_dir() is None


def test_an_unknown_source_is_a_clear_error(capsys, tmp_path):
    assert main(["download", "--to", str(tmp_path / "d"), "--source", "nowhere"]) == 2
    assert "--source 'nowhere': the manifest knows github, huggingface" in capsys.readouterr().err
