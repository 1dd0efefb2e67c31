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

import os  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from flwr.app import ArrayRecord, ConfigRecord, Context, Error, Message, MetricRecord, RecordDict  # noqa: E402
from flwr.clientapp import ClientApp  # noqa: E402

from clients import budget_state, releases  # noqa: E402
from clients.attacks import maybe_poison  # noqa: E402
from clients.agency import Agency, load_split, locate  # noqa: E402
from clients.arrays import state_dict  # noqa: E402
from clients.secagg import secagg_mod  # noqa: E402
from privacy.accounting import epsilon  # noqa: E402
from privacy.budget import ReleaseRefused, plan_dp  # noqa: E402
from privacy.ledger import Ledger, LedgerError  # noqa: E402
from privacy.dpsgd import train_dp  # noqa: E402
from clients.trail import record_reply  # noqa: E402
from tasks.registry import score  # noqa: E402
from tasks.model import make_model  # noqa: E402
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
    shape = (int(split.X_train.shape[1]), tuple(agency.spec["config"]["task"]["hidden"]))
    model = _reusable.get(shape) if reuse else None
    if model is None:
        model = make_model(*shape)
        if reuse:
            _reusable[shape] = model
    model.load_state_dict(state_dict(arrays))
    return model


def _reply(msg: Message, agency: Agency, arrays: ArrayRecord | None, metrics: dict) -> Message:
    content = RecordDict({"metrics": MetricRecord(metrics), "agency": ConfigRecord({"name": agency.name})})
    if arrays is not None:
        content["arrays"] = arrays
    return Message(content=content, reply_to=msg)


def _dp_round(context: Context, agency: Agency, config: ConfigRecord, model: torch.nn.Module) -> tuple[dict, dict]:
    """One DP-SGD release under the agency's own budget: plan σ once per architecture, check the
    budget, record the spend, then train. Raises ReleaseRefused (e.g. BudgetExceeded) before anything is trained."""
    architecture = str(config["architecture"])
    split = load_split(agency)
    server_round = int(config["server-round"])
    privacy = agency.spec["config"]["privacy"]
    run_id = Path(agency.spec["run_dir"]).name
    with Ledger.open(agency.ledger, agency.name) as ledger:
        ledger.set_budget(agency.budget, float(privacy["delta"]), source=f"run {run_id}")
        plan = budget_state.cached_plan(context, architecture) or releases.saved_plan(agency, run_id, architecture)
        if plan is None:
            # Calibrated against everything this agency has already spent (its ledger, all
            # runs), for the releases still planned: the rest of this architecture's rounds
            # and, when the coordinator says so, those of later DP architectures of this run.
            planned = int(config.get("dp-releases-planned", int(config["rounds"]) - server_round + 1))
            plan = plan_dp(
                len(split.y_train),
                batch_size=int(config["batch-size"]),
                local_epochs=int(config["local-epochs"]),
                rounds=planned,
                target_epsilon=agency.budget,
                delta=float(privacy["delta"]),
                max_grad_norm=float(privacy["max_grad_norm"]),
                accountant=str(privacy["accountant"]),
                prior=ledger.history(),
            )
            releases.save_plan(agency, run_id, architecture, plan)  # a resumed run keeps this σ
            budget_state.store_plan(context, architecture, plan)
        counted = [r for r in ledger.rows() if r["counted"]]
        earlier = [r for r in counted if (r["run_id"], r["architecture"], r["round"]) == (run_id, architecture, server_round)]
        if earlier:
            # Charged by an attempt that stopped before its update left (an update that left is
            # re-sent instead, see `train`): this training is that same, single release.
            eps = float(earlier[-1]["epsilon_after"])
        else:
            # Spend first: committed to the agency's ledger on disk before the update exists, so
            # a crash after this line over-counts, never under-counts.
            eps = ledger.charge(run_id, architecture, server_round, plan.release, delta=plan.delta, accountant=plan.accountant, budget=plan.target_epsilon)
            sigma, q, steps = plan.release
            counted.append({"run_id": run_id, "architecture": architecture, "round": server_round, "sigma": sigma, "sample_rate": q, "steps": steps})
    mine = [(r["sigma"], r["sample_rate"], r["steps"]) for r in counted if (r["run_id"], r["architecture"]) == (run_id, architecture) and r["round"] <= server_round]
    charged = len(counted)
    # What this architecture's releases cost; the same as the ledger total when they are all
    # the ledger holds (a fresh agency, one DP architecture), so no second accountant call.
    eps_run = eps if len(mine) == charged else epsilon(mine, plan.delta, plan.accountant)
    # DP sampling and noise must be unpredictable to anyone else: seed from OS entropy.
    secret = torch.Generator().manual_seed(int.from_bytes(os.urandom(8), "little") >> 1)
    stats = train_dp(model, split.X_train, split.y_train, plan=plan, lr=float(config["learning-rate"]), generator=secret)
    metrics = {
        "epsilon": eps,
        "epsilon-run": eps_run,
        "delta": plan.delta,
        "epsilon-budget": plan.target_epsilon,
        "sigma": plan.noise_multiplier,
        "sample-rate": plan.sample_rate,
        "mean-batch": stats["mean_batch"],
    }
    return stats, metrics


def _maybe_drop_out(agency: Agency, config: ConfigRecord) -> None:
    """`faults.dropout`: fail this round with that probability, before training or spending any
    budget (so ε is charged only for updates that leave). The draw is seeded by (seed, agency,
    architecture, round), so runs are reproducible."""
    p = float(agency.spec["config"].get("faults", {}).get("dropout", 0.0))
    if p > 0:
        seed = stable_seed(agency.spec["config"]["seed"], agency.name, str(config["architecture"]), int(config["server-round"]), "dropout")
        if torch.rand(1, generator=torch.Generator().manual_seed(seed)).item() < p:
            raise AgencyDropout(f"{agency.name}: dropped out of round {int(config['server-round'])} (simulated, faults.dropout={p:g})")


class AgencyDropout(RuntimeError):
    """A simulated failure: the agency does not answer this round."""


def _plain_round(agency: Agency, config: ConfigRecord, model: torch.nn.Module) -> dict:
    split = load_split(agency)
    seed = stable_seed(agency.spec["config"]["seed"], agency.name, config["architecture"], int(config["server-round"]))
    return train_plain(
        model,
        split.X_train,
        split.y_train,
        epochs=int(config["local-epochs"]),
        batch_size=int(config["batch-size"]),
        lr=float(config["learning-rate"]),
        generator=torch.Generator().manual_seed(seed),
    )


# secagg_mod: the SecAgg+ protocol's messages (fedavg-dp-secagg) reach this handler through
# Flower's legacy secaggplus_mod; every other message passes through it unchanged.
@app.train(mods=[secagg_mod])
def train(msg: Message, context: Context) -> Message:
    agency = locate(context)
    config = msg.content["config"]
    _maybe_drop_out(agency, config)
    model = _model(agency, msg.content["arrays"], reuse=not bool(config["dp"]))
    started = time.perf_counter()
    if bool(config["dp"]):
        try:
            sent = releases.released(agency, Path(agency.spec["run_dir"]).name, str(config["architecture"]), int(config["server-round"]))
            if sent is not None:  # a resumed run asks again for an update that already left: the same bytes
                record_reply(agency, config, "train-reply", *sent)
                return _reply(msg, agency, *sent)
            stats, metrics = _dp_round(context, agency, config, model)
        except (ReleaseRefused, LedgerError) as exc:
            reason = f"{agency.name}: {exc}"
            record_reply(agency, config, "refusal", None, {}, reason)
            return Message(Error(REFUSED, reason), reply_to=msg)
    else:
        stats, metrics = _plain_round(agency, config, model), {}
    metrics.update(
        {
            "num-examples": len(load_split(agency).y_train),
            "train-loss": float(stats["loss"]),
            "steps": int(stats["steps"]),
            "train-seconds": time.perf_counter() - started,
        }
    )
    # faults.malicious: a lying agency manipulates its update here, before the trail hashes it.
    arrays = maybe_poison(agency, config, msg.content["arrays"], model.state_dict())
    if bool(config["dp"]):
        releases.keep_release(agency, Path(agency.spec["run_dir"]).name, str(config["architecture"]), int(config["server-round"]), arrays, metrics)
    record_reply(agency, config, "train-reply", arrays, metrics)
    return _reply(msg, agency, arrays, metrics)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    agency = locate(context)
    split = load_split(agency)
    model = _model(agency, msg.content["arrays"])
    scores = score(split, predict_proba(model, split.X_test))
    # MetricRecord holds numbers only: an undefined metric (one class in the test set) is NaN.
    metrics = {k: float("nan") if v is None else float(v) for k, v in scores.items() if k != "n"}
    metrics["num-examples"] = len(split.y_test)
    record_reply(agency, msg.content.config_records.get("config", ConfigRecord()), "evaluate-reply", None, metrics)
    return _reply(msg, agency, None, metrics)


@app.query()
def query(msg: Message, context: Context) -> Message:
    """The agency's name and number of training records: its FedAvg weight, which it sends with
    every update anyway; the SecAgg+ coordinator needs it before the first round (max_weight)."""
    agency = locate(context)
    return _reply(msg, agency, None, {"num-examples": len(load_split(agency).y_train)})
