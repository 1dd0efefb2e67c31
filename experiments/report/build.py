"""`write_report(folder)`: read a run or sweep folder, write `<folder>/report/report.html` and
the figures as PNGs beside it (`<folder>/report/<figure>.png`).

The report has its own sub-folder so that its PNGs do not mix with the run's result files.
Every file is written to a temporary name and renamed, so a reader never sees half a report; a
figure that can no longer be drawn (e.g. its data are gone) has its old PNG removed."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from experiments.report import analytics_section, answer, hotspot_section, html, person_section, plots, poisoning, reading, tables, views
from experiments.report.load import load
from privacy.durable import replace_durably

REPORT_DIR = "report"
REPORT_FILE = "report.html"
FIGURES = ("privacy-utility", "utility-at-budget", "per-agency-utility", "epsilon-per-agency", "data-movement", "fairness-agencies", "fairness-quintiles", "utility-under-attack", person_section.NAME)


def _write_atomic(path: Path, data: bytes) -> None:
    replace_durably(path, data, private_tmp=True, sync=False)  # two reports of one folder may race


def write_report(path: Path, generated: datetime | None = None) -> Path:
    """Write the report of the run or sweep folder `path`; returns the path of report.html.
    Raises ReportError (one line naming the file) when the folder holds no results."""
    folder = Path(path)
    study = load(folder)
    focus = views.focus(study)
    figures = [*plots.all_plots(study, focus), poisoning.plot(study), *hotspot_section.plots(study), *person_section.plots(study)]
    first_screen = answer.answer(poisoning.without_attacks(study), focus)  # an attacked line is never recommended
    page = html.render(
        study,
        focus,
        [*reading.reading(poisoning.without_attacks(study), focus, full=study), *poisoning.sentences(study)],
        {"comparison": tables.comparison(study, first_screen, focus), "per-agency": tables.per_agency(study, focus), "fairness": tables.fairness(study, focus), "poisoning": poisoning.table(study)},
        figures,
        generated or datetime.now(),
        first_screen,
    )
    page = analytics_section.inline(page, [cell.summary for cell in study.cells], folder)  # peel run with an analytics: block
    out = folder / REPORT_DIR
    out.mkdir(exist_ok=True)
    for figure in figures:
        target = out / f"{figure.name}.png"
        if isinstance(figure, plots.Plot):
            _write_atomic(target, figure.png)
        else:
            target.unlink(missing_ok=True)
    _write_atomic(out / REPORT_FILE, page.encode("utf-8"))
    return out / REPORT_FILE
