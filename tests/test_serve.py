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
from pytest_specbench.serve import ManagedServer, serve_for_worker

STANDIN = f"""\
#!{sys.executable}
import json, os, signal, subprocess, sys, time
from http.server import BaseHTTPRequestHandler, HTTPServer

args = sys.argv[1:]
mode = os.environ.get("STANDIN_MODE", "ok")
host, port = args[args.index("--host") + 1], int(args[args.index("--port") + 1])
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
with open(os.environ["STANDIN_RECORD"], "w") as f:
    json.dump({{"argv": args, "cuda": os.environ.get("CUDA_VISIBLE_DEVICES"), "pid": os.getpid(), "child": child.pid}}, f)
print("stand-in vllm: loading", args[1], flush=True)
if mode == "exit":
    print("ValueError: no such model", args[1], flush=True)
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
            body = json.dumps({{"object": "list", "data": [{{"id": args[1]}}]}}).encode()
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
    with ManagedServer("Qwen/Qwen3-14B", gpus=["2", "3"], extra_args=["--max-model-len", "8192"], env=standin, startup_timeout=20) as server:
        assert server.running
        log = server.log_path
        assert log is not None and log.is_file()
        assert models(server.base_url)["data"][0]["id"] == "Qwen/Qwen3-14B"
        seen = record(standin)
        assert seen["argv"] == ["serve", "Qwen/Qwen3-14B", "--host", "127.0.0.1", "--port", str(server.port), "--max-model-len", "8192"]
        assert seen["cuda"] == "2,3"
        assert alive(seen["pid"]) and alive(seen["child"])
    assert not server.running
    assert gone(seen["pid"]) and gone(seen["child"]), "the server and the engine process it forked are stopped"
    assert not log.exists(), "a temporary log is removed after a clean run"


def test_health_wait_covers_a_slow_start(standin):
    standin.update(STANDIN_MODE="slow", STANDIN_DELAY="1.5")
    started = time.monotonic()
    with ManagedServer("m", env=standin, startup_timeout=20) as server:
        assert time.monotonic() - started >= 1.5
        assert models(server.base_url)["object"] == "list"
    assert gone(record(standin)["pid"])


def test_a_server_that_exits_early_is_a_clear_error_with_its_log(standin, tmp_path):
    standin["STANDIN_MODE"] = "exit"
    server = ManagedServer("no/such-model", env=standin, startup_timeout=20, log_path=tmp_path / "server.log")
    started = time.monotonic()
    with pytest.raises(BackendUnavailable, match=r"exited with code 3 before it was ready[\s\S]*ValueError: no such model no/such-model"):
        server.start()
    assert time.monotonic() - started < 15, "fails as soon as the process dies, not at the timeout"
    assert not server.running and gone(record(standin)["child"])
    assert "ValueError" in (tmp_path / "server.log").read_text(), "the log is kept for a failed start"


def test_a_server_that_never_answers_times_out_and_is_stopped(standin, tmp_path):
    standin["STANDIN_MODE"] = "never"
    server = ManagedServer("m", env=standin, startup_timeout=1.5, stop_grace=5, log_path=tmp_path / "server.log")
    with pytest.raises(BackendUnavailable, match=r"did not answer http://127\.0\.0\.1:\d+/v1/models within 1\.5 s"):
        server.start()
    seen = record(standin)
    assert gone(seen["pid"]) and gone(seen["child"])


def test_failure_inside_the_block_still_stops_the_server(standin):
    with pytest.raises(RuntimeError, match="test body failed"), ManagedServer("m", env=standin, startup_timeout=20):
        pid = record(standin)["pid"]
        raise RuntimeError("test body failed")
    assert gone(pid)


def test_keyboard_interrupt_inside_the_block_stops_the_server(standin):
    with pytest.raises(KeyboardInterrupt), ManagedServer("m", env=standin, startup_timeout=20):
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
            with ManagedServer("m", env=dict(os.environ), startup_timeout=20):
                print("ready", flush=True)
                time.sleep(60)
            """
        )
    )
    proc = subprocess.Popen([sys.executable, str(owner)], env=standin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
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
    server = ManagedServer("m", env=standin, startup_timeout=20, stop_grace=1.0).start()
    pid = record(standin)["pid"]
    started = time.monotonic()
    code = server.stop()
    assert time.monotonic() - started >= 1.0
    assert code == -signal.SIGKILL and gone(pid)
    assert server.stop() is None  # idempotent


def test_missing_executable_names_the_install(standin):
    standin["PATH"] = "/nonexistent"
    with pytest.raises(BackendUnavailable, match=r"'vllm' is not on PATH; pip install \"pytest-specbench\[vllm\]\""):
        ManagedServer("m", env=standin).start()


def test_base_url_before_start_is_a_config_error():
    with pytest.raises(ConfigError, match="start it first"):
        _ = ManagedServer("m").base_url


def test_one_server_per_worker_on_its_own_gpus_with_tensor_parallel(standin):
    server = serve_for_worker("m", worker=1, gpus_per_worker=2, available=["0", "1", "2", "3"], env=standin, startup_timeout=20)
    assert server.gpus == ["2", "3"] and server.extra_args == ["--tensor-parallel-size", "2"]
    with server:
        seen = record(standin)
        assert seen["cuda"] == "2,3" and seen["argv"][-2:] == ["--tensor-parallel-size", "2"]
    with pytest.raises(ConfigError, match=r"worker 2 needs 2 GPU\(s\).*only 4 are visible.*at most -n 2"):
        serve_for_worker("m", worker=2, gpus_per_worker=2, available=["0", "1", "2", "3"])


def test_two_servers_on_free_ports_each_answer(standin):
    with ManagedServer("a", env=standin, startup_timeout=20) as first, ManagedServer("b", env=standin, startup_timeout=20) as second:
        assert first.port != second.port
        assert models(first.base_url)["data"][0]["id"] == "a" and models(second.base_url)["data"][0]["id"] == "b"
