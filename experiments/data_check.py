"""`peel data check CONFIG`: a dry run of a config's data in seconds, writing nothing.

It reads the records the way `peel run` would (same loaders, same agency rules, same test
months) and prints what a run would train and test on: agencies and their records, rows set
aside and why, category and label coverage, and test-set sizes, with a warning for an agency
whose test set is too small for its metrics to mean much. No torch, no Flower: a config or
data problem shows in seconds, not after the training stack has loaded.

Label shares are printed here because this runs on the operator's own machine over their own
records; nothing of it is released.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from experiments.config import PeelConfig, check_agency_names
from experiments.small_test_sets import is_small
from experiments.small_test_sets import warning as small_test_warning
from policedata.checks import require_trainable_agencies, shorten
from policedata.errors import DataError
from policedata.loader import LoadReport, load_street_folder
from policedata.schema import AGENCY, CRIME_TYPES


@dataclass
class DataCheck:
    """What `peel data check` found: lines to print, and warnings (the run could go ahead)."""

    lines: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _add_months(month: str, n: int) -> str:
    year, mon = map(int, month.split("-"))
    index = year * 12 + (mon - 1) + n
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def _records(config: PeelConfig) -> tuple[pd.DataFrame, LoadReport | None, str, str]:
    """The records a run of `config` would use, the load report (None: synthetic or
    agency folders), a description of the source and the first test month."""
    data, test_months = config.data, config.task.test_months
    if data.source == "synthetic":
        from experiments.prepare import synthetic_spec
        from policedata.synthetic import month_range, synthetic_records

        records = synthetic_records(synthetic_spec(config))
        last = month_range(data.start_month, data.months)[-1]
        what = f"synthetic: {data.agencies} agencies, {data.incidents:,} incidents over {data.months} months (seed {config.seed}), generated in memory"
        return records, None, what, _add_months(last, 1 - test_months)
    if data.source == "agencies":
        from policedata.manifest import read_manifest

        folder = Path(str(data.path))
        manifest = read_manifest(folder)
        frames = [load_street_folder(folder / a["folder"])[0] for a in manifest["agencies"]]
        records = pd.concat(frames, ignore_index=True)
        return records, None, f"agency folders in {folder}", _add_months(manifest["months"][-1], 1 - test_months)
    report: LoadReport
    if data.source == "csv":
        from experiments.own_vocabulary import load_csv

        records, report = load_csv(config)
        what = f"csv: {data.path}"
    else:
        records, report = load_street_folder(Path(str(data.path)), data.agency.column, data.agency.pattern, data.agency.unmatched)
        pattern = f" ~ {data.agency.pattern!r}" if data.agency.pattern else ""
        what = f"police_uk: {data.path} ({report.files:,} street files; agency from '{data.agency.column}'{pattern})"
    require_trainable_agencies(report.per_agency, str(data.path))
    months = sorted(records["month"].unique())
    if len(months) <= test_months:
        raise DataError(f"{data.path}: {len(months)} months of data, need more than task.test_months={test_months}")
    return records, report, what, months[-test_months]


def _share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "–"


def check(config: PeelConfig) -> DataCheck:
    """Read `config`'s data as `peel run` would and describe it. Raises DataError or
    ConfigError (one line) where a run would stop."""
    records, report, what, test_from = _records(config)
    task = config.task
    out = DataCheck()
    names = sorted(str(n) for n in records[AGENCY].unique())
    check_agency_names(config, set(names))  # privacy.budgets, faults.malicious name real agencies
    out.lines.append(f"Data: {what}")
    out.lines.append(f"Test months: {test_from} on (task.test_months={task.test_months}); task: {task.name}")

    test = (records["month"] >= test_from).to_numpy()
    has_outcome = (records["outcome"] != "").to_numpy()
    positive = records["outcome"].isin(task.positive).to_numpy()
    declared = config.data.features.categories if config.data.source == "csv" and config.data.features else None
    known, vocabulary = (declared, f"data.features.categories ({len(declared)})") if declared else (CRIME_TYPES, f"Peel's {len(CRIME_TYPES)}")
    unknown = (~records["crime_type"].isin(known)).to_numpy()
    # The outcome task learns from records with an outcome; hotspot counts every record.
    example = has_outcome if task.name == "outcome" else pd.Series(True, index=records.index).to_numpy()
    frame = pd.DataFrame({
        "agency": records[AGENCY].to_numpy(), "records": 1, "train": example & ~test, "test": example & test,
        "unknown": unknown, "outcome": has_outcome, "positive": positive & has_outcome,
        "test_positive": positive & has_outcome & test,
    })
    per = frame.groupby("agency", sort=True).sum(numeric_only=True)
    header = f"{'agency':<28} {'records':>9} {'train':>9} {'test':>9} {'unknown category':>17}"
    if task.name == "outcome":
        header += f" {'with outcome':>13} {'positive':>9}"
    out.lines += ["", header]
    for name, row in per.iterrows():
        line = f"{shorten(name, 26)[1:-1]:<28} {row['records']:>9,} {row['train']:>9,} {row['test']:>9,} {_share(row['unknown'], row['records']):>17}"
        if task.name == "outcome":
            line += f" {_share(row['outcome'], row['records']):>13} {_share(row['positive'], row['outcome']):>9}"
        out.lines.append(line)
    total = per.sum()
    line = f"{'all agencies':<28} {total['records']:>9,} {total['train']:>9,} {total['test']:>9,} {_share(total['unknown'], total['records']):>17}"
    if task.name == "outcome":
        line += f" {_share(total['outcome'], total['records']):>13} {_share(total['positive'], total['outcome']):>9}"
    out.lines += [line, ""]
    if task.name == "hotspot":  # its examples are area-months counted from these records
        out.lines.append("train, test: records in the training and test months (the hotspot task's examples are area-months)")

    set_aside = report.set_aside_lines() if report else []
    out.lines += set_aside or ["Rows set aside: none (every row's agency was derived)"]
    out.lines.append(
        f"Category coverage: {_share(int(total['unknown']), int(total['records']))} of records have a category outside {vocabulary} "
        "(they become 'unknown')"
    )
    if task.name == "outcome":
        out.lines.append(
            f"Labels: {_share(int(total['outcome']), int(total['records']))} of records have an outcome (the others are left out); "
            f"positive ({', '.join(task.positive)}): {_share(int(total['positive']), int(total['outcome']))} of those"
        )
    if report is not None:
        shown = ("categories not", "dates read as", "not in data.features", "coordinates:", "far outside", "outcome values:")
        out.lines += [line for line in report.lines() if any(s in line for s in shown)]

    for name, row in per.iterrows():
        if is_small(int(row["test"]), task.min_test_records):
            out.warnings.append(small_test_warning(shorten(name)[1:-1], int(row["test"]), task.min_test_records))
        if task.name == "outcome" and row["test"] and row["test_positive"] in (0, row["test"]):
            out.warnings.append(f"{shorten(name)[1:-1]}: its {row['test']:,} test records all have one label, so its AUC is undefined")
    return out
