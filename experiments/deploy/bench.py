"""Seconds per round on a loopback deployment, per ClientApp isolation mode:

    python -m experiments.deploy.bench --agencies 5 --rounds 3 --isolation warm subprocess

For each mode: small synthetic agencies, `peel deploy init` + `up` (TLS, node authentication) on
free ports, fedavg-dp for the given rounds through `run_on_deployment`, `down`. Seconds per round
= the ServerApp's wall time of fedavg-dp (federated.jsonl) / rounds; Flower's start-up (the first
message to every agency) is timed apart. Everything is written under --dir (default: a new
temporary folder, removed afterwards unless --keep).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

import yaml


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run_config(agencies: int, rounds: int) -> dict:
    return {
        "seed": 3,
        "data": {"agencies": agencies, "incidents": 1000 * agencies, "months": 12},
        "task": {"test_months": 3, "hidden": [16]},
        "federation": {"rounds": rounds, "batch_size": 64},
        "privacy": {"epsilon": 2.0},
        "architectures": ["fedavg-dp"],
    }


def bench(root: Path, agencies: int, rounds: int, isolation: str) -> dict:
    from experiments.config import validate
    from experiments.deploy import commands
    from experiments.deploy import config as deploy_config
    from experiments.deploy.run import run_on_deployment
    from experiments.prepare import materialise, synthetic_spec, write_spec
    from policedata.synthetic import generate

    base = _run_config(agencies, rounds)
    data = root / "agencies"
    if not data.exists():
        generate(synthetic_spec(validate(base, "bench")), data)
    path = root / f"deploy-{isolation}.yaml"
    path.write_text(yaml.safe_dump({"superlink": {"port": _free_port()}, "supernodes": {"isolation": isolation, "first_port": _free_port()}, "agencies": str(data), "budget": 2.0}))
    config = deploy_config.load(path, root / f"deploy-{isolation}")
    commands.init(config)
    started = time.perf_counter()
    commands.up(config, say=lambda _: None)
    up_s = time.perf_counter() - started
    try:
        run_config = validate({**base, "data": {"source": "agencies", "path": str(data)}}, "bench")
        run_dir = root / f"run-{isolation}"
        run_dir.mkdir()
        spec = write_spec(run_config, materialise(run_config, run_dir / "data"), run_dir)
        run_on_deployment(spec, config.layout.root)
    finally:
        commands.down(config.layout)
    walls = {r["architecture"]: r["wall_s"] for r in map(json.loads, (run_dir / "federated.jsonl").read_text().splitlines())}
    return {"isolation": isolation, "agencies": agencies, "rounds": rounds, "up_s": round(up_s, 1), "startup_s": round(walls["start-up"], 1), "s_per_round": round(walls["fedavg-dp"] / rounds, 1), "load": os.getloadavg()[0]}


def main(argv: list[str] | None = None) -> None:
    from experiments.quiet import go_offline

    go_offline()
    parser = argparse.ArgumentParser(prog="python -m experiments.deploy.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--agencies", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--isolation", nargs="+", default=["warm", "subprocess"], choices=["warm", "subprocess", "process"])
    parser.add_argument("--dir", help="work folder (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    root = Path(args.dir).resolve() if args.dir else Path(tempfile.mkdtemp(prefix="peel-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        for isolation in args.isolation:
            print(json.dumps(bench(root, args.agencies, args.rounds, isolation)), flush=True)
    finally:
        if not args.keep and not args.dir:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
