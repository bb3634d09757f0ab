"""Hooks pytest-specbench offers to conftest files and plugins.

Both hooks are called once in every process (xdist workers included): in ``pytest_configure`` when a
``--specbench-*`` option is given, otherwise once spec cases are collected. A provider or method added
in a ``conftest.py`` at the root of the run is therefore available everywhere. The ``specbench``
toolkit calls ``pytest_specbench_add_backends`` of the modules named with ``specbench -p MODULE``, so
the same provider serves ``specbench synthesize`` and ``attack``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .backends import BackendRegistry
    from .methods import MethodRegistry


@pytest.hookspec
def pytest_specbench_add_backends(registry: BackendRegistry) -> None:
    """Add model providers usable as ``--specbench-model=PROVIDER/NAME``.

    ``registry.register(provider, factory)`` where ``factory(spec)`` returns a
    :class:`pytest_specbench.backends.base.Backend`; register the class itself where you can, so its
    capability attributes (``supports_prefill``, ``supports_json_schema``, ``needs_max_tokens``, …)
    are known before a backend is built. Example ``conftest.py``::

        from pytest_specbench.backends.openai_compat import OpenAICompatBackend

        class MyGateway(OpenAICompatBackend):
            provider = "gateway"

        def pytest_specbench_add_backends(registry):
            registry.register("gateway", MyGateway)
    """


@pytest.hookspec
def pytest_specbench_add_methods(registry: MethodRegistry) -> None:
    """Add deliberation methods usable as ``--specbench-method=NAME``.

    A method is ``async def method(case, ctx) -> MethodResult``. It registers with every option it takes
    (typed, with defaults and bounds; ``--specbench-method-opt NAME.KEY=VALUE`` and profile files are
    checked against them before any case runs) and what it needs: a backend capability such as
    ``"prefill"`` (checked against the backend class's ``supports_prefill``) or ``"judge"`` (the run's
    judge as ``ctx.score_response``). Example ``conftest.py``::

        from pytest_specbench.methods import MethodResult, OptionSpec, resolve_options, split_thinking, vanilla_messages

        POLITE_OPTIONS = {"phrase": OptionSpec("Thank you.", "text", "sentence every answer must end with")}

        async def polite(case, ctx):
            opts = resolve_options("polite", POLITE_OPTIONS, ctx.options)
            steps = []
            messages = vanilla_messages(case, ctx.prompt_field)
            messages[0]["content"] += f"\nEnd every answer with: {opts['phrase']}"
            completion = await ctx.call("polite.answer", messages, steps)
            thought, response = split_thinking(completion)
            return MethodResult(response, thought, tuple(steps))

        def pytest_specbench_add_methods(registry):
            registry.register("polite", polite, options=POLITE_OPTIONS)
    """
