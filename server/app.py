"""The coordinator: a Flower ServerApp (Message API).

One Flower run trains every federated architecture of the experiment in turn (paying the
simulation start-up once), each from the same initial model, and writes per-round,
per-agency rows to `metrics.jsonl`, the final model of each architecture and its wall time.
It never sees records: only model updates and metrics the agencies chose to send.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context
from flwr.serverapp import Grid, ServerApp

from server.recorder import RoundRecorder
from server.strategy import RecordingFedAvg
from tasks.model import initial_model

log = logging.getLogger("peel.server")

# Architectures this coordinator knows, and whether the agencies run DP-SGD in them.
FEDERATED = {"fedavg": False, "fedavg-dp": True}

app = ServerApp()


def _spec(context: Context) -> dict:
    path = str(context.run_config.get("peel-spec", "") or os.environ.get("PEEL_SPEC", ""))
    if not path:
        raise RuntimeError("no federation spec: set run config 'peel-spec' or PEEL_SPEC")
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


@app.main()
def main(grid: Grid, context: Context) -> None:
    spec = _spec(context)
    config = spec["config"]
    fed = config["federation"]
    run_dir = Path(spec["run_dir"])
    (run_dir / "models").mkdir(parents=True, exist_ok=True)
    n_agencies = len(spec["agencies"])
    for architecture in spec["federated"]:
        started = time.perf_counter()
        log.info("%s: %d rounds with %d agencies", architecture, fed["rounds"], n_agencies)
        recorder = RoundRecorder(run_dir / "metrics.jsonl", architecture, [a["name"] for a in spec["agencies"]])
        strategy = RecordingFedAvg(recorder, n_agencies, fed["rounds"])
        train_config = ConfigRecord(
            {
                "architecture": architecture,
                "dp": FEDERATED[architecture],
                "rounds": fed["rounds"],
                "local-epochs": fed["local_epochs"],
                "batch-size": fed["batch_size"],
                "learning-rate": fed["learning_rate"],
            }
        )
        result = strategy.start(
            grid=grid,
            initial_arrays=ArrayRecord(initial_model(config["task"]["hidden"], config["seed"]).state_dict()),
            num_rounds=fed["rounds"],
            timeout=fed["round_timeout"],
            train_config=train_config,
            evaluate_config=ConfigRecord({"architecture": architecture}),
        )
        torch.save(result.arrays.to_torch_state_dict(), run_dir / "models" / f"{architecture}.pt")
        done = {"architecture": architecture, "wall_s": time.perf_counter() - started, "rounds": fed["rounds"]}
        with open(run_dir / "federated.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(done) + "\n")
        log.info("%s: done in %.1f s", architecture, done["wall_s"])
