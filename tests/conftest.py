"""Shared fixtures: a tiny synthetic federation (3 agencies) prepared exactly as `peel run` does."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from experiments.config import validate
from experiments.prepare import materialise, write_spec

TINY = {
    "seed": 3,
    "data": {"agencies": 3, "incidents": 4000, "months": 12},
    "task": {"test_months": 3, "hidden": [16]},
    "federation": {"rounds": 2, "batch_size": 64},
    "privacy": {"epsilon": 2.0},
}


@pytest.fixture(scope="session", autouse=True)
def _torch_cache_in_test_tmp(tmp_path_factory):
    """torch's optimizers create an inductor cache folder on first use; keep it out of /tmp."""
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(tmp_path_factory.mktemp("torchinductor")))


@pytest.fixture(scope="session")
def tiny_spec(tmp_path_factory) -> Path:
    """Path of a federation spec over 3 small synthetic agencies."""
    run_dir = tmp_path_factory.mktemp("tiny-run")
    config = validate(TINY, "tiny")
    federation = materialise(config, run_dir / "data")
    return write_spec(config, federation, run_dir)
