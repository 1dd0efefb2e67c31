"""A warm executor for one agency's ClientApps: `python -m experiments.deploy.warm_exec`.

Why: in Flower 1.42 every message to a SuperNode runs in a fresh `flwr-clientapp` process, under
both isolation modes (`subprocess`: the SuperNode starts Flower's SuperExec itself; `process`:
you start it). Each such process imports Python, Flower, torch and Opacus again — seconds of CPU
per message, several times per round and agency. Flower offers warm executor pools only for
Kubernetes and not for ClientApps.

What: this process takes the SuperExec's place for a SuperNode started with
`--isolation process`. It imports the heavy libraries once, then runs Flower's own SuperExec loop
(task polling, SuperExec authentication to the Runtime API) with one change: a ClientApp task is
run in a child *forked* from this warm process, which calls Flower's own `run_clientapp` with the
task's token. Each message still gets its own process (nothing of one message's memory survives
into the next; the ClientApp's state lives in Flower's `context.state` as before), and the app code
is still loaded from the app bundle (FAB) of the run — only third-party libraries are preloaded,
never Peel's own modules, which would shadow the bundle's code.

The parent is single-threaded when it forks (checked), as `fork` requires.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import threading
import traceback

# Third-party libraries Peel's ClientApp imports (the bulk of its start-up time).
PRELOAD = ("numpy", "pandas", "torch", "scipy.stats", "opacus", "flwr.app", "flwr.clientapp", "flwr.supernode.runtime.run_clientapp")

log = logging.getLogger("peel.warm_exec")


def preload(modules: tuple[str, ...]) -> list[str]:
    """Import `modules` now; return those that could not be imported (they load per task)."""
    missing = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return missing


def _run_task_in_child(spec) -> None:  # noqa: ANN001 (flwr's ExecutionSpec)
    """In the forked child: undo the parent's Flower exit machinery, then be `flwr-clientapp`."""
    code = 1
    try:
        from flwr.supercore.exit import exit_handler
        from flwr.supercore.tls import validate_and_resolve_root_certificates
        from flwr.supernode.runtime.run_clientapp import run_clientapp

        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT):
            signal.signal(sig, signal.SIG_DFL)
        # The parent's exit handlers close the parent's connections: not the child's business.
        exit_handler.registered_exit_handlers.clear()
        sys.argv = ["flwr-clientapp"]
        run_clientapp(
            runtime_api_address=spec.runtime_api_address,
            token=spec.token,
            insecure=spec.insecure,
            certificates=validate_and_resolve_root_certificates(spec.root_certificates_path, spec.insecure),
            parent_pid=spec.parent_pid,
            runtime_dependency_install=spec.runtime_dependency_install,
        )
        code = 0
    except SystemExit as exc:  # flwr_exit ends every run_clientapp with sys.exit
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - the child must never return into the parent's loop
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


class ForkExecutor:
    """Flower's Executor protocol (flwr.supercore.superexec.executor.types.Executor), forking
    ClientApp tasks from this warm process; any other task type goes to Flower's subprocess
    executor unchanged."""

    def __init__(self) -> None:
        from flwr.supercore.superexec.executor.subprocess_executor import SubprocessExecutor

        self._fallback = SubprocessExecutor()
        self._children: set[int] = set()

    def get_eligible_capacity(self, supported_task_types, *, insecure=False, root_certificates_path=None):  # noqa: ANN001, ANN201
        return self._fallback.get_eligible_capacity(supported_task_types, insecure=insecure, root_certificates_path=root_certificates_path)

    def wait_for_capacity(self, task_type=None, *, fab_hash=None, insecure=False, root_certificates_path=None) -> None:  # noqa: ANN001
        return None

    def launch(self, spec):  # noqa: ANN001, ANN201
        from flwr.supercore.constant import TaskType
        from flwr.supercore.superexec.executor.types import LaunchResult

        if spec.task_type != TaskType.CLIENT_APP:
            return self._fallback.launch(spec)
        if threading.active_count() > 1:
            # fork() copies only the calling thread: a lock held by another thread would stay
            # held forever in the child. Fall back to a fresh process rather than risk it.
            log.warning("warm executor has %d threads; starting a fresh flwr-clientapp instead of forking", threading.active_count())
            return self._fallback.launch(spec)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _run_task_in_child(spec)
        self._children.add(pid)
        return LaunchResult.accepted()

    def reconcile(self) -> None:
        """Reap finished children (no zombies)."""
        for pid in list(self._children):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                self._children.discard(pid)

    def close(self) -> None:
        self.reconcile()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m experiments.deploy.warm_exec", description="Run one SuperNode's ClientApps from a warm process (SuperNode started with --isolation process).")
    parser.add_argument("--runtime-api-address", required=True, help="the SuperNode's Runtime API, host:port")
    parser.add_argument("--superexec-auth-secret-file", help="the secret file given to the SuperNode with the same option")
    parser.add_argument("--preload", default=",".join(PRELOAD), help="comma-separated modules to import once (default: %(default)s)")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    from flwr.supercore.auth import load_superexec_auth_secret
    from flwr.supercore.superexec import run_superexec as flower_loop
    from flwr.supercore.utils import disable_process_dumping

    disable_process_dumping(strict=False)  # as Flower's own SuperExec: no core dumps, no ptrace
    missing = preload(tuple(m for m in args.preload.split(",") if m))
    if missing:
        log.warning("could not preload %s; they will be imported per message", ", ".join(missing))
    secret = load_superexec_auth_secret(args.superexec_auth_secret_file) if args.superexec_auth_secret_file else None
    if not hasattr(flower_loop, "get_executor"):
        sys.exit("warm_exec: this Flower version has no pluggable SuperExec executor; use supernodes.isolation: subprocess")
    # Flower's loop builds its executor through this module-level factory: hand it ours.
    flower_loop.get_executor = lambda *_, **__: ForkExecutor()
    flower_loop.run_superexec(
        runtime_api_address=args.runtime_api_address,
        insecure=True,  # the Runtime API is the SuperNode's own, on this machine's loopback
        superexec_auth_secret=secret,
        runtime_dependency_install=False,
    )


if __name__ == "__main__":
    main()
