"""Privacy audits: attacks that measure what a trained model gives away, beside the ε it claims.

- `mia` — membership inference on a final model (loss threshold, Yeom et al. 2018; optionally
  difficulty-calibrated): how well can someone holding the model tell an agency's training
  records from its records of the same months that were held out? Reported as ROC AUC and TPR
  at 1% FPR, next to `bounds.mia_bounds(ε, δ)`, the most any attack could reach against an
  (ε, δ)-DP training. It measures this attack on these records, not the worst case.
- `canary` — a one-run canary audit (Steinke, Nasr & Jagielski 2023): k made-up records are each
  included with probability ½, the model is trained once as the agency trains it, and the
  number of right in/out guesses gives an empirical lower bound on ε that holds with the stated
  confidence. A bound above the claimed ε means the implementation or its accounting is broken.
- `whitebox` — the same bound with gradient canaries inside DP-SGD's clipped sums, read at every
  step: the strongest observer the guarantee covers, so it catches a mechanism that forgets its
  noise or its clipping (the black-box audit, which reads the final model only, does not).
  Every bound comes with its `ceiling` (`bounds.epsilon_ceiling`): what the same design would be
  expected to show against a mechanism that is exactly ε-DP at the claimed ε.

What a low result does NOT prove: an audit lower bound (or an AUC near 0.5) is not a privacy
guarantee. It shows only that this attacker, with this access (the final model, not every
update), these canaries and this many of them, could not demonstrate more leakage. Stronger
attacks, worst-case records, the per-round updates the coordinator sees, or more canaries can
reveal more; only the accountant's ε (an upper bound, proved for the mechanism) is a guarantee,
and only if the implementation matches what it assumes — which is what the audit checks for.
"""

from privacy.audit.bounds import epsilon_ceiling, epsilon_lower_bound, max_auc, max_tpr, mia_bounds, one_run_p_value
from privacy.audit.canary import audit_result, canary_audit, claimed_epsilon, guess_grid, guesses, make_canaries
from privacy.audit.mia import (
    balanced,
    calibrated_mia_scores,
    holdout_same_months,
    mia_audit,
    mia_report,
    mia_scores,
)
from privacy.audit.roc import auc, auc_null_sd, roc_curve, tpr_at_fpr
from privacy.audit.trainers import TrainFn, dp_trainer, plain_trainer
from privacy.audit.whitebox import GradientCanaries, whitebox_audit

__all__ = [
    "GradientCanaries",
    "TrainFn",
    "audit_result",
    "auc",
    "auc_null_sd",
    "balanced",
    "calibrated_mia_scores",
    "canary_audit",
    "claimed_epsilon",
    "dp_trainer",
    "epsilon_ceiling",
    "epsilon_lower_bound",
    "guess_grid",
    "guesses",
    "holdout_same_months",
    "make_canaries",
    "max_auc",
    "max_tpr",
    "mia_audit",
    "mia_bounds",
    "mia_report",
    "mia_scores",
    "one_run_p_value",
    "plain_trainer",
    "roc_curve",
    "tpr_at_fpr",
    "whitebox_audit",
]
