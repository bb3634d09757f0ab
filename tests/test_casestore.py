"""The controller's case store (pytest_specbench.casestore): full records on disk, slim ones in memory."""

from __future__ import annotations

import copy
import json

import pytest
from test_reporting_sample import make_report

from pytest_specbench.casestore import SLIM_KEYS, CaseStore
from pytest_specbench.reporting.baseline import Baseline
from pytest_specbench.reporting.run import RunSummary


def _records() -> list[dict]:
    records = copy.deepcopy(make_report(cases_per_scenario=12)["cases"])
    for n, r in enumerate(records):  # what only some methods leave: steps that hit the limit, a selector
        r["steps"] = [
            {
                "stage": "draft",
                "completion_tokens": 9,
                "prompt_tokens": 3,
                "finish_reason": "length" if n % 5 == 0 else "stop",
                "attempts": 1,
                "seconds": 0.1,
            },
            {
                "stage": "answer",
                "completion_tokens": 4,
                "prompt_tokens": 3,
                "finish_reason": "stop",
                "attempts": 1,
                "seconds": 0.1,
            },
        ]
        if n % 7 == 0:
            r["selector"], r["selector_is_grader"] = "judge:openai/judge", True
        r["truncated_for_judge"] = n % 11 == 0
        r["nodeid"] = f"suite.yaml::{r['scenario']}::{r['case_id']}"
    return records


def _stored(records: list[dict]) -> tuple[CaseStore, list]:
    store = CaseStore()
    slim = []
    for r in records:
        store.add(json.dumps(r, ensure_ascii=False))
        slim.append(store.slim(r))
    return store, slim


def test_slim_records_give_the_summary_of_the_full_ones() -> None:
    records = _records()
    store, slim = _stored(records)
    full = RunSummary.compute(records, resamples=300, seed=3)
    light = RunSummary.compute(slim, resamples=300, seed=3)
    assert light.to_report_keys() == full.to_report_keys()
    assert [r.to_dict() for r in light.rows] == [r.to_dict() for r in full.rows]
    assert light.facts == full.facts and light.alpha_sweep == full.alpha_sweep
    assert (light.errors, light.length_answers) == (full.errors, full.length_answers)
    store.close()


def test_slim_records_give_the_baseline_comparison_of_the_full_ones() -> None:
    records = _records()
    before = copy.deepcopy(records)
    for r in before[::3]:  # an earlier run where a third of the cases had another first verdict
        if r["verdicts"]:
            r["verdicts"][0]["label"] = "NO" if r["verdicts"][0]["label"] != "NO" else "YES"
    baseline = Baseline({"tool": "pytest-specbench", "settings": {}, "cases": before}, source="old.json")
    store, slim = _stored(records)
    full = baseline.compare(records, resamples=200, seed=1).to_dict()
    light = baseline.compare(slim, resamples=200, seed=1).to_dict()
    assert light == full and full["changes"]
    store.close()


def test_store_gives_back_every_record_in_order_and_picks_in_the_order_asked() -> None:
    records = _records()
    records[0]["response"] = 'line one\nline two, with "quotes" and é'
    store, slim = _stored(records)
    assert list(store.records()) == records
    assert [json.loads(t) for t in store.texts()] == records
    assert list(store.pick([5, 0, 3, 4, 1])) == [records[n] for n in (5, 0, 3, 4, 1)]
    store.add(json.dumps(records[1]))  # still writable after reading
    assert len(list(store.texts())) == len(records) + 1
    store.close()


def test_a_slim_record_keeps_only_the_small_fields_and_cannot_change() -> None:
    records = _records()
    store, slim = _stored(records)
    one = slim[0]
    assert set(one) == set(SLIM_KEYS)
    assert one["case_id"] == records[0]["case_id"] and one.get("response") is None
    assert all("reason" not in v for v in one["verdicts"])
    assert [(v["spec"], v["label"]) for v in one["verdicts"]] == [
        (v["spec"], v["label"]) for v in records[0]["verdicts"]
    ]
    with pytest.raises(KeyError):
        one["response"]
    with pytest.raises(AttributeError):
        one.case_id = "other"  # type: ignore[misc]
    # equal verdicts are one shared object, not one per case
    labels = {id(v) for r in slim for v in r["verdicts"]}
    assert len(labels) < sum(len(r["verdicts"]) for r in slim) / 4
    store.close()


def test_slim_verdicts_read_back_as_the_full_ones_without_their_reasons() -> None:
    records = _records()
    records[1]["verdicts"][0]["label"] = "MAYBE"  # not one of YES / NO / NA: that record keeps a plain tuple
    records[2]["verdicts"] = records[2]["verdicts"][::-1]  # same specs in another order: a frame of its own
    records[3]["selector"] = ["not", "hashable"]  # its shared fields cannot be pooled: kept as they are
    store, slim = _stored(records)
    assert slim[3]["selector"] == ["not", "hashable"] and slim[4]["group"] == records[4]["group"]
    plain = [k for k in SLIM_KEYS if k not in ("verdicts", "steps")]  # those two keep only some fields
    for full, small in zip(records, slim):
        assert {k: small[k] for k in plain} == {k: full.get(k) for k in plain}
    for full, small in zip(records, slim):
        assert small["verdicts"] == tuple(
            {"spec": v["spec"], "kind": v["kind"], "label": v["label"], "decided_by": v.get("decided_by")}
            for v in full["verdicts"]
        )
    store.close()
