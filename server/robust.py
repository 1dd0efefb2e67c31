"""`federation.aggregator`: Flower's robust aggregators with Peel's recording, for the
architectures where the coordinator sees each update and averages them plainly (those whose
registry entry, federation/architectures.py, allows them: fedavg, fedavg-dp).

fedavg-dp-secagg cannot use them: the coordinator sees only the masked sum. fedavg-central-dp
keeps the clipped mean its noise is calibrated to; its server-side clipping of each update to
`privacy.central.clipping_norm` is what bounds a scaling attacker there.

Flower's median, trimmed mean and Krum weigh every agency equally (the coordinate-wise median
ignores the number of records); FedAvg weighs by the number of records.
"""

from __future__ import annotations

from flwr.serverapp.strategy import FedMedian, FedTrimmedAvg, Krum

from federation import architectures
from federation.architectures import ROBUST_AGGREGATORS as AGGREGATORS
from federation.spec import FederationSpec
from server.recorder import RoundRecorder
from server.strategy import Recording, RecordingFedAvg


class RecordingMedian(Recording, FedMedian):
    """Coordinate-wise median of the agencies' models (Yin et al. 2018)."""


class RecordingTrimmedAvg(Recording, FedTrimmedAvg):
    """Coordinate-wise mean after cutting a share `beta` of the agencies from each tail."""


class RecordingKrum(Recording, Krum):
    """The one agency's model closest to its n − f − 2 nearest others (Blanchard et al. 2017)."""


def aggregator_of(architecture: str, federation: FederationSpec) -> str:
    """The aggregator `architecture` actually uses under the run's federation settings (its
    registry entry's allowed ones: federation.aggregator if allowed, else its own)."""
    return architectures.get(architecture).aggregator(federation.aggregator)


def recording_strategy(recorder: RoundRecorder, federation: FederationSpec, n_agencies: int, architecture: str | None = None) -> Recording:
    """The recorded Flower strategy that `federation.aggregator` names, or, given `architecture`,
    the one that architecture uses under it (aggregator_of)."""
    name = aggregator_of(architecture, federation) if architecture is not None else federation.aggregator
    rounds = federation.rounds
    if name == "fedavg":
        return RecordingFedAvg(recorder, n_agencies, rounds)
    if name == "median":
        return RecordingMedian(recorder, n_agencies, rounds)
    if name == "trimmed_mean":
        return RecordingTrimmedAvg(recorder, n_agencies, rounds, beta=federation.trimmed_beta)
    if name == "krum":
        f = federation.krum_malicious
        if n_agencies < 2 * f + 3:
            raise ValueError(f"federation.krum_malicious: Krum with {f} malicious agenc{'y' if f == 1 else 'ies'} needs at least {2 * f + 3} agencies; the federation has {n_agencies}")
        return RecordingKrum(recorder, n_agencies, rounds, num_malicious_nodes=f)
    raise ValueError(f"federation.aggregator: unknown aggregator {name!r}; known: {list(AGGREGATORS)}")
