"""Run the federated architectures on Flower's simulation engine, in this process, with one
simulation start for all of them, and leave no process behind."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path

# Unix socket paths hold at most 107 bytes; Ray puts its sockets at
# <temp dir>/session_<YYYY-MM-DD_HH-MM-SS_ffffff>_<pid>/sockets/<name> (~75 bytes below it).
MAX_SOCKET_PATH = 107
RAY_SOCKET_SUFFIX = 80


def ray_scratch() -> Path:
    """A new private folder for Ray, short enough for its socket paths: under $TMPDIR when that
    is short, else under /tmp (a long TMPDIR would make Ray fail its socket and Peel wait
    forever); refused with one line when neither is."""
    for parent in (tempfile.gettempdir(), "/tmp"):
        if len(os.fsencode(parent)) + len("/peel-xxxxxxxx") + RAY_SOCKET_SUFFIX <= MAX_SOCKET_PATH and os.access(parent, os.W_OK | os.X_OK):
            return Path(tempfile.mkdtemp(prefix="peel-", dir=parent))
    from experiments.config import ConfigError

    raise ConfigError(
        f"--engine simulation: Ray's socket paths under TMPDIR={tempfile.gettempdir()} would exceed {MAX_SOCKET_PATH} bytes "
        "and /tmp is not writable; set TMPDIR to a short writable folder"
    )


def run_federated(spec_path: Path, n_agencies: int) -> None:
    """Start Flower's simulation runtime with one virtual SuperNode per agency and run the
    ServerApp (which trains every federated architecture listed in the spec)."""
    # Ray's socket paths must stay short (a 107-byte limit), so its scratch folder cannot live
    # in a deep run folder: a private temporary folder, removed when the run ends.
    scratch = ray_scratch()
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
