"""The self-contained HTML report (pytest_specbench.reporting.html), offline checks and a headless Chromium render."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from test_reporting_sample import SPEC_TEXTS, make_report

from pytest_specbench.errors import ConfigError
from pytest_specbench.reporting.html import render_html, spec_bar_figure, write_html
from pytest_specbench.reporting.stats import bootstrap_summary, find_cell
from pytest_specbench.reporting.tables import spec_rates

HOSTILE = '"><img src=x onerror=alert(1)>$x_{1}$'


@pytest.fixture(scope="module")
def report() -> dict:
    return make_report()


@pytest.fixture(scope="module")
def page(report: dict) -> str:
    return render_html(report, SPEC_TEXTS, resamples=400)


def test_page_is_self_contained(page: str) -> None:
    """Opens offline: no URL of any scheme but data:, no external script or stylesheet, no CSS import."""
    assert not re.search(r"https?://", page, re.IGNORECASE)
    assert not re.search(r"<script[^>]*\bsrc\s*=", page, re.IGNORECASE)
    assert not re.search(r"<link\b", page, re.IGNORECASE)
    assert not re.search(r"@import|url\(", page, re.IGNORECASE)
    sources = re.findall(r'\bsrc="([^"]*)"', page)
    assert len(sources) == 3 + 2  # scatter, SAR bars, α sweep, one spec-bar figure per scenario
    assert all(s.startswith("data:image/png;base64,") for s in sources)


def test_untrusted_text_is_escaped(page: str) -> None:
    assert "<script>alert('x')</script>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "<b>this</b>" not in page and "&lt;b&gt;this&lt;/b&gt;" in page
    assert page.count("<script>") == 1  # ours, the filter script


def test_hostile_names_cannot_break_out_or_crash_the_figures(report: dict) -> None:
    bad = copy.deepcopy(report)
    for case in bad["cases"]:
        case["group"] = case["group"].replace("vanilla", HOSTILE)
        if case["scenario"] == "Code":
            case["scenario"] = HOSTILE
        for v in case["verdicts"]:
            if v["spec"] == "S1":
                v["spec"] = HOSTILE
            v["reason"] = HOSTILE
    bad["settings"]["model"] = HOSTILE
    page = render_html(bad, {HOSTILE: {HOSTILE: HOSTILE}}, resamples=100)
    assert "<img src=x" not in page
    assert page.count("&quot;&gt;&lt;img src=x onerror=alert(1)&gt;") > 10


def test_every_case_is_browsable_with_its_filters(report: dict, page: str) -> None:
    blocks = re.findall(r'<details class="case" ([^>]*)>', page)
    assert len(blocks) == len(report["cases"])
    statuses = [re.search(r'data-status="(\w+)"', b).group(1) for b in blocks]
    assert statuses == [c["outcome"] for c in report["cases"]]
    first_no = next(c for c in report["cases"] if c["score"] and c["score"]["violated"])
    keys = "&#10;".join(f"{first_no['scenario']}/{v['spec']}" for v in first_no["verdicts"] if v["label"] == "NO")
    assert f'data-no="{keys}"' in page or f'data-no="{keys.replace("&#10;", chr(10))}"' in page
    for control in ("f-group", "f-scenario", "f-split", "f-status", "f-spec"):
        assert f'id="{control}"' in page
    assert page.count('<details class="thought">') == sum(1 for c in report["cases"] if c["thought"])
    for text in ("Prompt", "Response", "Verdicts", "S2 judged NO: the reply breaks it.", SPEC_TEXTS["Code"]["B3"]):
        assert text in page


def test_summary_shows_the_bootstrap_intervals(report: dict, page: str) -> None:
    cells = bootstrap_summary(report["cases"], resamples=400, seed=report["settings"]["seed"])
    for group in ("qwen3-8b · vanilla", "qwen3-8b · self-refine"):
        sar = find_cell(cells, group).sar
        assert f'{100 * sar.point:.1f} <span class="ci">[{100 * sar.low:.1f}, {100 * sar.high:.1f}]</span>' in page
    assert "Paired ΔSAR" in page and "Gates" in page


def test_baseline_section_renders_a_comparison(report: dict) -> None:
    from test_reporting_sample import flipped

    from pytest_specbench.reporting.baseline import compare_reports

    worse = flipped(report, {("Child", "safe-0005", "S3"): "NO"})
    with_baseline = {**worse, "baseline": compare_reports(worse, report, resamples=100).to_dict()}
    page = render_html(with_baseline, resamples=100)
    assert "Against baseline" in page and "S3 YES→NO" in page


@pytest.mark.parametrize(
    "kwargs",
    [
        {"cases_per_scenario": 0},  # nothing ran
        {
            "scenarios": ("Child",),
            "groups": {"m · only": (0.1, 0.7)},
        },  # one group, one scenario: no ALL row, no paired table
        {"scenarios": ("Child",), "cases_per_scenario": 1, "errored": 0, "groups": {"m · only": (0.1, 0.7)}},
    ],
    ids=["empty", "single", "one-case"],
)
def test_small_reports_render(kwargs: dict) -> None:
    page = render_html(make_report(**kwargs), resamples=50)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "Paired ΔSAR" not in page


def test_spec_bar_figure_has_a_stacked_bar_per_spec_and_label(report: dict) -> None:
    fig = spec_bar_figure(spec_rates(report["cases"]), "Child", ["qwen3-8b · vanilla", "qwen3-8b · self-refine"])
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 2
    assert all(len(ax.patches) == 3 * 11 for ax in axes)  # YES, NA, NO segment for each of 11 specs
    assert [t.get_text() for t in axes[0].get_yticklabels()][:2] == ["S1", "S2"]


def test_html_path_in_a_missing_directory_is_a_usage_error(tmp_path: Path, report: dict) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        write_html(report, tmp_path / "nope" / "report.html")
    assert list(tmp_path.iterdir()) == []


def test_write_html_writes_the_rendered_page(tmp_path: Path, report: dict, page: str) -> None:
    path = tmp_path / "report.html"
    write_html(report, path, SPEC_TEXTS, resamples=400)
    assert path.read_text(encoding="utf-8") == page  # same seed, same numbers, same bytes
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]  # no temp file left behind


# ------------------------------------------------------------------------------------ in a browser


def _chromium() -> str | None:
    return next((p for name in ("chromium", "chromium-browser", "google-chrome") if (p := shutil.which(name))), None)


def _browser(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    browser = _chromium()
    if browser is None:
        pytest.skip("headless Chromium is not installed (apt-get install -y chromium)")
    with tempfile.TemporaryDirectory() as profile:
        flags = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
        ]
        return subprocess.run([browser, *flags, *args, url], capture_output=True, text=True, timeout=90, check=False)


@pytest.fixture(scope="module")
def html_file(tmp_path_factory: pytest.TempPathFactory, page: str) -> Path:
    path = tmp_path_factory.mktemp("html") / "report.html"
    path.write_text(page, encoding="utf-8")
    return path


def test_chromium_renders_a_non_blank_page(html_file: Path) -> None:
    from PIL import Image

    shot = html_file.parent / "shot.png"
    _browser(f"--screenshot={shot}", "--window-size=1400,2000", url=html_file.as_uri())
    assert shot.is_file(), "Chromium wrote no screenshot"
    image = Image.open(shot).convert("L")
    assert image.size == (1400, 2000)
    low, high = image.getextrema()
    assert high - low > 100  # text and figures, not a blank page


@pytest.mark.parametrize(
    ("fragment", "expected"),
    [
        ("", lambda cases: len(cases)),
        (
            "#f-scenario=Code&f-status=error",
            lambda cases: sum(1 for c in cases if c["scenario"] == "Code" and c["outcome"] == "error"),
        ),
        (
            "#f-spec=Child%2FS2",
            lambda cases: sum(
                1
                for c in cases
                if c["scenario"] == "Child" and any(v["spec"] == "S2" and v["label"] == "NO" for v in c["verdicts"])
            ),
        ),
        (
            "#f-split=unsafe&f-status=failed",
            lambda cases: sum(1 for c in cases if c["label"] == "unsafe" and c["outcome"] == "failed"),
        ),
    ],
    ids=["all", "scenario+error", "violated-spec", "split+failed"],
)
def test_filters_run_in_the_browser(html_file: Path, report: dict, fragment: str, expected) -> None:
    """The inline script filters on load from the URL fragment; the DOM it leaves says how many cases show."""
    dom = _browser("--dump-dom", url=html_file.as_uri() + fragment).stdout
    count = re.search(r'<span id="f-count">(\d+) of (\d+) cases shown</span>', dom)
    assert count, dom[-500:]
    assert (int(count.group(1)), int(count.group(2))) == (expected(report["cases"]), len(report["cases"]))
    assert len(re.findall(r'<details class="case"[^>]* hidden=""', dom)) == len(report["cases"]) - int(count.group(1))


def test_lower_bound_gates_and_a_missing_summary(report: dict) -> None:
    """Gates carry how they compared; without a ``summary`` the counts are rebuilt from the cases."""
    bare = {k: v for k, v in report.items() if k != "summary"}
    bare["gates"] = [
        {
            "metric": "SAR",
            "scenario": "Child",
            "threshold": 0.7,
            "value": 0.612,
            "passed": False,
            "on": "lower",
            "group": "qwen3-8b · vanilla",
        }
    ]
    page = render_html(bare, resamples=50)
    gate_row = re.search(r"<h3>Gates</h3>.*?</table>", page, re.DOTALL).group(0)
    for text in ("FAILED", "<td>lower</td>", "<td>Child</td>", "<td>qwen3-8b · vanilla</td>", "0.612", "≥ 0.700"):
        assert text in gate_row
    # overall rows of a group: 40 cases, one errored, so the scenarios differ in size: the paper's mean over
    # scenarios and the pooled mean, both shown
    assert re.search(r'<td>Avg. \(paper\)</td><td>all</td><td class="num">40</td><td class="num">1</td>', page)
    assert re.search(r'<td>pooled</td><td>all</td><td class="num">40</td><td class="num">1</td>', page)


def test_a_large_run_lists_its_errors_and_failures_first_up_to_the_limit(
    report: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past MAX_LISTED_CASES the case browser lists errored, then failed, then passed cases and says so;
    the summary still counts every case."""
    from pytest_specbench.reporting import html
    from pytest_specbench.reporting.tables import case_status

    cases = report["cases"]
    order = {"error": 0, "failed": 1, "passed": 2}
    limit = 7
    monkeypatch.setattr(html, "MAX_LISTED_CASES", limit)
    page = render_html(report, SPEC_TEXTS, resamples=200)
    blocks = re.findall(r'<details class="case" ([^>]*)>', page)
    statuses = [re.search(r'data-status="(\w+)"', b).group(1) for b in blocks]
    expected = sorted((case_status(c) for c in cases), key=order.__getitem__)[:limit]
    assert statuses == expected and len(cases) > limit
    assert f"Listed here: {limit:,} of {len(cases):,} cases" in page
    assert f"{len(cases)} case records" in page
    assert html.listed_positions(cases, limit=len(cases)) == list(range(len(cases)))  # all fit: run order
