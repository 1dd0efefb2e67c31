"""The hotspot evaluation on street CSVs in the data.police.uk layout, read by the loader as real
downloads are (no ground truth: the oracle is absent), on LSOAs and on a grid."""

from __future__ import annotations

import json

from policedata.loader import load_areas, load_street_folder
from policedata.synthetic import SyntheticSpec, generate, month_range
from tasks.hotspot import build_hotspot_split
from tasks.hotspot_baselines import evaluate_baselines
from tasks.hotspot_grid import evaluate_grid, grid_panel, grid_split


def test_street_files_without_ground_truth(tmp_path):
    spec = SyntheticSpec(agencies=2, incidents=6000, months=14, dynamics="churn")
    manifest = generate(spec, tmp_path / "data")
    months = month_range(spec.start_month, spec.months)
    records, _ = load_street_folder(tmp_path / "data" / "agencies")  # every force's files, as downloaded
    areas = load_areas(tmp_path / "data" / "areas.csv")
    names = [a["name"] for a in manifest["agencies"]]
    splits = {n: build_hotspot_split(records[records["agency"] == n], areas, months[-3], agency=n, period=(months[0], months[-1])) for n in names}
    lsoa = evaluate_baselines(splits, areas, None, replicates=50)
    assert "oracle" not in lsoa.pooled and "sepp" in lsoa.pooled
    assert not any("oracle" in n for n in lsoa.notes)
    grid = evaluate_grid({n: records[records["agency"] == n] for n in names}, months, months[-3], 250.0, replicates=50)
    assert grid.cells == "250 m grid squares"
    assert json.loads(json.dumps(grid.as_dict()))["cells"] == "250 m grid squares"  # summary.json-ready
    assert isinstance(grid.pooled["naive-3m"]["5%"]["pai"].value, float)
    # Every located test-month record is in some grid cell: nothing is lost from the hit rates.
    mine = records[records["agency"] == names[0]]
    split = grid_split(grid_panel(mine, months, 250.0, names[0]), months[-3])
    located = mine["month"].isin(months[-3:]) & mine["longitude"].notna()
    assert int(split.test_next_counts.sum()) == int(located.sum()) > 0
