"""Data: synthetic generation and loading throughput, records per second."""

from __future__ import annotations

import functools
import statistics
import tempfile
from pathlib import Path

from policedata.loader import load_street_folder
from policedata.synthetic import SyntheticSpec, generate

from .common import Measurement, Settings, cpu_and_wall_seconds, shared_run, summary


def _spec(settings: Settings) -> SyntheticSpec:
    # the default spec (8 agencies, 120k records); --quick a quarter of it (rates barely change)
    return SyntheticSpec(incidents=30_000) if settings.quick else SyntheticSpec()


def data_throughput(settings: Settings) -> dict[str, dict]:
    """Both figures from the same runs: generate the spec into a fresh folder, then load it."""
    spec = _spec(settings)
    rates: dict[str, list[tuple[float, float]]] = {"generation_records_per_s": [], "loading_records_per_s": []}
    with tempfile.TemporaryDirectory(prefix="peel-bench-") as tmp:
        for r in range(settings.repeats):
            out = Path(tmp) / f"run{r}"
            gen = cpu_and_wall_seconds(functools.partial(generate, spec, out))
            loaded: list = []
            load = cpu_and_wall_seconds(lambda out=out, loaded=loaded: loaded.append(load_street_folder(out / "agencies")))
            records = loaded[0][1].rows
            rates["generation_records_per_s"].append((spec.incidents / gen[0], spec.incidents / gen[1]))
            rates["loading_records_per_s"].append((records / load[0], records / load[1]))
    detail = {"incidents": spec.incidents, "agencies": spec.agencies, "months": spec.months, "clock": "records per process CPU second"}
    return {
        key: summary([cpu for cpu, _ in values], wall_median=statistics.median(w for _, w in values), **detail)
        for key, values in rates.items()
    }


_part = shared_run(data_throughput)  # one set of runs serves both keys


MEASUREMENTS = [
    Measurement("generation_records_per_s", "records/s", _part("generation_records_per_s"), about="policedata synthetic generation"),
    Measurement("loading_records_per_s", "records/s", _part("loading_records_per_s"), about="load_street_folder on that output"),
]
