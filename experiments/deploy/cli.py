"""`peel deploy ...` on the command line: `add_parser(subparsers)` adds the command to `peel`'s
parser and `main(args)` runs it (returns the exit code; a DeployError is one line and exit 2)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from experiments.deploy.errors import DeployError

USAGE_ERROR = 2


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `deploy` with its subcommands to `peel`'s subparsers."""
    deploy = subparsers.add_parser("deploy", help="run the agencies on Flower's deployment engine: certificates, SuperLink, SuperNodes")
    sub = deploy.add_subparsers(dest="deploy_command", required=True, parser_class=type(deploy))
    init = sub.add_parser("init", help="create the deploy folder: CA, SuperLink certificate, one key pair per agency")
    up = sub.add_parser("up", help="start the SuperLink and one SuperNode per agency on this machine (TLS and node authentication)")
    status = sub.add_parser("status", help="what is running: PIDs, ports, SuperNodes online")
    down = sub.add_parser("down", help="stop exactly the processes `up` started")
    for command in (init, up):
        command.add_argument("config", help="deployment config, e.g. configs/deploy/loopback.yaml")
    for command in (status, down):
        command.add_argument("config", nargs="?", help="deployment config (or give --dir)")
    for command in (init, up, status, down):
        command.add_argument("--dir", dest="deploy_dir", help="deploy folder (default: the config's `dir`, else runs/deploy/<config name>)")
    up.add_argument("--insecure", action="store_true", help="no TLS and no SuperNode authentication (debugging only; prints a warning)")
    return deploy


def _layout(args: argparse.Namespace):  # noqa: ANN202
    from experiments.deploy import config as deploy_config
    from experiments.deploy.layout import Layout

    if args.config:
        return deploy_config.load(args.config, args.deploy_dir).layout
    if args.deploy_dir:
        return Layout(Path(args.deploy_dir).resolve())
    raise DeployError(f"peel deploy {args.deploy_command}: give the deployment config or --dir")


def main(args: argparse.Namespace) -> int:
    from experiments.deploy import commands
    from experiments.deploy import config as deploy_config

    try:
        if args.deploy_command == "init":
            config = deploy_config.load(args.config, args.deploy_dir)
            written = commands.init(config)
            print(f"Initialised {config.layout.root}: CA, SuperLink certificate for {', '.join(config.superlink.addresses)}, keys of {len(config.agencies)} agencies ({len(written)} files; private keys mode 0600)")
            print(f"Next: peel deploy up {args.config}" + (f" --dir {args.deploy_dir}" if args.deploy_dir else ""))
        elif args.deploy_command == "up":
            config = deploy_config.load(args.config, args.deploy_dir)
            commands.up(config, insecure=args.insecure)
            print(f"Run Peel on it: peel run CONFIG --engine deployment --deploy-dir {config.layout.root}")
        elif args.deploy_command == "status":
            print("\n".join(commands.status(_layout(args))))
        else:
            layout = _layout(args)
            print("\n".join(commands.down(layout)))
    except DeployError as exc:
        print(f"peel: {exc}", file=sys.stderr)
        return USAGE_ERROR
    return 0
