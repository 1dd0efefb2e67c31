"""Definitions the coordinator, the agencies and the experiment runner share: the release
boundary (what may leave an agency, and as what). Imports nothing above `privacy/`."""
