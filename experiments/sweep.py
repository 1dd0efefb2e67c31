"""`peel sweep CONFIG`: a grid over config keys, one run folder per cell.

A cell is one architecture at one combination of the swept values. Cells that would be
identical (a key the architecture does not use, e.g. privacy.epsilon for fedavg) are run once.
Cells that share data share its generation; every federated cell runs inside shared Flower
runs. A cell's identity is its config (CELL_FILE holds its hash): re-running a sweep, also with
values added to its lists, reuses every finished cell whose config is unchanged and runs the
rest; the default folder is named by the config without the swept values, so adding a value
finds the same folder. On generated or partitioned
data each cell keeps its own budget ledgers: cells are alternative worlds, not successive spends
of the same agencies. Agencies used in place (`data.source: agencies`) have one real budget each,
which alternative worlds cannot share: a sweep with a record-level DP architecture over them is
refused, and the other cells read the agencies' own ledgers (they charge nothing).

The sweep folder (`--dir`, or the default below `output`) is Peel's: it is created, or it is
empty, or it holds a sweep.json; anything else is refused before a file is touched, since a
sweep rewrites and deletes files in it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import logging
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from experiments.budget_cmd import CELL_LEDGERS_DIR
from experiments.config import ConfigError, PeelConfig, dump, set_override, shown, to_dict, validate
from experiments.prepare import Federation, check_output_folder, materialise
from experiments.results import _grid, write_atomic, write_json
from experiments.runner import RunFolder, execute, keep_torch_cache_in, open_folder, summarise
from federation import architectures

log = logging.getLogger("peel.sweep")

SWEEP_FILE, CSV_FILE = "sweep.json", "sweep.csv"
# In each cell's folder: the hash of the config the cell ran with (its identity).
CELL_FILE = "cell.json"


@dataclass(frozen=True)
class Cell:
    id: str
    architecture: str
    values: dict[str, Any]  # swept key -> value (None where the architecture does not use it)
    config: PeelConfig

    @property
    def config_key(self) -> str:
        """The cell's identity: a hash of its whole config (values swept and not)."""
        return hashlib.sha256(dump(self.config).encode()).hexdigest()

    @property
    def data_key(self) -> str:
        """Cells with equal data sections and seeds read the same generated records."""
        raw = {"data": to_dict(self.config)["data"], "seed": self.config.seed}
        return hashlib.sha256(json.dumps(raw, sort_keys=True).encode()).hexdigest()[:10]


def _uses(architecture: str, key: str) -> bool:
    """Whether an architecture reads a config key (its registry entry's `reads`): sweeping a key
    it ignores must not multiply its cells."""
    return architectures.get(architecture).reads_key(key)


def _slug(value: Any) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", str(value)).strip("-") or "x"


# A cell id names a folder: well below the 255-byte limit of a file name.
MAX_CELL_ID = 120


def _short(cell_id: str) -> str:
    """The cell id, or its start and a hash of the whole when it is too long for a folder name
    (ids are ASCII: `_slug` keeps A-Z, a-z, 0-9 and '.+-')."""
    if len(cell_id) <= MAX_CELL_ID:
        return cell_id
    return f"{cell_id[: MAX_CELL_ID - 13]}-{hashlib.sha256(cell_id.encode()).hexdigest()[:12]}"


# A grid larger than this is refused unless confirmed (`peel sweep --yes`): each cell is a run.
CONFIRM_CELLS = 500
# ... and one larger than this always: listing and checking its cells alone would take minutes.
MAX_CELLS = 20_000


def grid_size(config: PeelConfig) -> int:
    """Cells of the full grid (before identical cells merge): the product of the swept lists."""
    size = 1 if "architectures" in (config.sweep or {}) else len(config.architectures)
    for values in (config.sweep or {}).values():
        size *= len(values)
    return size


def check_grid_size(config: PeelConfig, where: str, confirmed: bool = False) -> None:
    """Refuse, before anything is expanded or written, a grid too large to run by accident."""
    size = grid_size(config)
    shape = " × ".join(f"{len(v)} {k}" for k, v in (config.sweep or {}).items())
    if "architectures" not in (config.sweep or {}):
        shape += f" × {len(config.architectures)} architectures"
    if size > MAX_CELLS:
        raise ConfigError(f"{where}: sweep: {size:,} cells ({shape}); at most {MAX_CELLS:,}, split the sweep")
    if size > CONFIRM_CELLS and not confirmed:
        raise ConfigError(f"{where}: sweep: {size:,} cells ({shape}), each a run; add --yes to run more than {CONFIRM_CELLS}")


def expand(config: PeelConfig, where: str, confirmed: bool = False) -> list[Cell]:
    """Every distinct cell of the config's sweep grid, in grid order (a grid over CONFIRM_CELLS
    cells needs `confirmed`)."""
    if not config.sweep:
        raise ConfigError(f"{where}: sweep: the config has no sweep section (e.g. sweep: {{privacy.epsilon: [1, 2], seed: [0, 1]}})")
    check_grid_size(config, where, confirmed)
    base = to_dict(config)
    base.pop("sweep")
    keys = list(config.sweep)
    # Every swept value must be valid even where no architecture of this sweep reads it.
    for key, values in config.sweep.items():
        for value in values:
            if key != "architectures":
                raw = json.loads(json.dumps(base))
                set_override(raw, f"{key}={json.dumps(value)}")
                validate(raw, f"{where}: sweep {key}={shown(value)}")
    label = _labels(keys)
    cells: dict[str, Cell] = {}
    for combination in itertools.product(*(config.sweep[k] for k in keys)):
        values = dict(zip(keys, combination, strict=True))
        raw = json.loads(json.dumps(base))
        for key, value in values.items():
            if key != "architectures":
                set_override(raw, f"{key}={json.dumps(value)}")
        archs = values.get("architectures", config.architectures)
        for arch in [archs] if isinstance(archs, str) else archs:
            raw["architectures"] = [arch]
            used = {k: (v if k != "architectures" and _uses(arch, k) else None) for k, v in values.items() if k != "architectures"}
            cell_raw = json.loads(json.dumps(raw))
            for key in values:  # an unused key keeps the base value: identical cells merge
                if key != "architectures" and not _uses(arch, key):  # (a swept null is a value, e.g. faults.malicious)
                    set_override(cell_raw, f"{key}={json.dumps(_get(base, key))}")
            cell_config = validate(cell_raw, f"{where}: sweep cell {arch} {shown(used, 200)}")
            cell_id = _short("--".join([arch] + [f"{label[k]}={_slug(v)}" for k, v in used.items() if v is not None]))
            cells.setdefault(cell_id, Cell(cell_id, arch, used, cell_config))
    return list(cells.values())


def _labels(keys: list[str]) -> dict[str, str]:
    """A swept key's name in cell ids: its last part, or the whole dotted key where two swept
    keys share a last part (privacy.epsilon and analytics.epsilon)."""
    last = [k.split(".")[-1] for k in keys]
    return {k: (short if last.count(short) == 1 else k) for k, short in zip(keys, last, strict=True)}


def _get(raw: dict, dotted: str) -> Any:
    node: Any = raw
    for part in dotted.split("."):
        node = node[part]
    return node


def check_sweep_dir(sweep_dir: Path) -> None:
    """Refuse (one line) a sweep folder that is not Peel's to write in: a file, a folder below a
    file, or a non-empty folder without a readable sweep.json."""
    try:
        if sweep_dir.exists() and not sweep_dir.is_dir():
            raise ConfigError(f"{sweep_dir}: not a folder; give a new or empty folder for the sweep")
        check_output_folder(sweep_dir, "sweep folder")
        if not sweep_dir.exists():
            return
        if not any(sweep_dir.iterdir()):
            return
        index = json.loads((sweep_dir / SWEEP_FILE).read_text(encoding="utf-8"))
        if not (isinstance(index, dict) and isinstance(index.get("cells"), list)):
            raise ValueError("no cell list")
    except FileNotFoundError:
        raise ConfigError(f"{sweep_dir}: not empty and not a Peel sweep folder (no {SWEEP_FILE}); a sweep rewrites and deletes files in its folder, so give a new or empty one") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{sweep_dir}: not a Peel sweep folder ({SWEEP_FILE}: {exc.__class__.__name__}); give a new or empty folder") from None


def check_agency_ledgers(cells: list[Cell], where: str) -> None:
    """Refuse a sweep whose cells would charge real agencies' ledgers: the cells are alternative
    settings, but an agency used in place has one budget, already partly spent; per-cell
    ledgers would bypass it, and shared ones would make each cell spend what the others left."""
    charging = sorted({c.architecture for c in cells if c.config.data.source == "agencies" and architectures.is_record_dp(c.architecture)})
    if charging:
        raise ConfigError(
            f"{where}: sweep over data.source agencies with {', '.join(charging)}: its cells would spend these agencies' real "
            "budgets (their ledgers), each from what the others left; sweep a synthetic federation, or `peel run` one setting at a time"
        )


def new_sweep_dir(config: PeelConfig, config_file: str) -> Path:
    """Named by the config without the swept values (the swept keys count), so that values added
    to a sweep's lists find its folder and its finished cells."""
    raw = to_dict(config)
    raw["sweep"] = sorted(raw.get("sweep") or {})
    digest = hashlib.sha256(json.dumps(raw, sort_keys=True).encode()).hexdigest()[:6]
    return Path(config.output) / f"sweep-{Path(config_file).stem}-{digest}"


def run_sweep(config: PeelConfig, config_file: str, sweep_dir: Path | None = None, confirmed: bool = False) -> Path:
    """Run every unfinished cell; write sweep.json and sweep.csv. The sweep folder is named by
    the config's content, so re-running the same config resumes it."""
    cells = expand(config, config_file, confirmed)
    check_agency_ledgers(cells, config_file)
    sweep_dir = sweep_dir or new_sweep_dir(config, config_file)
    check_sweep_dir(sweep_dir)
    if not sweep_dir.exists():
        try:
            return _run_sweep(config, config_file, cells, sweep_dir)
        except BaseException:
            if not any((sweep_dir / "cells" / c.id / "summary.json").is_file() for c in cells):
                shutil.rmtree(sweep_dir, ignore_errors=True)  # nothing finished: leave nothing behind
            raise
    return _run_sweep(config, config_file, cells, sweep_dir)


def _run_sweep(config: PeelConfig, config_file: str, cells: list[Cell], sweep_dir: Path) -> Path:
    sweep_dir.mkdir(parents=True, exist_ok=True)
    keep_torch_cache_in(sweep_dir)
    done = [c for c in cells if is_finished(sweep_dir, c)]
    todo = [c for c in cells if c not in done]
    log.info("sweep %s: %d cells, %d already done, %d to run", sweep_dir, len(cells), len(done), len(todo))
    _write_index(sweep_dir, config_file, config, cells)
    started = time.monotonic()
    folders = []
    for group in _by_data(todo):
        federation = _shared_data(sweep_dir, group[0])
        folders += [_open_cell(sweep_dir, cell, federation, config_file) for cell in group]
    finished = len(done)

    def cell_done(folder: RunFolder) -> None:
        nonlocal finished
        summarise(folder)
        finished += 1
        elapsed = time.monotonic() - started
        left = elapsed / max(finished - len(done), 1) * (len(cells) - finished)
        log.info("sweep: %d/%d cells done (last: %s; %.0f s elapsed, ~%.0f s left)", finished, len(cells), folder.run_dir.name, elapsed, left, extra={"progress": "cells"})

    execute(folders, on_done=cell_done)
    _write_index(sweep_dir, config_file, config, cells, reused={c.id for c in done})
    write_csv(sweep_dir, cells)
    return sweep_dir


def _by_data(cells: list[Cell]) -> list[list[Cell]]:
    groups: dict[str, list[Cell]] = {}
    for cell in cells:
        groups.setdefault(cell.data_key, []).append(cell)
    return list(groups.values())


def _shared_data(sweep_dir: Path, cell: Cell) -> Federation:
    """Generate (or reuse) the data of a group of cells once, in the sweep folder."""
    data_dir = sweep_dir / "data" / cell.data_key
    if cell.config.data.source == "agencies":
        return materialise(cell.config, data_dir)
    if not (data_dir / "ready").is_file():
        shutil.rmtree(data_dir, ignore_errors=True)  # a half-written folder from an interrupted sweep
        federation = materialise(cell.config, data_dir)
        write_json(data_dir / "ready", {"federation": {"agencies": federation.agencies, "areas": str(federation.areas) if federation.areas else None, "ground_truth": str(federation.ground_truth) if federation.ground_truth else None, "test_from": federation.test_from, "notes": federation.notes, "period": federation.period}})
    saved = json.loads((data_dir / "ready").read_text(encoding="utf-8"))["federation"]
    return Federation(
        [dict(a) for a in saved["agencies"]],
        Path(saved["areas"]) if saved["areas"] else None,
        Path(saved["ground_truth"]) if saved["ground_truth"] else None,
        saved["test_from"],
        list(saved["notes"]),
        tuple(saved["period"]) if saved.get("period") else None,
    )


def _open_cell(sweep_dir: Path, cell: Cell, federation: Federation, config_file: str) -> RunFolder:
    run_dir = sweep_dir / "cells" / cell.id
    shutil.rmtree(run_dir, ignore_errors=True)  # an unfinished cell starts again from scratch
    run_dir.mkdir(parents=True)
    fresh = dataclasses.replace(federation, agencies=[dict(a) for a in federation.agencies], notes=list(federation.notes))
    # Agencies used in place keep their own ledgers (check_agency_ledgers: nothing here charges them).
    ledger_dir = None if cell.config.data.source == "agencies" else run_dir / CELL_LEDGERS_DIR
    write_json(run_dir / CELL_FILE, {"cell": cell.id, "config_sha256": cell.config_key})
    return open_folder(cell.config, config_file, run_dir, fresh, ledger_dir=ledger_dir)


def is_finished(sweep_dir: Path, cell: Cell) -> bool:
    """Whether the cell's folder holds a summary of this very config (a cell of the same name
    that ran with another config, e.g. after the base config changed under --dir, is run again)."""
    run_dir = sweep_dir / "cells" / cell.id
    if not (run_dir / "summary.json").is_file():
        return False
    try:
        saved = json.loads((run_dir / CELL_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(saved, dict) and saved.get("config_sha256") == cell.config_key


def _write_index(sweep_dir: Path, config_file: str, config: PeelConfig, cells: list[Cell], reused: set[str] | None = None) -> None:
    """sweep.json: the cells of the current grid, each "done" or "pending" (`reused`: done
    before this invocation; its results were kept, not recomputed)."""
    write_json(
        sweep_dir / SWEEP_FILE,
        {
            "config_file": str(config_file),
            "swept_keys": [k for k in (config.sweep or {}) if k != "architectures"],
            "cells": [
                {"cell": c.id, "architecture": c.architecture, "run_dir": f"cells/{c.id}", "values": c.values, "data": c.data_key, "status": "done" if is_finished(sweep_dir, c) else "pending", "reused": c.id in (reused or set())}
                for c in cells
            ],
        },
    )


def write_csv(sweep_dir: Path, cells: list[Cell]) -> Path:
    """sweep.csv: one row per (cell, agency), the swept values as columns; plus the Bayes
    ceiling per data group as rows of architecture `bayes-optimal`."""
    rows, bayes_seen = [], set()
    swept = sorted({k for c in cells for k in c.values})
    for cell in cells:
        path = sweep_dir / "cells" / cell.id / "summary.json"
        if not path.is_file():
            continue
        summary = json.loads(path.read_text(encoding="utf-8"))
        entry = summary["architectures"][cell.architecture]
        for agency in summary["agencies"]:
            name = agency["name"]
            per = entry["per_agency"][name]
            rows.append(
                {
                    "cell": cell.id,
                    "run_dir": f"cells/{cell.id}",
                    "architecture": cell.architecture,
                    "agency": name,
                    **{k: cell.values.get(k) for k in swept},
                    "n_train": agency["n_train"],
                    "n_test": agency["n_test"],
                    **(per.get("metrics") or {}),
                    "epsilon": per.get("epsilon"),
                    "records_moved": per.get("records_moved", 0),
                    "update_bytes_sent": per.get("update_bytes_sent", 0),
                    "wall_s": entry["wall_s"],
                }
            )
        bayes = summary.get("bayes_optimal")
        if bayes and cell.data_key not in bayes_seen:
            bayes_seen.add(cell.data_key)
            for agency in summary["agencies"]:
                values = {k: (cell.values.get(k) if k.startswith(("seed", "data.")) else None) for k in swept}
                rows.append({"cell": f"bayes-optimal--{cell.data_key}", "run_dir": f"data/{cell.data_key}", "architecture": "bayes-optimal", "agency": agency["name"], **values, "n_train": agency["n_train"], "n_test": agency["n_test"], **bayes["per_agency"][agency["name"]]})
    path = sweep_dir / CSV_FILE
    write_atomic(path, pd.DataFrame(rows).to_csv(index=False))
    return path


def format_table(sweep_dir: Path) -> str:
    """`peel sweep`'s end table, from sweep.json and the cells' summaries: one row per cell (its
    swept values, the headline metric over agencies, ε spent to date max, wall time, and whether
    it ran now, was reused, or has no result), then the pooled logistic-regression reference of
    each data group (outcome task)."""
    index = json.loads((sweep_dir / SWEEP_FILE).read_text(encoding="utf-8"))
    entries = index["cells"]
    swept = sorted({k for e in entries for k in e["values"]})
    summaries = {e["cell"]: _summary_of(sweep_dir / e["run_dir"]) for e in entries}
    headline = next((s.get("headline_metric", "auc") for s in summaries.values() if s), "auc")
    head = ["cell", "architecture", *swept, headline.upper(), "ε spent, max", "wall s", "cell was"]
    rows: list[list[str]] = [head]
    references: dict[str, tuple[str, float | None]] = {}
    for e in entries:
        summary = summaries[e["cell"]]
        entry = (summary or {}).get("architectures", {}).get(e["architecture"]) or {}
        metrics = entry.get("metrics") or {}
        values = [("-" if e["values"].get(k) is None else shown(e["values"][k], 30)) for k in swept]
        state = "no result" if not summary else ("reused" if e.get("reused") else "run now")
        rows.append([e["cell"], e["architecture"], *values, _fmt(metrics.get(headline)), _fmt(entry.get("epsilon_max"), 2), _fmt(entry.get("wall_s"), 1), state])
        reference = ((summary or {}).get("reference") or {}).get("logistic_regression")
        if reference:  # one per data group (`data`): the cells of a group share their records
            references.setdefault(e.get("data") or e["cell"], (e["cell"], reference["metrics"].get("auc")))
    lines = _grid(rows, rules=(1,))
    small = {
        (a["name"], a["n_test"], (s.get("data") or {}).get("min_test_records"))
        for s in summaries.values() if s for a in s.get("agencies") or [] if a.get("small_test_set")
    }
    if small:
        lines.append("small test sets, metrics not solid: " + ", ".join(f"{name} ({n:,} test records < task.min_test_records={m})" for name, n, m in sorted(small)))
    if references:
        shown_refs = ", ".join(f"{_fmt(auc)} (the data of {cell})" for cell, auc in references.values())
        lines.append(f"reference: pooled logistic regression on the same features, AUC {shown_refs}: pooled, non-private, computed by the evaluation harness")
    return "\n".join(lines)


def _summary_of(run_dir: Path) -> dict | None:
    try:
        data = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"
