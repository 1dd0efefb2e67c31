"""Materialise every agency's records in its own folder for a run (synthetic: generated with the
run's seed; real: read once and partitioned), and describe the federation in a spec file that
the ClientApp and ServerApp read."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from experiments.config import PeelConfig, to_dict
from policedata.errors import DataError
from policedata.loader import load_street_folder
from policedata.partition import write_agency_folders
from policedata.synthetic import SyntheticSpec, generate

SPEC_FILE = "federation.json"


@dataclass(frozen=True)
class Federation:
    """What a run knows about its agencies (paths are absolute)."""

    agencies: list[dict]  # {"name", "slug", "folder"}
    areas: Path | None  # public covariates
    ground_truth: Path | None  # synthetic only; read by the evaluation, never by agencies
    test_from: str  # first test month, "YYYY-MM"
    notes: list[str]


def add_months(month: str, n: int) -> str:
    year, mon = map(int, month.split("-"))
    index = year * 12 + (mon - 1) + n
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def synthetic_spec(config: PeelConfig) -> SyntheticSpec:
    data = config.data
    return SyntheticSpec(
        agencies=data.agencies,
        incidents=data.incidents,
        months=data.months,
        start_month=data.start_month,
        seed=config.seed,
    )


def materialise(config: PeelConfig, data_dir: Path) -> Federation:
    """Write the agencies' folders under `data_dir` (which must not exist yet)."""
    if config.data.source == "synthetic":
        manifest = generate(synthetic_spec(config), data_dir)
        agencies = [
            {"name": a["name"], "slug": a["slug"], "folder": str((data_dir / a["folder"]).resolve())}
            for a in manifest["agencies"]
        ]
        test_from = add_months(config.data.start_month, config.data.months - config.task.test_months)
        return Federation(agencies, (data_dir / "areas.csv").resolve(), (data_dir / "ground_truth").resolve(), test_from, [])
    records, report = load_street_folder(Path(config.data.path), config.data.agency.column, config.data.agency.pattern)
    months = sorted(records["month"].unique())
    if len(months) <= config.task.test_months:
        raise DataError(
            f"{config.data.path}: {len(months)} months of data, need more than task.test_months={config.task.test_months}"
        )
    written = write_agency_folders(records, data_dir / "agencies")
    agencies = [{"name": a["name"], "slug": a["slug"], "folder": str((data_dir / "agencies" / a["folder"]).resolve())} for a in written]
    areas = Path(config.data.areas).resolve() if config.data.areas else None
    return Federation(agencies, areas, None, months[-config.task.test_months], report.lines())


def write_spec(config: PeelConfig, federation: Federation, run_dir: Path) -> Path:
    """The federation spec: the resolved config, the agencies and where the results go."""
    spec = {
        "run_dir": str(run_dir.resolve()),
        "config": to_dict(config),
        "agencies": federation.agencies,
        "areas": str(federation.areas) if federation.areas else None,
        "task": {"positive": config.task.positive, "test_from": federation.test_from},
        "federated": [a for a in config.architectures if a.startswith("fedavg")],
    }
    path = run_dir / SPEC_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(spec, indent=2), encoding="utf-8")
    os.replace(tmp, path)
    return path
