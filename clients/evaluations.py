"""What a DP agency does with its evaluation metrics: keeps them. Metrics of the global model on
its test records are a release about those records, so in a DP architecture they stay in the
agency's own folder (one JSON line per run, architecture and round, beside its ledger) and the
reply says only that it evaluated. The experiment harness may read this file where it runs beside
the agency (simulation, loopback deployment); a coordinator never receives it."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path

from flwr.app import ConfigRecord

from clients.agency import Agency

EVALUATIONS_SUFFIX = ".evaluations.jsonl"


def evaluations_path(ledger: Path) -> Path:
    """The file beside an agency's ledger that holds its kept evaluations."""
    return ledger.with_name(f"{ledger.stem}{EVALUATIONS_SUFFIX}")


def keep_evaluation(agency: Agency, config: ConfigRecord, metrics: Mapping[str, float], n_test: int) -> None:
    row = {
        "run": agency.spec.run_id,
        "architecture": str(config.get("architecture", "")),
        "round": int(config.get("server-round", 0)),  # type: ignore[call-overload]
        "agency": agency.name,
        "n_test": n_test,
        **{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in metrics.items()},
    }
    with open(evaluations_path(agency.ledger), "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def read_evaluations(ledger: Path, run: str, architecture: str) -> list[dict]:
    """The rows an agency kept for one run and architecture (none if the file is not here)."""
    path = evaluations_path(ledger)
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in rows if r.get("run") == run and r.get("architecture") == architecture]
