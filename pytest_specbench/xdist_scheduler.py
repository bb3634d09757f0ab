"""The scheduler ``pytest_xdist_make_scheduler`` returns under ``--dist load``: xdist's load scheduling,
minus the habit that starves a pipelined worker.

Imports xdist at load time; :mod:`pytest_specbench.distributed` imports this module only inside the
hook, so a run without xdist never does.
"""

from __future__ import annotations

from typing import Any

import pytest
from xdist.scheduler import LoadScheduling


class PipelinedLoadScheduling(LoadScheduling):
    """Keeps at least ``depth`` tests queued per worker while any are left.

    xdist refills a worker only when fewer than a quarter of its fair share is queued, and not at all
    while its last test took 0.1 s or more and two are still queued. A SpecBench test is slow only because
    it waits for its case's calls, which the worker runs ``concurrency`` at a time from its queue (see
    :class:`~pytest_specbench.distributed.WorkerQueue`); with two queued, two are in flight and the rest
    of the concurrency sits idle. This scheduler keeps at least ``depth`` tests queued per worker while
    any are left, splitting the last ones evenly so no worker idles while another drains a long queue.

    It changes nothing for runs without SpecBench cases (no ``--specbench-data`` and no
    ``specbench_*.yaml`` among the collected files): those keep xdist's own behaviour.
    """

    def __init__(self, config: pytest.Config, log: Any = None, *, depth: int, dataset: bool):
        super().__init__(config, log)
        self.depth = depth
        self.dataset = dataset
        self._pipelined: bool | None = None

    def _is_pipelined(self) -> bool:
        if self._pipelined is None and self.collection is not None:
            from .suite import SUITE_FILE_RE

            files = {nodeid.split("::", 1)[0].rsplit("/", 1)[-1] for nodeid in self.collection}
            self._pipelined = self.dataset or any(SUITE_FILE_RE.match(name) for name in files)
        return bool(self._pipelined)

    def check_schedule(self, node: Any, duration: float = 0) -> None:
        if not self._is_pipelined():
            return super().check_schedule(node, duration)
        if node.shutting_down:
            return
        if not self.pending:
            node.shutdown()
            return
        nodes = max(1, len(self.node2pending))
        queued = len(self.node2pending[node])
        want = max(self.depth, len(self.pending) // nodes // 2)
        if queued < max(self.depth, want // 2):
            share = -(-len(self.pending) // nodes)  # ceil: the last tests are split evenly
            self._hand_out(node, max(1, min(want - queued, share)))

    def _hand_out(self, node: Any, count: int) -> None:
        """Move the next ``count`` pending tests to ``node``'s queue and send them.

        Uses only what ``LoadScheduling`` documents as its state (``pending``: indices not yet handed
        out; ``node2pending``: each node's handed-out, unfinished indices) and the worker's public
        ``send_runtest_some``; this is what xdist's private ``_send_tests`` does, written here so the
        scheduler does not call a private method.
        """
        indices = self.pending[:count]
        if not indices:
            return
        del self.pending[:count]
        self.node2pending[node].extend(indices)
        node.send_runtest_some(indices)
