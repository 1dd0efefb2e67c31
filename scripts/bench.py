#!/usr/bin/env python
"""Peel's benchmark, the same as `peel bench` (see experiments/bench/ and docs/performance.md):

    python scripts/bench.py [--quick] [--out bench.json] [--only KEY,...] [--opacus] [--engine E]
    python scripts/bench.py --check        # CI: exit 1 only on a gross regression
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from experiments.bench import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
