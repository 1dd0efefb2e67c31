"""The end table's epsilon_by_unit line (experiments.person_figures.end_table_line)."""

from __future__ import annotations

from experiments.person_figures import end_table_line


def _summary(block: dict | None) -> dict:
    return {"architectures": {"central": {}, "fedavg-dp": {"epsilon_by_unit": block}}}


def test_person_run_line_names_the_three_epsilons_and_the_contrast() -> None:
    block = {
        "unit": "person",
        "record": {"epsilon": 9.06, "delta": 1e-5},
        "person_within_agency": {"epsilon": 3.99, "delta": 1e-5},
        "person_across_federation": {"epsilon": 5.93, "delta": 1e-5, "max_agencies": 2},
        "group_conversion_heaviest_person": {"k": 42, "epsilon": 275.8, "delta": 1.0},
    }
    line = end_table_line(_summary(block))
    assert line is not None
    for part in ("person-level DP", "record 9.06", "within an agency 3.99", "(≤ 2 agencies) 5.93", "heaviest person (42 records): ε 276 at δ=1"):
        assert part in line


def test_record_run_line_gives_the_delta_of_a_group_conversion() -> None:
    block = {
        "unit": "record",
        "record": {"epsilon": 3.99, "delta": 1e-5},
        "person_within_agency": {"epsilon": 191.0, "delta": 1.0},
        "person_across_federation": {"epsilon": 378.0, "delta": 1.0, "max_agencies": 2},
    }
    line = end_table_line(_summary(block))
    assert line is not None and "within an agency 191 (δ=1)" in line and "for contrast" not in line
    assert end_table_line(_summary(None)) is None


def test_an_unbounded_figure_and_both_units_are_said() -> None:
    block = {
        "unit": "person",
        "record": {"epsilon": 9.06, "delta": 1e-5},
        "person_within_agency": {"epsilon": None, "delta": 1e-5},
        "person_across_federation": {"epsilon": None, "delta": 1e-5, "max_agencies": 2},
        "released_at_both_units": ["North Police"],
    }
    line = end_table_line(_summary(block))
    assert line is not None and "within an agency unbounded (record-unit releases, no person keys)" in line
    assert "North Police released at both units: both ledgers counted" in line
