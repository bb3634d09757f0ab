"""One resolver from ``PROVIDER/NAME`` or a profile name to a backend spec and decoding."""

from __future__ import annotations

import re
from typing import ClassVar

import pytest

from pytest_specbench.backends import BackendRegistry, builtin_providers_with
from pytest_specbench.backends.base import INSTRUCT_MAX_TOKENS, REASONING_MAX_TOKENS
from pytest_specbench.backends.openai_compat import OpenAICompatBackend
from pytest_specbench.errors import ConfigError
from pytest_specbench.models import resolve_model
from pytest_specbench.profiles import load_profiles

PAPER = load_profiles()


@pytest.mark.parametrize(
    ("ref", "flags", "provider", "max_tokens", "temperature", "options"),
    [
        # servers: an unset budget is left to the server; nothing is invented
        ("openai/gpt-4.1", {}, "openai", None, None, ()),
        ("vllm-server/Qwen/Qwen3-14B", {}, "vllm-server", None, None, ()),
        ("openai/gpt-4.1", {"max_tokens": 300, "temperature": 0.2}, "openai", 300, 0.2, ()),
        # in-process: the paper's budgets, by whether the model thinks first
        ("llamacpp/smollm2", {}, "llamacpp", INSTRUCT_MAX_TOKENS, None, ()),
        ("vllm/meta-llama/Llama-3.1-8B-Instruct", {}, "vllm", INSTRUCT_MAX_TOKENS, None, ()),
        ("vllm/Qwen/Qwen3-14B", {}, "vllm", REASONING_MAX_TOKENS, None, ()),
        ("vllm/deepseek-ai/DeepSeek-R1-Distill-Llama-8B", {}, "vllm", REASONING_MAX_TOKENS, None, ()),
        ("llamacpp/smollm2", {"max_tokens": 160}, "llamacpp", 160, None, ()),
        # profiles: their values, unless a flag is given; backend options travel on the spec
        ("Qwen3-14B", {}, "vllm-server", 4200, 0.7, (("prefill_template", "chatml"),)),
        (
            "Qwen3-14B",
            {"max_tokens": 64, "temperature": 0.0},
            "vllm-server",
            64,
            0.0,
            (("prefill_template", "chatml"),),
        ),
        ("Qwen3-32B-thinking", {}, "vllm-server", 8400, 0.6, ()),
        ("GPT-4.1", {}, "openai", 4200, 0.0, ()),
        # the judge's default temperature (0) applies only when neither flag nor profile sets one
        ("openai/gpt-4.1", {"default_temperature": 0.0}, "openai", None, 0.0, ()),
        ("Qwen3-32B-thinking", {"default_temperature": 0.0}, "vllm-server", 8400, 0.6, ()),
    ],
)
def test_resolution(ref, flags, provider, max_tokens, temperature, options):
    resolved = resolve_model(ref, BackendRegistry(), PAPER, **flags)
    assert (resolved.provider, resolved.decoding.max_tokens, resolved.decoding.temperature, resolved.spec.options) == (
        provider,
        max_tokens,
        temperature,
        options,
    )


def test_a_profile_brings_sampling_and_thinking_switch():
    resolved = resolve_model(
        "Qwen3-14B", BackendRegistry(), PAPER, base_urls=("http://127.0.0.1:9/v1",), http_client="openai", seed=5
    )
    assert resolved.spec.name == "Qwen/Qwen3-14B" and resolved.spec.base_urls == ("http://127.0.0.1:9/v1",)
    assert resolved.spec.http_client == "openai" and resolved.decoding.seed == 5 and not resolved.reasoning
    assert resolved.decoding.extra == {"top_k": 20, "min_p": 0.0, "chat_template_kwargs": {"enable_thinking": False}}


def test_the_registry_builds_the_profile_backend_with_its_template():
    registry = BackendRegistry()
    backend = registry.create(resolve_model("Qwen3-14B-thinking", registry, PAPER).spec)
    assert backend.prefill_template == "chatml"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("ref", "profiles", "message"),
    [
        (
            "bedrock/claude",
            PAPER,
            "unknown model provider 'bedrock'; valid providers: llamacpp, openai, vllm, vllm-server",
        ),
        ("Qwen3-14b", PAPER, "no profile 'Qwen3-14b' (did you mean 'Qwen3-14B'?)"),
        ("Qwen3-14B", None, "no model profiles are loaded"),
        ("openai/", PAPER, "is not PROVIDER/NAME"),
    ],
)
def test_bad_references_name_the_valid_ones(ref, profiles, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        resolve_model(ref, BackendRegistry(), profiles)


class Gateway(OpenAICompatBackend):
    """A third-party provider: a class, so its capabilities are known before it is built."""

    provider = "gateway"
    supports_prefill: ClassVar[bool] = True


def test_capabilities_come_from_classes_including_registered_ones():
    registry = BackendRegistry()
    assert builtin_providers_with("supports_prefill") == ["llamacpp", "vllm", "vllm-server"]
    assert registry.providers_with("uses_http") == ["openai", "vllm-server"]
    assert registry.providers_with("needs_max_tokens") == ["llamacpp", "vllm"]
    registry.register("gateway", Gateway)
    assert registry.providers_with("supports_prefill") == ["gateway", "llamacpp", "vllm", "vllm-server"]
    resolved = resolve_model("gateway/m", registry, base_urls=("http://127.0.0.1:9/v1",))
    assert isinstance(registry.create(resolved.spec), Gateway) and resolved.decoding.max_tokens is None
