"""`peel predict RUN_DIR CSV [--architecture A ...] [--out FILE]`: score new incidents with a
finished outcome run's final models, one score per record and architecture.

The CSV is a data.police.uk street file (its header has every street column) or, for a run
on a city's own export (`data.source: csv`), a file in that export's format (the run's
`data.columns`, `data.values`, date format and delimiter). Records are encoded exactly as the
run's agencies encoded theirs (the feature layout and the public areas table of its federation
spec); a score is the model's probability that the record's outcome is one of `task.positive`.

Each model's privacy is stated from the architecture registry and the run's summary: what one
unit of its DP protects, and the ε it was trained under (or that it has none).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from federation import architectures
from federation.spec import SpecError, read
from policedata.errors import DataError
from policedata.schema import AGENCY, STREET_COLUMNS

SPEC_FILE = "federation.json"


class PredictError(Exception):
    """Bad arguments or input for `peel predict`: one line, the CLI exits 2."""


@dataclass(frozen=True)
class Scored:
    """One architecture's scores (NaN where it has no model for a record: `local` and a record
    of an agency the run does not know) and its privacy in words."""

    architecture: str
    scores: np.ndarray
    privacy: str
    unscored: int


@dataclass(frozen=True)
class Prediction:
    records: pd.DataFrame  # the records read (crime_id, agency, crime_type, ...)
    input_format: str  # "data.police.uk street file" | "the run's csv format"
    scored: list[Scored]
    positive: tuple[str, ...]

    def to_csv(self) -> str:
        """One row per record: its position, Crime ID, agency, crime type, then one score column
        per architecture (empty where it has no model for the record)."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["record", "crime_id", "agency", "crime_type", *(f"score:{s.architecture}" for s in self.scored)])
        columns = [s.scores for s in self.scored]
        for i, (crime_id, agency, crime_type) in enumerate(zip(self.records["crime_id"], self.records[AGENCY], self.records["crime_type"], strict=True)):
            writer.writerow([i + 1, crime_id, agency, crime_type, *("" if math.isnan(c[i]) else f"{c[i]:.6f}" for c in columns)])
        return out.getvalue()

    def statements(self) -> list[str]:
        lines = [f"Scored {len(self.records):,} records ({self.input_format}); a score is the model's probability that the outcome is one of {list(self.positive)}."]
        for s in self.scored:
            missing = f" ({s.unscored:,} records of agencies without a model of their own are left empty)" if s.unscored else ""
            lines.append(f"{s.architecture}: {s.privacy}{missing}")
        return lines


def predict(run_dir: Path, csv_path: Path, wanted: list[str] | None = None) -> Prediction:
    """Score every record of `csv_path` with the final models of the run in `run_dir` (all its
    trained architectures, or those in `wanted`)."""
    run_dir, csv_path = Path(run_dir), Path(csv_path)
    summary = _finished_summary(run_dir)
    try:
        spec = read(run_dir / SPEC_FILE)
    except SpecError as exc:
        raise PredictError(str(exc)) from None
    if spec.task.name != "outcome":
        raise PredictError(f"{run_dir}: a {spec.task.name} run scores area-months, not incidents; peel predict scores incidents with an outcome run's models")
    chosen = _architectures(summary, wanted, run_dir)
    records, input_format = _read_records(run_dir, csv_path)

    from experiments.run_folder import reopen  # torch: only once the arguments are known good
    from tasks import features
    from tasks.train import predict_proba

    areas = _areas(spec.areas)
    try:
        X = features.encode(records, areas, spec.task.features or features.POLICE_UK)
    except ValueError as exc:
        raise PredictError(f"{csv_path}: {str(exc).splitlines()[0]}") from None
    try:
        folder = reopen(run_dir)
    except (OSError, RuntimeError) as exc:  # a model file missing or damaged
        raise PredictError(f"{run_dir}: the run's saved models cannot be read ({str(exc).splitlines()[0]})") from None
    scored = []
    for arch in chosen:
        models = folder.models[arch]
        scores = np.full(len(records), np.nan)
        if isinstance(models, dict):  # one model per agency: each record by its own agency's
            agency = records[AGENCY].to_numpy(dtype=str)
            for name, model in models.items():
                rows = agency == name
                if rows.any():
                    scores[rows] = predict_proba(model, X[rows])
        else:
            scores = predict_proba(models, X)
        scored.append(Scored(arch, scores, privacy_statement(arch, summary["architectures"][arch]), int(np.isnan(scores).sum())))
    return Prediction(records, input_format, scored, tuple(spec.task.positive))


def privacy_statement(arch: str, entry: dict[str, Any]) -> str:
    """What the model's training protected, in words (architecture registry + the run's figures)."""
    spec = architectures.find(arch)
    what = spec.description if spec is not None else "an architecture this Peel does not know"
    unit = spec.privacy_unit if spec is not None else None
    if unit is None:
        return f"{what}; no differential privacy: the model may reflect individual records"
    eps, delta = entry.get("epsilon_max"), entry.get("delta")
    spent = f"ε = {eps:.3g}, δ = {delta:g}" if eps is not None and delta is not None else "ε not recorded"
    if unit == "record":
        return f"{what}; record-level DP: protects one incident record of each agency ({entry.get('neighbouring') or 'add/remove-one'}), {spent} (spent to date, max over agencies)"
    return f"{what}; agency-level DP: protects all of one agency's records together, {spent}"


def write_scores(prediction: Prediction, out: Path) -> None:
    """The scores CSV at `out`, written atomically (a reader never sees half a file)."""
    from privacy.durable import replace_durably

    out = Path(out)
    if out.is_dir():
        raise PredictError(f"--out {out}: is a folder; give a file name, e.g. {out / 'scores.csv'}")
    if not out.parent.is_dir():
        raise PredictError(f"--out {out}: folder {out.parent} does not exist")
    replace_durably(out, prediction.to_csv(), sync=False)


def _finished_summary(run_dir: Path) -> dict[str, Any]:
    if not run_dir.exists():
        raise PredictError(f"{run_dir}: no such run folder")
    if not run_dir.is_dir():
        raise PredictError(f"{run_dir}: not a folder; give a run folder (runs/<id>)")
    try:
        summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PredictError(f"{run_dir}: no summary.json: not a finished run folder (finish it with peel run --resume {run_dir})") from None
    except (OSError, ValueError) as exc:
        raise PredictError(f"{run_dir / 'summary.json'}: unreadable ({str(exc).splitlines()[0]})") from None
    if not isinstance(summary, dict) or not isinstance(summary.get("architectures"), dict):
        raise PredictError(f"{run_dir / 'summary.json'}: lists no architectures")
    return summary


def _architectures(summary: dict[str, Any], wanted: list[str] | None, run_dir: Path) -> list[str]:
    entries: dict[str, Any] = summary["architectures"]
    trained = [a for a, e in entries.items() if e.get("status", "trained") == "trained"]
    if not wanted:
        if not trained:
            raise PredictError(f"{run_dir}: no architecture of this run trained a model")
        return trained
    for arch in wanted:
        if arch not in entries:
            raise PredictError(f"--architecture {arch}: not in this run; it has {', '.join(entries)}")
        if arch not in trained:
            raise PredictError(f"--architecture {arch}: its status is {entries[arch].get('status')!r}, so its model is the untrained initial one; choose one of {', '.join(trained) or 'none'}")
    return list(dict.fromkeys(wanted))


def _read_records(run_dir: Path, csv_path: Path) -> tuple[pd.DataFrame, str]:
    """The records of `csv_path`, as a street file or in the run's csv format."""
    header = _header(csv_path)
    from experiments.config import ConfigError, load_config

    try:
        config = load_config(run_dir / "config.yaml")
    except ConfigError as exc:
        raise PredictError(str(exc)) from None
    try:
        if all(c in header for c in STREET_COLUMNS):
            from policedata.checks import latest_month
            from policedata.loader import compile_agency_pattern, read_street_file

            # The loader's own reading of one street file (its checks, its one-line errors),
            # with the agency names the run derived (data.agency); a row without one is kept
            # and scored by every shared model (its agency is "").
            agency = config.data.agency
            frame, _ = read_street_file(csv_path, agency.column, compile_agency_pattern(agency.pattern), latest_month())
            return frame.reset_index(drop=True), "data.police.uk street file"
        columns = config.data.columns
        if config.data.source == "csv" and columns is not None:
            from experiments.own_vocabulary import csv_vocabulary
            from policedata.csv_source import load_csv_source

            data = config.data
            # New incidents need no positive outcome among them (nor any outcome at all).
            vocabulary = dataclasses.replace(csv_vocabulary(config), positive=())
            records, _ = load_csv_source(csv_path, columns.model_dump(), data.values, data.date_format, data.delimiter, vocabulary, min_agency_records=1)
            return records, "the run's csv format"
    except DataError as exc:
        raise PredictError(str(exc)) from None
    missing = [c for c in STREET_COLUMNS if c not in header]
    also = "" if config.data.source == "csv" else "; this run did not read a csv export (data.source is not csv), so only street files are scored"
    raise PredictError(f"{csv_path}: not a data.police.uk street file (missing columns {', '.join(repr(c) for c in missing[:4])}{' …' if len(missing) > 4 else ''}){also}")


def _header(csv_path: Path) -> list[str]:
    if not csv_path.exists():
        raise PredictError(f"{csv_path}: no such file")
    if not csv_path.is_file():
        raise PredictError(f"{csv_path}: not a file; give a CSV of incidents")
    try:
        with open(csv_path, encoding="utf-8-sig", newline="") as fh:
            first = fh.readline(1_000_000)
    except UnicodeDecodeError:
        raise PredictError(f"{csv_path}: not UTF-8 text; is it a CSV file?") from None
    except OSError as exc:
        raise PredictError(f"{csv_path}: cannot be read ({exc.strerror or exc})") from None
    if not first.strip():
        raise PredictError(f"{csv_path}: the file is empty; expected a header line and incidents")
    return [c.strip() for c in next(csv.reader([first]))]


def _areas(path: Path | None) -> pd.DataFrame | None:
    if path is None:
        return None
    from policedata.loader import load_areas

    try:
        return load_areas(path)
    except DataError as exc:
        raise PredictError(f"the run's public areas table: {exc}") from None
