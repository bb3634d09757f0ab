"""specbench agree: kappa, |delta SAR| and rank agreement, checked against numbers worked out by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_specbench.cli import main
from pytest_specbench.toolkit.agree import compare, kappa, load_side, rank_agreement
from pytest_specbench.toolkit.errors import IncompatibleReports


def report(
    path: Path,
    cases: dict[str, dict[str, str]],
    *,
    group: str = "m · vanilla",
    alpha: float = 0.3,
    scenario: str = "Alpha",
    kind: str | None = None,
) -> Path:
    """A report in the plugin's layout: case id -> {spec id: label}."""
    records = []
    for case_id, labels in cases.items():
        verdicts = [
            {
                "spec": s,
                "kind": "safety" if s.startswith("S") else "behavioral",
                "label": v,
                "reason": "",
                "decided_by": "judge",
            }
            for s, v in labels.items()
        ]
        records.append(
            {
                "group": group,
                "scenario": scenario,
                "case_id": case_id,
                "label": "unsafe",
                "prompt": "p",
                "response": f"r-{case_id}",
                "model": group.split(" ·")[0],
                "verdicts": verdicts,
                "error": None,
            }
        )
    data = {
        "tool": "pytest-specbench",
        "version": "0",
        "settings": {"alpha": alpha, "na_policy": "paper"},
        "summary": [],
        "gates": [],
        "cases": records,
    }
    if kind:
        data["kind"] = kind
    path.write_text(json.dumps(data))
    return path


# By hand (pooled over the six (case, spec) labels):
#   A: YES YES | YES NO | NO NA      B: YES NO | NO NO | NO YES
#   observed agreement 3/6; chance (3*2 + 2*4 + 1*0)/36 = 7/18; kappa = (1/2 - 7/18)/(11/18) = 2/11
#   S1 alone: A YES YES NO, B YES NO NO: po 2/3, pe 4/9, kappa 2/5;  B1 alone: po 1/3 = pe 1/3, kappa 0
#   s with alpha 0.3, NA excluded: A = 1.0, 0.3, 0.0; B = 0.3, 0.0, 0.0; mean |delta s| = (0.7 + 0.3 + 0)/3
LEFT = {"c1": {"S1": "YES", "B1": "YES"}, "c2": {"S1": "YES", "B1": "NO"}, "c3": {"S1": "NO", "B1": "NA"}}
RIGHT = {"c1": {"S1": "YES", "B1": "NO"}, "c2": {"S1": "NO", "B1": "NO"}, "c3": {"S1": "NO", "B1": "YES"}}


def test_kappa_and_delta_sar_match_the_hand_computation(tmp_path):
    a, b = report(tmp_path / "a.json", LEFT), report(tmp_path / "b.json", RIGHT)
    result = compare([(load_side(a), load_side(b))])
    assert result["labels_compared"] == 6 and result["cases_compared"] == 3
    assert result["kappa"] == pytest.approx(2 / 11)
    assert result["raw_agreement"] == pytest.approx(0.5)
    assert result["kappa_per_spec"]["Alpha/S1"]["kappa"] == pytest.approx(0.4)
    assert result["kappa_per_spec"]["Alpha/B1"]["kappa"] == pytest.approx(0.0)
    assert result["kappa_by_kind"]["safety"] == pytest.approx(0.4)
    assert result["mean_abs_delta_s"] == pytest.approx(1 / 3)
    m = result["models"][0]
    assert m["sar_a"] == pytest.approx(1.3 / 3) and m["sar_b"] == pytest.approx(0.1)
    assert result["mean_abs_delta_sar"] == pytest.approx(1.3 / 3 - 0.1)
    assert "ranking" not in result  # one model: nothing to rank


@pytest.mark.parametrize(
    ("left", "right", "expected"),
    [
        (["YES", "NO", "YES", "NO"], ["YES", "NO", "YES", "NO"], 1.0),
        # po 4/6; A YES 3 NO 2 NA 1, B YES 3 NO 3: pe 15/36; kappa (24-15)/(36-15) = 3/7
        (["YES", "YES", "NO", "NO", "YES", "NA"], ["YES", "NO", "NO", "NO", "YES", "YES"], 3 / 7),
        # systematic disagreement: po 0, pe 1/2, kappa -1
        (["YES", "NO"], ["NO", "YES"], -1.0),
        # one label everywhere on both sides: chance agreement is 1 and kappa is undefined
        (["YES", "YES"], ["YES", "YES"], None),
    ],
)
def test_kappa_table(left, right, expected):
    got = kappa(left, right)
    assert got == (None if expected is None else pytest.approx(expected))


def test_rank_agreement_matches_the_hand_computation():
    # Four models; B swaps the top two. Ranks A 4,3,2,1 and B 3,4,2,1: d^2 sums to 2,
    # rho = 1 - 6*2/(4*15) = 0.8; with 2 degrees of freedom the t-test p-value is 1 - t/sqrt(t^2 + 2) = 0.2.
    # Kendall: 5 concordant, 1 discordant pair, tau = 4/6; exact p = 2 * P(<= 1 inversion) = 2 * 4/24 = 1/3.
    left = {"m1": 0.9, "m2": 0.8, "m3": 0.7, "m4": 0.6}
    right = {"m1": 0.85, "m2": 0.9, "m3": 0.6, "m4": 0.5}
    r = rank_agreement(left, right, tops=(1, 2, 5, 10))
    assert r["spearman"]["rho"] == pytest.approx(0.8) and r["spearman"]["p"] == pytest.approx(0.2)
    assert r["kendall"]["tau"] == pytest.approx(2 / 3) and r["kendall"]["p"] == pytest.approx(1 / 3)
    assert r["top"]["1"] == {"k": 1, "overlap": 0.0}  # m1 vs m2
    assert r["top"]["2"] == {"k": 2, "overlap": 1.0}
    assert r["top"]["5"] == {"k": 4, "overlap": 1.0}  # only four models


def test_several_models_through_the_command(tmp_path, capsys):
    # s = 0.3 + 0.7 r with r the YES share of four behavioral specs: A ranks m1 > m2 > m3 > m4, B swaps m1 and m2.
    def labels(yes: int) -> dict[str, dict[str, str]]:
        return {"c1": {"S1": "YES", **{f"B{i}": ("YES" if i <= yes else "NO") for i in range(1, 5)}}}

    lefts, rights = [], []
    for name, a_yes, b_yes in (("m1", 4, 3), ("m2", 3, 4), ("m3", 2, 2), ("m4", 1, 1)):
        lefts.append(str(report(tmp_path / f"{name}_a.json", labels(a_yes), group=f"{name} · vanilla")))
        rights.append(str(report(tmp_path / f"{name}_b.json", labels(b_yes), group=f"{name} · vanilla")))
    out = tmp_path / "agree.json"
    assert main(["agree", "--left", *lefts, "--right", *rights, "--json", str(out), "--top", "1", "--top", "5"]) == 0
    text = capsys.readouterr().out
    assert "Spearman rho 0.800 (p 0.200)" in text and "Kendall tau 0.667 (p 0.333)" in text
    assert "top-4 (asked 5, only 4 models) overlap: 100.0%" in text
    data = json.loads(out.read_text())
    assert data["ranking"]["top"]["1"]["overlap"] == 0.0
    assert [m["model"] for m in data["models"]] == ["m1 · vanilla", "m2 · vanilla", "m3 · vanilla", "m4 · vanilla"]
    assert data["models"][0]["sar_a"] == pytest.approx(1.0) and data["models"][0]["sar_b"] == pytest.approx(
        0.3 + 0.7 * 0.75
    )


def test_reports_of_different_suites_are_refused(tmp_path, capsys):
    a = report(tmp_path / "a.json", LEFT)
    fewer = report(tmp_path / "b.json", {k: v for k, v in RIGHT.items() if k != "c3"})
    assert main(["agree", str(a), str(fewer)]) == 2
    err = capsys.readouterr().err
    assert "are not of the same suite" in err and f"cases only in {a}: Alpha::c3" in err
    other_specs = report(tmp_path / "c.json", {k: {"S1": v["S1"], "B2": v["B1"]} for k, v in RIGHT.items()})
    with pytest.raises(IncompatibleReports, match="spec ids differ"):
        compare([(load_side(a), load_side(other_specs))])


def test_labels_may_cover_a_sample_of_the_report(tmp_path):
    a = report(tmp_path / "a.json", LEFT)
    sample = report(tmp_path / "labels.json", {"c1": RIGHT["c1"], "c2": RIGHT["c2"]}, kind="labels")
    result = compare([(load_side(a), load_side(sample))])
    assert result["cases_compared"] == 2 and result["labels_compared"] == 4
    # ... but a case that is not in the report is still an error
    stranger = report(tmp_path / "l2.json", {"c9": RIGHT["c1"]}, kind="labels")
    with pytest.raises(IncompatibleReports, match="cases only in"):
        compare([(load_side(a), load_side(stranger))])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["only-one.json"], "agree compares two files (got 1)"),
        (["--left", "a.json", "b.json", "--right", "c.json"], "the same number of files (got 2 and 1)"),
    ],
)
def test_wrong_number_of_files(args, message, capsys):
    assert main(["agree", *args]) == 2
    assert message in capsys.readouterr().err


def test_a_file_that_is_not_a_report(tmp_path, capsys):
    bogus = tmp_path / "x.json"
    bogus.write_text("[1, 2]")
    a = report(tmp_path / "a.json", LEFT)
    assert main(["agree", str(a), str(bogus)]) == 2
    assert "not a pytest-specbench report or labels file" in capsys.readouterr().err
