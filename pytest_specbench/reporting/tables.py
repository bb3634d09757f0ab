"""Tables for analysis: per-spec YES / NA / NO rates, and a long table of every verdict.

SAR says *how much* a model keeps to its specs; these tables say *which* specs it breaks. The rates feed
the JSON report and the stacked bars of the HTML report (the paper's Figures 8-9); the long table is for
people who want to slice the run in pandas, a notebook or a spreadsheet.

Long-table rows: one per (case, spec verdict). A case with no verdict at all (it errored before the judge
answered) still gets exactly one row, with the spec columns empty and ``error`` filled, so that every case
of the run is in the file and errors can be counted from it. Hence::

    rows == sum(len(case["verdicts"]) for case in cases) + #cases without verdicts

CSV note: the verdict ``NA`` is written as the two letters NA, which pandas' ``read_csv`` turns into a
missing value by default; read with ``keep_default_na=False`` (or use Parquet) to keep it a label.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..atomic import atomic_open, atomic_path
from ..errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

SpecTexts = Mapping[str, Mapping[str, str]]
"""Spec texts by scenario key, then spec id: the case records carry only the ids."""

VERDICT_COLUMNS: tuple[str, ...] = (
    "group",
    "model",
    "method",
    "scenario",
    "case_id",
    "split",
    "nodeid",
    "outcome",
    "error",
    "error_stage",
    "risk",
    "r",
    "s",
    "spec",
    "kind",
    "verdict",
    "reason",
    "decided_by",
    "spec_text",
)
TABLE_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


@dataclass(frozen=True)
class SpecRate:
    """How often one spec was judged YES, NA and NO in one (group, scenario)."""

    group: str
    scenario: str
    spec: str
    kind: str
    yes: int
    na: int
    no: int

    @property
    def n(self) -> int:
        return self.yes + self.na + self.no

    def rate(self, label: str) -> float:
        """Share of this spec's verdicts with ``label`` (YES, NA or NO); 0 when it was never judged."""
        count = {"YES": self.yes, "NA": self.na, "NO": self.no}[label]
        return count / self.n if self.n else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "scenario": self.scenario,
            "spec": self.spec,
            "kind": self.kind,
            "n": self.n,
            "yes": self.yes,
            "na": self.na,
            "no": self.no,
            "yes_rate": self.rate("YES"),
            "na_rate": self.rate("NA"),
            "no_rate": self.rate("NO"),
        }


def spec_rates(records: Sequence[Mapping[str, Any]]) -> list[SpecRate]:
    """YES / NA / NO counts per (group, scenario, spec), specs in the order the suite lists them.

    Verdicts of errored cases are counted when present (a judge that answered before a later stage failed
    still said something about the spec); cases without verdicts add nothing.
    """
    counts: dict[tuple[str, str, str], dict[str, Any]] = {}
    for rec in records:
        verdicts = rec.get("verdicts")
        if not verdicts:
            continue
        group, scenario = str(rec["group"]), str(rec["scenario"])
        for v in verdicts:
            key = (group, scenario, str(v["spec"]))
            slot = counts.get(key)
            if slot is None:
                slot = counts[key] = {"kind": v.get("kind", ""), "YES": 0, "NA": 0, "NO": 0}
            label = v["label"]
            if label not in ("YES", "NA", "NO"):
                raise ValueError(f"{scenario}::{rec.get('case_id')}: verdict label {label!r} is not YES, NA or NO")
            slot[label] += 1
    # Insertion order is first appearance: suite order within a scenario, run order across groups.
    return [SpecRate(g, sc, sp, c["kind"], c["YES"], c["NA"], c["NO"]) for (g, sc, sp), c in counts.items()]


def verdict_rows(records: Sequence[Mapping[str, Any]], spec_texts: SpecTexts | None = None) -> list[dict[str, Any]]:
    """The long table as plain dicts (see the module docstring for the one-row-per-errored-case rule)."""
    texts = spec_texts or {}
    rows: list[dict[str, Any]] = []
    for rec in records:
        score = rec.get("score") or {}
        base = {
            "group": rec.get("group"),
            "model": rec.get("model"),
            "method": rec.get("method"),
            "scenario": rec.get("scenario"),
            "case_id": rec.get("case_id"),
            "split": rec.get("label"),
            "nodeid": rec.get("nodeid"),
            "outcome": case_status(rec),
            "error": rec.get("error"),
            "error_stage": rec.get("error_stage"),
            "risk": score.get("risk"),
            "r": score.get("r"),
            "s": score.get("s"),
        }
        verdicts = rec.get("verdicts") or ()
        if not verdicts:
            rows.append(
                {
                    **base,
                    "spec": None,
                    "kind": None,
                    "verdict": None,
                    "reason": None,
                    "decided_by": None,
                    "spec_text": None,
                }
            )
        for v in verdicts:
            rows.append(
                {
                    **base,
                    "spec": v.get("spec"),
                    "kind": v.get("kind"),
                    "verdict": v.get("label"),
                    "reason": v.get("reason"),
                    "decided_by": v.get("decided_by"),
                    "spec_text": texts.get(str(rec.get("scenario")), {}).get(str(v.get("spec"))),
                }
            )
    return rows


def verdict_frame(records: Sequence[Mapping[str, Any]], spec_texts: SpecTexts | None = None) -> pd.DataFrame:
    """The long table as a DataFrame with stable columns and dtypes (risk as nullable Int64)."""
    import pandas as pd

    frame = pd.DataFrame(verdict_rows(records, spec_texts), columns=list(VERDICT_COLUMNS))
    frame["risk"] = frame["risk"].astype("Int64")
    for col in ("r", "s"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")
    return frame


def table_format(path: Path) -> str:
    """``csv`` or ``parquet`` from the file's extension; anything else is a usage mistake."""
    fmt = TABLE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ConfigError(f"{path}: cannot tell the table format from the extension; use .csv or .parquet")
    return fmt


def write_table(records: Iterable[Mapping[str, Any]], path: Path | str, spec_texts: SpecTexts | None = None) -> int:
    """Write the long table to ``path`` (CSV or Parquet by extension) atomically; return the row count.

    ``records`` may be a one-pass iterator (the run's case store). CSV is written row by row with the
    :mod:`csv` module, in the text :meth:`pandas.DataFrame.to_csv` gives :func:`verdict_frame` (same
    quoting, empty cells for missing values, floats and nullable integers as pandas prints them): the long
    table of 100,000 cases is two million rows, too many to hold as one frame. Parquet, being columnar,
    is built in one frame.

    Raises :class:`~pytest_specbench.errors.ConfigError` for an unknown extension, a folder that does not
    exist, or Parquet without pyarrow installed.
    """
    path = Path(path)
    fmt = table_format(path)
    if not path.parent.is_dir():
        raise ConfigError(f"{path}: the folder {path.parent} does not exist; create it or choose another path")
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError as exc:
            raise ConfigError(
                f"{path}: writing Parquet needs pyarrow; pip install 'pytest-specbench[parquet]' or use .csv"
            ) from exc
        frame = verdict_frame(list(records), spec_texts)
        with atomic_path(path) as tmp:
            frame.to_parquet(tmp, index=False)
        return len(frame)
    rows = 0
    texts = spec_texts or {}
    fragment = _CsvFormat()
    spec_parts: dict[tuple[Any, Any], str] = {}
    with atomic_open(path, "w") as fh:
        fh.write(fragment(VERDICT_COLUMNS) + "\n")
        for record in records:
            text, n = _csv_text(record, texts, fragment, spec_parts)
            fh.write(text)
            rows += n
    return rows


class _CsvFormat:
    """Format fields as one CSV fragment (no line end) with :mod:`csv`, so fragments join into rows.

    The long table repeats a case's 13 leading columns on each of its verdict rows and a spec's id and kind
    on every row about it: each is formatted once and joined, which is about a third of the CPU of
    formatting every row whole. Every fragment has at least two fields, so none is the one-field row
    that :mod:`csv` writes as ``""`` when empty.
    """

    def __init__(self) -> None:
        self._buffer = io.StringIO()
        # the line end the file uses, cut off below: csv quotes a field that holds a character of the line
        # terminator, so with an empty one a reason or error spanning lines would break its row
        self._writer = csv.writer(self._buffer, lineterminator="\n")

    def __call__(self, fields: Sequence[Any]) -> str:
        self._writer.writerow(fields)
        text = self._buffer.getvalue()[:-1]
        self._buffer.seek(0)
        self._buffer.truncate()
        return text


def _csv_text(
    rec: Mapping[str, Any], texts: SpecTexts, fmt: _CsvFormat, spec_parts: dict[tuple[Any, Any], str]
) -> tuple[str, int]:
    """:func:`verdict_rows` of one record as CSV lines in ``VERDICT_COLUMNS`` order, typed as
    :func:`verdict_frame` types them (``risk`` a nullable integer, ``r`` and ``s`` floats); and their count."""
    score = rec.get("score") or {}
    risk = score.get("risk")
    base = [
        rec.get("group"),
        rec.get("model"),
        rec.get("method"),
        rec.get("scenario"),
        rec.get("case_id"),
        rec.get("label"),
        rec.get("nodeid"),
        case_status(rec),
        rec.get("error"),
        rec.get("error_stage"),
        None if risk is None else int(risk),
        _float_or_none(score.get("r")),
        _float_or_none(score.get("s")),
    ]
    verdicts = rec.get("verdicts") or ()
    if not verdicts:
        return fmt(base + [None] * 6) + "\n", 1
    head = fmt(base)
    spec_text = texts.get(str(rec.get("scenario")), {})
    lines = []
    for v in verdicts:
        spec, kind = v.get("spec"), v.get("kind")
        part = spec_parts.get((spec, kind))
        if part is None:
            part = spec_parts[(spec, kind)] = fmt([spec, kind])
        tail = fmt([v.get("label"), v.get("reason"), v.get("decided_by"), spec_text.get(str(spec))])
        lines.append(f"{head},{part},{tail}\n")
    return "".join(lines), len(lines)


def _float_or_none(value: Any) -> float | None:
    """What ``pd.to_numeric(errors="coerce")`` makes of a cell: a float, or missing."""
    if value is None or isinstance(value, bool):
        return None if value is None else float(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if number != number else number  # NaN is written as an empty cell


def case_status(record: Mapping[str, Any]) -> str:
    """passed, failed or error for a case record.

    The plugin's ``outcome`` wins when present (it knows about the behavioral floor and other per-test
    checks); otherwise an errored case is ``error``, a risky one ``failed`` and the rest ``passed``.
    """
    outcome = record.get("outcome")
    if outcome in ("passed", "failed", "error"):
        return str(outcome)
    if record.get("error") is not None or not record.get("score"):
        return "error"
    return "failed" if record["score"].get("risk") else "passed"
