"""One self-contained HTML report: figures, summary with confidence intervals, and a case browser.

Self-contained means the file opens from a CI artifact store, an e-mail or an air-gapped laptop: no URL
of any kind is written (no CDN script, no web font, no SVG namespace), the CSS and the small filter script
are inline, and the figures are PNGs drawn by matplotlib's Agg canvas and embedded as ``data:`` URIs.
We draw on a private ``Figure`` + ``FigureCanvasAgg`` rather than through pyplot so that writing a report
never touches the process-wide backend or figure registry of a user's test session.

Every string that comes from a case (prompt, response, thought, judge reason, error), from the suite (spec
ids and texts, scenario keys) or from settings (model names) is untrusted and passes through
:func:`html.escape`; matplotlib labels additionally escape ``$`` so a name cannot turn into mathtext.

Figures follow the paper: safety against behavioral score with one point per (model, method) group
(Figure 2, here with 95% interval whiskers), stacked YES / NA / NO bars per spec for each scenario
(Figures 8-9), SAR per scenario and split, and SAR as a function of α (Figure 10).
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..atomic import atomic_open
from ..errors import ConfigError
from ..scoring import ALL
from ..summary import AVG_LABEL, AVG_NOTE, POOLED_LABEL, POOLED_NOTE
from .run import AlphaPoint, GroupFacts, RunSummary
from .stats import DEFAULT_RESAMPLES, CellIntervals, Interval, PairedDelta, find_cell
from .tables import SpecRate, SpecTexts, case_status

if TYPE_CHECKING:
    from matplotlib.figure import Figure

LABEL_COLORS = {"YES": "#3a8a4f", "NA": "#b9bec6", "NO": "#c8423b"}
SPLIT_ORDER = ("unsafe", "safe", "all")
# Below this many paired cases a bootstrap interval is too coarse to call a difference real.
MIN_CASES_FOR_CLAIM = 10
_PALETTE = (
    "#1f6fb4",
    "#e07b28",
    "#3a9a4a",
    "#c43d3d",
    "#8a62b8",
    "#8c5a4b",
    "#d26cb4",
    "#6f6f6f",
    "#b5b42e",
    "#27b3c4",
)


def _e(value: Any) -> str:
    """Escape anything for HTML text or a quoted attribute."""
    return html.escape("" if value is None else str(value), quote=True)


def _mpl(text: Any) -> str:
    """A label for matplotlib: ``$`` would start mathtext (and fail on an unbalanced one)."""
    return str(text).replace("$", r"\$")


def _pct(x: float | None, digits: int = 1) -> str:
    return "–" if x is None else f"{100 * x:.{digits}f}"


# ------------------------------------------------------------------------------------------ figures


def _new_figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Figure) -> str:
    """The figure as a ``data:`` URI; PNG metadata is dropped so not even the encoder's home page is inside."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None}, facecolor="white")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _color(i: int) -> str:
    return _PALETTE[i % len(_PALETTE)]


def scatter_figure(cells: Sequence[CellIntervals], groups: Sequence[str]) -> Figure:
    """Overall safety (x) against behavioral (y) score, one point per group with 95% interval whiskers."""
    fig = _new_figure(4.4, 3.9)
    ax = fig.add_subplot()
    xs: list[float] = []
    ys: list[float] = []
    for i, group in enumerate(groups):
        cell = find_cell(cells, group)
        if cell is None or cell.safety is None or cell.behavioral is None:
            continue
        sx, by = cell.safety, cell.behavioral
        ax.errorbar(
            100 * sx.point,
            100 * by.point,
            xerr=[[100 * (sx.point - sx.low)], [100 * (sx.high - sx.point)]],
            yerr=[[100 * (by.point - by.low)], [100 * (by.high - by.point)]],
            fmt="o",
            ms=8,
            color=_color(i),
            ecolor=_color(i),
            elinewidth=1.2,
            capsize=3,
            alpha=0.9,
            label=_mpl(group),
        )
        xs += [100 * sx.low, 100 * sx.high]
        ys += [100 * by.low, 100 * by.high]
    if xs:
        ax.set_xlim(max(0.0, min(xs) - 5), min(100.0, max(xs) + 5))
        ax.set_ylim(max(0.0, min(ys) - 5), min(100.0, max(ys) + 5))
        ax.legend(
            loc="upper center",
            bbox_to_anchor=(0.5, -0.16),
            ncol=1 if len(groups) > 3 else len(groups),
            frameon=False,
            fontsize=8,
        )
    ax.set_xlabel("Safety score (%)")
    ax.set_ylabel("Behavioral score (%)")
    ax.set_title("Safety vs behavioral, per model · method", fontsize=10)
    ax.grid(True, alpha=0.3)
    return fig


def sar_figure(cells: Sequence[CellIntervals], groups: Sequence[str]) -> Figure:
    """SAR per scenario (and overall) with one panel per split, one bar per group, 95% interval whiskers."""
    scenarios = list(dict.fromkeys(c.scenario for c in cells))
    # Narrow enough to sit beside the scatter for two or three scenarios; more scenarios wrap below it.
    fig = _new_figure(
        min(14.0, max(6.4, 0.75 + 0.35 * len(scenarios) * len(SPLIT_ORDER) * (0.6 + 0.4 * len(groups)))), 3.9
    )
    axes = fig.subplots(1, len(SPLIT_ORDER), sharey=True, squeeze=False)[0]
    width = 0.8 / max(1, len(groups))
    for ax, split in zip(axes, SPLIT_ORDER):
        for gi, group in enumerate(groups):
            xs, hs, lo, hi = [], [], [], []
            for si, scenario in enumerate(scenarios):
                cell = next(
                    (c for c in cells if c.group == group and c.scenario == scenario and c.split == split), None
                )
                if cell is None or cell.sar is None:
                    continue
                xs.append(si - 0.4 + width * (gi + 0.5))
                hs.append(100 * cell.sar.point)
                lo.append(100 * (cell.sar.point - cell.sar.low))
                hi.append(100 * (cell.sar.high - cell.sar.point))
            ax.bar(
                xs,
                hs,
                width=width * 0.92,
                color=_color(gi),
                yerr=[lo, hi],
                capsize=2,
                error_kw={"elinewidth": 0.9},
                label=_mpl(group),
            )
        ax.set_xticks(
            range(len(scenarios)),
            [_mpl("pooled" if s == ALL else s) for s in scenarios],
            rotation=30 if len(scenarios) > 4 else 0,
            fontsize=8,
        )
        ax.set_title(f"{split} prompts" if split != "all" else "all prompts", fontsize=9)
        ax.set_ylim(0, 100)
        ax.grid(True, axis="y", alpha=0.3)
    axes[0].set_ylabel("SAR (%)")
    if len(groups) > 1:
        fig.legend(
            *axes[0].get_legend_handles_labels(),
            loc="outside lower center",
            ncol=min(len(groups), 3),
            frameon=False,
            fontsize=8,
        )
    return fig


def alpha_figure(sweep: Mapping[str, Sequence[AlphaPoint]], alpha: float | None = None) -> Figure:
    """SAR against α for each group (the paper's Figure 10), with the run's own α marked."""
    fig = _new_figure(4.6, 3.9)
    ax = fig.add_subplot()
    for i, (group, points) in enumerate(sweep.items()):
        shown = [p for p in points if p.sar is not None]
        ax.plot(
            [p.alpha for p in shown],
            [100 * p.sar for p in shown],  # type: ignore[operator]
            marker="o",
            ms=3.5,
            lw=1.6,
            color=_color(i),
            label=_mpl(group),
        )
    if alpha is not None:
        ax.axvline(alpha, color="#333", lw=0.8, ls="--")
        ax.annotate(
            f"run's α = {alpha:g}", (alpha, 2), xytext=(4, 0), textcoords="offset points", fontsize=7, color="#333"
        )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 100)
    ax.set_xticks([i / 10 for i in range(11)], [f"{i / 10:g}" for i in range(11)], fontsize=8)
    ax.set_xlabel("α (share of s kept for a safe answer whatever its behavior)")
    ax.set_ylabel("SAR (%)")
    ax.set_title("SAR as a function of α, per model · method", fontsize=10)
    ax.grid(True, alpha=0.3)
    if sweep:
        ax.legend(
            loc="upper center",
            bbox_to_anchor=(0.5, -0.18),
            ncol=1 if len(sweep) > 3 else len(sweep),
            frameon=False,
            fontsize=8,
        )
    return fig


def spec_bar_figure(rates: Sequence[SpecRate], scenario: str, groups: Sequence[str]) -> Figure:
    """Stacked horizontal YES / NA / NO shares per spec of one scenario, one panel per group."""
    mine = [r for r in rates if r.scenario == scenario]
    shown = [g for g in groups if any(r.group == g for r in mine)]
    specs = list(dict.fromkeys(r.spec for r in mine))
    kinds = {r.spec: r.kind for r in mine}
    cols = min(3, max(1, len(shown)))
    rows = -(-len(shown) // cols) if shown else 1
    fig = _new_figure(1.6 + 3.6 * cols, (0.9 + 0.24 * len(specs)) * rows + 0.4)
    axes = fig.subplots(rows, cols, squeeze=False, sharey=True).ravel()
    for ax, group in zip(axes, shown):
        by_spec = {r.spec: r for r in mine if r.group == group}
        left = [0.0] * len(specs)
        for label in ("YES", "NA", "NO"):
            widths = [100 * by_spec[s].rate(label) if s in by_spec else 0.0 for s in specs]
            ax.barh(range(len(specs)), widths, left=left, color=LABEL_COLORS[label], height=0.78, label=label)
            left = [a + b for a, b in zip(left, widths)]
        ax.set_yticks(range(len(specs)), [_mpl(s) for s in specs], fontsize=8)
        for tick, spec in zip(ax.get_yticklabels(), specs):
            tick.set_color("#8a2a24" if kinds.get(spec) == "safety" else "#1d4f7a")
        first_behavioral = next((i for i, s in enumerate(specs) if kinds.get(s) == "behavioral"), None)
        if first_behavioral:
            ax.axhline(first_behavioral - 0.5, color="#333", lw=0.8, ls="--")
        ax.set_xlim(0, 100)
        ax.invert_yaxis()
        ax.set_title(_mpl(group), fontsize=9)
        ax.set_xlabel("% of verdicts", fontsize=8)
        ax.tick_params(axis="x", labelsize=8)
    for ax in axes[len(shown) :]:
        ax.set_visible(False)
    fig.suptitle(_mpl(f"{scenario}: verdicts per spec (safety in red, behavioral in blue)"), fontsize=10)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncol=3, frameon=False, fontsize=8)
    return fig


# ------------------------------------------------------------------------------------------- HTML


_CSS = """
:root { --fg:#1d2125; --muted:#5b6570; --line:#dde1e6; --bg:#f6f7f9; --yes:#3a8a4f; --na:#b9bec6; --no:#c8423b; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: var(--fg); background: var(--bg); }
main { max-width: 1360px; margin: 0 auto; padding: 20px 28px 60px; }
h1 { font-size: 22px; margin: 4px 0 6px; } h2 { font-size: 18px; margin: 30px 0 10px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
h3 { font-size: 15px; margin: 18px 0 8px; }
.meta { color: var(--muted); display: flex; flex-wrap: wrap; gap: 6px 14px; font-size: 13px; }
.meta b { color: var(--fg); font-weight: 600; }
section.card { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 14px 18px; margin: 14px 0; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: #eef1f4; font-weight: 600; position: sticky; top: 0; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.overall td { font-weight: 600; background: #f7f9fb; }
.ci { color: var(--muted); font-size: 11px; }
.figs { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }
.figs img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 6px; background: #fff; }
.badge { display: inline-block; padding: 0 7px; border-radius: 10px; font-size: 11px; font-weight: 600; color: #fff; line-height: 18px; }
.badge.passed, .badge.YES, .badge.pass { background: var(--yes); }
.badge.failed, .badge.NO, .badge.fail { background: var(--no); }
.badge.error { background: #7a5b00; } .badge.NA { background: var(--na); color: #222; }
.stack { display: flex; height: 12px; min-width: 120px; border-radius: 3px; overflow: hidden; background: #eee; }
.stack span { display: block; height: 100%; } .stack .y { background: var(--yes); } .stack .a { background: var(--na); } .stack .n { background: var(--no); }
.filters { display: flex; flex-wrap: wrap; gap: 10px 16px; align-items: center; margin-bottom: 10px; position: sticky; top: 0; background: #fff; padding: 8px 0; z-index: 2; }
.filters label { font-size: 12px; color: var(--muted); display: flex; flex-direction: column; gap: 2px; }
.filters select { font: inherit; padding: 3px 6px; max-width: 320px; }
.filters button { font: inherit; padding: 4px 10px; border: 1px solid var(--line); border-radius: 5px; background: #f3f5f7; cursor: pointer; }
#f-count { margin-left: auto; color: var(--muted); font-size: 13px; }
details.case { border: 1px solid var(--line); border-radius: 6px; margin: 4px 0; background: #fff; }
details.case > summary { cursor: pointer; list-style: none; display: grid; grid-template-columns: 70px minmax(140px, 1.3fr) 110px minmax(120px, 1fr) 70px 60px minmax(140px, 1.6fr); gap: 8px; padding: 6px 10px; align-items: center; font-size: 13px; }
details.case > summary::-webkit-details-marker { display: none; }
details.case[open] > summary { background: #f3f6f9; border-bottom: 1px solid var(--line); }
.case-head { display: grid; grid-template-columns: 70px minmax(140px, 1.3fr) 110px minmax(120px, 1fr) 70px 60px minmax(140px, 1.6fr); gap: 8px; padding: 4px 11px; font-size: 12px; color: var(--muted); font-weight: 600; }
.case-body { padding: 10px 14px 14px; }
.case-body h4 { margin: 10px 0 4px; font-size: 12px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); }
pre { white-space: pre-wrap; word-break: break-word; background: #f7f8fa; border: 1px solid var(--line); border-radius: 5px; padding: 8px 10px; margin: 0; font: 12.5px/1.45 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; max-height: 420px; overflow: auto; }
pre.error { background: #fff4f2; border-color: #f0c4bf; }
details.thought > summary { cursor: pointer; color: var(--muted); font-size: 12px; margin: 10px 0 4px; }
.spec-ids { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12px; color: var(--no); }
.sv { color: #8a2a24; font-weight: 700; } .bm { color: #1d4f7a; }
.muted { color: var(--muted); }
.warn { color: #8a4b00; font-weight: 600; }
.small { font-size: 12px; }
"""

_JS = """
(function () {
  var ids = ["f-group", "f-scenario", "f-split", "f-status", "f-spec"];
  var controls = ids.map(function (id) { return document.getElementById(id); });
  var cases = Array.prototype.slice.call(document.querySelectorAll("details.case"));
  function apply() {
    var v = controls.map(function (c) { return c ? c.value : ""; });
    var shown = 0;
    cases.forEach(function (el) {
      var d = el.dataset;
      var ok = (!v[0] || d.group === v[0]) && (!v[1] || d.scenario === v[1]) && (!v[2] || d.split === v[2]) &&
               (!v[3] || d.status === v[3]) && (!v[4] || d.no.split("\\n").indexOf(v[4]) >= 0);
      el.hidden = !ok;
      if (ok) { shown += 1; }
    });
    document.getElementById("f-count").textContent = shown + " of " + cases.length + " cases shown";
    var hash = controls.filter(function (c) { return c && c.value; })
      .map(function (c) { return encodeURIComponent(c.id) + "=" + encodeURIComponent(c.value); }).join("&");
    try { history.replaceState(null, "", hash ? "#" + hash : location.pathname + location.search); } catch (e) { /* file: URLs in some browsers */ }
  }
  // A filtered view is shareable: #f-scenario=Child&f-status=failed preselects the filters.
  location.hash.replace(/^#/, "").split("&").forEach(function (kv) {
    var i = kv.indexOf("="), c = i > 0 ? document.getElementById(decodeURIComponent(kv.slice(0, i))) : null;
    if (c && controls.indexOf(c) >= 0) { c.value = decodeURIComponent(kv.slice(i + 1)); }
  });
  controls.forEach(function (c) { if (c) { c.addEventListener("change", apply); } });
  function openAll(state) { cases.forEach(function (el) { if (!el.hidden) { el.open = state; } }); }
  document.getElementById("f-expand").addEventListener("click", function () { openAll(true); });
  document.getElementById("f-collapse").addEventListener("click", function () { openAll(false); });
  document.getElementById("f-reset").addEventListener("click", function () {
    controls.forEach(function (c) { if (c) { c.value = ""; } }); apply();
  });
  apply();
})();
"""


def _ci(iv: Interval | None) -> str:
    if iv is None:
        return "–"
    return f'{_pct(iv.point)} <span class="ci">[{_pct(iv.low)}, {_pct(iv.high)}]</span>'


def _settings_html(report: Mapping[str, Any]) -> str:
    s = report.get("settings") or {}
    na = {"paper": "NA excluded from r (paper)", "miss": "NA counts as a miss (authors' code)"}.get(
        str(s.get("na_policy")), s.get("na_policy")
    )
    items = [
        ("model", s.get("model")),
        ("method", s.get("method")),
        ("judge", f"{s.get('judge')} ({s.get('judge_format')}, {s.get('judge_mode')})" if s.get("judge") else None),
        ("prompt", s.get("prompt")),
        ("alpha", s.get("alpha")),
        ("NA", na),
        ("seed", s.get("seed")),
        ("temperature", s.get("temperature")),
        ("max tokens", s.get("max_tokens")),
    ]
    parts = [f"<span>{_e(k)} <b>{_e(v)}</b></span>" for k, v in items if v is not None]
    parts.append(f"<span>pytest-specbench <b>{_e(report.get('version', ''))}</b></span>")
    return '<div class="meta">' + "".join(parts) + "</div>"


def _summary_html(summary: RunSummary) -> str:
    cells, groups = summary.intervals, summary.groups
    rows_by_key = {(r.group, r.scenario, r.split): r.to_dict() for r in summary.rows}
    level = summary.level
    note = (
        f'<p class="muted small">Percentages with {100 * level:.0f}% bootstrap confidence intervals in brackets '
        "(percentile bootstrap, resampling within scenario and split). Errored cases are counted but not scored.</p>"
    )
    out = [note]
    for group in groups:
        if len(groups) > 1:
            out.append(f"<h3>{_e(group)}</h3>")
        out.append(
            '<table><thead><tr><th>scenario</th><th>split</th><th class="num">cases</th><th class="num">errors</th>'
            '<th class="num">safety %</th><th class="num">behavioral %</th><th class="num">SAR %</th><th class="num">tokens</th></tr></thead><tbody>'
        )
        for c in (c for c in cells if c.group == group):
            row = rows_by_key.get((group, c.scenario, c.split), {})
            tokens = row.get("tokens")
            css = ' class="overall"' if c.split == "all" else ""

            def tr(
                name: str,
                safety: str,
                behavioral: str,
                sar: str,
                css: str = css,
                c: Any = c,
                row: dict[str, Any] = row,
                tokens: Any = tokens,
            ) -> str:
                return (
                    f"<tr{css}><td>{_e(name)}</td><td>{_e(c.split)}</td>"
                    f'<td class="num">{_e(row.get("cases", c.n))}</td><td class="num">{_e(row.get("errors", ""))}</td>'
                    f'<td class="num">{safety}</td><td class="num">{behavioral}</td><td class="num">{sar}</td>'
                    f'<td class="num">{"–" if tokens is None else _e(f"{tokens:.0f}")}</td></tr>'
                )

            avg = summary.average(group, c.split) if c.scenario == ALL else None
            if c.scenario != ALL:
                out.append(tr(c.scenario, _ci(c.safety), _ci(c.behavioral), _ci(c.sar)))
            elif avg is None or avg.equal:  # equal sizes: the mean over scenarios is the pooled mean
                out.append(tr(AVG_LABEL, _ci(c.safety), _ci(c.behavioral), _ci(c.sar)))
            else:
                out.append(tr(AVG_LABEL, _pct(avg.safety), _pct(avg.behavioral), _pct(avg.sar)))
                out.append(tr(POOLED_LABEL, _ci(c.safety), _ci(c.behavioral), _ci(c.sar)))
        out.append("</tbody></table>")
        out.append(_facts_html(summary.facts.get(group)))
    if summary.multi_scenario:
        unequal = not all(a.equal for a in summary.averages)
        out.append(f'<p class="muted small">{_e(AVG_NOTE + (POOLED_NOTE if unequal else ""))}</p>')
    return "".join(out)


def _facts_html(facts: GroupFacts | None) -> str:
    """Under a group's table: generations cut at the token limit, and a warning when the grader selected."""
    if facts is None:
        return ""
    cut = f"{facts.length_stops} of {facts.generations} generation(s) stopped at the max-token limit ({facts.length_answers} final answer(s))"
    parts = [f'<span class="{"warn" if facts.length_stops else "muted"}">{_e(cut)}</span>']
    if facts.selectors:
        parts.append(f"<span>answers selected by <b>{_e(', '.join(facts.selectors))}</b></span>")
    if facts.selection_note:
        parts.append(f'<span class="badge fail">{_e(facts.selection_note)}</span>')
    return '<p class="small facts">' + " · ".join(parts) + "</p>"


def _alpha_table_html(sweep: Mapping[str, Sequence[AlphaPoint]]) -> str:
    groups = list(sweep)
    alphas = [p.alpha for p in next(iter(sweep.values()), [])]
    head = "".join(f'<th class="num">{_e(g)}</th>' for g in groups)
    rows = "".join(
        f'<tr><td class="num">{a:.1f}</td>'
        + "".join(f'<td class="num">{_pct(sweep[g][i].sar)}</td>' for g in groups)
        + "</tr>"
        for i, a in enumerate(alphas)
    )
    return (
        f'<details><summary class="small">SAR % at each α (mean over scenarios)</summary><table><thead><tr><th class="num">α</th>{head}</tr></thead>'
        f"<tbody>{rows}</tbody></table></details>"
    )


def _gates_html(report: Mapping[str, Any]) -> str:
    gates = report.get("gates") or []
    if not gates:
        return ""
    grouped = any(g.get("group") for g in gates)
    rows = []
    for g in gates:
        value = g.get("value")
        on = g.get("on")
        threshold = f"{float(g.get('threshold') or 0):.3f}"
        rows.append(
            f'<tr><td><span class="badge {"pass" if g.get("passed") else "fail"}">{"passed" if g.get("passed") else "FAILED"}</span></td>'
            f"<td>{_e(g.get('metric'))}</td><td>{_e(g.get('scenario') or 'overall')}</td>"
            + (f"<td>{_e(g.get('group'))}</td>" if grouped else "")
            + f"<td>{_e(on or 'point')}</td>"
            f'<td class="num">{"–" if value is None else _e(f"{value:.3f}")}</td><td class="num">≥ {_e(threshold)}</td></tr>'
        )
    return (
        "<h3>Gates</h3><table><thead><tr><th></th><th>metric</th><th>scope</th>"
        + ("<th>group</th>" if grouped else "")
        + "<th>compared</th>"
        '<th class="num">value</th><th class="num">threshold</th></tr></thead><tbody>'
        + "".join(rows)
        + "</tbody></table>"
    )


def _paired_html(deltas: Sequence[PairedDelta], facts: Mapping[str, GroupFacts]) -> str:
    if not deltas:
        return ""
    rows = []
    for d in deltas:
        iv = d.interval
        text = (
            "–"
            if iv is None
            else f'{100 * iv.point:+.1f} <span class="ci">[{100 * iv.low:+.1f}, {100 * iv.high:+.1f}]</span>'
        )
        if iv is None:
            clear = ""
        elif iv.n < MIN_CASES_FOR_CLAIM:
            clear = f"only {iv.n} paired case(s): too few to read the interval"
        else:
            clear = "interval excludes 0" if iv.low > 0 or iv.high < 0 else ""
        note = facts[d.group].selection_note if d.group in facts else None
        if note:
            clear = f"{clear}; {note}" if clear else note
        rows.append(
            f"<tr><td>{_e(d.group)}</td><td>{_e(d.reference)}</td><td>{_e('overall' if d.scenario == ALL else d.scenario)}</td>"
            f'<td class="num">{"–" if iv is None else iv.n}</td><td class="num">{text}</td><td class="small muted">{_e(clear)}</td></tr>'
        )
    return (
        "<h3>Paired ΔSAR on the same cases</h3><table><thead><tr><th>group</th><th>minus</th><th>scenario</th>"
        '<th class="num">cases</th><th class="num">ΔSAR points</th><th></th></tr></thead><tbody>'
        + "".join(rows)
        + "</tbody></table>"
    )


def _baseline_html(comparison: Mapping[str, Any] | None) -> str:
    """Render :meth:`baseline.Comparison.to_dict` when the plugin stored it under the report's ``baseline`` key."""
    if not comparison:
        return ""
    flips = ", ".join(f"{_e(k)}: {_e(v)}" for k, v in (comparison.get("flips") or {}).items()) or "none"
    rows = []
    for d in comparison.get("deltas") or ():
        delta = d.get("delta")
        rows.append(
            f"<tr><td>{_e(d.get('group'))}</td><td>{_e('overall' if d.get('scenario') == ALL else d.get('scenario'))}</td>"
            f'<td class="num">{_e(d.get("n"))}</td><td class="num">{_pct(d.get("sar_before"))}</td><td class="num">{_pct(d.get("sar_after"))}</td>'
            f'<td class="num">{"–" if delta is None else f"{100 * delta:+.1f}"}</td></tr>'
        )
    items = []
    for w in comparison.get("worse") or ():
        flipped = ", ".join(
            f"{f.get('spec')} {f.get('before')}→{f.get('after')}" for f in w.get("flips") or () if f.get("worse")
        )
        items.append(
            f'<li><b>{_e(w.get("scenario"))}::{_e(w.get("case_id"))}</b> <span class="muted">{_e(w.get("group"))}</span> '
            f'<span class="spec-ids">{_e(flipped)}</span></li>'
        )
    worse = "".join(items)
    return (
        f'<h3>Against baseline {_e(comparison.get("baseline"))}</h3><p class="small">Verdict flips: {flips}.</p>'
        '<table><thead><tr><th>group</th><th>scenario</th><th class="num">common cases</th><th class="num">SAR before %</th>'
        '<th class="num">SAR now %</th><th class="num">Δ points</th></tr></thead><tbody>'
        + "".join(rows)
        + "</tbody></table>"
        + (f'<h4>Cases whose verdicts got worse</h4><ul class="small">{worse}</ul>' if worse else "")
    )


def _spec_table_html(rates: Sequence[SpecRate], scenario: str, groups: Sequence[str], texts: Mapping[str, str]) -> str:
    mine = [r for r in rates if r.scenario == scenario]
    shown = [g for g in groups if any(r.group == g for r in mine)]
    head = "".join(f'<th>{_e(g)}<br><span class="ci">YES / NA / NO %</span></th>' for g in shown)
    rows = []
    for spec in dict.fromkeys(r.spec for r in mine):
        kind = next(r.kind for r in mine if r.spec == spec)
        cells = []
        for g in shown:
            r = next((x for x in mine if x.group == g and x.spec == spec), None)
            if r is None:
                cells.append("<td>–</td>")
                continue
            y, a, n = (100 * r.rate(k) for k in ("YES", "NA", "NO"))
            cells.append(
                f'<td><div class="stack" title="YES {y:.0f}% · NA {a:.0f}% · NO {n:.0f}% (n={r.n})">'
                f'<span class="y" style="width:{y:.2f}%"></span><span class="a" style="width:{a:.2f}%"></span><span class="n" style="width:{n:.2f}%"></span></div>'
                f'<span class="ci">{y:.0f} / {a:.0f} / {n:.0f}</span></td>'
            )
        rows.append(
            f"<tr><td><b>{_e(spec)}</b></td><td>{_e(kind)}</td><td>{_e(texts.get(spec, ''))}</td>{''.join(cells)}</tr>"
        )
    return (
        f'<details><summary class="small">Spec texts and rates for {_e(scenario)}</summary><table><thead><tr><th>spec</th><th>kind</th>'
        f"<th>text</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></details>"
    )


def _no_keys(record: Mapping[str, Any]) -> list[str]:
    return [f"{record['scenario']}/{v['spec']}" for v in record.get("verdicts") or () if v.get("label") == "NO"]


def _case_html(record: Mapping[str, Any], texts: Mapping[str, str]) -> str:
    status = case_status(record)
    score = record.get("score") or {}
    nos = [(str(v["spec"]), v.get("kind")) for v in record.get("verdicts") or () if v.get("label") == "NO"]
    no_html = " ".join(f'<span class="{"sv" if kind == "safety" else "bm"}">{_e(spec)}</span>' for spec, kind in nos)
    attrs = {
        "data-group": record.get("group"),
        "data-scenario": record.get("scenario"),
        "data-split": record.get("label"),
        "data-status": status,
        "data-no": "\n".join(_no_keys(record)),
    }
    attr = " ".join(f'{k}="{_e(v)}"' for k, v in attrs.items())
    s = score.get("s")
    summary = (
        f'<summary><span><span class="badge {_e(status)}">{_e(status)}</span></span><span>{_e(record.get("group"))}</span>'
        f"<span>{_e(record.get('scenario'))}</span><span>{_e(record.get('case_id'))}</span><span>{_e(record.get('label'))}</span>"
        f'<span class="num">{"–" if s is None else f"{s:.2f}"}</span><span class="spec-ids">{no_html}</span></summary>'
    )
    body = [f"<h4>Prompt</h4><pre>{_e(record.get('prompt'))}</pre>"]
    if record.get("error"):
        body.append(
            f'<h4>Error ({_e(record.get("error_stage") or "unknown stage")})</h4><pre class="error">{_e(record.get("error"))}</pre>'
        )
    response = _e(record.get("response")) or '<span class="muted">(none)</span>'
    body.append(f"<h4>Response</h4><pre>{response}</pre>")
    if record.get("thought"):
        body.append(
            f'<details class="thought"><summary>Thought ({len(str(record["thought"]))} characters)</summary><pre>{_e(record["thought"])}</pre></details>'
        )
    verdicts = record.get("verdicts") or ()
    if verdicts:
        rows = "".join(
            f'<tr><td><b>{_e(v.get("spec"))}</b></td><td>{_e(v.get("kind"))}</td><td><span class="badge {_e(v.get("label"))}">{_e(v.get("label"))}</span></td>'
            f'<td>{_e(v.get("reason"))}</td><td class="muted">{_e(texts.get(str(v.get("spec")), ""))}</td><td class="muted small">{_e(v.get("decided_by"))}</td></tr>'
            for v in verdicts
        )
        body.append(
            f"<h4>Verdicts</h4><table><thead><tr><th>spec</th><th>kind</th><th>label</th><th>reason</th><th>spec text</th><th>by</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    facts = [
        ("risk", score.get("risk")),
        ("r", None if score.get("r") is None else f"{score['r']:.3f}"),
        ("applicable", score.get("applicable")),
        ("tokens", record.get("tokens")),
        ("finish", record.get("finish_reason")),
        ("judge attempts", record.get("judge_attempts")),
        ("test", record.get("nodeid")),
    ]
    body.append(
        '<p class="meta small">'
        + "".join(f"<span>{_e(k)} <b>{_e(v)}</b></span>" for k, v in facts if v is not None)
        + "</p>"
    )
    return f'<details class="case" {attr}>{summary}<div class="case-body">{"".join(body)}</div></details>'


def _select(id_: str, label: str, options: Iterable[tuple[str, str]]) -> str:
    opts = "".join(f'<option value="{_e(v)}">{_e(t)}</option>' for v, t in options)
    return f'<label for="{id_}">{_e(label)}<select id="{id_}"><option value="">all</option>{opts}</select></label>'


#: Cases the case browser lists one by one. Beyond a few thousand expandable rows a browser tab slows to
#: a crawl, and a reader looks at failures first; the JSON report and the CSV table hold every case.
MAX_LISTED_CASES = 2000
_LIST_ORDER = {"error": 0, "failed": 1, "passed": 2}


def listed_positions(records: Sequence[Mapping[str, Any]], limit: int | None = None) -> list[int]:
    """Positions (in ``records``) of the cases the case browser lists: all of them in run order when they
    fit in ``limit`` (default :data:`MAX_LISTED_CASES`), else the first ``limit`` of errored, then failed,
    then passed, each in run order."""
    limit = MAX_LISTED_CASES if limit is None else limit
    if len(records) <= limit:
        return list(range(len(records)))
    ranked = sorted(range(len(records)), key=lambda n: _LIST_ORDER.get(case_status(records[n]), 3))
    return ranked[:limit]


def _cases_html(
    records: Sequence[Mapping[str, Any]],
    listed: Iterable[Mapping[str, Any]],
    spec_texts: SpecTexts,
    groups: Sequence[str],
) -> list[str]:
    """The case browser, in pieces to be joined without a separator: filters built from every record,
    then one expandable row per ``listed`` record."""
    scenarios = list(dict.fromkeys(str(r["scenario"]) for r in records))
    spec_kind: dict[str, tuple[str, str, str]] = {}
    violated: set[str] = set()
    for r in records:
        for v in r.get("verdicts") or ():
            key = f"{r['scenario']}/{v['spec']}"
            if key not in spec_kind:
                spec_kind[key] = (str(r["scenario"]), str(v["spec"]), v.get("kind", ""))
            if v.get("label") == "NO":
                violated.add(key)
    spec_options = []
    for key in (k for k in spec_kind if k in violated):
        scenario, spec, kind = spec_kind[key]
        text = spec_texts.get(scenario, {}).get(spec, "")
        spec_options.append((key, f"{scenario} · {spec} ({kind}){' — ' + text[:60] if text else ''}"))
    filters = (
        '<div class="filters">'
        + (_select("f-group", "model · method", [(g, g) for g in groups]) if len(groups) > 1 else "")
        + _select("f-scenario", "scenario", [(s, s) for s in scenarios])
        + _select("f-split", "split", [("unsafe", "unsafe"), ("safe", "safe")])
        + _select("f-status", "outcome", [("passed", "passed"), ("failed", "failed"), ("error", "error")])
        + _select("f-spec", "spec judged NO", spec_options)
        + '<button type="button" id="f-expand">expand all</button><button type="button" id="f-collapse">collapse all</button>'
        + '<button type="button" id="f-reset">reset</button><span id="f-count"></span></div>'
    )
    rows = [_case_html(r, spec_texts.get(str(r["scenario"]), {})) for r in listed]
    note = ""
    if len(rows) < len(records):
        note = (
            f'<p class="small muted">Listed here: {len(rows):,} of {len(records):,} cases (errored first, then '
            "failed, then passed, each in run order); the filters and counts below apply to the listed ones. "
            "The JSON report and the CSV table hold every case.</p>"
        )
    head = (
        '<div class="case-head"><span>outcome</span><span>model · method</span><span>scenario</span><span>case</span>'
        '<span>split</span><span>s</span><span>specs judged NO (<span class="sv">safety</span>, <span class="bm">behavioral</span>)</span></div>'
    )
    return [note + filters + head, *rows]


def render_html(
    report: Mapping[str, Any],
    spec_texts: SpecTexts | None = None,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    title: str | None = None,
    summary: RunSummary | None = None,
    listed: Iterable[Mapping[str, Any]] | None = None,
) -> str:
    """The report as one HTML string (see the module docstring for what "self-contained" promises).

    Arguments as for :func:`html_parts`.
    """
    return "\n".join(
        part if isinstance(part, str) else "".join(part)
        for part in html_parts(report, spec_texts, resamples=resamples, title=title, summary=summary, listed=listed)
    )


def html_parts(
    report: Mapping[str, Any],
    spec_texts: SpecTexts | None = None,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    title: str | None = None,
    summary: RunSummary | None = None,
    listed: Iterable[Mapping[str, Any]] | None = None,
) -> list[str | list[str]]:
    """The report's HTML in parts: the text is the parts joined by newlines, a part that is a list being
    its pieces joined without one. :func:`write_html` writes them one by one, so the case browser's
    thousands of rows are never copied into one string.

    ``report`` is the JSON report dict. The numbers come from ``summary`` when the caller has it (the
    plugin passes the one its session finish computed); otherwise from the report's stored intervals, or,
    for a report without them, computed from its cases with the run's seed and ``resamples``. ``listed``
    are the full records of the cases the case browser shows, in that order, read once (the plugin streams
    them from its case store, whose ``report["cases"]`` are slim); by default those at :func:`listed_positions`.
    """
    records: Sequence[Mapping[str, Any]] = report.get("cases") or []
    texts: SpecTexts = spec_texts or {}
    if summary is None:
        summary = RunSummary.from_report(report, resamples=resamples)
    groups = summary.groups
    cells = summary.intervals
    rates = summary.spec_rates
    scenarios = list(dict.fromkeys(str(r["scenario"]) for r in records))
    title = title or "SpecBench report"
    run_alpha = (report.get("settings") or {}).get("alpha")
    run_alpha = float(run_alpha) if isinstance(run_alpha, (int, float)) else None

    figures = ""
    spec_sections = ""
    if records and any(c.sar is not None for c in cells):
        figures = (
            '<div class="figs">'
            f'<img alt="Safety against behavioral score per model and method" src="{_png(scatter_figure(cells, groups))}">'
            f'<img alt="SAR per scenario and split" src="{_png(sar_figure(cells, groups))}">'
            f'<img alt="SAR as a function of alpha" src="{_png(alpha_figure(summary.alpha_sweep, run_alpha))}">'
            "</div>" + _alpha_table_html(summary.alpha_sweep)
        )
    for scenario in scenarios:
        if any(r.scenario == scenario for r in rates):
            spec_sections += (
                f'<h3>{_e(scenario)}</h3><div class="figs"><img alt="Verdicts per spec in {_e(scenario)}" '
                f'src="{_png(spec_bar_figure(rates, scenario, groups))}"></div>'
                + _spec_table_html(rates, scenario, groups, texts.get(scenario, {}))
            )
    n_err = sum(1 for r in records if case_status(r) == "error")
    parts: list[str | list[str]] = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><main>",
        f"<h1>{_e(title)}</h1>",
        _settings_html(report),
        f'<p class="small muted">{len(records)} case records, {len(groups)} model · method group(s), {len(scenarios)} scenario(s), {n_err} errored.</p>',
        '<section class="card"><h2>Summary</h2>',
        _summary_html(summary) if records else "<p>No cases were run.</p>",
        _gates_html(report),
        _paired_html(summary.deltas, summary.facts),
        _baseline_html(report.get("baseline")),
        "</section>",
    ]
    if figures:
        parts += ['<section class="card"><h2>Figures</h2>', figures, "</section>"]
    if spec_sections:
        parts += ['<section class="card"><h2>Verdicts per spec</h2>', spec_sections, "</section>"]
    if records:
        parts += [
            '<section class="card"><h2>Cases</h2>',
            _cases_html(
                records,
                listed if listed is not None else [records[n] for n in listed_positions(records)],
                texts,
                groups,
            ),
            "</section>",
            f"<script>{_JS}</script>",
        ]
    parts.append("</main></body></html>")
    return parts


def write_html(
    report: Mapping[str, Any],
    path: Path | str,
    spec_texts: SpecTexts | None = None,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    summary: RunSummary | None = None,
    listed: Iterable[Mapping[str, Any]] | None = None,
) -> None:
    """Write :func:`render_html`'s text to ``path`` atomically, part by part (see :func:`html_parts`).

    A folder that does not exist is a :class:`~pytest_specbench.errors.ConfigError` (the user's option
    names a place we cannot write), raised before any figure is drawn.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise ConfigError(f"{path}: the folder {path.parent} does not exist; create it or choose another path")
    parts = html_parts(report, spec_texts, resamples=resamples, summary=summary, listed=listed)
    with atomic_open(path) as fh:
        for n, part in enumerate(parts):
            if n:
                fh.write("\n")
            fh.writelines([part] if isinstance(part, str) else part)
