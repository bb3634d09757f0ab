"""Starting child processes that a test will interrupt.

A shell starts a background job (``cmd &``) with SIGINT and SIGQUIT ignored, some CI runners do the
same, and an ignored signal stays ignored across fork and exec. Python then leaves SIGINT ignored
instead of installing its KeyboardInterrupt handler, so a child started from such a run never sees
the Ctrl-C a test sends it. Passing :func:`default_sigint` as ``preexec_fn`` gives the child SIGINT's
default disposition, whatever the test run inherited; the child's Python then installs its handler
as it does under an interactive shell.
"""

from __future__ import annotations

import signal


def default_sigint() -> None:
    """``preexec_fn`` for a child that must receive SIGINT: reset it to SIG_DFL before exec."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
