"""What every measurement shares: settings, the result shape, interleaved timing, atomic output,
and where the configs the benchmark runs live."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from experiments.config import ConfigError
from privacy.durable import replace_durably

# The configs the whole-run measurements use (federation, sweep, scale).
NEEDED_CONFIGS = ("configs/default.yaml", "configs/sweep-epsilon.yaml")


@dataclass(frozen=True)
class Settings:
    quick: bool
    repeats: int  # ≥ 3: every figure is a median with its spread


@dataclass(frozen=True)
class Measurement:
    key: str  # the bench.json key
    unit: str  # how to read the figure ("× plain", "s", "records/s")
    run: Callable[[Settings], dict]  # returns summary(...) and any detail keys
    limit: float | None = None  # --check fails when the median is above this (gross regressions only)
    about: str = ""  # one line for the table


def summary(values: Sequence[float], **detail) -> dict:
    """{"median", "min", "max"} of the repeats, plus the raw values and any detail."""
    if len(values) == 0:
        raise ValueError("summary: no values measured")
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "values": [float(v) for v in values],
        **detail,
    }


def cpu_seconds(fn: Callable[[], object]) -> float:
    """CPU seconds of this process spent in `fn()`: on a machine shared with other jobs, wall time
    also counts the time spent waiting for a core; CPU time counts the work."""
    start = time.process_time()
    fn()
    return time.process_time() - start


def cpu_and_wall_seconds(fn: Callable[[], object]) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - cpu, time.perf_counter() - wall


def interleaved_ratio(numerator: Callable[[], object], denominator: Callable[[], object], repeats: int) -> tuple[list[float], list[float], list[float]]:
    """Per repeat, time both side by side (order alternating, so a drift in machine load hits both
    alike); returns (ratios, numerator seconds, denominator seconds), CPU time."""
    ratios, nums, dens = [], [], []
    for r in range(repeats):
        if r % 2 == 0:
            num, den = cpu_seconds(numerator), cpu_seconds(denominator)
        else:
            den, num = cpu_seconds(denominator), cpu_seconds(numerator)
        ratios.append(num / den)
        nums.append(num)
        dens.append(den)
    return ratios, nums, dens


def shared_run(measure: Callable[[Settings], dict]) -> Callable[[str], Callable[[Settings], dict]]:
    """For a measurement that yields several keys at once: `part(key)` is a Measurement's run
    function, and one call of `measure` per settings serves every key."""
    cache: dict[Settings, dict] = {}

    def part(key: str) -> Callable[[Settings], dict]:
        def run(settings: Settings) -> dict:
            if settings not in cache:
                cache.clear()
                cache[settings] = measure(settings)
            return cache[settings][key]

        return run

    return part


def write_json_atomic(path: Path, payload: dict) -> None:
    """Write `payload` to `path` in one step: a reader never sees half a file."""
    replace_durably(path, json.dumps(payload, indent=2) + "\n", private_tmp=True, sync=False)


def project_root() -> Path:
    """The Peel checkout whose configs/ the benchmark runs: the current directory if it holds
    them, else the source tree this package was loaded from (an editable install)."""
    for candidate in (Path.cwd(), Path(__file__).resolve().parents[2]):
        if all((candidate / name).is_file() for name in NEEDED_CONFIGS):
            return candidate
    raise ConfigError(f"bench: no {' and '.join(NEEDED_CONFIGS)} here or in the source tree: run it from a Peel checkout")
