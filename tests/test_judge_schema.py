"""The verdict schema sent as ``response_format`` keeps to what OpenAI's strict structured outputs accept.

The allow-list below is OpenAI's documented subset ("Structured model outputs" guide, section
"Supported schemas", developers.openai.com/api/docs/guides/structured-outputs#supported-schemas, as
read in November 2026): the types string, number, boolean, integer, object, array, enum and anyOf;
string keywords ``pattern`` and ``format``; number keywords ``multipleOf``, ``maximum``,
``exclusiveMaximum``, ``minimum``, ``exclusiveMinimum``; array keywords ``minItems`` and
``maxItems``; objects with ``properties``, ``required`` (every property) and
``additionalProperties: false``; definitions (``$defs``, ``$ref``) and ``description``. String length
keywords (``minLength``, ``maxLength``) are not in the list; the page names them only among keywords
fine-tuned models do not support. Limits on the same page: 5,000 object properties, 10 levels of
nesting, 1,000 enum values, 120,000 characters of property names and enum values; the root is an
object, never ``anyOf``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from scripted_server import ScriptedServer

from pytest_specbench.backends.base import Decoding, GenerationRequest
from pytest_specbench.backends.llamacpp import LlamaCppBackend
from pytest_specbench.backends.openai_compat import OpenAICompatBackend
from pytest_specbench.judge import REASON_MAX_CHARS, Judge, strict_schema_limits, verdict_schema

#: Keywords of OpenAI's strict subset (see the module docstring for the source).
STRICT_KEYWORDS = frozenset(
    {
        "type", "enum", "const", "anyOf", "description", "$defs", "$ref",
        "properties", "required", "additionalProperties", "items",
        "pattern", "format",
        "multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum",
        "minItems", "maxItems",
    }
)  # fmt: skip
STRICT_TYPES = frozenset({"string", "number", "boolean", "integer", "object", "array", "null"})


def strict_problems(schema: dict[str, Any]) -> list[str]:
    """Everything in ``schema`` that OpenAI's strict mode would refuse, as readable paths."""
    problems: list[str] = []
    if schema.get("type") != "object" or "anyOf" in schema:
        problems.append("$: the root must be an object, not anyOf")

    def walk(node: Any, path: str, depth: int) -> None:
        if not isinstance(node, dict):
            problems.append(f"{path}: not a schema object")
            return
        problems.extend(f"{path}.{k}: keyword outside the strict subset" for k in node if k not in STRICT_KEYWORDS)
        types = node.get("type", [])
        for t in types if isinstance(types, list) else [types]:
            if t not in STRICT_TYPES:
                problems.append(f"{path}: type {t!r}")
        if node.get("type") == "object" or "properties" in node:
            if depth > 10:
                problems.append(f"{path}: more than 10 levels of nesting")
            props = node.get("properties", {})
            if node.get("additionalProperties") is not False:
                problems.append(f"{path}: additionalProperties must be false")
            if sorted(node.get("required", [])) != sorted(props):
                problems.append(f"{path}: every property must be required")
            for name, child in props.items():
                walk(child, f"{path}.{name}", depth + 1)
        for key in ("items",):
            if key in node:
                walk(node[key], f"{path}.{key}", depth + 1)
        for i, branch in enumerate(node.get("anyOf", [])):
            walk(branch, f"{path}.anyOf[{i}]", depth)
        for name, child in node.get("$defs", {}).items():
            walk(child, f"{path}.$defs.{name}", depth)

    walk(schema, "$", 1)
    return problems


def test_the_checker_has_teeth():
    """What the schema sent before this check would have failed, and each rule fires on its own."""
    reason = {
        "type": "object",
        "properties": {"reason": {"type": "string", "maxLength": 240}},
        "required": ["reason"],
        "additionalProperties": False,
    }
    before = {"type": "object", "properties": {"S1": reason}, "required": ["S1"], "additionalProperties": False}
    assert strict_problems(before) == ["$.S1.reason.maxLength: keyword outside the strict subset"]
    assert strict_problems(
        {"type": "object", "properties": {"a": {"type": "string"}}, "required": [], "additionalProperties": False}
    ) == ["$: every property must be required"]
    assert strict_problems({"type": "object", "properties": {}, "required": []}) == [
        "$: additionalProperties must be false"
    ]
    assert strict_problems(
        {"anyOf": [{"type": "object", "properties": {}, "required": [], "additionalProperties": False}]}
    ) == ["$: the root must be an object, not anyOf"]


@pytest.mark.parametrize("keys", [["S1"], ["B7"], [f"S{i}" for i in range(1, 13)] + [f"B{i}" for i in range(1, 11)]])
def test_the_strict_verdict_schema_is_in_openais_subset(keys):
    schema = verdict_schema(keys, "json_schema")
    assert strict_problems(schema) == []
    assert strict_schema_limits(schema) == ""
    assert schema["required"] == keys and list(schema["properties"]) == keys


def test_the_llamacpp_dialect_keeps_the_reason_bound():
    """llama.cpp's grammar enforces maxLength, so its dialect still bounds a reason; nothing else differs."""
    strict, llama = verdict_schema(["S1", "B1"], "json_schema"), verdict_schema(["S1", "B1"], "json_object")
    assert llama["properties"]["S1"]["properties"]["reason"] == {"type": "string", "maxLength": REASON_MAX_CHARS}
    assert strict_problems(llama) == [
        "$.S1.reason.maxLength: keyword outside the strict subset",
        "$.B1.reason.maxLength: keyword outside the strict subset",
    ]
    llama["properties"]["S1"]["properties"]["reason"].pop("maxLength")
    assert json.dumps(llama, sort_keys=True) == json.dumps(strict, sort_keys=True)


def test_each_backend_gets_its_own_dialect():
    judge = Judge(backend=None, decoding=None)  # type: ignore[arg-type]
    assert judge.schema_dialect == "json_schema"
    assert Judge(backend=None, decoding=None, format="json_object").schema_dialect == "json_object"  # type: ignore[arg-type]
    assert OpenAICompatBackend.schema_dialect == "json_schema" and LlamaCppBackend.schema_dialect == "json_object"


def test_the_size_limits_are_checked_before_a_call():
    assert strict_schema_limits(verdict_schema([f"S{i}" for i in range(1, 334)])) == ""
    assert strict_schema_limits(verdict_schema([f"S{i}" for i in range(1, 335)])) == "1,002 enum values, at most 1,000"
    assert strict_schema_limits(verdict_schema([f"S{i}" for i in range(1, 1700)])).startswith(
        "5,097 object properties, at most 5,000; "
    )


def test_the_schema_on_the_wire_is_strict_for_the_spec_counts_of_the_real_data(specbench_data):
    """Each real scenario's joint schema, as the OpenAI-compatible backend sends it to a server."""
    import asyncio

    from pytest_specbench.backends.base import BackendSpec
    from pytest_specbench.judge import spec_keys
    from pytest_specbench.suite import find_specbench_scenarios, load_specbench_scenario

    scenarios = [load_specbench_scenario(folder)[0] for folder in find_specbench_scenarios(specbench_data)]

    async def send_all(url: str) -> None:
        backend = OpenAICompatBackend(BackendSpec("openai", "scripted", base_urls=(url,), max_retries=0))
        judge = Judge(backend=backend, decoding=Decoding(max_tokens=8))
        try:
            for scenario in scenarios:
                keys = list(spec_keys(scenario.safety, scenario.behavioral).values())
                schema = judge.schema(keys)
                await backend.generate(
                    GenerationRequest(
                        ({"role": "user", "content": "x"},),
                        judge.decoding,
                        json_schema=schema,
                        schema_dialect=judge.schema_dialect,
                    )
                )
        finally:
            await backend.aclose()

    with ScriptedServer() as server:
        asyncio.run(send_all(server.url))
    assert len(server.requests) == len(scenarios) == 5
    for body, scenario in zip(server.requests, scenarios):
        fmt = body["response_format"]
        assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
        schema = fmt["json_schema"]["schema"]
        assert len(schema["required"]) == len(scenario.specs)
        assert strict_problems(schema) == [] and strict_schema_limits(schema) == "", scenario.key
