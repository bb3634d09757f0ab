"""Spec suites: the SpecBench directory layout and the YAML format teams write.

Both load into the same frozen records (:class:`Scenario`, :class:`Case`) so that everything downstream
(methods, judge, scoring, reports) is indifferent to where a case came from. Loading is strict: a
suite that cannot be understood raises :class:`~pytest_specbench.errors.SuiteError` naming the file,
the field and, for YAML, the line, because a silently skipped prompt would bias SAR without anyone
noticing.
"""

from __future__ import annotations

import errno
import json
import os
import random
import re
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from .errors import SuiteError

Label = Literal["safe", "unsafe"]
SpecKind = Literal["safety", "behavioral"]
LABELS: tuple[Label, ...] = ("unsafe", "safe")
SPECBENCH_FILES = ("scenario.json", "specifications.json", "prompts.json")
#: Suite files pytest collects: ``specbench_<anything>.yaml`` or ``.yml``.
SUITE_FILE_RE = re.compile(r"^specbench_.+\.ya?ml$")
#: Bounds that stop a broken or hostile file from hanging or crashing collection: YAML aliases can expand
#: a few lines into billions of values ("billion laughs"), and later steps (schema validation, error
#: messages) recurse through the data. A suite is five levels deep at most, and 200,000 values are some
#: 30,000 inline prompts, which the pure-Python YAML parser needs minutes for (prompts_file is the way).
MAX_YAML_DEPTH = 64
MAX_YAML_VALUES = 200_000
#: Longest integer literal accepted: hex and binary literals of any size load, but Python refuses to
#: print an int of more than 4300 digits, which would crash the error message that quotes it.
MAX_INT_CHARS = 100
#: Scalar tags whose PyYAML constructors crash (KeyError, IndexError, AttributeError) on a value that does
#: not fit, as in ``!!bool maybe`` or ``!!timestamp soon``; such scalars are tried one by one first.
_FRAGILE_TAGS = frozenset(f"tag:yaml.org,2002:{kind}" for kind in ("bool", "int", "float", "timestamp"))
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class Spec:
    """One specification. ``id`` is stable across runs: given in the suite, or S<n> / B<n> by position."""

    id: str
    text: str
    kind: SpecKind
    #: A deterministic check (see :mod:`pytest_specbench.checks`) that decides this spec instead of the judge.
    check: Mapping[str, Any] | None = field(default=None, compare=False, hash=False)


@dataclass(frozen=True)
class Scenario:
    """A scenario and its specs. ``key`` is the short name used in ids, markers and gates."""

    key: str
    name: str
    description: str
    safety: tuple[Spec, ...]
    behavioral: tuple[Spec, ...]
    origin: str

    @property
    def specs(self) -> tuple[Spec, ...]:
        return self.safety + self.behavioral


@dataclass(frozen=True, slots=True)
class Case:
    """One prompt to answer under its scenario's specs.

    ``prompt`` is what the model receives (SpecBench's ``adversarial_prompt``); ``intent`` is the
    original request (SpecBench's ``prompt``), which the judge sees so that an attack wrapper cannot
    disguise what was really asked.
    """

    scenario: Scenario
    case_id: str
    label: Label
    prompt: str
    intent: str
    answer: str | None = None
    source: str | None = None
    index: int = 0
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def test_id(self) -> str:
        return f"{self.scenario.key}::{self.case_id}"

    def model_prompt(self, which: str) -> str:
        """The text the model receives: the attack-enhanced prompt, or the original intent."""
        return self.intent if which == "original" else self.prompt


# --------------------------------------------------------------------------------------------- SpecBench


def read_text(path: Path) -> str:
    """The UTF-8 text of a regular file, read without ever blocking.

    A path check before opening is not enough: files under ``/proc`` and ``/sys`` pass as regular files
    and some never end (``/proc/kmsg`` waits for the next kernel message), and a path can be swapped for
    a FIFO between check and open. The file is opened non-blocking and checked on the open descriptor,
    so such a file fails with "cannot be read" (the OSError or ValueError raised here) instead of
    hanging collection.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise OSError(errno.EISDIR if stat.S_ISDIR(mode) else errno.EINVAL, "not a regular file")
        chunks = []
        while chunk := os.read(fd, 1 << 20):  # BlockingIOError where a read would wait
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode("utf-8")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(read_text(path))
    except FileNotFoundError as exc:
        raise SuiteError(str(path), "file is missing") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise SuiteError(str(path), f"cannot be read: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise SuiteError(str(path), f"is not valid JSON: {_json_problem(exc)}", line=exc.lineno) from exc
    except RecursionError as exc:
        raise SuiteError(str(path), "is nested too deeply to read as JSON") from exc
    except ValueError as exc:  # valid JSON that Python refuses, such as an integer of over 4300 digits
        raise SuiteError(str(path), f"cannot be read as JSON: {exc}") from exc


def _json_problem(exc: json.JSONDecodeError) -> str:
    """The decoder's complaint with its column; some messages ("Invalid control character at") end where the position went."""
    message = exc.msg if exc.msg.endswith(" at") else f"{exc.msg} at"
    hint = (
        " (a control character such as NUL must be written escaped inside a JSON string, e.g. \\u0000)"
        if "control character" in exc.msg
        else ""
    )
    return f"{message} column {exc.colno}{hint}"


def _string_list(path: Path, data: Any, key: str) -> list[str]:
    value = data.get(key) if isinstance(data, dict) else None
    if not isinstance(value, list) or not value:
        raise SuiteError(str(path), "must be a non-empty list of strings", field=key)
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            raise SuiteError(str(path), "must be a non-empty string", field=f"{key}[{i}]")
    return value


def _specs(texts: Iterable[str], kind: SpecKind) -> tuple[Spec, ...]:
    prefix = "S" if kind == "safety" else "B"
    return tuple(Spec(f"{prefix}{i}", t.strip(), kind) for i, t in enumerate(texts, 1))


def load_specbench_scenario(folder: Path) -> tuple[Scenario, list[Case]]:
    """Read one SpecBench scenario folder exactly as the authors publish it."""
    missing = [name for name in SPECBENCH_FILES if not (folder / name).is_file()]
    if missing:
        raise SuiteError(
            str(folder), f"scenario folder lacks {', '.join(missing)} (needs {', '.join(SPECBENCH_FILES)})"
        )
    meta_path, specs_path, prompts_path = (folder / n for n in SPECBENCH_FILES)
    meta = _read_json(meta_path)
    if not isinstance(meta, dict):
        raise SuiteError(str(meta_path), "must be a JSON object with name and description")
    specs = _read_json(specs_path)
    scenario = Scenario(
        key=folder.name,
        name=str(meta.get("name") or folder.name),
        description=str(meta.get("description") or ""),
        safety=_specs(_string_list(specs_path, specs, "safety_specifications"), "safety"),
        behavioral=_specs(_string_list(specs_path, specs, "behavioral_specifications"), "behavioral"),
        origin=str(folder),
    )
    items = _read_json(prompts_path)
    if not isinstance(items, list):
        raise SuiteError(str(prompts_path), "must be a JSON list of prompt objects")
    cases = [_case_from_record(scenario, str(prompts_path), i, rec) for i, rec in enumerate(items)]
    _refuse_duplicate_ids(str(prompts_path), cases)
    return scenario, cases


def _refuse_duplicate_ids(where: str, cases: Sequence[Case]) -> None:
    """Refuse two prompts with one id: the id keys the test, its outcome and the cache, so the second would vanish."""
    first: dict[str, int] = {}
    for case in cases:
        if case.case_id in first:
            raise SuiteError(
                where,
                f"prompt id {case.case_id!r} is used twice (prompts [{first[case.case_id]}] and [{case.index}]); every prompt needs its own id",
                field=f"[{case.index}].id",
            )
        first[case.case_id] = case.index


def _case_from_record(scenario: Scenario, path: str, index: int, rec: Any, *, line: int | None = None) -> Case:
    """Build a case from a SpecBench record or from our own prompt fields (both accepted in files)."""
    where = f"[{index}]"
    if not isinstance(rec, dict):
        raise SuiteError(path, "must be an object", field=where, line=line)
    label = rec.get("label")
    if label not in LABELS:
        raise SuiteError(path, f"label must be 'safe' or 'unsafe', not {label!r}", field=f"{where}.label", line=line)
    if "adversarial_prompt" in rec:  # SpecBench's naming: prompt is the original intent
        given, intent_key = rec.get("adversarial_prompt"), "prompt"
        given_key = "adversarial_prompt"
    else:
        given, intent_key, given_key = rec.get("prompt"), "intent", "prompt"
    if not isinstance(given, str) or not given.strip():
        raise SuiteError(path, "the prompt text is missing or empty", field=f"{where}.{given_key}", line=line)
    intent = rec.get(intent_key)
    if intent is not None and (not isinstance(intent, str) or not intent.strip()):
        raise SuiteError(path, "must be a non-empty string when given", field=f"{where}.{intent_key}", line=line)
    answer = rec.get("answer")
    if answer is not None and not isinstance(answer, str):
        raise SuiteError(path, "must be a string", field=f"{where}.answer", line=line)
    for key, text in ((given_key, given), (intent_key, intent), ("answer", answer)):
        if isinstance(text, str) and (bad := _SURROGATE.search(text)):
            raise SuiteError(path, _surrogate_message(bad.group()), field=f"{where}.{key}", line=line)
    case_id = rec.get("id") or f"{label}-{index:04d}"
    return Case(
        scenario=scenario,
        case_id=str(case_id),
        label=LABELS[LABELS.index(label)],  # the shared constant, not one copy per prompt read from JSON
        prompt=given,
        intent=intent or given,
        answer=answer or None,
        source=rec.get("source"),
        index=index,
    )


def find_specbench_scenarios(root: Path) -> list[Path]:
    """Scenario folders under a SpecBench root: sub-folders holding any of the three files."""
    if not root.is_dir():
        raise SuiteError(
            str(root),
            "SpecBench data directory does not exist (give --specbench-data, ini specbench_data or SPECBENCH_DATA)",
        )
    folders = sorted(p for p in root.iterdir() if p.is_dir() and any((p / n).exists() for n in SPECBENCH_FILES))
    if not folders:
        raise SuiteError(str(root), f"no scenario folders found (each needs {', '.join(SPECBENCH_FILES)})")
    return folders


# ------------------------------------------------------------------------------------------------- YAML


@lru_cache(maxsize=1)
def suite_schema() -> dict[str, Any]:
    """The suite JSON Schema, shipped as ``pytest_specbench/specs/suite.schema.json`` (``specs/`` documents it)."""
    from importlib.resources import files

    return json.loads(files("pytest_specbench.specs").joinpath("suite.schema.json").read_text(encoding="utf-8"))


def _yaml_line(node: Any, path: Sequence[str | int]) -> int | None:
    """Line (1-based) of the YAML node at a JSON path, or of its deepest existing parent."""
    import yaml

    line = node.start_mark.line + 1 if node is not None else None
    for step in path:
        child = None
        if isinstance(node, yaml.MappingNode) and isinstance(step, str):
            child = next((v for k, v in node.value if getattr(k, "value", None) == step), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int) and step < len(node.value):
            child = node.value[step]
        if child is None:
            break
        node, line = child, child.start_mark.line + 1
    return line


def _surrogate_message(char: str) -> str:
    return (
        f"contains an unpaired surrogate (\\u{ord(char):04x}), which no UTF-8 file, cache or report can hold; "
        "write the character itself, or escape it as one 8-digit \\U code point instead of a \\u pair"
    )


def _compose(where: str, text: str) -> tuple[Any, Any]:
    """Parse with the safe loader into (node graph, data), refusing graphs that would hang or crash later.

    The node graph is checked before any Python object is built from it (see :func:`_check_nodes`); it
    also gives :func:`_yaml_line` its lines. Only the safe loader is used: tags such as
    ``!!python/object/apply`` are rejected, never executed.
    """
    import yaml

    try:
        loader = yaml.SafeLoader(text)  # its reader already refuses control characters such as NUL
        try:
            node = loader.get_single_node()
            if node is None:
                return None, None
            _check_nodes(where, node, loader)
            return node, loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        raise SuiteError(where, f"YAML syntax error: {problem}", line=mark.line + 1 if mark else None) from exc
    except RecursionError as exc:  # the composer recurses once per level, so deep text nesting ends here
        raise SuiteError(
            where, f"YAML is nested too deeply to load; a suite needs at most {MAX_YAML_DEPTH} levels"
        ) from exc
    except (yaml.YAMLError, ValueError) as exc:  # ValueError: values the constructors refuse (dates, huge ints)
        raise SuiteError(where, f"YAML cannot be loaded: {exc}") from exc


def _check_nodes(where: str, root: Any, loader: Any) -> None:
    """Walk the node graph as the data will be (aliases expanded) and refuse what no suite needs.

    Aliases share nodes, so the walk is bounded by :data:`MAX_YAML_VALUES` visits rather than by the file
    size, and an alias that contains itself stops at :data:`MAX_YAML_DEPTH`. Keys given twice in one
    mapping are refused too: YAML keeps only the last one, so a second ``prompts:`` would silently drop
    the first block of prompts.
    """
    import yaml

    stack: list[tuple[Any, int]] = [(root, 1)]
    visited = 0
    while stack:
        node, depth = stack.pop()
        visited += 1
        line = node.start_mark.line + 1
        if visited > MAX_YAML_VALUES:
            raise SuiteError(
                where,
                f"holds more than {MAX_YAML_VALUES:,} values (counting what YAML aliases expand to); alias less, or move the prompts to a prompts_file",
                line=line,
            )
        if depth > MAX_YAML_DEPTH:
            raise SuiteError(
                where,
                f"nested deeper than {MAX_YAML_DEPTH} levels (counting what YAML aliases expand to); a suite needs only a few",
                line=line,
            )
        if isinstance(node, yaml.ScalarNode):
            if node.tag == "tag:yaml.org,2002:int" and len(node.value) > MAX_INT_CHARS:
                raise SuiteError(
                    where,
                    f"a number written with {len(node.value)} characters is too large; suites use small whole numbers",
                    line=line,
                )
            if node.tag in _FRAGILE_TAGS:
                try:
                    loader.yaml_constructors[node.tag](loader, node)
                except (KeyError, IndexError, AttributeError, ValueError) as exc:
                    reason = f": {exc}" if type(exc) is ValueError else ""
                    raise SuiteError(
                        where,
                        f"{_shorten(repr(node.value), 60)} is not a valid !!{node.tag.rsplit(':', 1)[-1]} value{reason}",
                        line=line,
                    ) from exc
            if bad := _SURROGATE.search(node.value):
                raise SuiteError(where, _surrogate_message(bad.group()), line=line)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((child, depth + 1) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            first_line: dict[tuple[str, str], int] = {}
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                    here, ident = key.start_mark.line + 1, (key.tag, key.value)
                    if ident in first_line:
                        name = _shorten(repr(key.value), 60)
                        raise SuiteError(
                            where,
                            f"key {name} is given twice (lines {first_line[ident]} and {here}); YAML keeps only the last, so merge them into one",
                            line=here,
                        )
                    first_line[ident] = here
                stack.append((key, depth + 1))
                stack.append((value, depth + 1))


def _shorten(message: str, limit: int = 300) -> str:
    """Keep both ends of a long message: jsonschema quotes the whole offending value, which may be megabytes."""
    if len(message) <= limit:
        return message
    return f"{message[: limit // 2]} … {message[-limit // 2 :]}"


def _field_name(path: Sequence[str | int]) -> str:
    out = ""
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else str(step))
    return out or "(top level)"


def _explain(error: Any) -> str:
    """A one-line reason from a jsonschema error, phrased for the suite author."""
    if error.validator == "required":
        return error.message.replace("is a required property", "is required")
    if error.validator == "additionalProperties":
        return f"unknown key: {error.message.split('(')[-1].rstrip(')')}"
    if error.validator == "anyOf" and not error.path:
        return "give the prompts inline (prompts:) or in a file (prompts_file:)"
    if error.validator == "oneOf":
        return "must be a non-empty string or an object with text (and optional id)"
    if error.validator == "pattern" and error.validator_value == "\\S":
        return "must not be empty"
    return error.message


def load_yaml_suite(path: Path) -> tuple[Scenario, list[Case]]:
    """Load, validate and resolve one YAML suite file."""
    import jsonschema

    where = str(path)
    try:
        text = read_text(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise SuiteError(where, f"cannot be read: {exc}") from exc
    node, data = _compose(where, text)
    if not isinstance(data, dict):
        raise SuiteError(where, "a suite must be a YAML mapping with scenario, safety, behavioral and prompts")
    validator = jsonschema.Draft202012Validator(suite_schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: (len(e.path), list(map(str, e.path))))
    if errors:
        err = errors[0]
        route = list(err.path)
        raise SuiteError(where, _shorten(_explain(err)), field=_field_name(route), line=_yaml_line(node, route))

    def specs(key: str, kind: SpecKind) -> tuple[Spec, ...]:
        prefix = "S" if kind == "safety" else "B"
        out = []
        for i, item in enumerate(data[key], 1):
            spec_id, text = (item.get("id"), item["text"]) if isinstance(item, dict) else (None, item)
            check = item.get("check") if isinstance(item, dict) else None
            if check is not None and ("regex" in check or "not_regex" in check):
                pattern = check.get("regex", check.get("not_regex"))
                try:
                    re.compile(pattern)
                except (re.error, OverflowError, RecursionError) as exc:  # a{99999999999}, ((((…)))) thousands deep
                    reason = "its groups are nested too deeply" if isinstance(exc, RecursionError) else str(exc)
                    raise SuiteError(
                        where,
                        f"invalid regular expression: {reason}",
                        field=f"{key}[{i - 1}].check",
                        line=_yaml_line(node, [key, i - 1, "check"]),
                    ) from exc
            out.append(Spec(spec_id or f"{prefix}{i}", text.strip(), kind, check))
        return tuple(out)

    scenario = Scenario(
        key=data["scenario"],
        name=data.get("name") or data["scenario"],
        description=data.get("description", ""),
        safety=specs("safety", "safety"),
        behavioral=specs("behavioral", "behavioral"),
        origin=where,
    )
    ids = [s.id for s in scenario.specs]
    dup = next((i for i in ids if ids.count(i) > 1), None)
    if dup:
        raise SuiteError(where, f"spec id {dup!r} is used twice", field="safety/behavioral", line=_yaml_line(node, []))

    cases: list[Case] = []
    for i, rec in enumerate(data.get("prompts") or []):
        cases.append(_case_from_record(scenario, where, i, rec, line=_yaml_line(node, ["prompts", i])))
    if "prompts_file" in data:
        cases.extend(
            _load_prompt_file(scenario, _prompts_path(where, path, data["prompts_file"], node), start=len(cases))
        )
    if not cases:
        raise SuiteError(where, "the suite has no prompts", field="prompts")
    seen: set[str] = set()
    for case in cases:
        if case.case_id in seen:
            raise SuiteError(where, f"prompt id {case.case_id!r} is used twice", field="prompts")
        seen.add(case.case_id)
    return scenario, cases


def _prompts_path(where: str, suite: Path, name: str, node: Any) -> Path:
    """The suite's ``prompts_file``, refused (naming the suite) unless it is an existing regular file.

    Only a regular file is read: a folder fails, but a FIFO or ``/dev/zero`` would block or never end.
    ``os.path`` answers False where :mod:`pathlib` raises: names with NUL, or beyond the OS length limit.
    """
    target = suite.parent / name
    if not os.path.isfile(target):
        shown = _shorten(repr(name), 80)
        why = "is not a regular file" if os.path.exists(target) else "does not exist"
        raise SuiteError(
            where,
            f"{shown} {why}; give a .json or .jsonl file, relative to the suite",
            field="prompts_file",
            line=_yaml_line(node, ["prompts_file"]),
        )
    return target


def _load_prompt_file(scenario: Scenario, path: Path, *, start: int) -> list[Case]:
    where = str(path)
    records: list[tuple[Any, int | None]] = []  # (prompt object, its line in a .jsonl file)
    if path.suffix == ".jsonl":
        try:
            lines = read_text(path).splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise SuiteError(where, f"cannot be read: {exc}") from exc
        for n, line in enumerate(lines, 1):
            if line.strip():
                try:
                    records.append((json.loads(line), n))
                except json.JSONDecodeError as exc:
                    raise SuiteError(where, f"is not valid JSON: {_json_problem(exc)}", line=n) from exc
                except RecursionError as exc:
                    raise SuiteError(where, "is nested too deeply to read as JSON", line=n) from exc
                except ValueError as exc:
                    raise SuiteError(where, f"cannot be read as JSON: {exc}", line=n) from exc
    else:
        data = _read_json(path)
        if not isinstance(data, list):
            raise SuiteError(where, "must be a JSON list of prompt objects")
        records = [(rec, None) for rec in data]
    return [_case_from_record(scenario, where, start + i, rec, line=n) for i, (rec, n) in enumerate(records)]


# ------------------------------------------------------------------------------------------ one run


def claim_scenario_key(claimed: dict[str, str], scenario: Scenario) -> None:
    """Record that ``scenario.key`` belongs to this suite, refusing it when another suite already has it.

    The key is the scenario's identity in a run: its summary row, its gates (``Child:0.7``), its ``-m``
    marker and the spec texts reports show beside verdicts. Two suites under one key (a YAML suite named
    like a SpecBench folder, or two YAML files with one ``scenario:``) would be merged into one row and
    one gate, with one suite's spec texts shown for the other's verdicts; they are refused instead, so
    the user renames one. ``claimed`` maps keys to the suite (origin) that claimed them first.
    """
    origin = os.path.realpath(scenario.origin)
    owner = claimed.setdefault(scenario.key, origin)
    if owner != origin:
        raise SuiteError(
            scenario.origin,
            f"scenario {scenario.key!r} is already defined by {owner}; two suites cannot share a scenario name, because "
            "the name keys the summary row, the gates, the -m marker and the spec texts in reports. Rename one of them",
            field="scenario",
        )


#: Words a ``-m`` expression reads as operators, never as a marker name.
_MARK_KEYWORDS = frozenset({"and", "or", "not"})


def scenario_marker(key: str) -> str:
    """The ``-m`` marker of a scenario: its key with every character but letters, digits and ``_`` made ``_``.

    pytest refuses marker names that start with ``_`` and ``-m`` cannot name ``and``/``or``/``not``, so
    such names (``_draft``, ``🚀Kids``, ``...``, ``not``) get a ``scenario_`` prefix: ``scenario_draft``,
    ``scenario_Kids``, ``scenario___``, ``scenario_not``.
    """
    marker = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in key)
    if not marker or marker.startswith("_"):
        return "scenario" + (marker if marker.startswith("_") else "_")
    return f"scenario_{marker}" if marker in _MARK_KEYWORDS else marker


def scenario_node_name(key: str) -> str:
    """The scenario's collector name in node ids: ``::`` separates nodes and ``[…]`` marks parameters there,
    so ``:``, ``[`` and ``]`` become ``_`` (``a::b[1]`` → ``a__b_1_``); the summary keeps the key as written."""
    return re.sub(r"[:\[\]]", "_", key)


# ----------------------------------------------------------------------------------------------- select


def select_cases(
    cases: Sequence[Case],
    *,
    scenarios: Sequence[str] | None = None,
    split: str = "all",
    limit: int | None = None,
    seed: int = 0,
) -> list[Case]:
    """Filter by scenario and split, then keep at most ``limit`` cases stratified by (scenario, label).

    The sample is proportional per stratum (largest remainders, at least one case per stratum while the
    limit allows) and depends only on the seed and the case ids, never on hash randomisation, so every
    xdist worker selects the same cases.
    """
    chosen = [
        c for c in cases if (not scenarios or c.scenario.key in scenarios) and (split == "all" or c.label == split)
    ]
    if limit is None or limit >= len(chosen):
        return chosen
    strata: dict[tuple[str, str], list[Case]] = {}
    for c in chosen:
        strata.setdefault((c.scenario.key, c.label), []).append(c)
    keys = sorted(strata)
    total = len(chosen)
    quotas = {k: limit * len(strata[k]) / total for k in keys}
    counts = {k: int(quotas[k]) for k in keys}
    if limit >= len(keys):
        for k in keys:
            counts[k] = max(counts[k], 1)
    while sum(counts.values()) > limit:
        k = max((k for k in keys if counts[k] > 1), key=lambda k: counts[k] - quotas[k])
        counts[k] -= 1
    for k in sorted(keys, key=lambda k: (-(quotas[k] - int(quotas[k])), k)):
        if sum(counts.values()) >= limit:
            break
        if counts[k] < len(strata[k]):
            counts[k] += 1
    rng = random.Random(seed)
    keep: set[tuple[str, str]] = set()
    for k in keys:
        ids = sorted(c.case_id for c in strata[k])
        keep.update((k[0], i) for i in rng.sample(ids, min(counts[k], len(ids))))
    return [c for c in chosen if (c.scenario.key, c.case_id) in keep]
