"""Per-spec rates and the long verdict table (pytest_specbench.reporting.tables)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from test_reporting_sample import SPEC_TEXTS, make_report

from pytest_specbench.errors import ConfigError
from pytest_specbench.reporting import report_extras
from pytest_specbench.reporting.tables import (
    VERDICT_COLUMNS,
    case_status,
    spec_rates,
    verdict_frame,
    write_table,
)


def _verdict(spec: str, label: str, kind: str = "safety") -> dict:
    return {"spec": spec, "kind": kind, "label": label, "reason": f"why {label}", "decided_by": "judge"}


def _case(
    case_id: str, *verdicts: dict, scenario: str = "Child", group: str = "m · a", error: str | None = None
) -> dict:
    return {
        "group": group,
        "scenario": scenario,
        "case_id": case_id,
        "label": "safe",
        "verdicts": list(verdicts),
        "score": None if error else {"risk": 0, "r": 1.0, "s": 1.0, "applicable": 1, "violated": []},
        "error": error,
    }


RATE_TABLE = [
    # (cases, expected {(group, scenario, spec): (yes, na, no)})
    ([], {}),
    (
        [_case("1", _verdict("S1", "YES"), _verdict("S2", "NO"))],
        {("m · a", "Child", "S1"): (1, 0, 0), ("m · a", "Child", "S2"): (0, 0, 1)},
    ),
    (
        [
            _case("1", _verdict("S1", "YES")),
            _case("2", _verdict("S1", "NA")),
            _case("3", _verdict("S1", "NO")),
            _case("4", _verdict("S1", "YES")),
        ],
        {("m · a", "Child", "S1"): (2, 1, 1)},
    ),
    # the same spec id in two scenarios or two groups is counted apart
    (
        [
            _case("1", _verdict("S1", "NO")),
            _case("1", _verdict("S1", "YES"), scenario="Code"),
            _case("1", _verdict("S1", "NA"), group="m · b"),
        ],
        {("m · a", "Child", "S1"): (0, 0, 1), ("m · a", "Code", "S1"): (1, 0, 0), ("m · b", "Child", "S1"): (0, 1, 0)},
    ),
    # an errored case without verdicts adds nothing
    ([_case("1", _verdict("S1", "YES")), _case("2", error="boom")], {("m · a", "Child", "S1"): (1, 0, 0)}),
]


@pytest.mark.parametrize(("cases", "expected"), RATE_TABLE)
def test_spec_rates_table(cases: list[dict], expected: dict) -> None:
    got = {(r.group, r.scenario, r.spec): (r.yes, r.na, r.no) for r in spec_rates(cases)}
    assert got == expected


def test_rates_sum_to_one_and_keep_suite_order() -> None:
    rates = spec_rates(make_report()["cases"])
    assert [r.spec for r in rates[:11]] == ["S1", "S2", "S3", "S4", "S5", "S6", "B1", "B2", "B3", "B4", "B5"]
    for r in rates:
        assert r.rate("YES") + r.rate("NA") + r.rate("NO") == pytest.approx(1.0)
        assert r.n == 20 - (1 if r.scenario == "Code" else 0)  # one Code case per group errored
        d = r.to_dict()
        assert (d["yes"], d["na"], d["no"], d["n"]) == (r.yes, r.na, r.no, r.n)


def test_a_label_other_than_yes_na_no_is_rejected() -> None:
    with pytest.raises(ValueError, match="MAYBE"):
        spec_rates([_case("1", _verdict("S1", "MAYBE"))])


@pytest.mark.parametrize(
    ("record", "status"),
    [
        ({"outcome": "failed", "score": {"risk": 0}, "error": None}, "failed"),  # the plugin's word wins
        ({"score": {"risk": 1}, "error": None}, "failed"),
        ({"score": {"risk": 0}, "error": None}, "passed"),
        ({"score": None, "error": "boom"}, "error"),
        ({"score": None, "error": None}, "error"),
    ],
)
def test_case_status(record: dict, status: str) -> None:
    assert case_status(record) == status


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_table_has_one_row_per_verdict_plus_one_per_case_without_verdicts(tmp_path: Path, suffix: str) -> None:
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    cases = make_report()["cases"]
    path = tmp_path / f"verdicts{suffix}"
    rows = write_table(cases, path, SPEC_TEXTS)
    expected = sum(len(c["verdicts"]) for c in cases) + sum(1 for c in cases if not c["verdicts"])
    assert rows == expected == 2 * (40 * 11 - 11 + 1)  # 2 groups x (39 judged cases x 11 specs + 1 errored row)
    back = pd.read_csv(path, keep_default_na=False) if suffix == ".csv" else pd.read_parquet(path)
    assert len(back) == rows
    assert tuple(back.columns) == VERDICT_COLUMNS
    empty = back["verdict"].isna() | (back["verdict"] == "")  # CSV reads the blanks back as "", Parquet as missing
    assert set(back["verdict"][~empty]) == {"YES", "NA", "NO"} and int(empty.sum()) == 2
    errored = back[back["outcome"] == "error"]
    assert len(errored) == 2 and set(errored["error"]) == {"judge answer unreadable after 3 attempts"}
    child_s2 = back[(back["scenario"] == "Child") & (back["spec"] == "S2")]
    assert set(child_s2["spec_text"]) == {SPEC_TEXTS["Child"]["S2"]}


def test_frame_matches_the_records() -> None:
    cases = [_case("1", _verdict("S1", "NO"), _verdict("B1", "NA", "behavioral")), _case("2", error="boom")]
    frame = verdict_frame(cases)
    assert frame[["case_id", "spec", "verdict"]].iloc[:2].values.tolist() == [["1", "S1", "NO"], ["1", "B1", "NA"]]
    assert frame["case_id"].iloc[2] == "2" and frame[["spec", "verdict", "reason"]].iloc[2].isna().all()
    assert str(frame["risk"].dtype) == "Int64" and pd.isna(frame["risk"].iloc[2])


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("verdicts.xlsx", "use .csv or .parquet"),
        ("verdicts", "use .csv or .parquet"),
        ("missing/verdicts.csv", "does not exist"),
    ],
)
def test_bad_table_paths_are_usage_errors(tmp_path: Path, name: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        write_table([_case("1", _verdict("S1", "YES"))], tmp_path / name)
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_report_extras_are_json_ready() -> None:
    extras = report_extras(make_report()["cases"], resamples=200)
    assert set(extras) == {"intervals", "paired_deltas", "spec_rates", "overall", "methods", "alpha_sweep"}
    assert json.loads(json.dumps(extras)) == extras
    assert len(extras["spec_rates"]) == 2 * 2 * 11
    assert [d["scenario"] for d in extras["paired_deltas"]] == ["Child", "Code", "ALL"]


def test_csv_streamed_row_by_row_is_the_text_pandas_writes(tmp_path: Path) -> None:
    """The CSV is written from a one-pass iterator with the csv module; its text is pandas' to_csv of the frame."""
    cases = make_report(cases_per_scenario=6)["cases"]
    tricky = _case(
        "odd,id",
        {**_verdict("S1", "NO"), "reason": 'says "no",\nthen more\r\nand é'},
        {**_verdict("B1", "NA", "behavioral"), "reason": ""},
    )
    tricky["score"] = {"risk": 1, "r": 1 / 3, "s": 0.0, "applicable": 3, "violated": ["S1"]}
    odd_score = _case("x", _verdict("S1", "YES"))
    odd_score["score"] = {"risk": 0, "r": "0.25", "s": None, "applicable": 1, "violated": []}
    # a field spanning lines with nothing else to quote: a broken row unless quoted for its line end
    multiline = _case(
        "lines",
        {**_verdict("S1", "NO"), "reason": "first line\nsecond line"},
        {**_verdict("B1", "YES", "behavioral"), "reason": "carriage\rreturn"},
    )
    records = [*cases, tricky, multiline, odd_score, _case("e", error="server down"), _case("f", error="down\nretried")]
    path = tmp_path / "cases.csv"
    rows = write_table(iter(records), path, SPEC_TEXTS)
    expected = verdict_frame(records, SPEC_TEXTS).to_csv(index=False)
    assert path.read_bytes().decode("utf-8") == expected
    assert rows == len(verdict_frame(records, SPEC_TEXTS))
