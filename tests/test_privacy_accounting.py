"""The three accountants agree where they should: PLD (dp-accounting) and PRV (Opacus), two
independent implementations, within 2% over a grid of (q, σ, steps) and on heterogeneous
histories; RDP is never below the tighter of them. PLD's fast path is exactly dp-accounting's
PLDAccountant, and its refinement converges."""

from __future__ import annotations

import itertools
import math
import warnings
from itertools import pairwise

import dp_accounting
import pytest

from privacy import accountants
from privacy.accounting import ACCOUNTANT_CHOICES, epsilon, merge_history, resolve_accountant

DELTA = 1e-5

# Points Opacus' PRV cannot compute (our `prv` returns inf for them, as Opacus itself does, but
# at once). PRV discretises the privacy loss on [−L, L], L = RDP ε at δ/4000 + 3 (893, 8124 and
# 1759 here), and evaluates exp(t) over it; float64 exp overflows above t = 709.78. Opacus then
# returns inf (q=0.1, σ=0.5: after 66 s) or runs out of memory first (q=0.5, σ=0.5: 10^7 points
# at its default error 0.01, several GB). PLD puts ε at 783, 7301 and 1638: no guarantee at all.
# For these points the test checks that behaviour instead of the agreement.
PRV_OVERFLOWS = {(0.1, 0.5, 10_000), (0.5, 0.5, 10_000), (0.5, 1.0, 10_000)}

# A representative subset runs by default (one or two points per q, all three step counts, both
# ends of σ, one PRV overflow); the rest is marked slow: PRV needs 1–17 s per point at small ε,
# where its error bound must be scaled down to 1% of ε, and ~3 s at q = 0.5.
FAST = {
    (0.001, 0.5, 10_000),
    (0.01, 1.0, 100),
    (0.01, 2.0, 10_000),
    (0.1, 5.0, 1),
    (0.1, 1.0, 10_000),
    (0.5, 2.0, 100),
    (0.1, 0.5, 10_000),
}
GRID = [
    pytest.param(q, sigma, steps, marks=() if (q, sigma, steps) in FAST else pytest.mark.slow, id=f"q{q}-s{sigma}-n{steps}")
    for q, sigma, steps in itertools.product([0.001, 0.01, 0.1, 0.5], [0.5, 1.0, 2.0, 5.0], [1, 100, 10_000])
]


def _check_agreement(history) -> None:
    pld = epsilon(history, DELTA, "pld")
    prv = epsilon(history, DELTA, "prv")
    rdp = epsilon(history, DELTA, "rdp")
    assert math.isfinite(pld) and math.isfinite(prv)
    assert prv == pytest.approx(pld, rel=0.02)
    assert rdp >= min(pld, prv) * (1 - 1e-9)


@pytest.mark.parametrize("q, sigma, steps", GRID)
def test_pld_and_prv_agree_and_rdp_is_never_below(q, sigma, steps):
    history = [(sigma, q, steps)]
    if (q, sigma, steps) in PRV_OVERFLOWS:
        pld = epsilon(history, DELTA, "pld")
        assert 700 < pld < math.inf
        assert epsilon(history, DELTA, "prv") == math.inf
        assert epsilon(history, DELTA, "rdp") >= pld
    else:
        _check_agreement(history)


@pytest.mark.parametrize(
    "history",
    [
        # Ten rounds of one plan, then a second run with another σ and a larger agency's q.
        [(1.1, 256 / 45_000, 176)] * 10 + [(1.5, 256 / 20_000, 78)] * 5,
        # Every release different, as after several runs with different budgets.
        [(0.9, 0.01, 100), (1.5, 0.02, 50), (2.0, 0.005, 1000), (0.7, 0.05, 20), (3.0, 0.1, 10)],
    ],
    ids=["two-runs", "all-different"],
)
def test_heterogeneous_histories_agree(history):
    _check_agreement(history)


def _reference_pld(history, interval):
    events = [
        dp_accounting.SelfComposedDpEvent(dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), steps)
        for sigma, q, steps in history
    ]
    acc = dp_accounting.pld.PLDAccountant(value_discretization_interval=interval)
    acc.compose(dp_accounting.ComposedDpEvent(events))
    return acc.get_epsilon(DELTA)


def test_pld_fast_path_is_dp_accountings_pld_accountant_and_its_cache_changes_nothing():
    history = tuple(merge_history([(1.0, 0.01, 300), (2.0, 0.05, 40), (0.8, 0.002, 1000)]))
    accountants._pld_cache.clear()
    cold = accountants._pld_at(history, DELTA, 1e-3)
    assert cold == pytest.approx(_reference_pld(history, 1e-3), rel=1e-9)
    # Warm: the history and its prefix are cached; extending the history reuses the prefix.
    assert accountants._pld_at(history, DELTA, 1e-3) == cold
    longer = (*history, (1.5, 0.01, 100))
    assert accountants._pld_at(longer, DELTA, 1e-3) == pytest.approx(_reference_pld(longer, 1e-3), rel=1e-9)


def test_pld_refines_its_discretisation_where_a_fixed_interval_is_far_off():
    # Per-step privacy losses far below 1e-3: a fixed interval of 1e-3 doubles ε.
    history = [(5.0, 0.001, 10_000)]
    fine = _reference_pld(history, 1e-5)
    assert _reference_pld(history, 1e-3) > 2 * fine
    assert epsilon(history, DELTA, "pld") == pytest.approx(fine, rel=0.005)


def test_rdp_orders_are_never_looser_than_opacus_defaults():
    from opacus.accountants import RDPAccountant

    for history in ([(5.0, 0.001, 1)], [(1.0, 0.01, 1000)], [(0.7, 0.5, 100)]):
        default = RDPAccountant()
        default.history = history
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "optimal order is the largest alpha"
            looser = default.get_epsilon(DELTA)
        assert epsilon(history, DELTA, "rdp") <= looser
    # Small ε needs orders above Opacus' 63: 0.103 with its defaults.
    assert epsilon([(5.0, 0.001, 1)], DELTA, "rdp") < 0.02


@pytest.mark.parametrize("accountant", ["pld", "prv", "rdp"])
def test_every_accountant_handles_a_small_agency_sampled_whole(accountant):
    # q = 1 when an agency has fewer records than a batch.
    value = epsilon([(5.0, 1.0, 100)], DELTA, accountant)
    assert 9.9 < value < 11.0


def test_auto_is_pld_and_unknown_names_are_refused():
    assert resolve_accountant("auto") == "pld"
    assert set(ACCOUNTANT_CHOICES) == {"auto", "pld", "prv", "rdp"}
    with pytest.raises(ValueError, match="unknown accountant 'gdp'.*auto, pld, prv, rdp"):
        epsilon([(1.0, 0.1, 1)], DELTA, "gdp")


def test_epsilon_grows_with_every_release_and_noiseless_is_infinite():
    release = (1.2, 0.02, 50)
    values = [epsilon([release] * r, DELTA) for r in range(1, 6)]
    assert all(b > a for a, b in pairwise(values))
    assert epsilon([], DELTA) == 0.0
    assert epsilon([release, (0.0, 0.02, 1)], DELTA) == math.inf


def test_merge_history_only_merges_equal_neighbours_and_checks_releases():
    assert merge_history([(1.0, 0.1, 5), (1.0, 0.1, 5), (2.0, 0.1, 1), (1.0, 0.1, 1), (3.0, 0.2, 0)]) == [
        (1.0, 0.1, 10),
        (2.0, 0.1, 1),
        (1.0, 0.1, 1),
    ]
    for bad, message in [((1.0, 1.5, 1), "sample rate"), ((1.0, 0.1, -1), "steps"), ((-1.0, 0.1, 1), "noise multiplier")]:
        with pytest.raises(ValueError, match=message):
            merge_history([bad])


# --- replace-one ---------------------------------------------------------------------------


def _reference_replace_one(history, interval):
    events = [
        dp_accounting.SelfComposedDpEvent(dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), steps)
        for sigma, q, steps in history
    ]
    acc = dp_accounting.pld.PLDAccountant(dp_accounting.NeighboringRelation.REPLACE_ONE, value_discretization_interval=interval)
    acc.compose(dp_accounting.ComposedDpEvent(events))
    return acc.get_epsilon(DELTA)


def test_replace_one_is_dp_accountings_replace_one_and_never_below_add_remove():
    history = tuple(merge_history([(1.0, 0.01, 300), (2.0, 0.05, 40)]))
    assert accountants._pld_at(history, DELTA, 1e-3, "replace-one") == pytest.approx(_reference_replace_one(history, 1e-3), rel=1e-9)
    converged = epsilon(history, DELTA, "pld", "replace-one")
    assert converged == pytest.approx(_reference_replace_one(history, 1e-4), rel=0.01)
    assert converged > 1.2 * epsilon(history, DELTA, "pld", "add-remove")
    # q = 1: replace-one is add/remove at twice the sensitivity, i.e. half the σ
    assert epsilon([(4.0, 1.0, 10)], DELTA, "auto", "replace-one") == pytest.approx(epsilon([(2.0, 1.0, 10)], DELTA, "pld"), rel=0.01)


@pytest.mark.parametrize("accountant", ["prv", "rdp"])
def test_replace_one_is_refused_by_accountants_that_cannot_do_it(accountant):
    with pytest.raises(ValueError, match=f"{accountant} accountant only accounts for add-remove"):
        epsilon([(1.0, 0.1, 10)], DELTA, accountant, "replace-one")
    with pytest.raises(ValueError, match="unknown neighbouring relation 'swap'"):
        epsilon([(1.0, 0.1, 10)], DELTA, "pld", "swap")
