"""The self-contained HTML report of a run or sweep folder (`peel report DIR`).

`write_report(folder)` reads the folder's result files, draws the plots with matplotlib (Agg),
writes a plain-language reading computed from the numbers, and writes `<folder>/report/report.html`
(every plot embedded as a PNG data URI, inline CSS, no script, no network) with each plot also
saved as a PNG beside it.
"""

from __future__ import annotations

from pathlib import Path

from experiments.report.load import ReportError

__all__ = ["ReportError", "write_report"]


def write_report(path: Path, **kwargs) -> Path:
    # matplotlib loads only when a report is written, not with every `peel` command.
    from experiments.report.build import write_report as build

    return build(path, **kwargs)
