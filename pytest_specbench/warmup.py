"""Import modules on a background thread while the process would otherwise sit waiting.

Two moments in a run are idle for the main thread: an xdist worker between sending its collection and
receiving its first tests, and any process while its cases are in flight on the network. Modules that
are certain to be needed later (the HTTP client before the first request, numpy and the report code
before the summary) are imported then, so that the first request and the final summary do not wait for
them. An import that fails is left alone here; the real import reports it, with its install hint.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterable


def import_in_background(modules: Iterable[str], name: str = "specbench-warmup") -> threading.Thread | None:
    """Start importing ``modules`` in order on a daemon thread; None when there is nothing to import."""
    names = list(dict.fromkeys(modules))
    if not names:
        return None

    def run() -> None:
        for module in names:
            try:
                importlib.import_module(module)
            except ImportError:
                pass  # the import that needs it raises again, with the hint

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread
