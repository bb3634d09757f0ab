"""pytest-xdist integration: which process this is, controller-only hooks, and a worker's look-ahead.

Everything here is light and importable without xdist; the scheduler class, which subclasses one of
xdist's, lives in :mod:`pytest_specbench.xdist_scheduler` and is imported only by the hook that returns it.
"""

from __future__ import annotations

from itertools import islice
from typing import TYPE_CHECKING, Any, Literal

import pytest

if TYPE_CHECKING:
    from .session import SpecbenchSession

Role = Literal["single", "controller", "worker"]

#: In-flight requests assumed per worker when --specbench-concurrency is not given (the HTTP backends' default).
DEFAULT_PIPELINE = 8


def role(config: pytest.Config) -> Role:
    """The one answer to "am I the xdist controller, a worker, or a plain pytest process?".

    A worker carries ``workerinput``. The controller is what xdist itself makes a distributed session
    of (``xdist/plugin.py``): ``--dist`` other than ``no`` (``-n N`` sets ``load``, in xdist's
    ``pytest_cmdline_main``, before any ``pytest_configure``) and not ``--collect-only``.
    """
    if hasattr(config, "workerinput"):
        return "worker"
    if (
        config.pluginmanager.hasplugin("xdist")
        and getattr(config.option, "dist", "no") != "no"
        and not config.getoption("collectonly", False)
    ):
        return "controller"
    return "single"


def worker_index(config: pytest.Config) -> int:
    """This worker's number (``gw3`` -> 3); 0 outside xdist."""
    if role(config) != "worker":
        return 0
    from .backends.vllm_engine import worker_index as parse

    return parse(config.workerinput["workerid"])  # type: ignore[attr-defined]


class XdistControllerHooks:
    """Hooks that exist only with pytest-xdist, registered on the controller (never at module level)."""

    def __init__(self, session: SpecbenchSession):
        self.session = session

    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        # Workers collect, the controller does not: take the case count from the first worker's list.
        if not self.session.progress.total:
            self.session.progress.total = len(ids)

    @pytest.hookimpl(tryfirst=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        """With ``--dist load`` (what ``-n`` implies), hand out tests so each worker's pipeline stays full."""
        if config.getvalue("dist") != "load":
            return None
        try:
            from .xdist_scheduler import PipelinedLoadScheduling
        except ImportError:  # an xdist without the class it builds on: xdist's own scheduler
            return None
        settings = self.session.settings
        return PipelinedLoadScheduling(
            config, log, depth=2 * (settings.concurrency or DEFAULT_PIPELINE), dataset=settings.data is not None
        )

    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        if error is not None:  # a worker that died (SIGKILL, segfault, out of memory) rather than finished
            name = getattr(getattr(node, "gateway", None), "id", "?")
            self.session.stopped = f"worker {name} crashed"


class WorkerQueue:
    """Items xdist has already assigned to this worker, read from its test queue when it exposes one.

    pytest-xdist keeps the assigned indices in ``WorkerInteractor.torun`` (a lockable deque). That is
    not a public API, so anything unexpected means "no look-ahead": the worker then pipelines only the
    current and the next test, which is slower but still correct.
    """

    def __init__(self, config: pytest.Config):
        self.config = config
        self._interactor: Any = None

    def items(self, session: pytest.Session, limit: int) -> list[pytest.Item]:
        """The next ``limit`` items of this worker's queue (the look-ahead window, not the whole queue:
        at the start of a large run xdist may hand a worker tens of thousands of tests)."""
        if self._interactor is None:
            self._interactor = next(
                (p for p in self.config.pluginmanager.get_plugins() if type(p).__name__ == "WorkerInteractor"), False
            )
        queue = getattr(self._interactor, "torun", None)
        if queue is None or not hasattr(queue, "lock"):
            return []
        try:
            with queue.lock() as pending:
                indices = [i for i in islice(pending, limit) if isinstance(i, int)]
        except Exception:  # private API changed shape: fall back to no look-ahead
            return []
        return [session.items[i] for i in indices if i < len(session.items)]
