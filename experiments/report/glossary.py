"""The report's glossary: every term of art the report uses, in plain words (one place, so the
first screen and the details can use the words without explaining each)."""

from __future__ import annotations

TERMS: tuple[tuple[str, str], ...] = (
    ("Differential privacy (DP)", "A mathematical promise about a release (a model update, a count): it would look almost the same whether or not any one protected unit — here usually one incident record — was in the data. How close “almost” is, is set by ε and δ."),
    ("ε (epsilon)", "The privacy loss of DP: adding or removing one protected unit changes the probability of any outcome by at most a factor e^ε. Smaller is more private; ε = 1 means a factor of at most 2.72. ε adds up over releases, so Peel reports it cumulatively (“spent to date”) and as the maximum over agencies, never an average."),
    ("δ (delta)", "The small probability with which the ε promise may fail. It is fixed per agency (pinned in its ledger) and set well below one over the number of records, e.g. 10⁻⁵."),
    ("Privacy unit", "What one “unit” of DP protects: one incident record (record-level DP, inside each agency), one area-month example (the hotspot task) or one whole agency (agency-level DP)."),
    ("Budget and ledger", "Each agency sets its own ε budget. Its ledger records every DP release before it leaves and refuses a release that would exceed the budget; “spent to date” counts every run, not only this one."),
    ("DP-SGD", "Differentially private training: each record's gradient is clipped to a maximum size (the clipping norm C), Gaussian noise is added and batches are sampled at random. An accountant turns the noise, sampling rate and number of steps into ε."),
    ("Accountant (PLD, PRV, RDP)", "The method that adds up ε over many training steps. PLD (privacy loss distributions) is the tightest for Peel's sampling; PRV and RDP are alternatives that give equal or larger ε."),
    ("Record-level and agency-level DP", "Record-level: each agency adds the noise itself before anything leaves (fedavg-dp), so it need not trust the coordinator. Agency-level: the coordinator clips every agency's update and adds the noise (fedavg-central-dp); it protects a whole agency, but only if the coordinator is trusted, and with few agencies its noise swamps the model."),
    ("Federated learning, FedAvg", "Agencies train a shared model without sending records: each trains on its own data and sends a model update; the coordinator averages the updates, weighted by records (Federated Averaging), and sends the new model back. Repeated for a number of rounds."),
    ("Secure aggregation (SecAgg+)", "A cryptographic protocol that lets the coordinator learn only the sum of the agencies' updates, never one agency's update on its own. It adds protection against the coordinator, not ε."),
    ("Pooling (central)", "Every agency's records copied into one place and one model trained on them: the “integrate everything” platform. The utility reference, with no privacy."),
    ("Local", "Every agency trains alone on its own records; nothing is shared."),
    ("AUC", "Area under the ROC curve: the chance that the model ranks a random positive case above a random negative one. 0.5 is chance (a coin), 1 is perfect."),
    ("Utility kept", "How much of pooling's gain over chance an architecture keeps: (its AUC − 0.5) ÷ (pooled AUC − 0.5). 100% means as good as pooling every record."),
    ("PAI", "Predictive accuracy index (hotspot task): the share of incidents in the flagged areas divided by the share of area flagged. 1 is chance; higher means flags find more incidents per area."),
    ("PEI", "Predictive efficiency index (hotspot task): the model's PAI divided by the PAI of the best flags anyone could choose in advance (from the synthetic ground truth). About 1 is as good as possible; it can exceed 1 in a lucky period."),
    ("Hit rate", "Hotspot task: the share of all incidents that fell in the flagged areas."),
    ("Ceiling (ground truth)", "The best score possible on synthetic data, from the generator's true probabilities (Bayes-optimal). A model cannot be expected to beat it."),
    ("Membership inference", "An attack that guesses whether a given record was used to train a model. Its AUC of 0.5 means it cannot tell; DP with a given ε caps how far above 0.5 any such attack can get."),
    ("Canary audit", "A test of the DP machinery itself: known fake records (canaries) are planted, and how well they can be detected afterwards gives a measured lower bound on ε. It must stay below the claimed ε."),
    ("Poisoning and robust aggregation", "An agency that lies in its updates to damage the model (poisoning); aggregators such as the median, trimmed mean or Krum limit how far one agency can move the average."),
    ("Test-weighted", "An overall score is the mean of the agencies' scores on their own held-out test months, weighted by their number of test records."),
)
