"""Walk the bad-input corpus (tests/bad_inputs/cases.yaml): every malformed config, CSV and
command line stops Peel with exit code 2 and one clear line on stderr (no traceback, nothing on
stdout), naming what is wrong and where, and changes nothing on disk: no run, results or data
folder appears or changes, and the agencies' budget ledgers stay byte-identical.

Most cases run in-process through `experiments.cli.main` (imports paid once); the cases marked
`subprocess` run as real processes, started together, to prove no traceback reaches a user.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "tests" / "bad_inputs"
CASES: list[dict] = yaml.safe_load((CORPUS / "cases.yaml").read_text(encoding="utf-8"))
# "One clear line": an error that quotes a whole bad cell (megabytes of it) is not clear.
MAX_LINE_CHARS = 1000
SUBPROCESS_TIMEOUT_S = 300


def test_the_corpus_is_large_and_well_formed():
    names = [c["case"] for c in CASES]
    assert len(names) >= 40 and len(set(names)) == len(names)
    for case in CASES:
        assert set(case) <= {"case", "args", "expect", "setup", "agency", "huge", "subprocess"}, case["case"]
        assert case["expect"] and all(isinstance(e, str) and e for e in case["expect"]), case["case"]
    folders = {p.name for p in CORPUS.iterdir() if p.is_dir()}
    assert folders <= set(names), f"case folders without an entry in cases.yaml: {sorted(folders - set(names))}"


@pytest.fixture(scope="session")
def generated(tmp_path_factory) -> Path:
    """A small `peel generate` folder whose agencies each hold a budget ledger with one
    release, as if an earlier run had spent from it."""
    from policedata.synthetic import SyntheticSpec, generate
    from privacy.ledger import Ledger

    folder = tmp_path_factory.mktemp("generated") / "agencies"
    manifest = generate(SyntheticSpec(agencies=3, incidents=3000, months=4, start_month="2023-01", seed=0), folder)
    for agency in manifest["agencies"]:
        with Ledger.open(folder / agency["folder"] / "ledger.sqlite", agency["name"]) as ledger:
            ledger.set_budget(4.0, 1e-5, "an earlier run")
            ledger.charge("earlier-run", "fedavg-dp", 1, (1.1, 0.05, 20), delta=1e-5, accountant="rdp", budget=4.0)
    return folder


def _prepare(case: dict, generated: Path, work: Path) -> None:
    """Lay out the case's working folder: generated data first, then the case's own files."""
    work.mkdir(parents=True)
    if case.get("setup") == "agencies":
        shutil.copytree(generated, work / "agencies")
    elif case.get("setup") == "street":
        for file in generated.rglob("*-street.csv"):
            target = work / "download" / file.relative_to(generated)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(file, target)
    if (CORPUS / case["case"]).is_dir():
        shutil.copytree(CORPUS / case["case"], work, dirs_exist_ok=True)
    if "agency" in case:
        manifest = json.loads((work / "agencies" / "manifest.json").read_text(encoding="utf-8"))
        folder = work / "agencies" / manifest["agencies"][case["agency"]["index"]]["folder"]
        files = sorted(folder.rglob("*-street.csv"))
        if case["agency"]["action"] == "empty":
            for file in files:
                file.unlink()
        else:  # drop_column: one month's file loses its `Crime type` column
            lines = files[0].read_text(encoding="utf-8").splitlines()
            drop = lines[0].split(",").index("Crime type")
            files[0].write_text("\n".join(",".join(f for k, f in enumerate(line.split(",")) if k != drop) for line in lines) + "\n", encoding="utf-8")
    if "huge" in case:
        huge = case["huge"]
        path = work / huge["file"]
        lines = path.read_text(encoding="utf-8").splitlines()
        fields = lines[huge["line"] - 1].split(",")
        fields[huge["field"]] = "x" * (huge["megabytes"] * 1_000_000)
        lines[huge["line"] - 1] = ",".join(fields)
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _snapshot(root: Path) -> dict[str, tuple]:
    """Every folder and file below `root`: kind, size, content hash and modification time."""
    state = {}
    for path in sorted(root.rglob("*")):
        stat = path.lstat()
        if path.is_dir():
            state[str(path.relative_to(root))] = ("dir", stat.st_mtime_ns)
        else:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            state[str(path.relative_to(root))] = ("file", stat.st_size, digest, stat.st_mtime_ns)
    return state


def _ledgers(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("ledger.sqlite*"))}


@dataclass
class Outcome:
    code: int | None
    stdout: str
    stderr: str
    raised: str | None = None  # an exception main() let through (a traceback for a user)


def _in_process(argv: list[str], cwd: Path) -> Outcome:
    from experiments.cli import main

    out, err = io.StringIO(), io.StringIO()
    raised = None
    with contextlib.chdir(cwd), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse's exit, as the console script would see it
            code = exc.code if isinstance(exc.code, int) else 1
        except Exception as exc:  # noqa: BLE001 - what a user would see as a traceback
            code, raised = None, f"{type(exc).__name__}: {str(exc)[:300]}"
    return Outcome(code, out.getvalue(), err.getvalue(), raised)


@dataclass
class Started:
    work: Path
    before: dict
    ledgers: dict
    process: subprocess.Popen


@pytest.fixture(scope="session")
def started(request, generated, tmp_path_factory) -> dict[str, Started]:
    """The selected subprocess cases, all started at once (each pays Peel's imports)."""
    selected = {item.callspec.params["case"]["case"] for item in request.session.items
                if hasattr(item, "callspec") and isinstance(item.callspec.params.get("case"), dict)}
    runs = {}
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for case in (c for c in CASES if c.get("subprocess") and c["case"] in selected):
        work = tmp_path_factory.mktemp("bad-input") / "work"
        _prepare(case, generated, work)
        before, ledgers = _snapshot(work), _ledgers(work)
        process = subprocess.Popen(
            [sys.executable, "-m", "experiments.cli", *shlex.split(case["args"])],
            cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8", errors="replace",
        )
        runs[case["case"]] = Started(work, before, ledgers, process)
    yield runs
    for run in runs.values():
        if run.process.poll() is None:
            run.process.kill()


@pytest.mark.parametrize("case", CASES, ids=[c["case"] for c in CASES])
def test_bad_input(case, generated, started, tmp_path):
    if case.get("subprocess"):
        run = started[case["case"]]
        try:
            stdout, stderr = run.process.communicate(timeout=SUBPROCESS_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            run.process.kill()
            pytest.fail(f"{case['case']}: still running after {SUBPROCESS_TIMEOUT_S} s")
        outcome, work, before, ledgers = Outcome(run.process.returncode, stdout, stderr), run.work, run.before, run.ledgers
    else:
        work = tmp_path / "work"
        _prepare(case, generated, work)
        before, ledgers = _snapshot(work), _ledgers(work)
        outcome = _in_process(shlex.split(case["args"]), work)

    # Every way the case falls short, so one failure tells the whole story.
    lines = outcome.stderr.splitlines()
    shown = outcome.stderr[:600] + ("…" if len(outcome.stderr) > 600 else "")
    problems = []
    if outcome.raised is not None:
        problems.append(f"main() raised {outcome.raised} (a traceback for the user)")
    if "Traceback" in outcome.stderr + outcome.stdout:
        problems.append("a traceback was printed")
    if outcome.code != 2:
        problems.append(f"exit code {outcome.code}, expected 2")
    if len(lines) != 1:
        problems.append(f"{len(lines)} lines on stderr, expected exactly one")
    last = lines[-1] if lines else ""
    if len(last) > MAX_LINE_CHARS:
        problems.append(f"an error line of {len(last):,} characters")
    problems += [f"{fragment!r} not in the error line" for fragment in case["expect"] if fragment not in last]
    if outcome.stdout:
        problems.append(f"printed on stdout: {outcome.stdout[:200]!r}")
    after = _snapshot(work)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    if changed:
        problems.append(f"changed on disk: {changed[:6]}")
    if _ledgers(work) != ledgers:
        problems.append("a budget ledger changed")
    assert not problems, f"{case['case']}: " + "; ".join(problems) + f"\nstderr: {shown}"
