"""The `peel` command line."""

from __future__ import annotations

from experiments.quiet import go_offline

go_offline()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from experiments.config import ConfigError, load_config  # noqa: E402
from experiments.deploy.cli import add_parser as add_deploy_parser  # noqa: E402
from experiments.deploy.errors import DeployError  # noqa: E402
from experiments.progress import show_progress  # noqa: E402
from experiments.report import ReportError  # noqa: E402
from policedata.errors import DataError  # noqa: E402

USAGE_ERROR = 2
# C0 and C1 control characters except newline and tab: a name from the data must not move the
# cursor, recolour or retitle the user's terminal.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def terminal_safe(text: str) -> str:
    """`text` with its control characters shown as escapes (\\x1b), safe to print."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _say(text: str) -> None:
    print(terminal_safe(text))


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line and exit 2, like every user error
        self.exit(USAGE_ERROR, f"peel: {message} (see peel --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="peel", description="Federated analytics for police data, with differential privacy, measured against pooling everything.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = sub.add_parser("run", help="run every architecture of a config and write a results folder")
    prep = sub.add_parser("prepare", help="write a run folder (data and federation spec) for Flower's own `flwr run`")
    gen = sub.add_parser("generate", help="write the synthetic agencies of a config, without training")
    sweep = sub.add_parser("sweep", help="run a config's sweep grid (resumable): one run folder per cell, sweep.csv, report")
    analyze = sub.add_parser("analyze", help="release the config's analytics: queries (DP counts, rates, top-k areas) across the agencies and write a run folder")
    run.add_argument("config", nargs="?", help="YAML experiment config, e.g. configs/default.yaml (not with --resume)")
    for command in (prep, gen, sweep, analyze):
        command.add_argument("config", help="YAML experiment config, e.g. configs/default.yaml")
    data = sub.add_parser("data", help="check a config's data in seconds, without training: `peel data check CONFIG`")
    data_sub = data.add_subparsers(dest="data_command", required=True, parser_class=_Parser)
    data_check = data_sub.add_parser("check", help="a dry run (writes nothing): agencies, records, rows set aside, coverage, test-set sizes; exit 2 on errors")
    data_check.add_argument("config", help="YAML experiment config, e.g. configs/default.yaml")
    for command in (run, prep, gen, sweep, data_check, analyze):
        command.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override a config key (value in YAML), e.g. --set privacy.epsilon=2")
    gen.add_argument("out_dir", help="folder to create (must not exist or be empty)")
    from experiments.bench import DESCRIPTION as BENCH_DESCRIPTION  # light: no measurement imported
    from experiments.bench import add_arguments as add_bench_arguments

    add_bench_arguments(sub.add_parser("bench", help="measure Peel (DP cost, federation cost, sweep, scale) and write bench.json (docs/performance.md)", description=BENCH_DESCRIPTION))
    budget = sub.add_parser("budget", help="each agency's privacy budget ledger: ε spent, budget, remaining")
    budget_sub = budget.add_subparsers(dest="budget_command", required=True, parser_class=_Parser)
    show = budget_sub.add_parser("show", help="a table of every agency ledger (ledger.sqlite) under a folder")
    show.add_argument("folder", nargs="?", default=".", help="folder to search at any depth (default: .)")
    show.add_argument("--accountant", default="auto", choices=["auto", "pld", "prv", "rdp"], help="accountant that recomputes ε (default: auto = pld)")
    reset = budget_sub.add_parser("reset", help="start an agency's spend afresh (recorded in its ledger; needs --yes)")
    reset.add_argument("target", help="a ledger file, or a folder holding the agency's ledger")
    reset.add_argument("--agency", help="which agency, when the folder holds several ledgers")
    reset.add_argument("--reason", required=True, help="why (recorded in the ledger)")
    reset.add_argument("--yes", action="store_true", help="confirm: the agency's past spend stops counting")
    reinit = budget_sub.add_parser("reinit", help="start a new ledger where an anchored one was lost (its anchored spend carried over; needs --yes)")
    reinit.add_argument("target", help="the lost ledger file, or a folder holding exactly one lost ledger")
    reinit.add_argument("--reason", required=True, help="why (recorded in the new ledger)")
    reinit.add_argument("--yes", action="store_true", help="confirm: a new ledger file replaces whatever is in the old one's place (kept beside it)")
    aud = sub.add_parser("audit", help="privacy audits of a finished run (membership inference, canaries); `peel audit verify RUN_DIR` is the older name of `peel trail verify`")
    aud.add_argument("target", nargs="+", metavar="[verify] RUN_DIR", help="a run folder made with audit: true")
    trail = sub.add_parser("trail", help="the run's hash-chained message log: `peel trail verify RUN_DIR` checks it against every agency's ledger")
    trail.add_argument("action", choices=["verify"], help="verify: check the chain, its anchor and the ledgers")
    trail.add_argument("run_dir", help="a run folder")
    rep = sub.add_parser("report", help="write report.html (and its PNG figures) for a run or sweep folder")
    pred = sub.add_parser("predict", help="score new incidents (a street CSV, or the run's csv format) with a finished outcome run's models, stating each model's privacy unit")
    pred.add_argument("run_dir", help="a finished outcome run folder (runs/<id>)")
    pred.add_argument("csv", help="incidents: a data.police.uk street CSV, or a file in the run's own csv format (data.source: csv)")
    pred.add_argument("--architecture", action="append", metavar="A", help="score with this architecture's model only (repeatable; default: every trained one)")
    pred.add_argument("--out", help="write the scores CSV here (default: print it)")
    rep.add_argument("folder", help="a run folder (runs/<id>) or a sweep folder")
    run.add_argument("--engine", choices=["in-process", "simulation", "deployment"], default="in-process", help="where the federated architectures run: Flower in this process (default), Flower's Ray simulation, or a running `peel deploy up`")
    run.add_argument("--resume", metavar="RUN_DIR", help="finish a run that stopped (killed, crashed), from its last checkpointed round, with its own config")
    run.add_argument("--deploy-dir", help="the folder of a running `peel deploy up` (with --engine deployment)")
    add_deploy_parser(sub)
    sweep.add_argument("--dir", dest="sweep_dir", help="sweep folder (default: <output>/sweep-<config name>-<hash of the config>, so re-running resumes)")
    sweep.add_argument("--yes", action="store_true", help="confirm a grid of more than 500 cells")
    return parser


def _run(args: argparse.Namespace) -> int:
    from experiments.results import format_table

    if args.engine == "deployment" and not args.deploy_dir:
        raise ConfigError("--engine deployment needs --deploy-dir (the folder of `peel deploy up`)")
    deploy_dir = Path(args.deploy_dir) if args.deploy_dir else None
    if args.resume:
        from experiments.resume import resume

        if args.config or args.overrides:
            raise ConfigError("--resume continues with the run folder's own config: give no CONFIG and no --set")
        if not Path(args.resume).is_dir():
            raise ConfigError(f"--resume {args.resume}: no such run folder")
        run_dir = resume(Path(args.resume), engine=args.engine, deploy_dir=deploy_dir)
    elif not args.config:
        raise ConfigError("run: give a CONFIG (e.g. configs/default.yaml), or --resume RUN_DIR")
    else:
        config = load_config(args.config, args.overrides)  # before torch and Flower load: errors in a second
        from experiments.lock import hold
        from experiments.runner import execute, prepare

        folder = prepare(config, args.config)
        hold(folder.run_dir)  # before anything trains: a --resume of this folder is refused meanwhile
        from experiments.analyze import add_to_summary, analyze_beside

        analytics = analyze_beside(config, folder.run_dir, folder.federation)  # first: training calibrates to what is left
        execute([folder], engine=args.engine, deploy_dir=deploy_dir)
        add_to_summary(folder.run_dir, analytics)
        run_dir = folder.run_dir
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    _say(format_table(summary))
    print(f"\nResults: {run_dir}/summary.json (per round and agency: {run_dir}/metrics.jsonl)")
    _write_report(run_dir)
    return 0


def _write_report(folder: Path) -> None:
    from experiments.report import write_report

    print(f"Report: {write_report(folder)}")


def _predict(args: argparse.Namespace) -> int:
    from experiments.predict import PredictError, predict, write_scores

    try:
        prediction = predict(Path(args.run_dir), Path(args.csv), args.architecture)
        if args.out:
            write_scores(prediction, Path(args.out))
    except PredictError as exc:
        raise ConfigError(str(exc)) from None
    # The scores go to stdout (or --out); what each model protects is said beside them.
    said = sys.stdout if args.out else sys.stderr
    for line in prediction.statements():
        print(terminal_safe(line), file=said)
    if args.out:
        print(f"Scores: {args.out}")
    else:
        sys.stdout.write(terminal_safe(prediction.to_csv()))
    return 0


def _report(args: argparse.Namespace) -> int:
    _write_report(Path(args.folder))
    return 0


def _deploy(args: argparse.Namespace) -> int:
    from experiments.deploy.cli import main as deploy_main

    return deploy_main(args)


def _bench(args: argparse.Namespace) -> int:
    from experiments.bench import run as run_bench

    return run_bench(args)


def _budget(args: argparse.Namespace) -> int:
    from experiments import budget_cmd

    try:
        if args.budget_command == "show":
            _say(budget_cmd.show(Path(args.folder), args.accountant))
        elif args.budget_command == "reinit":
            print(budget_cmd.reinit(Path(args.target), args.reason, args.yes))
        else:
            print(budget_cmd.reset(Path(args.target), args.agency, args.reason, args.yes))
    except budget_cmd.BudgetCommandError as exc:
        raise ConfigError(str(exc)) from None
    return 0


def _trail(args: argparse.Namespace) -> int:
    from experiments.trail import verify_run

    return verify_run(Path(args.run_dir))


def _audit(args: argparse.Namespace) -> int:
    if args.target[0] == "verify":
        from experiments.trail import verify_run

        if len(args.target) != 2:
            raise ConfigError("peel audit verify: give exactly one run folder")
        return verify_run(Path(args.target[1]))
    if len(args.target) != 1:
        raise ConfigError("peel audit: give exactly one run folder (or: peel audit verify RUN_DIR)")
    from experiments.audit import AuditUnavailable, audit_folder
    from experiments.results import write_json
    from experiments.runner import reopen

    run_dir = Path(args.target[0])
    folder = reopen(run_dir)
    try:
        audit_folder(folder)
    except AuditUnavailable as exc:
        raise ConfigError(str(exc)) from None
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    summary["architectures"] = folder.results
    write_json(run_dir / "summary.json", summary)
    for arch, entry in folder.results.items():
        audit = entry["audit"]
        bound = f" (the claimed ε allows ≤ {audit['mia_auc_bound']:.3f})" if audit.get("mia_auc_bound") is not None else ""
        lower = f"; canary lower bound on ε {audit['epsilon_lower_bound']:.2f} (ceiling {audit['ceiling']:.2f})" if audit.get("epsilon_lower_bound") is not None else ""
        if audit.get("whitebox"):  # the ceiling: the most that audit could show at the claimed ε
            wb = audit["whitebox"]
            lower += f", white-box {wb['epsilon_lower_bound']:.2f} (ceiling {wb['ceiling']:.2f}) vs claimed {wb['epsilon_claimed']:.2f}"
        print(f"{arch:<18} membership attack AUC {audit['mia_auc']:.3f}{bound}, TPR at 1% FPR {audit['mia_tpr_at_1pct_fpr']:.3f}{lower}")
    _write_report(run_dir)
    return 0


def _sweep(args: argparse.Namespace) -> int:
    config = load_config(args.config, args.overrides)  # before torch and Flower load
    from experiments.sweep import format_table, run_sweep

    sweep_dir = run_sweep(config, args.config, Path(args.sweep_dir) if args.sweep_dir else None, confirmed=args.yes)
    _say(format_table(sweep_dir))
    print(f"\nSweep: {sweep_dir}/sweep.csv (one row per cell and agency; cells in {sweep_dir}/cells/)")
    _write_report(sweep_dir)
    return 0


def _analyze(args: argparse.Namespace) -> int:
    config = load_config(args.config, args.overrides)
    from experiments.analyze import analyze, format_summary

    if config.sweep:
        from experiments.analyze_sweep import SWEEP_CSV, SWEEP_PNG, analyze_sweep

        sweep_dir = analyze_sweep(config, args.config)
        print(f"Sweep: {sweep_dir / SWEEP_CSV} (one row per cell and query; error against ε: {sweep_dir / SWEEP_PNG})")
        return 0
    run_dir = analyze(config, args.config)
    _say(format_summary(json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))))
    print(f"\nResults: {run_dir}/summary.json (one CSV per query: {run_dir}/analytics/)")
    from experiments.report.analytics_section import write_page

    print(f"Report: {write_page(run_dir)}")
    return 0


def _prepare(args: argparse.Namespace) -> int:
    config = load_config(args.config, args.overrides)  # before torch loads
    from experiments.runner import prepare

    folder = prepare(config, args.config)
    run_dir, federation, spec_path = folder.run_dir, folder.federation, folder.spec_path
    print(f"Prepared {run_dir}: {len(federation.agencies)} agencies, each in its own folder under {run_dir / 'data'}")
    print("Run the federated architectures with Flower's CLI (with .venv/bin on PATH):")
    print(
        f"  flwr run . --run-config \"peel-spec='{spec_path.resolve()}'\" "
        f"--federation-config \"num-supernodes={len(federation.agencies)}\" --stream"
    )
    return 0


def _generate(args: argparse.Namespace) -> int:
    from experiments.prepare import synthetic_spec
    from policedata.synthetic import generate

    config = load_config(args.config, args.overrides)
    if config.data.source != "synthetic":
        raise ConfigError(f"{args.config}: data.source is {config.data.source!r}; peel generate writes synthetic data only")
    manifest = generate(synthetic_spec(config), Path(args.out_dir))
    for agency in manifest["agencies"]:
        _say(f"{agency['name']:<28} {agency['incidents']:>9} records  {Path(args.out_dir) / agency['folder']}")
    print(f"Wrote {sum(a['incidents'] for a in manifest['agencies'])} records of {len(manifest['agencies'])} agencies to {args.out_dir}")
    return 0


def _data(args: argparse.Namespace) -> int:
    from experiments.data_check import check  # pandas and the loaders only: no torch, no Flower

    result = check(load_config(args.config, args.overrides))
    for line in result.lines:
        _say(line)
    for warning in result.warnings:
        _say(f"warning: {warning}")
    print(f"\nData check passed{f' with {len(result.warnings)} warning(s)' if result.warnings else ''}; nothing was written.")
    return 0


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush of what the closed pipe did not
    take raises nothing at exit."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (e.g. captured in tests)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    progress = show_progress()
    try:
        return {"run": _run, "prepare": _prepare, "generate": _generate, "sweep": _sweep, "report": _report, "audit": _audit, "trail": _trail, "budget": _budget, "deploy": _deploy, "bench": _bench, "data": _data, "analyze": _analyze, "predict": _predict}[args.command](args)
    except (ConfigError, DataError, ReportError, DeployError) as exc:
        # One line: a message never spans lines, whatever a name or value in it holds.
        print(terminal_safe(f"peel: {exc}").replace("\n", "\\n"), file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        print("peel: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader stopped reading (`peel budget show | head`): nothing to say
        _silence_stdout()
        return 0
    finally:
        progress.close()


if __name__ == "__main__":
    sys.exit(main())
