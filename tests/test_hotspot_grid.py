"""tasks.hotspot_grid: records counted per grid square by hand, the test rows' shape, and the
grid evaluation scoring naive counts as the coverage metrics do."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from policedata.synthetic import month_range
from tasks.hotspot_baselines import EARTH_RADIUS_M
from tasks.hotspot_grid import evaluate_grid, grid_panel, grid_split

MONTHS = month_range("2023-01", 4)
LAT = 52.0
M_PER_DEG_LAT = np.radians(1) * EARTH_RADIUS_M


def at(x_m: float, y_m: float) -> tuple[float, float]:
    """lon/lat of a point x_m east and y_m north of (0°, 52°) on the module's flat map."""
    return np.degrees(x_m / (EARTH_RADIUS_M * np.cos(np.radians(LAT)))), LAT + y_m / M_PER_DEG_LAT


def frame(points: list[tuple[str, float, float]]) -> pd.DataFrame:
    rows = [(m, *at(x, y)) for m, x, y in points]
    return pd.DataFrame(rows, columns=["month", "longitude", "latitude"])


def test_cells_and_counts_by_hand():
    # Two points 100 m apart share a 250 m square; one 600 m east is in another; one has no location.
    records = frame([("2023-01", 10, 10), ("2023-02", 110, 10), ("2023-02", 610, 10), ("2023-03", 610, 10)])
    records.loc[len(records)] = ["2023-04", np.nan, np.nan]
    panel = grid_panel(records, MONTHS, 250.0, "A")
    assert panel.counts.tolist() == [[1, 1, 0, 0], [0, 1, 1, 0]]
    assert panel.unlocated == 1
    assert np.diff(panel.centres[:, 0]) == pytest.approx([500.0], abs=1.0)  # squares 0 and 2 of the row
    split = grid_split(panel, "2023-03")
    assert split.test_months.tolist() == ["2023-03", "2023-03", "2023-04", "2023-04"]
    assert split.test_next_counts.tolist() == [0, 1, 0, 0]
    assert np.expm1(split.X_test[:, 0]).round().tolist() == [1, 1, 0, 1]  # the month before's counts
    with pytest.raises(ValueError, match="grid_m"):
        grid_panel(records, MONTHS, 0.0, "A")
    with pytest.raises(ValueError, match="test month"):
        grid_split(panel, "2023-01")


def test_grid_evaluation_scores_naive_counts():
    rng = np.random.default_rng(0)
    months = month_range("2023-01", 14)
    # A 10 x 10 block of 250 m squares; rates vary by square and stay put.
    centres = [(250 * i + 125, 250 * j + 125) for i in range(10) for j in range(10)]
    rate = np.exp(rng.normal(0, 1, len(centres)))
    points = [(m, *centres[c]) for t, m in enumerate(months) for c in range(len(centres)) for _ in range(rng.poisson(rate[c]))]
    result = evaluate_grid({"A": frame(points)}, months, "2023-11", 250.0, replicates=100)
    assert result.cells == "250 m grid squares" and result.models == []
    assert set(result.baselines) == {"naive-1m", "naive-3m", "naive-12m", "kde", "promap", "sepp"}
    # Stable rates: the long naive window must beat flagging at random clearly.
    assert result.pooled["naive-12m"]["5%"]["pai"].value > 2
    assert "250 m grid squares" in result.notes[0]


@pytest.mark.parametrize(
    ("line", "key"),
    [("task: {name: hotspot, hotspot: {cells: hex}}", "task.hotspot.cells"), ("task: {name: hotspot, hotspot: {grid_m: 10}}", "task.hotspot.grid_m"), ("data: {dynamics: wobbly}", "data.dynamics")],
)
def test_bad_hotspot_keys_are_one_line_errors(tmp_path, line, key):
    from experiments.config import ConfigError, load_config

    path = tmp_path / "c.yaml"
    path.write_text(line + "\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert key in str(error.value) and "\n" not in str(error.value)
