"""Files the toolkit reads and writes: cache location, atomic writes, resumable JSONL, prompt sets.

Two rules hold everywhere:

* **A reader never sees half a file.** Whole files go through :mod:`pytest_specbench.atomic` (a temporary
  sibling moved into place with :func:`os.replace`).
* **Work that costs model calls is never done twice.** Long commands append one JSON line per
  finished item to their output log and flush it; a rerun reads the log, skips the ids it holds and
  carries on. A line torn by a crash is dropped on reading (and cut off the file), so the item it
  belonged to is simply done again.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import atomic
from ..errors import SuiteError
from .errors import InputError

#: Environment variable that moves every toolkit cache (model calls, embeddings, the dataset).
CACHE_ENV = "SPECBENCH_CACHE_DIR"
APP_NAME = "pytest-specbench"


def cache_root() -> Path:
    """The platform's per-user cache folder for this package (``SPECBENCH_CACHE_DIR`` overrides it).

    Follows each platform's convention without needing ``platformdirs``: XDG on Linux,
    ``~/Library/Caches`` on macOS, ``%LOCALAPPDATA%`` on Windows.
    """
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / APP_NAME


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that ``path`` is either the old file or the complete new one."""
    atomic.write_bytes(path, data)


def atomic_write_text(path: Path, text: str) -> None:
    atomic.write_text(path, text)


def write_json(path: Path, data: Any) -> None:
    atomic.write_json(path, data)


def fingerprint(settings: Mapping[str, Any]) -> str:
    """A short stable hash of the settings that shape a command's output (stored in every log line)."""
    blob = json.dumps(settings, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:12]


# ------------------------------------------------------------------------------------- resumable log


class ResumeLog:
    """An append-only JSONL file of finished items, keyed by ``id``.

    ``run`` is the fingerprint of the settings that produced the items; resuming a log written under
    other settings (another model, another K) would silently mix two experiments, so it is refused
    unless the caller asked to start over.
    """

    def __init__(self, path: Path, *, run: str, restart: bool = False):
        self.path = path
        self.run = run
        self.done: dict[str, dict[str, Any]] = {}
        if restart:
            path.unlink(missing_ok=True)
        self._load()
        self._fh: Any = None

    def _load(self) -> None:
        if not self.path.exists():
            return
        raw = self.path.read_bytes()
        good = 0
        for line in raw.splitlines(keepends=True):
            if not line.strip():
                good += len(line)
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                break  # a line torn by an interrupted run: everything after it is redone
            if not line.endswith(b"\n"):
                break
            if not isinstance(rec, dict) or "id" not in rec:
                raise InputError(f"{self.path}: line is not a record with an id; delete the file or pass --restart")
            if rec.get("run") != self.run:
                raise InputError(
                    f"{self.path} holds results made with other settings (run {rec.get('run')!r}, now {self.run!r}); "
                    "rerun with the same options to resume it, choose another output, or pass --restart to start over"
                )
            self.done[str(rec["id"])] = rec
            good += len(line)
        if good < len(raw):
            with open(self.path, "r+b") as fh:
                fh.truncate(good)

    def __contains__(self, item_id: str) -> bool:
        return item_id in self.done

    def append(self, record: Mapping[str, Any]) -> None:
        """Add one finished item and flush it to disk at once (it survives a crash right after)."""
        rec = {**record, "run": self.run}
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a", encoding="utf-8")
        self._fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
        self._fh.flush()
        self.done[str(rec["id"])] = rec

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def ordered(self, order: Iterable[str]) -> list[dict[str, Any]]:
        """The finished records in ``order`` (ids not done are skipped), without the ``run`` stamp."""
        return [{k: v for k, v in self.done[i].items() if k != "run"} for i in order if i in self.done]


# ---------------------------------------------------------------------------------------- prompt sets


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError as exc:
        raise InputError(f"{path}: file not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot be read: {exc}") from exc
    out = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{n}: not valid JSON: {exc.msg}") from exc
        if not isinstance(rec, dict):
            raise InputError(f"{path}:{n}: each line must be a JSON object")
        out.append(rec)
    return out


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputError(f"{path}: file not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot be read: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from exc


@dataclass
class PromptSet:
    """Prompts from a YAML suite, a SpecBench ``prompts.json`` (or its folder), or a JSON/JSONL list.

    ``records`` keep every field of the input (provenance included) so that a command which only
    selects or rewrites prompts passes the rest through untouched. ``header`` is the suite's
    scenario and specs when the input was a YAML suite; written back, the result is again a suite.
    """

    path: Path
    kind: str  # "suite" | "json" | "jsonl"
    records: list[dict[str, Any]]
    header: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def text_key(rec: Mapping[str, Any]) -> str:
        """The field holding what the model receives: SpecBench's ``adversarial_prompt`` or our ``prompt``."""
        return "adversarial_prompt" if "adversarial_prompt" in rec else "prompt"

    @staticmethod
    def intent_key(rec: Mapping[str, Any]) -> str:
        """The field holding the original request (SpecBench ``prompt``, ours ``intent``)."""
        return "prompt" if "adversarial_prompt" in rec else "intent"

    def text(self, rec: Mapping[str, Any]) -> str:
        return str(rec[self.text_key(rec)])

    def intent(self, rec: Mapping[str, Any]) -> str:
        return str(rec.get(self.intent_key(rec)) or rec[self.text_key(rec)])

    def ids(self) -> list[str]:
        return [str(r["id"]) for r in self.records]

    @classmethod
    def load(cls, path: Path) -> PromptSet:
        """Read and check a prompt source; every problem names the file and the item."""
        path = Path(path)
        if path.is_dir():
            path = path / "prompts.json"
        if not path.exists():
            raise InputError(f"{path}: file not found")
        if path.suffix in (".yaml", ".yml"):
            return cls._load_suite(path)
        if path.suffix == ".jsonl":
            records, kind = read_jsonl(path), "jsonl"
        elif path.suffix == ".json":
            data = read_json(path)
            if not isinstance(data, list):
                raise InputError(f"{path}: must be a JSON list of prompt objects")
            records, kind = data, "json"
        else:
            raise InputError(
                f"{path}: unsupported input; give a YAML suite (.yaml), a .json list or a .jsonl file of prompts"
            )
        return cls(path, kind, _checked(path, records))

    @classmethod
    def _load_suite(cls, path: Path) -> PromptSet:
        import yaml

        from ..suite import load_yaml_suite

        try:
            load_yaml_suite(path)  # full validation, with file, field and line in the message
        except SuiteError as exc:
            raise InputError(str(exc)) from exc
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        records = [dict(r) for r in data.get("prompts") or []]
        if "prompts_file" in data:
            pf = path.parent / data["prompts_file"]
            more = read_jsonl(pf) if pf.suffix == ".jsonl" else read_json(pf)
            records.extend(dict(r) for r in more)
        header = {k: v for k, v in data.items() if k not in ("prompts", "prompts_file")}
        return cls(path, "suite", _checked(path, records), header=header)

    def write(self, out: Path, records: list[dict[str, Any]]) -> list[Path]:
        """Write ``records`` in the input's format; a suite becomes ``OUT.yaml`` + ``OUT.prompts.jsonl``.

        Returns the files written. A written suite is loaded back once, so a command can never leave
        behind a suite that the plugin would refuse.
        """
        out = Path(out)
        if self.kind == "suite" or out.suffix in (".yaml", ".yml"):
            if self.header is None:
                raise InputError(
                    f"{out}: a YAML suite needs a scenario and specs; the input {self.path} is a plain prompt list, so write .json or .jsonl"
                )
            return write_suite(out, self.header, records)
        if out.suffix == ".jsonl":
            atomic_write_text(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        else:
            write_json(out, records)
        return [out]


def prompts_file_for(out: Path) -> Path:
    """``specbench_x.yaml`` -> ``specbench_x.prompts.jsonl`` (not collected by pytest: not YAML)."""
    return out.with_name(out.stem + ".prompts.jsonl")


def write_suite_header(out: Path, header: Mapping[str, Any], prompts_file: Path) -> None:
    """The YAML part of a suite whose prompts live in ``prompts_file`` (beside it), checked by loading it."""
    import yaml

    from ..suite import load_yaml_suite

    doc = {**header, "prompts_file": prompts_file.name}
    atomic_write_text(out, yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100))
    try:
        load_yaml_suite(out)
    except SuiteError as exc:
        raise InputError(f"the suite written to {out} does not load back: {exc}") from exc


def write_suite(out: Path, header: Mapping[str, Any], records: list[dict[str, Any]]) -> list[Path]:
    """A YAML suite whose prompts (with all their provenance fields) live in a JSONL beside it."""
    pf = prompts_file_for(out)
    clean = [{k: v for k, v in r.items() if k != "run"} for r in records]
    atomic_write_text(pf, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in clean))
    write_suite_header(out, header, pf)
    return [out, pf]


def partial_log_for(out: Path) -> Path:
    """Where a command logs finished items while it runs (removed once the output is complete)."""
    return out.with_name(out.name + ".partial.jsonl")


def _checked(path: Path, records: list[Any]) -> list[dict[str, Any]]:
    """Every record is an object with a non-empty prompt and a unique id (given, or label-position)."""
    seen: set[str] = set()
    out = []
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise InputError(f"{path}: item [{i}] must be an object with label and prompt")
        key = PromptSet.text_key(rec)
        text = rec.get(key)
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"{path}: item [{i}] has no prompt text (field {key})")
        if rec.get("label") not in ("safe", "unsafe"):
            raise InputError(f"{path}: item [{i}] label must be 'safe' or 'unsafe', not {rec.get('label')!r}")
        rec = dict(rec)
        rec.setdefault("id", f"{rec['label']}-{i:04d}")
        rec["id"] = str(rec["id"])
        if rec["id"] in seen:
            raise InputError(f"{path}: prompt id {rec['id']!r} is used twice")
        seen.add(rec["id"])
        out.append(rec)
    return out


def iter_chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
