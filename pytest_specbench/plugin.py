"""pytest entry point (``pytest11``): options, hook registration, configure, fixtures.

This module stays light at import time: pytest loads it in every run of every project that has the
plugin installed. Where the work lives:

* :mod:`.options` — every ``--specbench-*`` option and the :class:`~.options.Settings` built from them;
* :mod:`.runconfig` — the run's configuration checks, one pure function;
* :mod:`.collection` — dataset scenarios, YAML suites and marked tests become items;
* :mod:`.session` — the per-run session: outcomes onto reports, records, summary, gates, reports;
* :mod:`.distributed` — pytest-xdist: process role, controller hooks, the pipelined scheduler;
* :mod:`.models` — ``PROVIDER/NAME`` or a profile name to a backend spec and decoding.

A project without spec suites and without ``--specbench-*`` options gets its options registered and
nothing else: no call store, no backend, no import of the suite, method or cache modules.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from . import options as opts
from .collection import MARK_SUITE, Collection, obtain
from .distributed import XdistControllerHooks
from .session import PLUGIN_NAME, SpecbenchSession, session_of

if TYPE_CHECKING:
    from .runconfig import RunConfig
    from .runner import CaseOutcome
    from .suite import Case

__all__ = ["PLUGIN_NAME", "specbench_case", "specbench_result"]


def pytest_addoption(parser: pytest.Parser) -> None:
    opts.add_options(parser)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from . import hookspec

    pluginmanager.add_hookspecs(hookspec)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "specbench: a SpecBench case (added to every collected case)")
    config.addinivalue_line("markers", "unsafe: a SpecBench case whose prompt is labelled unsafe")
    config.addinivalue_line("markers", "safe: a SpecBench case whose prompt is labelled safe")
    config.addinivalue_line(
        "markers",
        f"{MARK_SUITE}(path): parametrize the test's specbench_case / specbench_result fixtures over a YAML suite's cases",
    )
    session = SpecbenchSession(config, _run_config(config))
    config.pluginmanager.register(session, PLUGIN_NAME)
    config.pluginmanager.register(Collection(session), f"{PLUGIN_NAME}-collection")
    if session.role == "controller":
        config.pluginmanager.register(XdistControllerHooks(session), f"{PLUGIN_NAME}-xdist")
    if session.run.configured:
        session.check()  # a mistake in the options is a usage error now, not after collection
        session.pin_gpus()
        if session.role == "controller" and not config.option.collectonly:
            session.check_cache()  # the controller never collects: check the workers' store up front


def _run_config(config: pytest.Config) -> RunConfig:
    """The checked run configuration (:func:`~.runconfig.resolve_run`), errors shown as usage errors."""
    from .errors import ConfigError
    from .runconfig import resolve_run

    settings = opts.Settings.from_config(config)
    given = tuple(opts.given(config))
    profiles = None
    try:
        if settings.serve:
            from .models import is_profile_ref

            if is_profile_ref(settings.model):
                from .profiles import load_profiles

                path = settings.model_config
                profiles = load_profiles(config.invocation_params.dir / path if path is not None else None)
        return resolve_run(
            settings,
            cwd=config.invocation_params.dir,
            given=given,
            has_pytest_cache=getattr(config, "cache", None) is not None,
            downloaded=_downloaded,
            profiles=profiles,
        )
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None


def _downloaded() -> tuple[Path | None, str]:
    """The verified copy ``specbench download`` made (None if absent), and where it would be."""
    from .toolkit.download import dataset_dir, default_data_dir

    return default_data_dir(), str(dataset_dir())


# ----------------------------------------------------------------------------------------- fixtures


@pytest.fixture
def specbench_case(request: pytest.FixtureRequest) -> Case:
    """The case this test runs on (parametrized by ``@pytest.mark.specbench_suite``)."""
    return request.param


@pytest.fixture
def specbench_result(request: pytest.FixtureRequest, specbench_case: Case) -> CaseOutcome:
    """The judged outcome for ``specbench_case``: response, verdicts, score.

    Obtained during setup, so a case that cannot be scored errors (it does not fail) with the reason.
    """
    return obtain(request.node, specbench_case, session_of(request.config).settings.methods[0])
