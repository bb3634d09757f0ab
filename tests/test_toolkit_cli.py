"""The specbench console script as a user meets it: help, exit statuses, resumable logs, light imports."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pytest_specbench.cli import build_parser, main
from pytest_specbench.toolkit.errors import InputError
from pytest_specbench.toolkit.store import PromptSet, ResumeLog

COMMANDS = [
    ["download"],
    ["synthesize"],
    ["dedupe"],
    ["attack"],
    ["agree"],
    ["annotate"],
    ["annotate", "export"],
    ["annotate", "import"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_subcommand_has_help_with_an_example(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "example:" in text and f"specbench {command[0]}" in text.split("example:")[1]


def test_the_console_script_is_installed_and_starts_without_heavy_imports():
    out = subprocess.run(["specbench", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("specbench ")
    code = (
        "import sys; from pytest_specbench.cli import build_parser; build_parser().parse_args(['agree', 'a', 'b']); "
        "heavy = [m for m in ('numpy', 'torch', 'sentence_transformers', 'sklearn', 'scipy', 'llama_cpp', 'tqdm') if m in sys.modules]; "
        "print(heavy)"
    )
    probe = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["dedupe", "missing.yaml", "out.yaml", "--keep", "3"], "missing.yaml: file not found"),
        (["synthesize", "nowhere.yaml", "--no-cache"], "nowhere.yaml: file not found"),
        (
            ["attack", "in.jsonl", "out.jsonl", "--tactics", "none.txt", "--no-cache"],
            "--tactics none.txt: file not found",
        ),
        (["synthesize", "x.yaml", "--model", "smollm2", "--no-cache"], "write PROVIDER/NAME"),
        (["synthesize", "x.yaml", "--model", "nosuch/x", "--no-cache"], "unknown model provider 'nosuch'"),
    ],
)
def test_bad_input_exits_2_with_one_clear_line(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.yaml").write_text("scenario: X\nsafety: [No harm.]\nbehavioral: [Be brief.]\n")
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"specbench {argv[0]}: error: ") and message in err[0]


def test_argument_errors_are_usage_errors(capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["dedupe", "a", "b", "--keep", "0"])
    assert exit_info.value.code == 2
    assert "must be at least 1" in capsys.readouterr().err


def test_resume_log_drops_a_torn_last_line_and_refuses_foreign_settings(tmp_path):
    path = tmp_path / "out.partial.jsonl"
    log = ResumeLog(path, run="r1")
    log.append({"id": "a", "x": 1})
    log.append({"id": "b", "x": 2})
    log.close()
    with open(path, "a", encoding="utf-8") as fh:
        fh.write('{"id": "c", "x"')  # the process died in the middle of a write
    again = ResumeLog(path, run="r1")
    assert set(again.done) == {"a", "b"}
    assert path.read_text().count("\n") == 2 and path.read_text().endswith("\n")  # the torn line is cut off
    again.append({"id": "c", "x": 3})
    again.close()
    assert [r["id"] for r in map(json.loads, path.read_text().splitlines())] == ["a", "b", "c"]
    assert ResumeLog(path, run="r1").ordered(["c", "a", "zz"]) == [{"id": "c", "x": 3}, {"id": "a", "x": 1}]
    with pytest.raises(InputError, match="other settings"):
        ResumeLog(path, run="r2")
    assert ResumeLog(path, run="r2", restart=True).done == {}


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("p.json", '{"label": "safe"}', "must be a JSON list"),
        ("p.jsonl", '{"label": "safe", "prompt": ""}\n', "has no prompt text"),
        ("p.jsonl", '{"label": "maybe", "prompt": "x"}\n', "label must be 'safe' or 'unsafe'"),
        (
            "p.jsonl",
            '{"id": "a", "label": "safe", "prompt": "x"}\n{"id": "a", "label": "safe", "prompt": "y"}\n',
            "'a' is used twice",
        ),
        ("p.jsonl", "{broken\n", "p.jsonl:1: not valid JSON"),
        ("p.txt", "hello", "unsupported input"),
    ],
)
def test_prompt_files_are_checked(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(InputError, match=message):
        PromptSet.load(path)


def test_specbench_records_keep_their_naming_and_get_ids(tmp_path):
    path = tmp_path / "prompts.json"
    path.write_text(
        json.dumps(
            [{"adversarial_prompt": "wrapped", "prompt": "plain", "label": "unsafe", "source": "s", "answer": ""}]
        )
    )
    ps = PromptSet.load(tmp_path)  # a SpecBench scenario folder works too
    rec = ps.records[0]
    assert rec["id"] == "unsafe-0000" and ps.text(rec) == "wrapped" and ps.intent(rec) == "plain"
