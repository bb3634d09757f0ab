"""Human validation end to end: a real plugin report -> Label Studio tasks -> annotations -> labels -> agree."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from test_plugin_e2e import SUITE  # each prompt scripts the judge's verdicts (see tests/scripted_server.py)

from pytest_specbench.cli import main
from pytest_specbench.options import OPT_REPORT


@pytest.fixture
def judged(pytester, specbench_run):
    """Run the plugin on the suite against the scripted server; returns (folder, report path)."""
    result = specbench_run(
        "--specbench-retries=0", f"{OPT_REPORT}=report.json", suite=SUITE, suite_file="specbench_alpha"
    )
    result.assert_outcomes(passed=3, failed=1)
    return pytester.path, pytester.path / "report.json"


def label_studio_export(tasks: list[dict], label_for) -> list[dict]:
    """What Label Studio's JSON export looks like after annotation; ``label_for(case_id, spec_id)`` is the choice.

    Each task also gets an older empty annotation and a newer cancelled one, which the import must skip.
    """
    out = []
    for n, task in enumerate(tasks):
        data = task["data"]
        result = [
            {
                "from_name": f"verdict_{idx}",
                "to_name": f"spec_{idx}",
                "type": "choices",
                "value": {"choices": [label_for(data["case_id"], spec["id"])]},
            }
            for idx, spec in enumerate(data["specs"])
        ]
        out.append(
            {
                "id": n + 1,
                "data": data,
                "annotations": [
                    {
                        "id": 10 * n + 1,
                        "completed_by": 1,
                        "was_cancelled": False,
                        "updated_at": "2026-01-01T00:00:00Z",
                        "result": [],
                    },
                    {
                        "id": 10 * n + 2,
                        "completed_by": {"id": 2, "email": "ann@example.org"},
                        "was_cancelled": False,
                        "updated_at": "2026-01-02T00:00:00Z",
                        "result": result,
                    },
                    {
                        "id": 10 * n + 3,
                        "completed_by": 3,
                        "was_cancelled": True,
                        "updated_at": "2026-01-03T00:00:00Z",
                        "result": [],
                    },
                ],
            }
        )
    return out


def test_export_import_and_agree_on_a_real_report(judged, capsys):
    folder, report_path = judged
    tasks_path = folder / "tasks.json"
    assert (
        main(
            [
                "annotate",
                "export",
                str(report_path),
                "-o",
                str(tasks_path),
                "--specs",
                str(folder / "specbench_alpha.yaml"),
            ]
        )
        == 0
    )
    assert "wrote 4 Label Studio task(s)" in capsys.readouterr().out
    tasks = json.loads(tasks_path.read_text())
    assert len(tasks) == 4
    first = tasks[0]["data"]
    assert [s["id"] for s in first["specs"]] == ["S1", "S2", "B1", "B2", "B3"]
    assert first["specs"][1]["label"] == "S2 (safety): Never do harm B."
    assert first["prompt"] == "VERDICTS S=YES,NO B=YES,YES,YES" and first["response"]
    assert "verdicts" not in first  # annotators do not see the judge's answer
    config = ET.fromstring((folder / "tasks.label_config.xml").read_text())
    repeater = config.find("Repeater")
    assert repeater is not None and repeater.get("on") == "$specs"
    assert [c.get("value") for c in repeater.find("Choices")] == ["YES", "NO", "NA"]  # type: ignore[union-attr]

    # Humans give the judge's labels, except on the last case's B3 (judge NO, humans YES).
    report = json.loads(report_path.read_text())
    judge = {(c["case_id"], v["spec"]): v["label"] for c in report["cases"] for v in c["verdicts"]}
    last = report["cases"][-1]["case_id"]
    export = label_studio_export(
        tasks, lambda case_id, spec: "YES" if (case_id, spec) == (last, "B3") else judge[(case_id, spec)]
    )
    export_path = folder / "ls-export.json"
    export_path.write_text(json.dumps(export))
    labels_path = folder / "labels.json"
    assert main(["annotate", "import", str(export_path), "-o", str(labels_path)]) == 0
    labels = json.loads(labels_path.read_text())
    assert labels["kind"] == "labels" and len(labels["cases"]) == 4
    assert {c["annotator"] for c in labels["cases"]} == {"ann@example.org"}  # latest, not cancelled
    assert labels["settings"] == {"alpha": report["settings"]["alpha"], "na_policy": report["settings"]["na_policy"]}

    out = folder / "agree.json"
    assert main(["agree", str(report_path), str(labels_path), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    # By hand over 20 labels: judge YES 12, NO 3, NA 5; humans YES 13, NO 2, NA 5; 19 agree.
    # pe = (12*13 + 3*2 + 5*5)/400 = 187/400, kappa = (380 - 187)/(400 - 187) = 193/213.
    assert result["labels_compared"] == 20
    assert result["kappa"] == pytest.approx(193 / 213)
    # Only the last case's s moves: 0.3 + 0.7 * 2/3 -> 1.0; the mean over 4 cases is a quarter of that.
    assert result["mean_abs_delta_s"] == pytest.approx((1.0 - (0.3 + 0.7 * 2 / 3)) / 4)
    assert result["responses_differ"] == 0
    assert "Cohen's kappa overall: 0.906" in capsys.readouterr().out


def test_import_chooses_an_annotator_and_reports_unusable_exports(judged, capsys):
    folder, report_path = judged
    tasks_path = folder / "tasks.json"
    assert (
        main(
            [
                "annotate",
                "export",
                str(report_path),
                "-o",
                str(tasks_path),
                "--specs",
                str(folder / "specbench_alpha.yaml"),
                "--limit",
                "2",
            ]
        )
        == 0
    )
    tasks = json.loads(tasks_path.read_text())
    assert len(tasks) == 2
    export = label_studio_export(tasks, lambda case_id, spec: "NA")
    path = folder / "export.json"
    path.write_text(json.dumps(export))
    # annotator 1 left every spec unlabelled: cases are imported, with no verdicts, and a warning says so
    assert main(["annotate", "import", str(path), "-o", str(folder / "l1.json"), "--annotator", "1"]) == 0
    assert "left unlabelled" in capsys.readouterr().err
    assert (
        main(["annotate", "import", str(path), "-o", str(folder / "l9.json"), "--annotator", "nobody@example.org"]) == 2
    )
    assert "no task has a usable annotation by nobody@example.org" in capsys.readouterr().err
    path.write_text(json.dumps({"not": "a list"}))
    assert main(["annotate", "import", str(path), "-o", str(folder / "l.json")]) == 2
    assert "expected Label Studio's JSON export" in capsys.readouterr().err


def test_export_needs_the_spec_texts(judged, capsys, tmp_path, monkeypatch):
    folder, report_path = judged
    monkeypatch.setenv("SPECBENCH_CACHE_DIR", str(tmp_path / "empty-cache"))
    assert main(["annotate", "export", str(report_path), "-o", str(folder / "t.json")]) == 2
    assert "reports hold only spec ids" in capsys.readouterr().err
    other = folder / "specbench_other.yaml"
    other.write_text(SUITE.replace("scenario: Alpha", "scenario: Other"))
    assert main(["annotate", "export", str(report_path), "-o", str(folder / "t.json"), "--specs", str(other)]) == 2
    assert "no suite given for scenario 'Alpha'" in capsys.readouterr().err
