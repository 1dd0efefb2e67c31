"""Agencies whose test set is too small for their metrics to mean much (task.min_test_records):
`peel run` warns about each, and summary.json marks their metrics `small_test_set: true` so the
table and the report do not show an AUC of 1.000 on 9 records as if it were solid."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from tasks.registry import Split

log = logging.getLogger("peel.run")


def small_test_sets(splits: Mapping[str, Split], minimum: int) -> dict[str, int]:
    """Agency -> test records, for each agency with fewer than `minimum`."""
    return {name: len(split.y_test) for name, split in splits.items() if len(split.y_test) < minimum}


def is_small(n_test: int, minimum: int) -> bool:
    return n_test < minimum


def warning(agency: str, n_test: int, minimum: int) -> str:
    return (
        f"{agency} has {n_test:,} test record{'s' if n_test != 1 else ''} (task.min_test_records={minimum}): "
        "its metrics rest on too few records to mean much"
    )


def warn_small_test_sets(splits: Mapping[str, Split], minimum: int, say: bool = True) -> list[str]:
    """Before training: one warning per agency with a small test set. Returns them (logged too
    when `say`)."""
    warnings = [warning(name, n, minimum) for name, n in small_test_sets(splits, minimum).items()]
    for line in warnings if say else []:
        log.warning("warning: %s", line)
    return warnings
