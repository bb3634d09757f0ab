"""Reports and statistics built from the plain case records of a run (the JSON report's ``cases``).

Pure functions over dicts, so they work the same on the controller under xdist, on a report read back
from disk, and in a notebook::

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
    """The reporting keys to merge into the JSON report: ``intervals``, ``paired_deltas``, ``spec_rates``.

    Kept here so the plugin adds all of them with one call and one import.
    """
    from .stats import DEFAULT_RESAMPLES, bootstrap_summary, paired_deltas
    from .tables import spec_rates

    b = resamples or DEFAULT_RESAMPLES
    return {
        "intervals": [c.to_dict() for c in bootstrap_summary(records, resamples=b, seed=seed, stratify=stratify)],
        "paired_deltas": [d.to_dict() for d in paired_deltas(records, resamples=b, seed=seed, stratify=stratify)],
        "spec_rates": [r.to_dict() for r in spec_rates(records)],
    }
