"""The agency: a Flower ClientApp (Message API).

It trains the global model on its own records — plainly, or with DP-SGD under its own ε
budget — and evaluates models on its own test months. A DP agency checks its budget and
records the spend before any update leaves; if the next update would exceed the budget it
replies with an error that says so instead of an update.
"""

from __future__ import annotations

import logging

# Opacus calls logging.basicConfig() on import, which would print every Flower line twice.
logging.getLogger().addHandler(logging.NullHandler())

import fcntl  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402

import torch  # noqa: E402
from flwr.app import ArrayRecord, ConfigRecord, Context, Error, Message, MetricRecord, RecordDict  # noqa: E402
from flwr.clientapp import ClientApp  # noqa: E402

from clients import budget_state, person_round, releases  # noqa: E402
from clients.agency import Agency, load_split, locate  # noqa: E402
from clients.arrays import state_dict  # noqa: E402
from clients.attacks import maybe_poison  # noqa: E402
from clients.count import released_count  # noqa: E402
from clients.evaluations import keep_evaluation  # noqa: E402
from clients.secagg import secagg_mod  # noqa: E402
from clients.trail import record_reply  # noqa: E402
from federation import architectures, contract  # noqa: E402
from federation.contract import WARM_UP  # noqa: E402
from privacy.accounting import epsilon  # noqa: E402
from privacy.budget import ReleaseRefused, plan_dp  # noqa: E402
from privacy.dpsgd import train_dp  # noqa: E402
from privacy.ledger import Ledger, LedgerError  # noqa: E402
from privacy.person_clip import train_person_dp  # noqa: E402
from privacy.person_unit import accounting_relation  # noqa: E402
from tasks import registry  # noqa: E402
from tasks.model import make_model  # noqa: E402
from tasks.registry import score  # noqa: E402
from tasks.seeding import stable_seed  # noqa: E402
from tasks.train import predict_proba, train_plain  # noqa: E402

torch.set_num_threads(1)  # many small clients share 2 cores; threads only add contention

# Error code of an agency's refusal to release an update (Flower's own codes are small ints).
REFUSED = 4001

app = ClientApp()


# One model per shape for plain training and evaluation, which load each message's weights into
# it (messages are handled one at a time per process): building and initialising a new one per
# message cost more than the evaluation itself. DP training gets a fresh model (Opacus' path
# wraps and hooks the module it is given).
_reusable: dict[tuple, torch.nn.Module] = {}


def _model(agency: Agency, arrays: ArrayRecord, *, reuse: bool = True) -> torch.nn.Module:
    split = load_split(agency)
    shape = (int(split.X_train.shape[1]), agency.spec.task.hidden)
    model = _reusable.get(shape) if reuse else None
    if model is None:
        model = make_model(*shape)
        if reuse:
            _reusable[shape] = model
    model.load_state_dict(state_dict(arrays))
    return model


def _reply(msg: Message, agency: Agency, arrays: ArrayRecord | None, metrics: dict, *, message: str, regime: contract.Regime, config: ConfigRecord) -> Message:
    """A reply, after the release boundary allowed every field in it and the trail recorded it."""
    fields = contract.check(message, regime, contract.fields_of(metrics, arrays=arrays is not None))
    record_reply(agency, config, message, arrays, metrics, fields=fields)
    content = RecordDict({"metrics": MetricRecord(metrics), "agency": ConfigRecord({"name": agency.name})})
    if arrays is not None:
        content["arrays"] = arrays
    return Message(content=content, reply_to=msg)


def _refusal(msg: Message, agency: Agency, config: ConfigRecord, reason: str, regime: contract.Regime) -> Message:
    contract.check(contract.REFUSAL, regime, [contract.REASON])
    record_reply(agency, config, contract.REFUSAL, None, {}, reason, fields=[contract.REASON])
    return Message(Error(REFUSED, reason), reply_to=msg)


class NoiseTooLarge(ReleaseRefused):
    """The noise this release needs would leave nothing of the update (σ above the agency's cap)."""


def _dp_round(context: Context, agency: Agency, config: ConfigRecord, model: torch.nn.Module) -> dict:
    """One DP-SGD release under the agency's own policy and budget: release its record count
    (once), plan σ once per architecture, check the budget, record the spend, then train.
    Raises ReleaseRefused (e.g. BudgetExceeded) before anything is trained. Returns the
    reply's metrics (every one declared public or DP in federation/contract.py)."""
    architecture = str(config["architecture"])
    split = load_split(agency)
    server_round = int(config["server-round"])
    policy = agency.policy
    run_id = agency.spec.run_id
    neighbouring = registry.NEIGHBOURING[agency.spec.task.name]
    units = person_round.units_of(agency) if person_round.is_person_unit(agency) else None
    ledger_path = agency.ledger
    if units is not None:  # privacy.unit person: persons sampled and clipped, a person ledger
        n_public = person_round.released_units(agency, run_id).value
        ledger_path, neighbouring = person_round.person_view(agency).ledger, person_round.ADD_REMOVE_PERSON
    else:
        n_public = released_count(agency, run_id, neighbouring).value
    with Ledger.open(ledger_path, agency.name) as ledger:
        ledger.set_budget(policy.budget, policy.delta, source=f"run {run_id}")
        plan = budget_state.cached_plan(context, architecture) or releases.saved_plan(agency, run_id, architecture)
        if plan is None:
            # Calibrated against everything this agency has already spent (its ledger, all
            # runs), for the releases still planned: the rest of this architecture's rounds
            # and, when the coordinator says so, those of later DP architectures of this run.
            planned = int(config.get("dp-releases-planned", int(config["rounds"]) - server_round + 1))
            plan = plan_dp(
                n_public,
                batch_size=int(config["batch-size"]),
                local_epochs=int(config["local-epochs"]),
                rounds=planned,
                target_epsilon=policy.budget,
                delta=policy.delta,
                max_grad_norm=policy.max_grad_norm,
                accountant=policy.accountant,
                prior=ledger.history(),
                neighbouring=accounting_relation(neighbouring),
            )
            if plan.noise_multiplier > policy.max_noise_multiplier:
                raise NoiseTooLarge(
                    f"the {planned} release(s) still planned would need noise σ = {plan.noise_multiplier:.3g} "
                    f"(above this agency's cap {policy.max_noise_multiplier:g}): ε spent {plan.prior_epsilon:.4g} of "
                    f"{policy.budget:g} leaves too little for a useful update; refusing rather than sending noise"
                )
            releases.save_plan(agency, run_id, architecture, plan)  # a resumed run keeps this σ
            budget_state.store_plan(context, architecture, plan)
        counted = [r for r in ledger.rows() if r["counted"]]
        earlier = [r for r in counted if (r["run_id"], r["architecture"], r["round"]) == (run_id, architecture, server_round)]
        if earlier:
            # Charged by an attempt that stopped before its update left (an update that left is
            # re-sent instead, see `train`): this training is that same, single release.
            spent = float(earlier[-1]["epsilon_after"])
        else:
            # Spend first: committed to the agency's ledger on disk before the update exists, so
            # a crash after this line over-counts, never under-counts.
            spent = ledger.charge(run_id, architecture, server_round, plan.release, delta=plan.delta, accountant=plan.accountant, budget=plan.target_epsilon, neighbouring=neighbouring)
            sigma, q, steps = plan.release
            counted.append({"run_id": run_id, "architecture": architecture, "round": server_round, "sigma": sigma, "sample_rate": q, "steps": steps})
    this_run = [(r["sigma"], r["sample_rate"], r["steps"]) for r in counted if r["run_id"] == run_id and (r["architecture"] != architecture or r["round"] <= server_round)]
    # What this run's releases cost (its count, if released now, and every DP round so far); the
    # same as the ledger total when they are all the ledger holds, so no second accountant call.
    eps_run = spent if len(this_run) == len(counted) else epsilon(this_run, plan.delta, plan.accountant, plan.neighbouring)
    # DP sampling and noise must be unpredictable to anyone else: seed from OS entropy.
    secret = torch.Generator().manual_seed(int.from_bytes(os.urandom(8), "little") >> 1)
    # Nothing of the training run itself (loss, realised batch sizes, time) leaves: only the update.
    if units is not None:
        train_person_dp(model, split.X_train, split.y_train, units, plan=plan, lr=float(config["learning-rate"]), generator=secret)
    else:
        train_dp(model, split.X_train, split.y_train, plan=plan, lr=float(config["learning-rate"]), generator=secret)
    return {
        contract.NUM_EXAMPLES: n_public,
        contract.EPSILON_SPENT_TO_DATE: spent,
        contract.EPSILON_THIS_RUN: eps_run,
        contract.DELTA: plan.delta,
        contract.EPSILON_BUDGET: plan.target_epsilon,
        contract.SIGMA: plan.noise_multiplier,
        contract.SAMPLE_RATE: plan.sample_rate,
        contract.STEPS: plan.steps_per_round,
    }


def _maybe_drop_out(agency: Agency, config: ConfigRecord) -> None:
    """`faults.dropout`: fail this round with that probability, before training or spending any
    budget (so ε is charged only for updates that leave). The draw is seeded by (seed, agency,
    architecture, round), so runs are reproducible."""
    p = agency.spec.faults.dropout
    if p > 0:
        seed = stable_seed(agency.spec.seed, agency.name, str(config["architecture"]), int(config["server-round"]), "dropout")
        if torch.rand(1, generator=torch.Generator().manual_seed(seed)).item() < p:
            raise AgencyDropout(f"{agency.name}: dropped out of round {int(config['server-round'])} (simulated, faults.dropout={p:g})")


class AgencyDropout(RuntimeError):
    """A simulated failure: the agency does not answer this round."""


def _plain_round(agency: Agency, config: ConfigRecord, model: torch.nn.Module) -> dict:
    split = load_split(agency)
    seed = stable_seed(agency.spec.seed, agency.name, config["architecture"], int(config["server-round"]))
    started = time.perf_counter()
    stats = train_plain(
        model,
        split.X_train,
        split.y_train,
        epochs=int(config["local-epochs"]),
        batch_size=int(config["batch-size"]),
        lr=float(config["learning-rate"]),
        generator=torch.Generator().manual_seed(seed),
    )
    return {
        contract.NUM_EXAMPLES: len(split.y_train),
        contract.TRAIN_LOSS: float(stats["loss"]),
        contract.STEPS: int(stats["steps"]),
        contract.TRAIN_SECONDS: time.perf_counter() - started,
    }


@contextmanager
def _release_lock(agency: Agency, architecture: str) -> Iterator[None]:
    """One DP release at a time per agency and architecture, across processes: a second delivery
    of the same round waits, then finds the kept release and re-sends it instead of training a
    second, differently noised update for one charge."""
    path = agency.ledger.with_name(f"{agency.ledger.stem}.{architecture}.lock")
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# secagg_mod: the SecAgg+ protocol's messages (fedavg-dp-secagg) reach this handler through
# Flower's legacy secaggplus_mod; every other message passes through it unchanged.
@app.train(mods=[secagg_mod])
def train(msg: Message, context: Context) -> Message:
    agency = locate(context)
    config = msg.content["config"]
    architecture = str(config["architecture"])
    if architectures.find(architecture) is None:
        # Refused before anything else: the name also names files beside the agency's ledger.
        return _refusal(msg, agency, config, f"{agency.name}: no architecture named {architecture[:80]!r}; known: {', '.join(architectures.names())}", "dp")
    regime = contract.regime(architecture)
    _maybe_drop_out(agency, config)  # a simulated crash: no reply at all
    if regime == "plain" and not agency.policy.allow_plain:
        return _refusal(msg, agency, config, f"{agency.name}: its policy allows only record-level DP architectures, not {architecture} (allow-plain=false)", "plain")
    model = _model(agency, msg.content["arrays"], reuse=regime == "plain")
    if regime == "plain":
        metrics = _plain_round(agency, config, model)
        arrays = maybe_poison(agency, config, msg.content["arrays"], model.state_dict())
        return _reply(msg, agency, arrays, metrics, message=contract.TRAIN_REPLY, regime=regime, config=config)
    run_id, server_round = agency.spec.run_id, int(config["server-round"])
    try:
        with _release_lock(agency, architecture):
            sent = releases.released(agency, run_id, architecture, server_round)
            if sent is not None:  # asked again for an update that already left: the same bytes
                return _reply(msg, agency, *sent, message=contract.TRAIN_REPLY, regime=regime, config=config)
            metrics = _dp_round(context, agency, config, model)
            # faults.malicious: a lying agency manipulates its update here, before the trail hashes it.
            arrays = maybe_poison(agency, config, msg.content["arrays"], model.state_dict())
            releases.keep_release(agency, run_id, architecture, server_round, arrays, metrics)
    except (ReleaseRefused, LedgerError) as exc:
        return _refusal(msg, agency, config, f"{agency.name}: {exc}", regime)
    return _reply(msg, agency, arrays, metrics, message=contract.TRAIN_REPLY, regime=regime, config=config)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    agency = locate(context)
    config = msg.content.config_records.get("config", ConfigRecord())
    architecture = str(config.get("architecture", ""))
    split = load_split(agency)  # the warm-up loads the agency's data and nothing more
    if architecture == WARM_UP:
        return _reply(msg, agency, None, {contract.EVALUATED_LOCALLY: 1}, message=contract.EVALUATE_REPLY, regime="dp", config=config)
    model = _model(agency, msg.content["arrays"])
    scores = score(split, predict_proba(model, split.X_test))
    # MetricRecord holds numbers only: an undefined metric (one class in the test set) is NaN.
    metrics = {k: float("nan") if v is None else float(v) for k, v in scores.items() if k != "n"}
    regime = contract.regime(architecture)
    if regime == "plain" and not agency.policy.allow_plain:
        return _refusal(msg, agency, config, f"{agency.name}: its policy allows only record-level DP architectures, not {architecture} (allow-plain=false)", "plain")
    if regime == "dp":
        # Metrics of its test records are a release too: a DP agency keeps them in its own folder.
        keep_evaluation(agency, config, metrics, len(split.y_test))
        return _reply(msg, agency, None, {contract.EVALUATED_LOCALLY: 1}, message=contract.EVALUATE_REPLY, regime=regime, config=config)
    metrics[contract.NUM_EXAMPLES] = len(split.y_test)
    return _reply(msg, agency, None, metrics, message=contract.EVALUATE_REPLY, regime=regime, config=config)


@app.query()
def query(msg: Message, context: Context) -> Message:
    """The agency's released record count: its FedAvg weight, which the SecAgg+ coordinator needs
    before the first round (max_weight). Released (and charged) once, as with training."""
    agency = locate(context)
    config = msg.content.config_records.get("config", ConfigRecord())
    try:
        count = person_round.released_weight(agency, agency.spec.run_id)
    except (ReleaseRefused, LedgerError) as exc:
        return _refusal(msg, agency, config, f"{agency.name}: {exc}", "dp")
    return _reply(msg, agency, None, {contract.NUM_EXAMPLES: count}, message=contract.QUERY_REPLY, regime="dp", config=config)
