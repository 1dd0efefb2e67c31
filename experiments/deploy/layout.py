"""Where everything of a deployment lives inside its deploy folder (nothing is written elsewhere:
Flower's state, databases, installed app bundles, caches and logs all stay here)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Layout:
    root: Path

    # --- certificates and keys (certs.init) -------------------------------------------------
    @property
    def ca_cert(self) -> Path:
        return self.root / "certs" / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.root / "certs" / "ca.key"

    @property
    def superlink_cert(self) -> Path:
        return self.root / "certs" / "superlink.crt"

    @property
    def superlink_key(self) -> Path:
        return self.root / "certs" / "superlink.key"

    def agency_key(self, slug: str) -> Path:
        return self.root / "keys" / slug

    def agency_pub(self, slug: str) -> Path:
        return self.root / "keys" / f"{slug}.pub"

    # --- processes ----------------------------------------------------------------------------
    @property
    def processes(self) -> Path:
        return self.root / "processes.json"

    def log(self, name: str) -> Path:
        return self.root / "logs" / f"{name}.log"

    @property
    def superlink_home(self) -> Path:
        """FLWR_HOME of the SuperLink (its database and installed app bundles)."""
        return self.root / "superlink"

    @property
    def database(self) -> Path:
        return self.superlink_home / "state.db"

    def node_home(self, slug: str) -> Path:
        """FLWR_HOME of one agency's SuperNode (as if on its own machine)."""
        return self.root / "nodes" / slug

    def node_config(self, slug: str) -> Path:
        return self.node_home(slug) / "node-config.toml"

    def exec_secret(self, slug: str) -> Path:
        """Shared secret between a SuperNode's Runtime API and the executor that runs its ClientApps."""
        return self.node_home(slug) / "superexec.secret"

    @property
    def operator_home(self) -> Path:
        """FLWR_HOME of the operator's `flwr` CLI: config.toml with the connection to the SuperLink."""
        return self.root / "operator"

    @property
    def app(self) -> Path:
        """A copy of Peel's app code that `flwr run` bundles (so the repo's pyproject.toml is never touched)."""
        return self.root / "app"

    @property
    def cache(self) -> Path:
        return self.root / "cache"
