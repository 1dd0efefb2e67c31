"""The region a city's coordinates are scaled by (`data.source: csv`): a box declared in the
config (`data.features.region`) or the extent of the public areas table's centroids, never a
statistic of the agencies' records (one record must change one feature vector only).

Inside the box a coordinate scales to [-1, 1]. A record far outside it (beyond the box by more
than `OUTSIDE_MARGIN` of its half-span: a typo, a swapped sign, a default 0/0) is flagged and
counted, or refused (`data.features.outside_region: error`); it is never dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

# A record counts as outside when it lies beyond the box by more than this share of the box's
# half-span on either axis (incidents near the edge lie a little outside the centroids' extent).
OUTSIDE_MARGIN = 0.5
# The smallest half-span, in degrees (~1 km): a box of one centroid still scales.
MIN_HALF_SPAN = 0.01


@dataclass(frozen=True)
class Box:
    """A latitude/longitude bounding box, in degrees."""

    latitude: tuple[float, float]  # (south, north)
    longitude: tuple[float, float]  # (west, east)

    def scaled(self, latitude: np.ndarray, longitude: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each coordinate as -1 at the box's low edge, 1 at its high edge (NaN stays NaN)."""
        return _scale(latitude, self.latitude), _scale(longitude, self.longitude)

    def far_outside(self, latitude: np.ndarray, longitude: np.ndarray) -> np.ndarray:
        """Per record: does it lie far outside the box? (False where a coordinate is missing.)"""
        lat_z, lon_z = self.scaled(latitude, longitude)
        with np.errstate(invalid="ignore"):
            far = (np.abs(lat_z) > 1 + OUTSIDE_MARGIN) | (np.abs(lon_z) > 1 + OUTSIDE_MARGIN)
        return np.asarray(far & np.isfinite(lat_z) & np.isfinite(lon_z))

    def describe(self) -> str:
        return f"latitude {self.latitude[0]:g}..{self.latitude[1]:g}, longitude {self.longitude[0]:g}..{self.longitude[1]:g}"


def box_of_areas(areas: pd.DataFrame) -> Box | None:
    """The extent of the public areas table's centroids (None: no finite centroid)."""
    lat = pd.to_numeric(areas["Latitude"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    lon = pd.to_numeric(areas["Longitude"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    ok = np.isfinite(lat) & np.isfinite(lon)
    if not ok.any():
        return None
    return Box((float(lat[ok].min()), float(lat[ok].max())), (float(lon[ok].min()), float(lon[ok].max())))


def _scale(values: np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
    low, high = bounds
    middle, half = (low + high) / 2, max((high - low) / 2, MIN_HALF_SPAN)
    return np.asarray((np.asarray(values, dtype=float) - middle) / half)
