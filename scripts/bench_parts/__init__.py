"""Measurements of ``scripts/bench.py``, one module per subject. Each module exposes
``MEASUREMENTS``: a list of ``common.Measurement`` that bench.py runs in order."""
