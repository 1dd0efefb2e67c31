"""Run the federated architectures on Flower's simulation engine, in this process, with one
simulation start for all of them, and leave no process behind."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path


def run_federated(spec_path: Path, n_agencies: int) -> None:
    """Start Flower's simulation runtime with one virtual SuperNode per agency and run the
    ServerApp (which trains every federated architecture listed in the spec)."""
    # Ray's socket paths must stay short (a 107-byte limit), so its scratch folder cannot live
    # in a deep run folder: a private temporary folder, removed when the run ends.
    scratch = Path(tempfile.mkdtemp(prefix="peel-"))
    saved = {k: os.environ.get(k) for k in ("PEEL_SPEC", "RAY_TMPDIR", "FLWR_HOME")}
    os.environ.update({"PEEL_SPEC": str(spec_path), "RAY_TMPDIR": str(scratch), "FLWR_HOME": str(scratch / "flwr")})
    try:
        import ray
        from flwr.simulation import run_simulation

        from clients.app import app as client_app
        from server.app import app as server_app

        # Flower logs every round at INFO and deprecation notices at WARNING; Peel prints its own
        # progress, and failures come back to the strategy as error replies.
        logging.getLogger("flwr").setLevel(logging.ERROR)
        backend_config = {
            # One ClientApp at a time on two cores: the models are small, and parallel actors
            # would each pay the torch/opacus import and fight over the cores.
            "client_resources": {"num_cpus": 2, "num_gpus": 0.0},
            "init_args": {
                "logging_level": logging.ERROR,
                "log_to_driver": False,
                "include_dashboard": False,
                "num_cpus": 2,
                "_temp_dir": str(scratch),
            },
        }
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                run_simulation(
                    server_app=server_app,
                    client_app=client_app,
                    num_supernodes=n_agencies,
                    backend_config=backend_config,
                )
            finally:
                if ray.is_initialized():
                    ray.shutdown()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(scratch, ignore_errors=True)
