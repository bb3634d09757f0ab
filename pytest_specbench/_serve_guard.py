"""Run a server command and take its whole process group down when the owning process dies.

Started by :class:`pytest_specbench.serve.ManagedServer` as the leader of the server's own process
group: ``python _serve_guard.py FD GRACE -- COMMAND...``. FD is the read end of a pipe whose write end
only the owner holds. When the owner ends in any way (normal exit, an exception, Ctrl-C, SIGKILL, the
OOM killer), the kernel closes its end and the read here returns EOF; the guard then sends SIGTERM to
the group (the server and every engine process it forked) and SIGKILL after GRACE seconds. A
parent-death signal (``prctl(PR_SET_PDEATHSIG)``) would reach only the direct child and fires when the
forking *thread* exits; the pipe reaches the whole group and does not depend on threads, and a change
of parent pid is checked as well in case the owner's write end leaked into a forked process.

While the owner lives, the guard only waits: SIGTERM from the owner's own stop reaches the whole group,
the guard ignores it and exits with the server's status, so the owner sees the server's exit code.

Standard library only, run as a script (not ``-m``), so it starts fast and needs no import path.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time

#: Seconds between checks of the parent pid while waiting for the pipe.
POLL_S = 1.0


def _kill_group(grace: float, server: subprocess.Popen[bytes]) -> None:
    group = os.getpgrp()
    try:
        os.killpg(group, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and server.poll() is None:
        time.sleep(0.1)
    os.killpg(group, signal.SIGKILL)  # ends the guard too, and any engine process the server left behind


def _exit_like(code: int) -> None:
    """Exit with the server's status: its exit code, or death by the same signal."""
    if code < 0:
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
        time.sleep(1)
    sys.exit(code if code >= 0 else 128 - code)


def main(argv: list[str]) -> None:
    if len(argv) < 4 or argv[2] != "--":
        sys.exit("usage: _serve_guard.py FD GRACE -- COMMAND...")
    fd, grace, command = int(argv[0]), float(argv[1]), argv[3:]
    owner = os.getppid()
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the owner's stop signals the group; the server decides
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    server = subprocess.Popen(
        command,
        preexec_fn=lambda: (
            signal.signal(signal.SIGTERM, signal.SIG_DFL),
            signal.signal(signal.SIGINT, signal.SIG_DFL),
        ),
    )
    while True:
        code = server.poll()
        if code is not None:
            _exit_like(code)
        ready, _, _ = select.select([fd], [], [], POLL_S)
        if ready and not os.read(fd, 1) or os.getppid() != owner:
            _kill_group(grace, server)
            return


if __name__ == "__main__":
    main(sys.argv[1:])
