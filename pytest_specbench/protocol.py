"""How a spec case runs through pytest's test protocol.

A :class:`~pytest_specbench.collection.CaseItem` runs no code of the user's: its setup runs the engine's
loop until the case's outcome is ready, its call compares verdicts. pytest's protocol wraps each
of the three phases in the capture manager (suspend and resume the fd capture, read and truncate its
files) and the logging plugin (two log handlers, stash entries and report sections), about a third of
the client's CPU per case in a large run. Neither can catch anything meaningful here: what the engine
writes or logs while its loop runs belongs to whichever case is in flight, not to the test being reported.

So for these items the protocol is pytest's own (``_pytest.runner.runtestprotocol``), step for step,
with the per-phase hooks called without those two plugins. Everything else is unchanged: every other
plugin's setup/call/teardown hooks (skip and xfail marks among them), the three reports through
``pytest_runtest_makereport`` and ``pytest_runtest_logreport`` (terminal, JUnit, ``--lf``, xdist),
``pytest_exception_interact``, and every ``pytest_runtest_protocol`` wrapper (warnings among them).
Ordinary tests, and tests using the ``specbench_case`` fixture, keep the standard protocol.

It stands aside (the standard protocol runs) where that could change what a user sees: when a plugin
other than pytest's runner takes over the protocol itself (a rerun plugin, say); for an item whose
``conftest.py`` files implement a phase hook (the project's own code runs in the phase, and what it
prints is captured as before); and under ``--pdb``, ``--trace``, ``--setup-only`` and ``--setup-show``,
which step through or display the phases. Installed plugins' phase hooks still run in the fast path
(Hypothesis wraps every call, for one), without capture.
"""

from __future__ import annotations

import bdb
import sys
from pathlib import Path
from typing import Any, Literal

import pytest

#: Plugins whose per-phase hooks a spec case skips (names as pytest registers them).
SKIPPED_PLUGINS = ("capturemanager", "logging-plugin")
#: Options under which the standard protocol runs (they step through or display the phases).
STANDARD_FLOW_OPTIONS = ("usepdb", "trace", "setuponly", "setupshow")

Phase = Literal["setup", "call", "teardown"]
#: What a phase lets through, as pytest's runner does without --pdb (under --pdb the standard protocol runs).
_RERAISE = (pytest.exit.Exception, KeyboardInterrupt)


class CaseProtocol:
    """pytest's test protocol for spec cases, without per-phase capture and log capture."""

    def __init__(self, config: pytest.Config, owner: object):
        self.config = config
        pm = config.pluginmanager
        self._skipped = [p for name in SKIPPED_PLUGINS if (p := pm.get_plugin(name)) is not None]
        runner = pm.get_plugin("runner")
        takers = [
            impl.plugin
            for impl in config.hook.pytest_runtest_protocol.get_hookimpls()
            if not (impl.hookwrapper or impl.wrapper) and impl.plugin not in (runner, owner)
        ]
        self.enabled = not takers and not any(config.getoption(name, False) for name in STANDARD_FLOW_OPTIONS)
        self._hooks: dict[Path, tuple[Any, dict[Phase, Any]] | None] = {}

    def _hooks_for(self, item: pytest.Item) -> tuple[Any, dict[Phase, Any]] | None:
        """The item's hook proxy and its three phase hooks less the skipped plugins, once per folder; None
        where a ``conftest.py`` implements a phase hook.

        ``item.ihook`` already leaves out conftest plugins that do not apply to the item's path; the
        phase callers keep exactly the plugins the proxy would call, minus :data:`SKIPPED_PLUGINS`.
        """
        if item.path in self._hooks:
            return self._hooks[item.path]
        ihook = item.ihook
        pm = self.config.pluginmanager
        phases: dict[Phase, Any] = {}
        found: tuple[Any, dict[Phase, Any]] | None = (ihook, phases)
        for when in ("setup", "call", "teardown"):
            name = f"pytest_runtest_{when}"
            kept = {impl.plugin for impl in getattr(ihook, name).get_hookimpls()}
            if any(_is_conftest(p) for p in kept):
                found = None
                break
            removed = [p for p in pm.get_plugins() if p not in kept or p in self._skipped]
            phases[when] = pm.subset_hook_caller(name, remove_plugins=removed)
        self._hooks[item.path] = found
        return found

    def run(self, item: pytest.Item, nextitem: pytest.Item | None) -> bool:
        """``_pytest.runner.pytest_runtest_protocol`` for one spec case; False (nothing done) where the
        standard protocol should run it instead."""
        hooks = self._hooks_for(item) if self.enabled else None
        if hooks is None:
            return False
        ihook, phases = hooks
        ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
        report = self._phase(item, ihook, phases, "setup")
        if report.passed:
            self._phase(item, ihook, phases, "call")
        if item.session.shouldfail or item.session.shouldstop:
            nextitem = None  # as pytest does: tear everything down to report fixture errors
        self._phase(item, ihook, phases, "teardown", nextitem=nextitem)
        ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
        return True

    def _phase(self, item: pytest.Item, ihook: Any, phases: dict[Phase, Any], when: Phase, **kwds: Any) -> Any:
        """``_pytest.runner.call_and_report`` with the phase hook from :meth:`_hooks_for`."""
        hook = phases[when]
        call = pytest.CallInfo.from_call(lambda: hook(item=item, **kwds), when=when, reraise=_RERAISE)
        report = ihook.pytest_runtest_makereport(item=item, call=call)
        ihook.pytest_runtest_logreport(report=report)
        excinfo = call.excinfo
        if (
            excinfo is not None
            and not hasattr(report, "wasxfail")
            and not excinfo.errisinstance(self._quiet_exceptions())
        ):
            ihook.pytest_exception_interact(node=item, call=call, report=report)
        return report

    @staticmethod
    def _quiet_exceptions() -> tuple[type[BaseException], ...]:
        """Exceptions that end a phase without an interactive report (skips, a debugger quit)."""
        unittest = sys.modules.get("unittest")
        quiet: tuple[type[BaseException], ...] = (pytest.skip.Exception, bdb.BdbQuit)
        return quiet + (unittest.SkipTest,) if unittest is not None else quiet


def _is_conftest(plugin: object) -> bool:
    return Path(getattr(plugin, "__file__", None) or "").name == "conftest.py"
