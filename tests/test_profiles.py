"""Model profiles: the shipped paper profiles, what a profile turns into, and every way a file can be wrong."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from pytest_specbench.backends import BackendRegistry
from pytest_specbench.backends.openai_compat import OpenAICompatBackend
from pytest_specbench.backends.vllm_server import VLLMServerBackend
from pytest_specbench.errors import ConfigError
from pytest_specbench.models import resolve_model
from pytest_specbench.profiles import load_profile, load_profiles

# name -> (provider, model, temperature, top_p, top_k, min_p, thinking, max_tokens)
PAPER = {
    "Qwen3-14B": ("vllm-server", "Qwen/Qwen3-14B", 0.7, 0.8, 20, 0.0, False, 4200),
    "Qwen3-14B-thinking": ("vllm-server", "Qwen/Qwen3-14B", 0.6, 0.95, 20, 0.0, True, 8400),
    "Llama-3.1-8B-Instruct": ("vllm-server", "meta-llama/Llama-3.1-8B-Instruct", 0.6, 0.9, None, None, None, 4200),
    "DeepSeek-R1-Distill-Llama-8B": (
        "vllm-server",
        "deepseek-ai/DeepSeek-R1-Distill-Llama-8B",
        0.6,
        0.95,
        None,
        None,
        None,
        8400,
    ),
    "GPT-4.1": ("openai", "gpt-4.1", 0.0, None, None, None, None, 4200),
    "Qwen3-32B-thinking": ("vllm-server", "Qwen/Qwen3-32B", 0.6, 0.95, 20, 0.0, True, 8400),
}


@pytest.mark.parametrize("name", list(PAPER))
def test_shipped_paper_profiles_carry_the_recommended_sampling(name):
    provider, model, temperature, top_p, top_k, min_p, thinking, max_tokens = PAPER[name]
    profile = load_profile(name)
    assert (profile.provider, profile.model) == (provider, model)
    assert (profile.temperature, profile.top_p, profile.top_k, profile.min_p) == (temperature, top_p, top_k, min_p)
    assert profile.thinking is thinking and profile.max_tokens == max_tokens
    assert profile.description, "every shipped profile says what it is"


def test_shipped_file_lists_exactly_the_paper_models_and_valid_method_defaults():
    shipped = load_profiles()
    assert list(shipped.profiles) == list(PAPER)
    assert shipped.method_options == {"more_think": {"cycles": 3}}


def test_a_profile_becomes_decoding_spec_and_backend():
    profile = load_profile("Qwen3-14B")
    assert profile.model_ref == "vllm-server/Qwen/Qwen3-14B"
    decoding = profile.decoding()
    assert (decoding.temperature, decoding.top_p, decoding.max_tokens) == (0.7, 0.8, 4200)
    assert decoding.extra == {"top_k": 20, "min_p": 0.0, "chat_template_kwargs": {"enable_thinking": False}}
    # Command-line values win over the file.
    assert profile.decoding(max_tokens=64, seed=3, temperature=0.0).to_key() == {
        **decoding.to_key(),
        "max_tokens": 64,
        "seed": 3,
        "temperature": 0.0,
    }
    registry = BackendRegistry()
    spec = resolve_model(
        "Qwen3-14B", registry, load_profiles(), base_urls=("http://127.0.0.1:8001/v1",), timeout=30.0
    ).spec
    assert (spec.provider, spec.name, spec.base_urls, spec.timeout) == (
        "vllm-server",
        "Qwen/Qwen3-14B",
        ("http://127.0.0.1:8001/v1",),
        30.0,
    )
    backend = registry.create(spec)  # the registry is the only factory; the template travels on the spec
    assert isinstance(backend, VLLMServerBackend) and backend.prefill_template == "chatml"
    asyncio.run(backend.aclose())


def test_a_judge_profile_without_backend_options_goes_through_the_registry():
    profile = load_profile("GPT-4.1")
    registry = BackendRegistry()
    resolved = resolve_model("GPT-4.1", registry, load_profiles())
    assert resolved.spec.options == ()
    backend = registry.create(resolved.spec)
    assert type(backend) is OpenAICompatBackend and backend.spec.name == "gpt-4.1"
    assert profile.decoding().extra == {}


def write(tmp_path: Path, text: str, name: str = "models.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


GOOD = """
profiles:
  small:
    provider: vllm-server
    model: Qwen/Qwen3-0.6B
    temperature: 0.7
"""


def test_user_file_with_relative_template_path_and_base_urls(tmp_path):
    (tmp_path / "tpl.jinja").write_text("{{ messages[0].content }}")
    path = write(
        tmp_path,
        GOOD
        + "    prefill_template: tpl.jinja\n    base_urls: [http://a:8000/v1, http://b:8000/v1]\n    chat_template_kwargs: {enable_thinking: false}\n"
        "method_options:\n  self_refine: {iterations: 3}\n",
    )
    profiles = load_profiles(path)
    small = profiles.get("small")
    assert small.prefill_template == str(tmp_path / "tpl.jinja")
    assert small.backend_spec().base_urls == ("http://a:8000/v1", "http://b:8000/v1")
    assert small.decoding().extra == {"chat_template_kwargs": {"enable_thinking": False}}
    assert profiles.method_options == {"self_refine": {"iterations": 3}}


def test_serve_args_and_engine_args_reach_the_server_and_the_in_process_engine(tmp_path):
    """serve_args (a list, or one quoted string) go to --specbench-serve; engine_args to vllm.LLM."""
    path = write(
        tmp_path,
        GOOD + "    serve_args: --max-model-len 4096 --enforce-eager\n"
        "  listed:\n    provider: vllm-server\n    model: m\n    serve_args: [--data-parallel-size, 2, --served-model-name, 'a b']\n"
        "  local:\n    provider: vllm\n    model: m\n    engine_args: {enforce_eager: true, max_model_len: 2048}\n",
    )
    profiles = load_profiles(path)
    assert profiles.get("small").serve_args == ("--max-model-len", "4096", "--enforce-eager")
    assert profiles.get("listed").serve_args == ("--data-parallel-size", "2", "--served-model-name", "a b")
    registry = BackendRegistry()
    local = resolve_model("local", registry, profiles).spec
    assert json.loads(local.option("engine_args")) == {"enforce_eager": True, "max_model_len": 2048}
    hash(local)  # the spec stays hashable (backends are kept by spec)
    assert resolve_model("small", registry, profiles).spec.option("engine_args") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            GOOD + "    serve_args: {max-model-len: 4096}\n",
            r"profile 'small': key 'serve_args' must be a list of command-line arguments or one string of them",
        ),
        (
            GOOD + '    serve_args: "--chat-template \'unclosed"\n',
            r"profile 'small': key 'serve_args' No closing quotation",
        ),
        (GOOD + "    engine_args: [enforce_eager]\n", r"profile 'small': key 'engine_args' must be a mapping"),
        (
            GOOD.replace("temperature", "temprature"),
            r"models\.yaml: profile 'small': unknown key 'temprature' \(did you mean 'temperature'\?\); valid keys: provider, model, ",
        ),
        (
            GOOD + "    topk: 20\n    min-p: 0\n",
            r"profile 'small': unknown keys 'min-p' \(did you mean 'min_p'\?\), 'topk' \(did you mean 'top_k'\?\)",
        ),
        (
            GOOD.replace("profiles:", "profile:"),
            r"models\.yaml: top level: unknown key 'profile' \(did you mean 'profiles'\?\); valid keys: profiles, method_options",
        ),
        (GOOD.replace("    model: Qwen/Qwen3-0.6B\n", ""), r"profile 'small': missing key model"),
        (GOOD.replace("0.7", "hot"), r"profile 'small': key 'temperature' must be a number, got 'hot'"),
        (GOOD + "    top_p: 1.5\n", r"key 'top_p' must be between 0 and 1, got 1\.5"),
        (GOOD + "    max_tokens: 0\n", r"key 'max_tokens' must be at least 1, got 0"),
        (GOOD + "    thinking: yes please\n", r"key 'thinking' must be true or false"),
        (GOOD + "    base_url: localhost:8000\n", r"key 'base_url' must be an http\(s\) URL"),
        (
            GOOD + "    prefill_template: chatlm\n",
            r"key 'prefill_template': 'chatlm' is neither 'server', one of chatml, llama3, deepseek-r1, nor an existing file",
        ),
        (
            GOOD + "    thinking: true\n    chat_template_kwargs: {enable_thinking: true}\n",
            r"set thinking or chat_template_kwargs\.enable_thinking, not both",
        ),
        (
            GOOD + "method_options:\n  best_of_n: {N: 4}\n",
            r"models\.yaml: method_options: unknown option best_of_n\.N; valid options of best_of_n: judge, judge_base_url, n, ",
        ),
        (GOOD + "method_options:\n  best_of_n: {n: 0}\n", r"method_options: best_of_n\.n must be at least 1"),
        ("profiles: {}\n", r"'profiles' must map at least one profile name"),
        ("profiles:\n  small: qwen\n", r"profile 'small' must be a mapping of settings, got str"),
        ("profiles:\n  small: [provider: x\n", r"models\.yaml:\d+: not valid YAML"),
    ],
)
def test_a_mistake_in_a_profile_file_names_file_profile_and_key(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as info:
        load_profiles(path)
    assert str(path) in str(info.value)


def test_unknown_profile_name_and_missing_file(tmp_path):
    with pytest.raises(
        ConfigError, match=r"no profile 'Qwen3-14b' \(did you mean 'Qwen3-14B'\?\); profiles: Qwen3-14B, "
    ):
        load_profile("Qwen3-14b")
    with pytest.raises(ConfigError, match=r"cannot read model profiles file .*nope\.yaml"):
        load_profiles(tmp_path / "nope.yaml")
