"""Accounting: seconds to compute ε for 10^4 DP-SGD steps, with every accountant Peel has."""

from __future__ import annotations

import functools
import statistics

from privacy import accounting

from .common import Measurement, Settings, cpu_and_wall_seconds, summary

STEPS = 10_000
SAMPLE_RATE = 256 / 20_000
DELTA = 1e-5


def _accountants() -> list[str]:
    """The registered accountants (privacy.accounting may gain some: take whatever it has)."""
    names = getattr(accounting, "ACCOUNTANTS", None)
    if names is None:
        raise RuntimeError("privacy.accounting has no ACCOUNTANTS registry to benchmark")
    return sorted(names)


def accounting_seconds(settings: Settings) -> dict:
    """Per repeat and accountant, CPU seconds for ε of one release of 10^4 steps; the headline is
    the slowest accountant of each repeat. Each repeat uses a slightly different σ so no cache
    answers it."""
    names = _accountants()
    for name in names:  # warm-up: imports of Opacus / dp-accounting are not accounting time
        accounting.epsilon([(2.0, SAMPLE_RATE, 10)], DELTA, name)
    cpu: dict[str, list[float]] = {name: [] for name in names}
    wall: dict[str, list[float]] = {name: [] for name in names}
    for r in range(settings.repeats):
        history = [(1.0 + 1e-3 * r, SAMPLE_RATE, STEPS)]
        for name in names:
            c, w = cpu_and_wall_seconds(functools.partial(accounting.epsilon, history, DELTA, name))
            cpu[name].append(c)
            wall[name].append(w)
    slowest = [max(cpu[name][r] for name in names) for r in range(settings.repeats)]
    return summary(
        slowest,
        per_accountant={name: summary(cpu[name], wall_median=statistics.median(wall[name])) for name in names},
        steps=STEPS,
        sample_rate=SAMPLE_RATE,
        clock="process CPU seconds",
    )


MEASUREMENTS = [
    Measurement("accounting_seconds", "s", accounting_seconds, about="ε for 10^4 steps, slowest accountant"),
]
