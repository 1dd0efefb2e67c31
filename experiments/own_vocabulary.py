"""A city's own vocabulary (`data.source: csv`, `data.features`) as the rooms below use it: the
feature layout every agency encodes with (tasks.features.FeatureLayout) and what the csv loader
counts against (policedata.csv_source.CsvVocabulary). Both come from the config and the public
areas table only, never from the records.

Other sources keep the data.police.uk layout (`tasks.features.POLICE_UK`).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from experiments.config import PeelConfig
from policedata.csv_region import Box, box_of_areas
from policedata.csv_source import CsvLoadReport, CsvVocabulary, load_csv_source
from policedata.loader import load_areas
from tasks.features import OUTCOME_CRIME_TYPES, POLICE_UK, FeatureLayout


def feature_layout(config: PeelConfig) -> FeatureLayout:
    """The outcome task's feature layout for `config` (the same for every agency)."""
    data = config.data
    if data.source != "csv" or data.columns is None:
        return POLICE_UK
    declared = data.features
    return FeatureLayout(
        categories=tuple(declared.categories) if declared and declared.categories else OUTCOME_CRIME_TYPES,
        area_codes=tuple(declared.areas) if declared and declared.areas else (),
        area_covariates=bool(data.areas),
        time_of_day=data.columns.date is not None and (declared.time_of_day if declared else True),
        coordinates="box",
        region=_declared_region(config),
    )


def csv_vocabulary(config: PeelConfig) -> CsvVocabulary:
    """What the csv loader counts the records against (declared lists, region, task.positive)."""
    declared = config.data.features
    return CsvVocabulary(
        categories=tuple(declared.categories) if declared and declared.categories else None,
        areas=tuple(declared.areas) if declared and declared.areas else None,
        positive=tuple(config.task.positive) if config.task.name == "outcome" else (),
        region=_region(config),
        outside_region=declared.outside_region if declared else "flag",
    )


def load_csv(config: PeelConfig) -> tuple[pd.DataFrame, CsvLoadReport]:
    """The records and report of `config`'s csv export (data.source: csv)."""
    data = config.data
    if data.columns is None:
        raise ValueError("load_csv: data.columns is required for data.source csv")
    return load_csv_source(Path(str(data.path)), data.columns.model_dump(), data.values, data.date_format, data.delimiter, csv_vocabulary(config))


def _declared_region(config: PeelConfig) -> Box | None:
    declared = config.data.features
    return Box(declared.region.latitude, declared.region.longitude) if declared and declared.region else None


def _region(config: PeelConfig) -> Box | None:
    """The declared region, else the public areas table's centroid extent (as the features)."""
    declared = _declared_region(config)
    if declared is not None:
        return declared
    return box_of_areas(load_areas(Path(config.data.areas))) if config.data.areas else None
