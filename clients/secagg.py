"""SecAgg+ for `fedavg-dp-secagg`: the agency's half of Peel's one legacy-API seam.

Why this module exists: in Flower 1.42 SecAgg+ exists only in the legacy API — Flower's
`secaggplus_mod` speaks legacy FitIns/FitRes records — while Peel's ClientApp uses the Message
API. `secagg_mod`, attached to the train handler, routes the protocol's messages through Flower's
mod and translates the one stage that trains to and from Peel's own train handler, so the update
comes from exactly the same code as in `fedavg-dp` (DP-SGD, budget check and spend before anything
leaves). Every other message passes through unchanged. Remove this module and server/secagg.py
when Flower's Message API gains SecAgg+.

What leaves the agency in the training stage: its update (trained − global weights) weighted and
masked, as integers mod 2^32; its released record count (the weight); and the metrics the release
boundary declares (federation/contract.py) in the clear — SecAgg+ hides the update, not them.
"""

from __future__ import annotations

import json

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Error, Message, MessageType, RecordDict
from flwr.client.mod import secaggplus_mod
from flwr.clientapp.typing import ClientAppCallable
from flwr.common import Code, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, RECORD_KEY_STATE
from flwr.compat.common import recorddict_compat as compat

from clients.agency import locate
from clients.person_round import released_weight
from federation.contract import STATE_KEYS

# Error code of an agency that stops the protocol itself (Peel's refusal code is 4001).
SECAGG_FAILED = 4002


class _NoUpdate(Exception):
    """The agency sends no masked vector this round; carries the Error to reply with."""

    def __init__(self, error: Error) -> None:
        super().__init__(error.reason)
        self.error = error


def is_secagg(msg: Message) -> bool:
    """A message of Flower's SecAgg+ protocol (every stage carries its config record)."""
    return msg.metadata.message_type == MessageType.TRAIN and RECORD_KEY_CONFIGS in msg.content.config_records


def secagg_mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """Client mod for the train handler: SecAgg+ messages go through Flower's `secaggplus_mod`
    with Peel's train handler answering its training stage; other messages pass through."""
    if not is_secagg(msg):
        return call_next(msg, context)
    try:
        return secaggplus_mod(msg, context, _train_through(call_next))
    except _NoUpdate as stop:
        return Message(stop.error, reply_to=msg)
    except Exception as exc:  # noqa: BLE001 — reply naming the agency, so the coordinator can attribute it
        return Message(Error(SECAGG_FAILED, f"{locate(context).name}: secure aggregation failed: {exc}"), reply_to=msg)


def _train_through(call_next: ClientAppCallable) -> ClientAppCallable:
    """The legacy fit `secaggplus_mod` calls: FitIns → Peel's train message → its reply → a
    FitRes carrying the update (trained − global)."""

    def fit(msg: Message, context: Context) -> Message:
        fitins = compat.recorddict_to_fitins(msg.content, keep_input=True)
        config = dict(fitins.config)
        keys = json.loads(str(config.pop(STATE_KEYS)))
        global_weights = parameters_to_ndarrays(fitins.parameters)
        if len(keys) != len(global_weights):
            raise ValueError(f"{len(keys)} state-dict keys for {len(global_weights)} arrays")
        max_weight = _check_weight(context)
        content = RecordDict(
            {
                "arrays": ArrayRecord({k: Array(np.asarray(w)) for k, w in zip(keys, global_weights, strict=True)}),
                "config": ConfigRecord(config),
            }
        )
        # The train handler gets this very message with Peel's content (a new Message could not
        # be made here: inside a ClientApp only replies can).
        legacy_content, msg.content = msg.content, content
        try:
            reply = call_next(msg, context)
        finally:
            msg.content = legacy_content
        if reply.has_error():  # e.g. the budget refusal: nothing was trained, nothing leaves
            raise _NoUpdate(reply.error)
        return Message(legacy_update(reply.content, global_weights, max_weight, _clipping_range(context)), reply_to=msg)

    return fit


def _secagg_state(context: Context) -> ConfigRecord:
    return context.state.config_records[RECORD_KEY_STATE]


def _clipping_range(context: Context) -> float:
    return float(_secagg_state(context)["clipping_range"])


def _check_weight(context: Context) -> float:
    """SecAgg+ scales each update by weight / max_weight; a weight above max_weight could overflow
    the masked sum. Checked before training, so a misconfigured round spends nothing."""
    max_weight = float(_secagg_state(context)["max_weight"])
    agency = locate(context)
    # The weight is the agency's released count (the exact one never leaves a DP agency).
    weight = released_weight(agency, agency.spec.run_id)
    if weight > max_weight:
        raise _NoUpdate(
            Error(SECAGG_FAILED, f"{agency.name}: SecAgg+ max_weight {max_weight:g} is below its released record count {weight} (the coordinator must set max_weight ≥ every agency's count)")
        )
    return max_weight


def legacy_update(content: RecordDict, global_weights: list[np.ndarray], max_weight: float, clipping_range: float) -> RecordDict:
    """Peel's train reply as the legacy FitRes record `secaggplus_mod` masks: the update
    trained − global, the weight, and the metrics with the agency's name."""
    trained = content["arrays"].to_numpy_ndarrays()
    update = [np.asarray(t - g) for t, g in zip(trained, global_weights, strict=True)]
    metrics = dict(content["metrics"])
    weight = int(metrics["num-examples"])
    name = str(content["agency"]["name"])
    # SecAgg+ quantizes weight/max_weight · update within ±clipping_range and clips beyond it:
    # refuse rather than send a silently clipped update.
    largest = max((float(np.abs(u).max()) for u in update if u.size), default=0.0) * weight / max_weight
    if largest > clipping_range:
        raise _NoUpdate(Error(SECAGG_FAILED, f"{name}: update entry {largest:.3g} exceeds the SecAgg+ clipping range ±{clipping_range:g}"))
    fitres = FitRes(Status(Code.OK, "ok"), ndarrays_to_parameters(update), weight, {**metrics, "agency": name})
    return compat.fitres_to_recorddict(fitres, keep_input=True)
