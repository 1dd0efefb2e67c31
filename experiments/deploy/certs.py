"""Certificates and keys of a deployment, made with the `cryptography` package (a Flower
dependency, so nothing new to install):

- a private certificate authority (CA) that only this federation trusts;
- the SuperLink's TLS certificate, signed by the CA, whose subject alternative names hold every
  address agencies dial (a TLS client refuses a certificate without the dialled name);
- one EC P-384 key pair per agency, the private key in OpenSSH format for
  `flower-supernode --auth-supernode-private-key`, the public key in OpenSSH format for
  `flwr supernode register`.

Private keys are created with mode 0600 and never overwritten.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from experiments.deploy.errors import DeployError
from experiments.deploy.layout import Layout

CURVE = ec.SECP384R1()
CA_DAYS = 3650
SERVER_DAYS = 825


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Peel federation"), x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_private(path: Path, data: bytes) -> None:
    """Create a private key file readable by its owner only; refuse to replace an existing one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise DeployError(f"{path}: a private key already exists; remove the deploy folder to start again") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _write_public(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(0o644)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def san_entries(addresses: Iterable[str]) -> list[x509.GeneralName]:
    """IP addresses as IP entries, everything else as DNS names (what TLS clients compare)."""
    entries: list[x509.GeneralName] = []
    for address in dict.fromkeys(a.strip() for a in addresses if a.strip()):
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(address)))
        except ValueError:
            entries.append(x509.DNSName(address))
    return entries


def _ca(now: dt.datetime) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(CURVE)
    name = _name("Peel federation CA")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA384())
    )
    return key, cert


def _server(ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, addresses: Sequence[str], now: dt.datetime) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(CURVE)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("Peel SuperLink"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=SERVER_DAYS))
        .add_extension(x509.SubjectAlternativeName(san_entries(addresses)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA384())
    )
    return key, cert


def agency_keypair(private_path: Path, public_path: Path, comment: str) -> None:
    """One agency's SuperNode authentication key pair (EC P-384, OpenSSH formats)."""
    key = ec.generate_private_key(CURVE)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    _write_private(private_path, private)
    _write_public(public_path, public + b" " + comment.encode("ascii", "replace") + b"\n")


def init(layout: Layout, addresses: Sequence[str], agencies: Sequence[str]) -> list[Path]:
    """Create the CA, the SuperLink certificate (SAN = `addresses`) and one key pair per agency
    slug in `agencies`. Returns the files written. Refuses to touch an initialised folder."""
    if not addresses:
        raise DeployError("superlink.addresses: give at least one address agencies dial (e.g. 127.0.0.1)")
    if layout.ca_cert.exists():
        raise DeployError(f"{layout.root}: already initialised ({layout.ca_cert} exists); use another --dir or remove it")
    now = dt.datetime.now(dt.UTC)
    ca_key, ca_cert = _ca(now)
    server_key, server_cert = _server(ca_key, ca_cert, addresses, now)
    _write_private(layout.ca_key, _pem_key(ca_key))
    _write_public(layout.ca_cert, ca_cert.public_bytes(serialization.Encoding.PEM))
    _write_private(layout.superlink_key, _pem_key(server_key))
    _write_public(layout.superlink_cert, server_cert.public_bytes(serialization.Encoding.PEM))
    written = [layout.ca_key, layout.ca_cert, layout.superlink_key, layout.superlink_cert]
    for slug in agencies:
        agency_keypair(layout.agency_key(slug), layout.agency_pub(slug), f"peel-{slug}")
        written += [layout.agency_key(slug), layout.agency_pub(slug)]
    return written


def certificate_addresses(cert_path: Path) -> list[str]:
    """The addresses a certificate is valid for (its SAN), as strings."""
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [str(v) for v in san.get_values_for_type(x509.IPAddress)] + san.get_values_for_type(x509.DNSName)
