"""Reports and statistics built from the plain case records of a run (the JSON report's ``cases``).

Pure functions over dicts, so they work the same on the controller under xdist, on a report read back
from disk, and in a notebook::

    run        the run summary: every aggregate, computed once, rendered by every output
    stats      bootstrap intervals for SAR / safety / behavioral, paired ΔSAR, point-or-lower-bound gates
    tables     per-spec YES / NA / NO rates; the long verdict table as CSV or Parquet (pandas)
    baseline   spec flips, ΔSAR and worse cases against a previous report
    html       one self-contained HTML file with matplotlib figures and a filterable case browser

This package root imports nothing: numpy, pandas and matplotlib load only when a submodule that needs
them is imported, which the plugin does inside the hooks that write reports.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def report_extras(
    records: Sequence[Mapping[str, Any]],
    *,
    seed: int | None = 0,
    resamples: int | None = None,
    stratify: bool = True,
) -> dict[str, Any]:
    """The aggregate keys to merge into a JSON report (``intervals``, ``paired_deltas``, ``spec_rates``, …).

    One call and one import for code that has records but no run summary yet; the plugin itself builds
    its :class:`~pytest_specbench.reporting.run.RunSummary` once and reuses it for every output.
    """
    from .run import RunSummary

    return RunSummary.compute(records, resamples=resamples, seed=seed, stratify=stratify).to_report_keys()
