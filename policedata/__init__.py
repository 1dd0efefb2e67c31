"""Police records for Peel: the data.police.uk street schema, a seeded synthetic generator with
ground truth, loaders for real and synthetic street CSVs, and per-agency partitioning.

Only numpy, pandas and the standard library: no torch, no flwr.
"""

from .errors import DataError
from .ground_truth import outcome_probability
from .loader import LoadReport, load_areas, load_street_folder
from .partition import slugify, write_agency_folders
from .synthetic import SyntheticSpec, generate

__all__ = [
    "DataError",
    "LoadReport",
    "SyntheticSpec",
    "generate",
    "load_areas",
    "load_street_folder",
    "outcome_probability",
    "slugify",
    "write_agency_folders",
]
