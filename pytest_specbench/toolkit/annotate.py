"""Human labels through Label Studio: export a report's cases as tasks, import the annotations back.

``export`` turns each judged case of a report into one Label Studio task: the prompt, the response,
and the scenario's specs, each to be labelled YES (followed), NO (violated) or NA (does not apply),
the same three labels the judge gives. It also writes the labeling interface (``label_config.xml``),
built on Label Studio's ``Repeater`` so that one project serves scenarios with any number of specs.
The judge's own verdicts are deliberately not shown: annotators who see them tend to agree with them.

``import`` reads Label Studio's JSON export and writes a labels file in the report's case layout
(``cases[].verdicts[]``), which ``specbench agree`` compares with the judge's report.

Reports carry spec ids, not spec texts, so export looks the texts up in the suites given with
``--specs`` (YAML suites or SpecBench folders) or in the downloaded SpecBench.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import SuiteError
from .errors import InputError
from .store import atomic_write_text, read_json, write_json

LABELS = ("YES", "NO", "NA")
LABELS_FORMAT_VERSION = 1

LABEL_CONFIG = """<View>
  <Header value="Scenario: $scenario_name"/>
  <Text name="scenario_description" value="$scenario_description"/>
  <Header value="What the user sent"/>
  <Text name="prompt" value="$prompt"/>
  <Header value="What the assistant answered"/>
  <Text name="response" value="$response"/>
  <Header value="For each rule: YES = the answer follows it, NO = the answer breaks it, NA = the rule does not apply here"/>
  <Repeater on="$specs" indexFlag="{{idx}}">
    <Text name="spec_{{idx}}" value="$specs[{{idx}}].label"/>
    <Choices name="verdict_{{idx}}" toName="spec_{{idx}}" choice="single" showInline="true" required="true">
      <Choice value="YES"/>
      <Choice value="NO"/>
      <Choice value="NA"/>
    </Choices>
  </Repeater>
</View>
"""


@dataclass(frozen=True)
class SpecText:
    id: str
    kind: str
    text: str


def spec_texts(sources: Sequence[Path]) -> dict[str, tuple[str, str, dict[str, SpecText]]]:
    """scenario key -> (name, description, spec id -> spec) from suites and SpecBench folders."""
    from ..suite import find_specbench_scenarios
    from .synthesize import load_scenario_specs

    found: dict[str, tuple[str, str, dict[str, SpecText]]] = {}
    for source in sources:
        source = Path(source)
        if source.is_dir() and not (source / "specifications.json").is_file():
            try:
                folders = find_specbench_scenarios(source)
            except SuiteError as exc:
                raise InputError(f"--specs {source}: {exc.detail}") from exc
        else:
            folders = [source]
        for folder in folders:
            scenario, _ = load_scenario_specs(folder)
            found[scenario.key] = (
                scenario.name,
                scenario.description,
                {s.id: SpecText(s.id, s.kind, s.text) for s in scenario.specs},
            )
    return found


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def export_tasks(
    report_path: Path,
    out: Path,
    *,
    specs: Sequence[Path] = (),
    config: Path | None = None,
    limit: int | None = None,
    seed: int = 0,
    scenarios: Sequence[str] = (),
) -> tuple[int, Path]:
    """Write Label Studio tasks for the judged cases of a report; returns (tasks written, config path)."""
    from .download import default_data_dir

    report = read_json(Path(report_path))
    if (
        not isinstance(report, dict)
        or report.get("tool") != "pytest-specbench"
        or not isinstance(report.get("cases"), list)
    ):
        raise InputError(
            f"{report_path}: not a pytest-specbench report (write one with pytest --specbench-report=PATH)"
        )
    if not specs:
        data_dir = default_data_dir()
        if data_dir is None:
            raise InputError(
                "--specs: give the suites (YAML files or SpecBench folders) whose spec texts the annotators should see; reports hold only spec ids"
            )
        specs = [data_dir]
    texts = spec_texts(specs)
    settings = report.get("settings") or {}
    cases = [c for c in report["cases"] if isinstance(c, dict) and c.get("verdicts") and not c.get("error")]
    if scenarios:
        cases = [c for c in cases if c.get("scenario") in scenarios]
    if not cases:
        raise InputError(
            f"{report_path}: no judged case to annotate"
            + (f" in scenario(s) {', '.join(scenarios)}" if scenarios else "")
        )
    if limit is not None:
        if limit < 1:
            raise InputError(f"--limit must be at least 1, got {limit}")
        if limit < len(cases):
            chosen = set(random.Random(seed).sample(range(len(cases)), limit))
            cases = [c for i, c in enumerate(cases) if i in chosen]
    tasks = []
    for case in cases:
        scenario = str(case["scenario"])
        if scenario not in texts:
            raise InputError(
                f"--specs: no suite given for scenario {scenario!r} (have: {', '.join(sorted(texts)) or 'none'})"
            )
        name, description, by_id = texts[scenario]
        ids = [str(v["spec"]) for v in case["verdicts"]]
        unknown = [i for i in ids if i not in by_id]
        if unknown:
            raise InputError(
                f"--specs: scenario {scenario!r} has no spec {', '.join(unknown)}; is it the suite the report was run on?"
            )
        response = str(case.get("response") or "")
        tasks.append(
            {
                "data": {
                    "key": f"{case.get('group')}|{scenario}|{case['case_id']}",
                    "group": case.get("group"),
                    "model": case.get("model"),
                    "method": case.get("method"),
                    "scenario": scenario,
                    "scenario_name": name,
                    "scenario_description": description or name,
                    "case_id": str(case["case_id"]),
                    "label": case.get("label"),
                    "prompt": case.get("prompt") or "",
                    "response": response,
                    "response_sha256": _sha(response),
                    "specs": [
                        {
                            "id": i,
                            "kind": by_id[i].kind,
                            "text": by_id[i].text,
                            "label": f"{i} ({by_id[i].kind}): {by_id[i].text}",
                        }
                        for i in ids
                    ],
                    "alpha": settings.get("alpha"),
                    "na_policy": settings.get("na_policy"),
                    "report": str(report_path),
                }
            }
        )
    write_json(out, tasks)
    config = config or out.with_name(out.stem + ".label_config.xml")
    atomic_write_text(config, LABEL_CONFIG)
    return len(tasks), config


def _pick(annotations: Sequence[Mapping[str, Any]], annotator: str | None) -> Mapping[str, Any] | None:
    """The annotation to use: not cancelled, by ``annotator`` if given, the most recently updated."""
    usable = [a for a in annotations if isinstance(a, dict) and not a.get("was_cancelled")]
    if annotator is not None:
        usable = [a for a in usable if _who(a) == annotator or str(a.get("completed_by")) == annotator]
    if not usable:
        return None
    return max(enumerate(usable), key=lambda p: (str(p[1].get("updated_at") or p[1].get("created_at") or ""), p[0]))[1]


def _who(annotation: Mapping[str, Any]) -> str:
    by = annotation.get("completed_by")
    if isinstance(by, dict):
        return str(by.get("email") or by.get("id") or "")
    return str(by) if by is not None else ""


@dataclass
class ImportResult:
    cases: int
    skipped: int
    missing_labels: int


def import_labels(export: Path, out: Path, *, annotator: str | None = None) -> ImportResult:
    """Label Studio JSON export -> labels file (report case layout) that ``agree`` reads."""
    tasks = read_json(Path(export))
    if not isinstance(tasks, list):
        raise InputError(f"{export}: expected Label Studio's JSON export (a list of tasks); export the project as JSON")
    cases: list[dict[str, Any]] = []
    skipped = missing = 0
    settings: dict[str, Any] = {}
    for n, task in enumerate(tasks):
        data = task.get("data") if isinstance(task, dict) else None
        if not isinstance(data, dict) or not isinstance(data.get("specs"), list) or "case_id" not in data:
            raise InputError(
                f"{export}: task [{n}] was not made by specbench annotate export (its data lacks specs/case_id)"
            )
        chosen = _pick(task.get("annotations") or [], annotator)
        if chosen is None:
            skipped += 1
            continue
        choices: dict[str, str] = {}
        for item in chosen.get("result") or []:
            name = str(item.get("from_name", ""))
            picked = (item.get("value") or {}).get("choices") or []
            if name.startswith("verdict_") and picked:
                choices[name] = str(picked[0]).upper()
        verdicts = []
        for idx, spec in enumerate(data["specs"]):
            label = choices.get(f"verdict_{idx}")
            if label is None:
                missing += 1
                continue
            if label not in LABELS:
                raise InputError(
                    f"{export}: task [{n}] spec {spec.get('id')} has choice {label!r}; expected YES, NO or NA"
                )
            verdicts.append(
                {"spec": spec["id"], "kind": spec.get("kind"), "label": label, "reason": "", "decided_by": "human"}
            )
        if data.get("alpha") is not None:
            settings.setdefault("alpha", data["alpha"])
        if data.get("na_policy") is not None:
            settings.setdefault("na_policy", data["na_policy"])
        cases.append(
            {
                "group": data.get("group"),
                "scenario": data.get("scenario"),
                "case_id": data["case_id"],
                "model": data.get("model"),
                "label": data.get("label"),
                "response_sha256": data.get("response_sha256"),
                "annotator": _who(chosen),
                "verdicts": verdicts,
                "error": None,
            }
        )
    if not cases:
        raise InputError(
            f"{export}: no task has a usable annotation"
            + (f" by {annotator}" if annotator else "")
            + "; label some tasks, then export again"
        )
    write_json(
        out,
        {
            "tool": "pytest-specbench",
            "kind": "labels",
            "version": LABELS_FORMAT_VERSION,
            "source": str(export),
            "settings": settings,
            "cases": cases,
        },
    )
    return ImportResult(len(cases), skipped, missing)
