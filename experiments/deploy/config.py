"""The deployment config (configs/deploy/*.yaml): where the SuperLink listens and which names it
is known by, how SuperNodes run ClientApps, and the agencies — each with its own data folder,
budget ledger and ε budget, which its SuperNode receives as node config and nothing else.

Relative paths are taken from the directory `peel` is run in, like every other Peel config.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from experiments.deploy.errors import DeployError
from experiments.deploy.layout import Layout
from policedata.errors import DataError
from policedata.manifest import read_manifest
from privacy.ledger import LEDGER_FILENAME

# The same file name experiments/prepare.py gives an agency's ledger inside its folder.
# How a SuperNode runs its ClientApps (see experiments/deploy/warm_exec.py and docs/deployment.md).
Isolation = Literal["warm", "subprocess", "process"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SuperLinkSection(_Section):
    host: str = "127.0.0.1"  # address the SuperLink binds (0.0.0.0: every interface)
    port: int = Field(9193, ge=1, le=65535)  # Fleet, Control and Runtime APIs share it (Flower 1.42)
    addresses: list[str] = Field(default_factory=lambda: ["127.0.0.1", "localhost"], min_length=1)

    @field_validator("addresses")
    @classmethod
    def _plain(cls, value: list[str]) -> list[str]:
        bad = [a for a in value if not re.fullmatch(r"[A-Za-z0-9.\-:]+", a)]
        if bad:
            raise ValueError(f"{bad[0]!r} is not a host name or IP address (no ports, no schemes)")
        return value


class SuperNodeSection(_Section):
    isolation: Isolation = "warm"
    host: str = "127.0.0.1"  # where each SuperNode serves its Runtime API (to its own ClientApps only)
    first_port: int = Field(9300, ge=1, le=65000)  # agency i gets first_port + i


class AgencyEntry(_Section):
    name: str = Field(min_length=1)
    folder: str
    ledger: str | None = None  # default: <folder>/ledger.sqlite
    budget: float | None = Field(None, gt=0)  # default: the top-level budget
    areas: str | None = None  # the public area covariates table (default: areas.csv next to the manifest)


class DeployFile(_Section):
    dir: str | None = None
    superlink: SuperLinkSection = Field(default_factory=SuperLinkSection)
    supernodes: SuperNodeSection = Field(default_factory=SuperNodeSection)
    budget: float = Field(1.0, gt=0)
    agencies: str | list[AgencyEntry]


@dataclass(frozen=True)
class Agency:
    name: str
    slug: str
    folder: Path
    ledger: Path
    budget: float
    port: int  # its SuperNode's Runtime API port
    areas: Path | None = None


@dataclass(frozen=True)
class DeployConfig:
    path: Path
    layout: Layout
    superlink: SuperLinkSection
    supernodes: SuperNodeSection
    agencies: list[Agency]

    @property
    def address(self) -> str:
        """What SuperNodes and the operator dial: the first certificate address and the port."""
        host = self.superlink.addresses[0]
        return f"[{host}]:{self.superlink.port}" if ":" in host else f"{host}:{self.superlink.port}"


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug or "agency"


def _from_manifest(folder: Path, config: Path) -> list[AgencyEntry]:
    """Agencies of a folder written by `peel generate` (its manifest.json names them)."""
    path = folder / "manifest.json"
    if not path.is_file():
        raise DeployError(f"{config}: agencies: {path} not found (give a folder written by `peel generate`, or a list of agencies)")
    try:
        manifest = read_manifest(folder, months=False)  # every agency folder confined to `folder`: its ledger is written there
    except DataError as exc:
        raise DeployError(f"{config}: agencies: {exc}") from None
    areas = str(folder / "areas.csv") if (folder / "areas.csv").is_file() else None
    return [AgencyEntry(name=a["name"], folder=a["folder"], areas=areas) for a in manifest["agencies"]]


def _one_line(exc: ValidationError, path: Path) -> str:
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"]) or "(top level)"
    return f"{path}: {key}: {err['msg']}"


def load(path: str | Path, deploy_dir: str | Path | None = None) -> DeployConfig:
    """Read and check a deployment config; `deploy_dir` overrides its `dir`."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DeployError(f"{path}: no such deployment config") from None
    except yaml.YAMLError as exc:
        raise DeployError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    try:
        parsed = DeployFile.model_validate(raw if raw is not None else {})
    except ValidationError as exc:
        raise DeployError(_one_line(exc, path)) from None
    entries = _from_manifest(Path(parsed.agencies), path) if isinstance(parsed.agencies, str) else parsed.agencies
    if not entries:
        raise DeployError(f"{path}: agencies: none given")
    agencies, slugs = [], set()
    for i, entry in enumerate(entries):
        slug = slugify(entry.name)
        if slug in slugs:
            raise DeployError(f"{path}: agencies: two agencies are named like {entry.name!r} (file names must differ)")
        slugs.add(slug)
        folder = Path(entry.folder).resolve()
        ledger = Path(entry.ledger).resolve() if entry.ledger else folder / LEDGER_FILENAME
        port = parsed.supernodes.first_port + i
        if port == parsed.superlink.port:
            raise DeployError(f"{path}: supernodes.first_port: agency {entry.name!r} would get the SuperLink's port {port}")
        areas = Path(entry.areas).resolve() if entry.areas else None
        agencies.append(Agency(entry.name, slug, folder, ledger, entry.budget or parsed.budget, port, areas))
    root = Path(deploy_dir or parsed.dir or Path("runs") / "deploy" / path.stem).resolve()
    return DeployConfig(path, Layout(root), parsed.superlink, parsed.supernodes, agencies)
