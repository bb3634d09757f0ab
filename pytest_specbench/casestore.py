"""The controller's case records: full texts on disk, small summaries in memory.

A case record carries the prompt, the response, the thought and every judge reason: several kilobytes.
A run of 100,000 cases cannot keep them all as Python dicts (a dict costs several times its JSON text),
and what is computed in memory (the summary, intervals, gates, spec rates, the baseline comparison and
the progress line) reads only ids, labels, scores and verdict labels. So each record's JSON text, as it
arrived on the test report, goes to an unnamed temporary file, one line each, and memory keeps a
:class:`SlimRecord` of it. The JSON report and the CSV table stream the full records back from the file
in one pass; the HTML report reads back only the cases it lists.
"""

from __future__ import annotations

import json
import operator
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any

#: What the in-memory readers take from a record: :class:`~pytest_specbench.reporting.run.RunSummary`
#: (rows, intervals, spec rates, facts, α sweep), the gates, the baseline comparison, the progress line
#: and the HTML report's filters and counts. Verdicts keep everything but their reason; steps keep their
#: stage and finish reason.
SLIM_KEYS = (
    "group",
    "scenario",
    "suite",
    "case_id",
    "label",
    "model",
    "method",
    "nodeid",
    "outcome",
    "score",
    "tokens",
    "judge_tokens",
    "error",
    "error_stage",
    "finish_reason",
    "steps",
    "truncated_for_judge",
    "judge_char_limit",
    "selector",
    "selector_is_grader",
    "verdicts",
)
#: Keys that take few values in a run (a group, its scenarios and suites, a handful of outcomes and finish
#: reasons): a slim record keeps them as one tuple shared by every record with the same values.
_SHARED_KEYS = (
    "group",
    "scenario",
    "suite",
    "label",
    "model",
    "method",
    "outcome",
    "error_stage",
    "finish_reason",
    "truncated_for_judge",
    "judge_char_limit",
    "selector",
    "selector_is_grader",
)
#: Keys a slim record holds in slots of its own.
_OWN_KEYS = tuple(key for key in SLIM_KEYS if key not in _SHARED_KEYS)
#: One letter per verdict label in a slim record (see :class:`SlimRecord`).
_LABEL_CODES = {"YES": "Y", "NO": "N", "NA": "A"}


def _verdicts(record: SlimRecord) -> Any:
    stored = object.__getattribute__(record, "verdicts")
    labels = object.__getattribute__(record, "_labels")
    return stored if labels is None else tuple(map(dict.__getitem__, stored, labels))


def _shared_getter(position: int) -> Any:
    def get(record: SlimRecord) -> Any:
        return object.__getattribute__(record, "_shared")[position]

    return get


#: The readers' hot path (the summary reads a few keys of every record).
_GETTERS: dict[str, Any] = {key: operator.attrgetter(key) for key in _OWN_KEYS}
_GETTERS.update({key: _shared_getter(n) for n, key in enumerate(_SHARED_KEYS)})
_GETTERS["verdicts"] = _verdicts
#: Numbers that repeat across records (token counts): one shared object per distinct value.
_POOLED_NUMBERS = ("tokens", "judge_tokens")


class SlimRecord(Mapping[str, Any]):
    """A read-only record with only :data:`SLIM_KEYS`, in slots: a fraction of a dict with the same keys.

    A key the record did not have reads as None, as ``dict.get`` would give. ``score``, the verdicts and the
    steps are shared between records (see :meth:`CaseStore.slim`), so nothing in them may be changed.

    The verdicts are kept as one letter per verdict (``_labels``) over a *frame* shared by every record
    with the same specs in the same order: the frame holds, per position, the shared verdict for each
    label. Reading ``verdicts`` rebuilds the tuple of shared verdicts; a tuple of 20 references per case
    was the largest part of a slim record. Labels outside YES / NO / NA keep the plain tuple. The keys of
    :data:`_SHARED_KEYS` are read from one shared tuple (``_shared``).
    """

    __slots__ = (*_OWN_KEYS, "_labels", "_shared")

    def __init__(self, values: Mapping[str, Any], labels: str | None, shared: tuple[Any, ...]) -> None:
        for key in _OWN_KEYS:
            object.__setattr__(self, key, values.get(key))
        object.__setattr__(self, "_labels", labels)
        object.__setattr__(self, "_shared", shared)

    def __getitem__(self, key: str) -> Any:
        getter = _GETTERS.get(key)
        if getter is None:
            raise KeyError(key)
        return getter(self)

    def get(self, key: str, default: Any = None) -> Any:
        getter = _GETTERS.get(key)
        return default if getter is None else getter(self)

    def __iter__(self) -> Iterator[str]:
        return iter(SLIM_KEYS)

    def __len__(self) -> int:
        return len(SLIM_KEYS)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("a slim record is read-only")

    def __repr__(self) -> str:
        return f"SlimRecord({dict(self)!r})"


class CaseStore:
    """Full case records as JSON lines in a temporary file, removed when closed or when the process ends."""

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile("w+", encoding="utf-8", newline="\n")
        #: One shared object per distinct slim verdict, step, score and repeated string.
        self._pool: dict[Any, Any] = {}

    def add(self, text: str) -> None:
        """Store one record's JSON text.

        ``text`` must be compact JSON (``json.dumps`` without ``indent``): JSON escapes every newline inside
        strings, so the text is one line.
        """
        self._file.write(text)
        self._file.write("\n")

    def texts(self) -> Iterator[str]:
        """Every stored record's JSON text, in arrival order."""
        self._file.flush()
        self._file.seek(0)
        try:
            for line in self._file:
                yield line.rstrip("\n")
        finally:
            self._file.seek(0, 2)

    def records(self, only: AbstractSet[int] | None = None) -> Iterator[dict[str, Any]]:
        """The stored records, parsed, in arrival order: all, or those at the positions in ``only``."""
        for n, text in enumerate(self.texts()):
            if only is None or n in only:
                yield json.loads(text)

    def pick(self, positions: Sequence[int]) -> Iterator[dict[str, Any]]:
        """The records at ``positions``, parsed one at a time, in the order of ``positions``.

        One pass over the file per ascending run of ``positions`` (the HTML report's errored, failed,
        passed order is three), so no more than one parsed record is held here at a time.
        """
        runs: list[list[int]] = []
        for n in positions:
            if runs and n > runs[-1][-1]:
                runs[-1].append(n)
            else:
                runs.append([n])
        for run in runs:
            yield from self.records(only=frozenset(run))

    def close(self) -> None:
        self._file.close()

    def slim(self, record: Mapping[str, Any]) -> SlimRecord:
        """The record without its texts.

        Verdicts, steps, scores, token counts and the few-valued fields (:data:`_SHARED_KEYS`) are shared
        between records: they are read, never changed, and a run holds far fewer distinct ones than cases.
        """
        pool = self._pool
        values = {key: record.get(key) for key in SLIM_KEYS}
        for key in _POOLED_NUMBERS:
            value = values[key]
            if type(value) is int:
                values[key] = pool.setdefault(("int", value), value)
        score = values["score"]
        if isinstance(score, dict):
            violated = tuple(score.get("violated") or ())
            shared = ("score", score.get("risk"), score.get("r"), score.get("s"), score.get("applicable"), violated)
            values["score"] = pool.setdefault(shared, {**score, "violated": list(violated)})
        given = values["verdicts"] or ()
        labels = [_LABEL_CODES.get(v.get("label")) for v in given]
        if None in labels:
            values["verdicts"] = tuple(
                self._verdict(v.get("spec"), v.get("kind"), v.get("label"), v.get("decided_by")) for v in given
            )
            compact = None
        else:
            values["verdicts"] = self._frame(tuple((v.get("spec"), v.get("kind"), v.get("decided_by")) for v in given))
            compact = "".join(labels)  # type: ignore[arg-type]
        steps = []
        for s in values["steps"] or ():
            skey = ("step", s.get("stage"), s.get("finish_reason"))
            step = pool.get(skey)
            if step is None:
                step = pool[skey] = {"stage": skey[1], "finish_reason": skey[2]}
            steps.append(step)
        # a method makes a handful of calls with a few stages and finish reasons: few distinct step lists
        values["steps"] = pool.setdefault(("steps", *map(id, steps)), tuple(steps))
        common = tuple(values[key] for key in _SHARED_KEYS)
        try:
            common = pool.setdefault(("shared", common), common)
        except TypeError:  # a value that cannot be a dict key (not one a record normally holds): kept as it is
            pass
        return SlimRecord(values, compact, common)

    def _verdict(self, spec: Any, kind: Any, label: Any, decided_by: Any) -> dict[str, Any]:
        key = ("verdict", spec, kind, label, decided_by)
        verdict = self._pool.get(key)
        if verdict is None:
            verdict = self._pool[key] = {"spec": spec, "kind": kind, "label": label, "decided_by": decided_by}
        return verdict

    def _frame(self, specs: tuple[tuple[Any, Any, Any], ...]) -> tuple[dict[str, dict[str, Any]], ...]:
        """Per position of ``specs`` (spec, kind, decided_by): the shared verdict for each label letter."""
        key = ("frame", specs)
        frame = self._pool.get(key)
        if frame is None:
            frame = self._pool[key] = tuple(
                {code: self._verdict(spec, kind, label, by) for label, code in _LABEL_CODES.items()}
                for spec, kind, by in specs
            )
        return frame
