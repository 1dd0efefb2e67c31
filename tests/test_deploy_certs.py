"""`peel deploy init`: the CA, the SuperLink certificate and the agencies' keys — and the files a
SuperNode is started with (deployment config, node config). Fast: no Flower process starts."""

from __future__ import annotations

import socket
import ssl
import stat
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_ssh_private_key, load_ssh_public_key
from flwr.common.config import parse_config_args

from experiments.deploy import certs, commands
from experiments.deploy import config as deploy_config
from experiments.deploy.errors import DeployError
from experiments.deploy.layout import Layout

ADDRESSES = ["127.0.0.1", "localhost", "coordinator.police.example"]
SLUGS = ["avon", "brent"]


@pytest.fixture(scope="module")
def layout(tmp_path_factory) -> Layout:
    layout = Layout(tmp_path_factory.mktemp("deploy"))
    certs.init(layout, ADDRESSES, SLUGS)
    return layout


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_private_keys_are_owner_only(layout: Layout) -> None:
    for path in (layout.ca_key, layout.superlink_key, *(layout.agency_key(s) for s in SLUGS)):
        assert _mode(path) == 0o600, path
    for path in (layout.ca_cert, layout.superlink_cert, *(layout.agency_pub(s) for s in SLUGS)):
        assert _mode(path) == 0o644, path


def test_superlink_certificate_is_issued_by_the_ca_for_the_addresses(layout: Layout) -> None:
    ca = x509.load_pem_x509_certificate(layout.ca_cert.read_bytes())
    server = x509.load_pem_x509_certificate(layout.superlink_cert.read_bytes())
    server.verify_directly_issued_by(ca)  # raises if the signature or issuer is wrong
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert sorted(certs.certificate_addresses(layout.superlink_cert)) == sorted(ADDRESSES)
    assert isinstance(server.public_key(), ec.EllipticCurvePublicKey) and server.public_key().curve.name == "secp384r1"


def _handshake(layout: Layout, server_hostname: str) -> None:
    """A real TLS handshake: server with the SuperLink's key, client trusting only the CA."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(layout.superlink_cert, layout.superlink_key)
    client_ctx = ssl.create_default_context(cafile=str(layout.ca_cert))
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        conn, _ = listener.accept()
        try:
            with server_ctx.wrap_socket(conn, server_side=True):
                pass
        except (ssl.SSLError, OSError):
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with client_ctx.wrap_socket(raw, server_hostname=server_hostname):
                pass
    finally:
        thread.join(5)
        listener.close()


@pytest.mark.parametrize("name", ADDRESSES)
def test_tls_clients_trusting_the_ca_accept_every_configured_address(layout: Layout, name: str) -> None:
    _handshake(layout, name)


def test_tls_clients_refuse_a_name_not_in_the_certificate(layout: Layout) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(layout, "elsewhere.example")


@pytest.mark.parametrize("slug", SLUGS)
def test_agency_keys_are_p384_in_openssh_format(layout: Layout, slug: str) -> None:
    private = load_ssh_private_key(layout.agency_key(slug).read_bytes(), None)
    public_text = layout.agency_pub(slug).read_text()
    assert public_text.startswith("ecdsa-sha2-nistp384 ") and public_text.rstrip().endswith(f"peel-{slug}")
    public = load_ssh_public_key(public_text.encode())
    assert isinstance(private, ec.EllipticCurvePrivateKey) and private.curve.name == "secp384r1"
    assert private.public_key().public_numbers() == public.public_numbers()


def test_agencies_get_different_keys(layout: Layout) -> None:
    assert layout.agency_pub("avon").read_text().split()[1] != layout.agency_pub("brent").read_text().split()[1]


def test_init_never_overwrites(layout: Layout) -> None:
    before = layout.ca_key.read_bytes()
    with pytest.raises(DeployError, match="already initialised"):
        certs.init(layout, ADDRESSES, SLUGS)
    assert layout.ca_key.read_bytes() == before


def test_init_needs_an_address(tmp_path: Path) -> None:
    with pytest.raises(DeployError, match="at least one address"):
        certs.init(Layout(tmp_path), [], SLUGS)


# --- the deployment config and what a SuperNode is given ----------------------------------------


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "deploy.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_config_from_a_generated_agencies_folder(tmp_path: Path) -> None:
    agencies = tmp_path / "agencies"
    (agencies / "a").mkdir(parents=True)
    (agencies / "manifest.json").write_text('{"agencies": [{"name": "Avon and Somerset", "slug": "a", "folder": "a"}]}')
    config = deploy_config.load(_config(tmp_path, f"agencies: {agencies}\nbudget: 2.5\nsupernodes: {{first_port: 9400}}\n"), tmp_path / "d")
    [agency] = config.agencies
    assert (agency.name, agency.slug, agency.folder, agency.budget, agency.port) == ("Avon and Somerset", "avon-and-somerset", (agencies / "a").resolve(), 2.5, 9400)
    assert agency.ledger == agency.folder / "ledger.sqlite"
    assert config.layout.root == (tmp_path / "d").resolve()
    assert config.address == "127.0.0.1:9193" and config.supernodes.isolation == "warm"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("agencies: []\n", "agencies: none given"),
        ("agencies: [{name: A, folder: x}]\nsuperlink: {prot: 1}\n", "superlink.prot: Extra inputs are not permitted"),
        ("agencies: [{name: A, folder: x}, {name: a, folder: y}]\n", "two agencies are named like 'a'"),
        ("agencies: [{name: A, folder: x}]\nsupernodes: {isolation: threads}\n", "supernodes.isolation"),
        ("agencies: [{name: A, folder: x}]\nsuperlink: {addresses: ['https://x:1']}\n", "not a host name"),
        ("agencies: nowhere\n", "nowhere/manifest.json not found"),
        ("agencies: [{name: A, folder: x}]\nsuperlink: {port: 9300}\n", "would get the SuperLink's port 9300"),
    ],
)
def test_config_errors_are_one_line_naming_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(DeployError) as err:
        deploy_config.load(_config(tmp_path, text))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_node_config_survives_any_agency_name(tmp_path: Path) -> None:
    """The SuperNode is given only its agency's name, folder, ledger and budget, in a TOML file
    that Flower's own parser reads back exactly (quotes in names included)."""
    name = "King's Lynn \"North\" Police"
    config = deploy_config.load(_config(tmp_path, f"agencies: [{{name: '{name.replace(chr(39), chr(39) * 2)}', folder: 'a b', ledger: l.sqlite, budget: 0.5}}]\n"), tmp_path / "d")
    [agency] = config.agencies
    path = commands.write_node_config(config, agency)
    assert parse_config_args([str(path)]) == {"agency": name, "data-path": str((Path.cwd() / "a b").resolve()), "ledger-path": str((Path.cwd() / "l.sqlite").resolve()), "budget": 0.5}
    command = commands.supernode_command(config, agency, insecure=False)
    assert command[command.index("--node-config") + 1] == str(path)
    assert command[command.index("--auth-supernode-private-key") + 1] == str(config.layout.agency_key(agency.slug))
    assert command[command.index("--root-certificates") + 1] == str(config.layout.ca_cert)
    assert "--insecure" not in command


def test_superlink_command_has_tls_and_node_auth_unless_insecure(tmp_path: Path) -> None:
    config = deploy_config.load(_config(tmp_path, "agencies: [{name: A, folder: x}]\n"), tmp_path / "d")
    secure = commands.superlink_command(config, insecure=False)
    assert "--enable-supernode-auth" in secure and "--ssl-certfile" in secure and "--insecure" not in secure
    assert "--disable-runtime-dependency-installation" in secure
    assert secure[secure.index("--database") + 1].startswith(str(config.layout.root))
    insecure = commands.superlink_command(config, insecure=True)
    assert "--insecure" in insecure and "--enable-supernode-auth" not in insecure
