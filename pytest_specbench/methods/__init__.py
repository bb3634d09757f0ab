"""Test-time deliberation methods: how a case becomes a response.

A method is ``async def method(case, ctx) -> MethodResult``: it makes its model calls through
:meth:`MethodContext.call`, which records each one in ``steps`` under a stage name
``<method>.<stage>``, so the run reports the calls and tokens every method spends. Methods are found
by name in a :class:`MethodRegistry`, where each is registered with its typed options and its needs;
plugins add their own through the ``pytest_specbench_add_methods`` hook the same way.

=============  ==================================================================  ======================
method         what it does                                                        model calls per case
=============  ==================================================================  ======================
raw            the prompt alone, no specs                                          1
vanilla        the specs in the system prompt (the paper's baseline)               1
zero_think     prefill an empty thinking block, so the model answers directly      1
more_think     each time thinking ends, replace ``</think>`` with "Wait"           ``cycles`` (3)
align3         three passages steer one deliberation: behavioral specs, then       3
               safety specs, then an audit of all specs (the paper's method)
self_refine    answer, then ``iterations`` rounds of spec-by-spec feedback and     1 + 2 x ``iterations``
               a rewrite from the last ``history`` rounds                          (1 + 2 x 15)
best_of_n      ``n`` samples, keep the best by a reward model or a judge's s       ``n`` (15)
tpo            test-time preference optimisation: sample, score, turn best vs      ``samples`` x (1 +
               worst into a textual loss and update instructions, resample         ``iterations``) + 2 x
                                                                                   ``iterations`` (19)
=============  ==================================================================  ======================

Modules: :mod:`.core` (context, steps, result), :mod:`.options` (typed option specs),
:mod:`.registry` (registration, needs, the setup check), :mod:`.prompts` (every text sent),
and one module per family: :mod:`.base`, :mod:`.thinking`, :mod:`.align3`, :mod:`.refine`,
:mod:`.selection` (with candidate ranking) and :mod:`.reward` (the reward-model scorer).
"""

from __future__ import annotations

from .core import (
    THINK_CLOSE,
    THINK_OPEN,
    Method,
    MethodContext,
    MethodResult,
    Selector,
    Selectors,
    Step,
    continue_split,
    split_thinking,
)
from .options import OptionSpec, parse_method_option, resolve_options
from .prompts import align3_passages, spec_block, vanilla_messages
from .registry import (
    MethodInfo,
    MethodRegistry,
    builtin_registry,
    capable_providers,
    check_method_backend,
    method_options_help,
    register_builtin_methods,
    require_capability,
    validate_method_options,
)

__all__ = [
    "THINK_CLOSE",
    "THINK_OPEN",
    "Method",
    "MethodContext",
    "MethodInfo",
    "MethodRegistry",
    "MethodResult",
    "OptionSpec",
    "Selector",
    "Selectors",
    "Step",
    "align3_passages",
    "builtin_registry",
    "capable_providers",
    "check_method_backend",
    "continue_split",
    "method_options_help",
    "parse_method_option",
    "register_builtin_methods",
    "require_capability",
    "resolve_options",
    "spec_block",
    "split_thinking",
    "validate_method_options",
    "vanilla_messages",
]
