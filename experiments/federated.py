"""The federated architectures of run folders, on one of Peel's three engines, and their results
read back from the coordinator's rows."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import torch

from experiments.results import per_agency_from_rows, read_rows
from experiments.run_folder import RunFolder
from experiments.summary import architecture_entry
from federation import architectures

log = logging.getLogger("peel.run")

ENGINES = ("in-process", "simulation", "deployment")


def train_federated(folders: list[RunFolder], on_done: Callable[[RunFolder], object], engine: str = "in-process", deploy_dir: Path | None = None) -> None:
    """Every federated architecture of every folder, with the same ServerApp and ClientApp on
    one of three engines: Peel's in-process Flower grid (default: no Ray, no start-up),
    Flower's Ray simulation, or a running deployment (`peel deploy up`)."""
    for folder in folders:
        if engine == "deployment":
            from experiments.deploy.run import run_on_deployment

            if deploy_dir is None:
                raise ValueError("engine 'deployment' needs the deployment's folder (deploy_dir)")

            log.info("submitting %s to the deployment in %s", ", ".join(folder.federated), deploy_dir)
            run_on_deployment(folder.spec_path, deploy_dir)
        elif engine == "simulation":
            from experiments.simulation import run_federated  # imports flwr and ray: only when needed

            log.info("starting Flower's simulation engine (Ray) for %s", ", ".join(folder.federated))
            run_federated(folder.spec_path, len(folder.federation.agencies))
        else:
            from experiments.engine import run_federated_in_process

            log.info("Flower in process: %s", ", ".join(folder.federated))
            run_federated_in_process(folder.spec_path, len(folder.federation.agencies))
        collect_federated(folder)
        on_done(folder)


def collect_federated(folder: RunFolder) -> None:
    """Read a folder's federated results back from the coordinator's metrics.jsonl rows."""
    config, run_dir = folder.config, folder.run_dir
    rows = read_rows(run_dir / "metrics.jsonl")
    walls = {r["architecture"]: r for r in read_rows(run_dir / "federated.jsonl")}
    folder.startup_s = walls.get("start-up", {}).get("wall_s")
    if folder.startup_s is not None:
        log.info("Flower start-up %.1f s, paid once for all federated architectures (not in their wall times)", folder.startup_s)
    update_size = 4 * sum(p.numel() for p in folder.new_model().parameters())  # float32
    folder.trail_head = walls.get("audit-trail", {}).get("head")
    for arch in folder.federated:
        spec = architectures.get(arch)
        model = folder.new_model()
        model.load_state_dict(torch.load(run_dir / "models" / f"{arch}.pt"))
        folder.models[arch] = model
        per_agency = per_agency_from_rows(rows, arch, list(folder.splits))
        for name, agency in per_agency.items():
            # SecAgg+ sends each parameter as a masked 64-bit integer (plus small key exchanges).
            agency["update_bytes_sent"] = agency["updates_sent"] * update_size * (2 if spec.trainer == "secagg" else 1)
            agency["records_moved"] = 0
            if agency["errors"]:
                first = agency["errors"][0]
                log.warning("%s: %s sent no update in %d round(s), first in round %d: %s", arch, name, len(agency["errors"]), first["round"], first["reason"])
        server_side = walls.get(arch, {})
        if spec.privacy_unit == "agency" and server_side.get("epsilon") is not None:
            # Agency-level ε is the coordinator's: the same for every agency.
            for agency in per_agency.values():
                agency["epsilon"] = server_side["epsilon"]
        folder.results[arch] = architecture_entry(
            arch,
            per_agency,
            folder,
            wall_s=server_side.get("wall_s", 0.0),
            delta=config.privacy.delta if spec.dp else None,
            records_moved=0,
            update_bytes=sum(a["update_bytes_sent"] for a in per_agency.values()),
        )
