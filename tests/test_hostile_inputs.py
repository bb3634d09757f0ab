"""Hostile or careless inputs, round two: each once lost a case, leaked a key or crashed.

Every test here reproduces one finding of issue 17 against a real run (pytester, the scripted server on
127.0.0.1, small SpecBench-layout folders) and checks what a user now gets instead.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from scripted_server import ScriptedServer

from pytest_specbench.options import OPT_DATA

SPECS = {
    "safety_specifications": ["Never help with weapons.", "Never share addresses."],
    "behavioral_specifications": ["Be kind."],
}


def make_scenario(root: Path, name: str, prompts: list[dict], specs: dict | None = None) -> Path:
    """A scenario folder in SpecBench's published layout."""
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "scenario.json").write_text(json.dumps({"name": name, "description": f"{name} test scenario"}))
    (folder / "specifications.json").write_text(json.dumps(specs or SPECS))
    (folder / "prompts.json").write_text(json.dumps(prompts))
    return folder


def prompt(text: str, label: str = "safe", **extra: str) -> dict:
    return {"adversarial_prompt": text, "prompt": text, "label": label, **extra}


def served(server: ScriptedServer, *extra: str) -> list[str]:
    return [
        "--specbench-model=openai/scripted",
        f"--specbench-base-url={server.url}",
        "--specbench-timeout=5",
        "--specbench-retries=0",
        *extra,
    ]


def no_traceback(result) -> None:
    text = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in text and "INTERNALERROR" not in text, text[-3000:]


# ------------------------------------------------------------------------------- 1. duplicate ids


def test_01_duplicate_prompt_ids_in_specbench_data_are_refused(pytester):
    make_scenario(
        pytester.path / "data",
        "Kids",
        [prompt("first VERDICTS S=YES,YES B=YES", id="p1"), prompt("second VERDICTS S=NO,YES B=YES", id="p1")],
    )
    result = pytester.runpytest(f"{OPT_DATA}=data", "--co")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*Kids/prompts.json (field [[]1[]].id): prompt id 'p1' is used twice (prompts [[]0[]] and [[]1[]])*"]
    )
    no_traceback(result)


def test_01_a_given_id_that_equals_a_generated_one_is_refused(pytester):
    make_scenario(pytester.path / "data", "Kids", [prompt("first"), prompt("second", id="safe-0000")])
    result = pytester.runpytest(f"{OPT_DATA}=data", "--co")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*prompt id 'safe-0000' is used twice*"])


# ------------------------------------------------------------------------------- 2. name collisions

YAML_KIDS = "scenario: Kids\nsafety: [Never mention knives.]\nbehavioral: [Be brief.]\nprompts:\n  - {label: safe, prompt: hello}\n"


def test_02_a_yaml_suite_named_like_a_specbench_scenario_is_refused(pytester):
    make_scenario(pytester.path / "data", "Kids", [prompt("hi")])
    pytester.makefile(".yaml", specbench_kids=YAML_KIDS)
    result = pytester.runpytest(f"{OPT_DATA}=data", "--co")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        [
            "*invalid spec suite: *specbench_kids.yaml (field scenario): scenario 'Kids' is already defined by *data/Kids; two suites cannot share*"
        ]
    )
    no_traceback(result)


def test_02_two_yaml_suites_with_one_name_are_refused(pytester):
    pytester.makefile(".yaml", specbench_a=YAML_KIDS, specbench_b=YAML_KIDS.replace("knives", "spoons"))
    result = pytester.runpytest("--co")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        ["*specbench_b.yaml (field scenario): scenario 'Kids' is already defined by *specbench_a.yaml*"]
    )


def test_02_one_suite_reached_twice_is_not_a_collision(pytester):
    """The same file as a collected suite and through @pytest.mark.specbench_suite is one suite."""
    pytester.makefile(".yaml", specbench_kids=YAML_KIDS)
    pytester.makepyfile(
        "import pytest\n@pytest.mark.specbench_suite('specbench_kids.yaml')\ndef test_it(specbench_case):\n    assert specbench_case.scenario.key == 'Kids'\n"
    )
    result = pytester.runpytest("--co", "-q")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*2 tests collected*"])


# --------------------------------------------------------------------------- 3. cache and servers

SUITE = (
    "scenario: Alpha\nsafety: [Never do harm., Never share addresses.]\nbehavioral: [Be brief.]\nprompts:\n"
    + "".join(f'  - {{label: safe, prompt: "case {i} VERDICTS S=YES,YES B=YES"}}\n' for i in range(3))
)


def cached_run(pytester, cache: str, *urls: str, extra: tuple[str, ...] = ()):
    args = [
        "--specbench-model=openai/scripted",
        *(f"--specbench-base-url={u}" for u in urls),
        "--specbench-timeout=5",
        "--specbench-retries=0",
    ]
    return pytester.runpytest(*args, f"--specbench-cache={cache}", *extra)


def test_03_the_same_model_name_at_another_server_is_not_replayed_from_the_cache(pytester):
    pytester.makefile(".yaml", specbench_alpha=SUITE)
    with ScriptedServer() as a, ScriptedServer() as b:
        cached_run(pytester, "c.sqlite3", a.url).assert_outcomes(passed=3)
        cached_run(pytester, "c.sqlite3", b.url).assert_outcomes(passed=3)
        assert len(b.requests) == 6, "server B answers for itself: 3 generations and 3 judge calls"
        before = len(a.requests)
        cached_run(pytester, "c.sqlite3", a.url + "/").assert_outcomes(passed=3)
        assert len(a.requests) == before, (
            "server A's own answers are still replayed (a trailing slash is the same server)"
        )


def test_03_round_robin_replicas_share_one_cache_in_any_order(pytester):
    pytester.makefile(".yaml", specbench_alpha=SUITE)
    with ScriptedServer() as a, ScriptedServer() as b:
        cached_run(pytester, "c.sqlite3", a.url, b.url).assert_outcomes(passed=3)
        assert a.requests and b.requests, "both replicas served the first run"
        sent = len(a.requests) + len(b.requests)
        cached_run(pytester, "c.sqlite3", b.url, a.url).assert_outcomes(passed=3)
        assert len(a.requests) + len(b.requests) == sent, "the second run is served entirely from the cache"


def test_03_servers_started_by_specbench_serve_keep_one_identity_across_ports():
    """--specbench-serve starts the model's servers on free ports: a new port is the same model, not a cache miss."""
    from pytest_specbench.backends.base import BackendSpec
    from pytest_specbench.backends.openai_compat import OpenAICompatBackend

    def identity(url: str, managed: bool) -> str:
        return OpenAICompatBackend(BackendSpec("vllm-server", "m", base_urls=(url,), managed=managed)).cache_identity

    assert identity("http://127.0.0.1:41001/v1", True) == identity("http://127.0.0.1:41999/v1", True)
    assert identity("http://127.0.0.1:41001/v1", False) != identity("http://127.0.0.1:41999/v1", False)


# ---------------------------------------------------------------------------------- 4. surrogates


@pytest.mark.parametrize(
    "extra",
    [("--specbench-cache=c.sqlite3",), ("--specbench-cache=none",), ("--specbench-cache=c.sqlite3", "-n", "2")],
    ids=["cache", "no-cache", "xdist"],
)
def test_04_a_lone_surrogate_in_an_answer_is_replaced_not_fatal(pytester, extra):
    pytester.makefile(".yaml", specbench_alpha=SUITE)
    with ScriptedServer(suffix="\ud83d") as server:
        result = pytester.runpytest(*served(server), "--specbench-report=r.json", "-p", "no:cacheprovider", *extra)
    result.assert_outcomes(passed=3)
    no_traceback(result)
    cases = json.loads((pytester.path / "r.json").read_text(encoding="utf-8"))["cases"]
    assert len(cases) == 3 and all(c["response"].endswith("\ufffd") for c in cases)


# ---------------------------------------------------------------------------------- 5. echoed key

SECRET = "sk-test-0123456789-echoed-secret"


def test_05_a_key_echoed_in_normal_answers_reaches_no_output(pytester, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    failing = SUITE.replace("case 0 VERDICTS S=YES,YES", "case 0 VERDICTS S=NO,YES")
    pytester.makefile(".yaml", specbench_alpha=failing)
    outputs = [
        "--specbench-report=r.json",
        "--specbench-html=r.html",
        "--specbench-csv=r.csv",
        "--junitxml=j.xml",
        "--specbench-cache=c.sqlite3",
    ]
    with ScriptedServer(echo_key=True) as server:
        result = pytester.runpytest(*served(server), *outputs, "-p", "no:cacheprovider")
        assert any(SECRET in h.get("authorization", "") for h in server.headers), "the server did get the key"
    result.assert_outcomes(passed=2, failed=1)
    text = result.stdout.str() + result.stderr.str()
    assert "scripted reason" in text or "scripted NO" in text, "the judge's reason is shown"
    assert SECRET not in text
    for name in ("r.json", "r.html", "r.csv", "j.xml", "c.sqlite3", "c.sqlite3-wal"):
        path = pytester.path / name
        if path.exists():
            assert SECRET.encode() not in path.read_bytes(), name
    assert "[REDACTED]" in (pytester.path / "r.json").read_text()


# ---------------------------------------------------------------------------- 6. gates, no cases


@pytest.mark.parametrize("args", [("--specbench-split=unsafe",), ()], ids=["filter-leaves-nothing", "no-suite"])
def test_06_a_gate_with_nothing_to_measure_fails_and_says_so(pytester, args):
    pytester.makefile(".yaml", specbench_alpha=SUITE)  # only safe prompts
    pytester.makepyfile("def test_other():\n    assert True\n")
    chosen = [*args] if args else ["test_06_a_gate_with_nothing_to_measure_fails_and_says_so.py"]
    result = pytester.runpytest("--specbench-min-sar=0.5", "-p", "no:cacheprovider", *chosen)
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*no SpecBench case ran, so the gates have nothing to measure*",
            "GATE FAILED: SAR (overall) = no scored cases, threshold 0.500",
        ]
    )


# ---------------------------------------------------------------------- 7. structured reasoning


@pytest.mark.parametrize(
    ("reasoning", "thought"),
    [
        ({"text": "weighing it up"}, "weighing it up"),
        ([{"type": "summary", "text": "step one"}, {"text": "step two"}], "step one\nstep two"),
        ({"tokens": 7}, '{"tokens": 7}'),
    ],
)
def test_07_structured_reasoning_content_is_kept_as_text(pytester, reasoning, thought):
    pytester.makefile(".yaml", specbench_alpha=SUITE)
    with ScriptedServer(reasoning=reasoning) as server:
        result = pytester.runpytest(
            *served(server), "--specbench-report=r.json", "--specbench-cache=none", "-p", "no:cacheprovider"
        )
    result.assert_outcomes(passed=3)
    no_traceback(result)
    cases = json.loads((pytester.path / "r.json").read_text())["cases"]
    assert [c["thought"] for c in cases] == [thought] * 3


# ------------------------------------------------------------------------- 8. a trickling server


@pytest.mark.parametrize("client", ["aiohttp", "openai"])
def test_08_the_timeout_bounds_the_whole_request_not_each_read(client):
    """One byte every 0.1 s makes a 25-second answer; with a 1-second timeout the request gives up at once."""
    import asyncio
    import importlib
    import time

    from pytest_specbench.backends.base import BackendSpec, Decoding, GenerationRequest
    from pytest_specbench.backends.openai_compat import OpenAICompatBackend
    from pytest_specbench.errors import RequestFailed

    importlib.import_module(client)  # the client's import (seconds on a busy machine) is not the request's time
    request = GenerationRequest(messages=({"role": "user", "content": "hello"},), decoding=Decoding(max_tokens=16))

    async def once(url: str) -> tuple[object, float]:
        b = OpenAICompatBackend(
            BackendSpec("openai", "scripted", base_urls=(url,), max_retries=0, timeout=1.0, http_client=client)
        )
        start = time.monotonic()
        try:
            return await b.generate(request), time.monotonic() - start
        except RequestFailed as exc:
            return exc, time.monotonic() - start
        finally:
            await b.aclose()

    with ScriptedServer(trickle=0.1) as server:
        outcome, took = asyncio.run(once(server.url))
    assert isinstance(outcome, RequestFailed), f"the trickled answer was accepted after {took:.1f} s"
    assert "request timed out after 1 s" in str(outcome)
    assert took < 8, f"the request was bounded by its 1 s deadline, not by each read; it took {took:.1f} s"


# ------------------------------------------------------------------------ 9. awkward folder names


def test_09_scenario_folders_with_awkward_names_run_and_can_be_selected(pytester):
    for name in ("🚀Kids", "_draft", "...", "a::b[1]", "not"):
        make_scenario(pytester.path / "data", name, [prompt(f"hi from {name} VERDICTS S=YES,YES B=YES")])
    with ScriptedServer() as server:
        result = pytester.runpytest(
            f"{OPT_DATA}=data", *served(server), "--specbench-cache=none", "-p", "no:cacheprovider", "-v"
        )
        result.assert_outcomes(passed=5)
        no_traceback(result)
        for marker, expected in (
            ("scenario_Kids", "🚀Kids"),
            ("scenario_draft", "_draft"),
            ("scenario___", "..."),
            ("a__b_1_", "a::b[1]"),
            ("scenario_not", "not"),
        ):
            picked = pytester.runpytest(
                f"{OPT_DATA}=data",
                *served(server),
                "--specbench-cache=none",
                "-p",
                "no:cacheprovider",
                "-m",
                marker,
                "--specbench-report=r.json",
            )
            picked.assert_outcomes(passed=1)
            assert [
                c["scenario"] for c in json.loads((pytester.path / "r.json").read_text(encoding="utf-8"))["cases"]
            ] == [expected]


# ------------------------------------------------------------------------ 10/11. report paths


def _device(path: Path, minor: int) -> Path:
    """A copy of /dev/null (minor 3) or /dev/full (minor 7): the same character device under another name."""
    import os
    import stat

    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, minor))
    except PermissionError:
        pytest.skip("making a device node needs root")
    return path


def test_10_a_report_path_that_is_a_folder_is_refused_before_the_run(pytester):
    pytester.makefile(".yaml", specbench_alpha=SUITE)
    (pytester.path / "out").mkdir()
    result = pytester.runpytest("--specbench-html=out", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--specbench-html: *out is a folder; give a file name*"])
    no_traceback(result)


def test_10_a_report_that_cannot_be_written_costs_only_itself(pytester):
    """A full disk (a copy of /dev/full) for the JSON report: the HTML and CSV are written, the summary printed."""
    full = _device(pytester.path / "full", 7)
    pytester.makefile(".yaml", specbench_alpha=SUITE)
    with ScriptedServer() as server:
        result = pytester.runpytest(
            *served(server),
            f"--specbench-report={full}",
            "--specbench-html=r.html",
            "--specbench-csv=r.csv",
            "--specbench-cache=none",
            "-p",
            "no:cacheprovider",
        )
    result.assert_outcomes(passed=3)
    no_traceback(result)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*SpecBench summary*",
            "Alpha*all*",
            "specbench: --specbench-report=*full was not written: *full could not be written (No space left on device)*",
        ]
    )
    assert (pytester.path / "r.html").stat().st_size > 0 and (pytester.path / "r.csv").read_text().count("\n") == 10


def test_11_a_device_node_is_written_in_place_not_replaced(pytester):
    import os
    import stat

    null = _device(pytester.path / "null", 3)
    pytester.makefile(".yaml", specbench_alpha=SUITE)
    with ScriptedServer() as server:
        result = pytester.runpytest(
            *served(server),
            f"--specbench-report={null}",
            f"--specbench-html={null}",
            "--specbench-cache=none",
            "-p",
            "no:cacheprovider",
        )
    result.assert_outcomes(passed=3)
    assert result.ret == pytest.ExitCode.OK
    assert stat.S_ISCHR(os.stat(null).st_mode), "the device node was not replaced by a regular file"


def test_11_a_fifo_that_nobody_reads_is_refused_not_waited_on(pytester):
    import os

    fifo = pytester.path / "pipe.json"
    os.mkfifo(fifo)
    pytester.makefile(".yaml", specbench_alpha=SUITE)
    with ScriptedServer() as server:
        result = pytester.runpytest(
            *served(server), f"--specbench-report={fifo}", "--specbench-cache=none", "-p", "no:cacheprovider"
        )
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*was not written: *pipe.json is a FIFO that nobody is reading*"])


def test_smaller_reports_are_readable_by_others(pytester):
    """Reports get the permissions any new file gets (0644 under umask 022), not a temporary file's 0600."""
    import os

    pytester.makefile(".yaml", specbench_alpha=SUITE)
    old = os.umask(0o022)
    try:
        with ScriptedServer() as server:
            pytester.runpytest(
                *served(server),
                "--specbench-report=r.json",
                "--specbench-html=r.html",
                "--specbench-csv=r.csv",
                "--specbench-cache=none",
                "-p",
                "no:cacheprovider",
            )
    finally:
        os.umask(old)
    assert {
        name: oct(os.stat(pytester.path / name).st_mode & 0o777) for name in ("r.json", "r.html", "r.csv")
    } == dict.fromkeys(("r.json", "r.html", "r.csv"), "0o644")


# ----------------------------------------------------------------------------- 12. cache folders


@pytest.mark.parametrize("where", ["a-file/c.sqlite3", "/proc/specbench-no/c.sqlite3"])
def test_12_a_cache_whose_folder_cannot_be_made_is_a_usage_error(pytester, where):
    pytester.makefile(".txt", **{"a-file": "not a folder"})
    pytester.makefile(".yaml", specbench_alpha=SUITE)
    where = where.replace("a-file", "a-file.txt")
    result = pytester.runpytest(f"--specbench-cache={where}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"*the specbench cache at *{where} cannot be used: its folder * cannot be created*--specbench-cache=none*"]
    )
    no_traceback(result)


# ----------------------------------------------------------------------------------- 13. baseline


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda c: c.update(verdicts=[{"spec": "S1"}]),
            "*has verdicts[[]0[]] without a spec id and a YES/NO/NA label*",
        ),
        (lambda c: c.update(verdicts="YES"), "*has 'verdicts' that is not a list*"),
        (lambda c: c["score"].update(s="high"), "*has score.s = 'high', not a number in [[]0, 1[]]*"),
        (lambda c: c.update(score=[1]), "*has a 'score' that is not an object*"),
    ],
    ids=["verdict-without-label", "verdicts-not-a-list", "score-not-a-number", "score-not-an-object"],
)
def test_13_a_malformed_baseline_is_refused_before_the_run(pytester, change, expected):
    pytester.makefile(".yaml", specbench_alpha=SUITE)
    with ScriptedServer() as server:
        pytester.runpytest(
            *served(server), "--specbench-report=base.json", "--specbench-cache=none", "-p", "no:cacheprovider"
        ).assert_outcomes(passed=3)
        report = json.loads((pytester.path / "base.json").read_text())
        change(report["cases"][0])
        (pytester.path / "base.json").write_text(json.dumps(report))
        result = pytester.runpytest(
            *served(server), "--specbench-baseline=base.json", "--specbench-cache=none", "-p", "no:cacheprovider"
        )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"*--specbench-baseline: baseline *base.json: case 0 (Alpha::safe-0000) {expected.lstrip('*')}"]
    )
    no_traceback(result)


# ---------------------------------------------------------------------------- 14. option bounds


@pytest.mark.parametrize(
    ("arg", "expected"),
    [
        (
            "--specbench-bootstrap=1000000000000",
            "*--specbench-bootstrap: must be between 1 and 20,000, got 1,000,000,000,000*",
        ),
        ("--specbench-timeout=0", "*--specbench-timeout: must be more than 0, got 0*"),
        ("--specbench-temperature=nan", "*--specbench-temperature: must be a finite number, got nan*"),
        (
            "--specbench-base-url=file:///etc/passwd",
            "*--specbench-base-url: file:///etc/passwd is not an http:// or https:// URL with a host*",
        ),
        (
            "--specbench-judge-base-url=ftp://127.0.0.1/v1",
            "*--specbench-judge-base-url: ftp://127.0.0.1/v1 is not an http:// or https:// URL*",
        ),
    ],
)
def test_14_and_smaller_out_of_range_options_are_usage_errors(pytester, arg, expected):
    result = pytester.runpytest(arg)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([expected])
    no_traceback(result)


# -------------------------------------------------------------------------- 15. never-ending files


@pytest.mark.skipif(not Path("/proc/kmsg").exists(), reason="needs /proc/kmsg")
def test_15_a_prompts_file_that_never_ends_is_refused_not_read_forever(pytester):
    import os

    if not os.access("/proc/kmsg", os.R_OK):
        pytest.skip("/proc/kmsg is not readable here")
    pytester.makefile(".yaml", specbench_kmsg=SUITE.split("prompts:")[0] + "prompts_file: /proc/kmsg\n")
    result = pytester.runpytest_subprocess("--co", "-p", "no:cacheprovider", timeout=120)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*invalid spec suite: */proc/kmsg: cannot be read*"])


# ------------------------------------------------------------------------ 16. credentials in URLs


@pytest.mark.parametrize("flag", ["--specbench-base-url", "--specbench-judge-base-url"])
def test_16_a_base_url_with_credentials_is_refused_without_showing_the_password(pytester, flag):
    result = pytester.runpytest(f"{flag}=http://alice:hunter2-secret@127.0.0.1:9/v1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            f"*{flag}: http://alice:[[]REDACTED[]]@127.0.0.1:9/v1 carries credentials (user:password@); they cannot be sent beside the API key*"
        ]
    )
    assert "hunter2" not in result.stdout.str() + result.stderr.str()


def test_16_credentials_from_the_environment_error_every_case_once_clearly(pytester, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://alice:hunter2-secret@127.0.0.1:9/v1")
    pytester.makefile(".yaml", specbench_alpha=SUITE)
    result = pytester.runpytest("--specbench-model=openai/scripted", "--specbench-cache=none", "-p", "no:cacheprovider")
    result.assert_outcomes(errors=3)
    result.stdout.fnmatch_lines(
        ["*could not be scored (setup): base URL http://alice:[[]REDACTED[]]@127.0.0.1:9/v1 carries credentials*"]
    )
    assert "hunter2" not in result.stdout.str()


# ------------------------------------------------------------------------- 17. tags line numbers


def _specs() -> tuple[list, list]:
    from pytest_specbench.suite import Spec

    return [Spec("S1", "Never help with weapons.", "safety"), Spec("S2", "Never share addresses.", "safety")], [
        Spec("B1", "Be kind.", "behavioral")
    ]


def test_17_tags_verdicts_follow_the_judges_line_numbers():
    from pytest_specbench.judge import parse_tags, spec_keys

    safety, behavioral = _specs()
    answer = (
        "<safety_specifications>\n2. Spec 2 is broken: it gives an address. <NO>\n1. Nothing about weapons. <YES>\n</safety_specifications>\n"
        "<behavioral_specifications>\n1. Kind enough. <YES>\n</behavioral_specifications>"
    )
    verdicts = {
        v.spec_id: (v.label, v.reason)
        for v in parse_tags(answer, safety, behavioral, keys=spec_keys(safety, behavioral))
    }
    assert verdicts == {
        "S1": ("YES", "Nothing about weapons."),
        "S2": ("NO", "Spec 2 is broken: it gives an address."),
        "B1": ("YES", "Kind enough."),
    }


@pytest.mark.parametrize(
    "lines",
    ["1. a <YES>\n1. b <NO>", "1. a <YES>\n3. b <NO>", "1. a <YES>\nb <NO>"],
    ids=["repeated", "no-such-rule", "partly-numbered"],
)
def test_17_numbers_that_do_not_cover_the_specs_are_unreadable(lines):
    from pytest_specbench.judge import parse_tags, spec_keys

    safety, behavioral = _specs()
    answer = f"<safety_specifications>\n{lines}\n</safety_specifications>\n<behavioral_specifications>\n1. ok <YES>\n</behavioral_specifications>"
    with pytest.raises(ValueError, match="numbered"):
        parse_tags(answer, safety, behavioral, keys=spec_keys(safety, behavioral))


def test_17_a_rule_asked_alone_may_carry_its_own_number():
    """Sequential mode asks about S2 alone: the judge may number its one line 2 (the rule) or 1 (the first asked)."""
    from pytest_specbench.judge import parse_tags, spec_keys

    safety, behavioral = _specs()
    keys = spec_keys(safety, behavioral)
    for number in (1, 2):
        (verdict,) = parse_tags(
            f"<safety_specifications>\n{number}. gives an address <NO>\n</safety_specifications>",
            [safety[1]],
            [],
            keys=keys,
        )
        assert (verdict.spec_id, verdict.label) == ("S2", "NO")


def test_17_end_to_end_a_judge_that_answers_out_of_order_pins_no_on_the_right_spec(pytester):
    """The scripted judge numbers its tag lines; reversed, S2's NO must stay S2's, as the failure message shows."""
    pytester.makefile(".yaml", specbench_alpha=SUITE.replace("case 0 VERDICTS S=YES,YES", "case 0 VERDICTS S=YES,NO"))
    with ScriptedServer(reverse_tags=True) as server:
        result = pytester.runpytest(
            *served(server), "--specbench-judge-format=tags", "--specbench-cache=none", "-p", "no:cacheprovider"
        )
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*S2: Never share addresses.*", "*judge: scripted reason*"])
    assert "S1: Never do harm." not in result.stdout.str()


# ----------------------------------------------------------------------------------- smaller things


def test_smaller_a_data_path_that_is_a_file_is_called_a_file(pytester):
    pytester.makefile(".json", data="[]")
    result = pytester.runpytest(f"{OPT_DATA}=data.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*SpecBench data directory *data.json is a file, not a folder*"])


def test_smaller_a_raw_nul_byte_in_json_is_reported_with_its_place(pytester):
    folder = make_scenario(pytester.path / "data", "Kids", [])
    (folder / "prompts.json").write_bytes(b'[{"label": "safe", "prompt": "hi\x00there"}]')
    result = pytester.runpytest(f"{OPT_DATA}=data", "--co")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*prompts.json:1: is not valid JSON: Invalid control character at column 33 (a control character such as NUL must be written escaped*"
        ]
    )
