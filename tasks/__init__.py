"""What is learned: features from records, torch models, training loops and metrics.

Modules are imported one by one (``tasks.features`` needs no torch), so this file stays empty.
"""
