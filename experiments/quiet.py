"""Offline and quiet: no telemetry, no update checks, no per-run dependency installs, no Ray
dashboard or usage stats (see ../shared/notes). Must run before flwr or ray is imported,
because both read these at import or start-up."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

OFFLINE_ENV = {
    "FLWR_TELEMETRY_ENABLED": "0",
    "FLWR_DISABLE_UPDATE_CHECK": "1",
    "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO": "0",
    "RAY_DEDUP_LOGS": "0",
}


def go_offline() -> None:
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    # matplotlib (the report) keeps its font cache in ~/.config and ~/.cache by default: keep it
    # in the environment Peel is installed in instead, so nothing is written to the home folder.
    os.environ.setdefault("MPLCONFIGDIR", str(Path(sys.prefix) / "var" / "peel" / "matplotlib"))
    # Opacus calls logging.basicConfig() on import; a handler on the root logger makes that a
    # no-op, so nothing is printed twice.
    logging.getLogger().addHandler(logging.NullHandler())
