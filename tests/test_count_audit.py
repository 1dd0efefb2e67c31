"""The empirical audit of federated count releases (privacy/audit/count_audit.py): the real
share design and sampler pass; a sampler with too little spread, or a charge for more noise
than the released sum carries, is caught. Draws come from the CSPRNG sampler (a few seconds)."""

from __future__ import annotations

import pytest

from privacy.audit.count_audit import audit_release, audit_share_design
from privacy.count_release import ShareDesign, calibrate_count_sigma

DELTA = 1e-5
DRAWS = 8000


@pytest.mark.parametrize(("agencies", "tolerate", "epsilon"), [(8, 1, 0.5), (3, 0, 1.0)])
def test_the_release_design_passes_its_audit(agencies: int, tolerate: int, epsilon: float) -> None:
    design = ShareDesign(agencies, tolerate, calibrate_count_sigma(epsilon, DELTA))
    audit = audit_share_design(design, DELTA, draws_per_world=DRAWS)
    assert audit.honest_shares == agencies - tolerate
    assert 0 < audit.claimed_epsilon <= epsilon * 1.01
    assert audit.passed, audit
    # What the draws show is about what an exact release at the charged σ is expected to show.
    assert 0 < audit.ceiling <= audit.claimed_epsilon
    assert abs(audit.lower_bound - audit.ceiling) < 0.3  # its spread over runs: sd ≈ 0.07


def test_a_larger_sensitivity_is_audited_as_a_shift_of_that_many() -> None:
    # A person-capped histogram (Δ = 3): charged for Δ = 3 it passes; charged for Δ = 1 it is caught.
    sigma = 3 * calibrate_count_sigma(1.0, DELTA)
    design = ShareDesign(3, 0, sigma)
    right = audit_release(design.share_sigma, design.honest, design.guaranteed_sigma, DELTA, sensitivity=3, draws_per_world=DRAWS)
    assert right.passed and right.claimed_epsilon == pytest.approx(1.0, rel=0.02)
    wrong = audit_release(design.share_sigma, design.honest, 10 * design.guaranteed_sigma, DELTA, sensitivity=3, draws_per_world=DRAWS)
    assert not wrong.passed


def test_a_sampler_with_a_fifth_of_the_noise_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    import privacy.audit.count_audit as count_audit
    from privacy.noise import sample_discrete_gaussian as real

    monkeypatch.setattr(count_audit, "sample_discrete_gaussian", lambda sigma, size: real(sigma / 5, size))
    design = ShareDesign(3, 0, calibrate_count_sigma(0.5, DELTA))
    audit = audit_share_design(design, DELTA, draws_per_world=DRAWS)
    assert not audit.passed and audit.lower_bound > audit.claimed_epsilon


def test_a_charge_for_more_noise_than_the_sum_carries_is_caught() -> None:
    design = ShareDesign(3, 0, calibrate_count_sigma(1.0, DELTA))
    audit = audit_release(design.share_sigma, design.honest, 10 * design.guaranteed_sigma, DELTA, draws_per_world=DRAWS)
    assert not audit.passed and audit.ceiling < audit.lower_bound


def test_no_noise_or_too_few_draws_is_refused() -> None:
    with pytest.raises(ValueError, match="no noise"):
        audit_release(0.0, 3, 4.0, DELTA)
    with pytest.raises(ValueError, match="at least 100 draws"):
        audit_release(2.0, 3, 4.0, DELTA, draws_per_world=10)
