"""TLS for the simulator: a throwaway CA and a leaf certificate for localhost.

Zoom's servers are `wss://` with CA-issued certificates and Zoom's official SDK verifies
them (and rejects IP-literal hosts), so the simulator serves a certificate valid for DNS
`localhost` and IP `127.0.0.1`, signed by a CA generated in memory. Clients trust that CA
explicitly (write it out with `write_ca`); nobody needs to turn verification off.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_HOSTS = ("localhost", "127.0.0.1", "::1")
_VALIDITY = dt.timedelta(days=30)


@dataclass(frozen=True, slots=True)
class TLSMaterial:
    """PEM bytes of a CA (None when the user brought their own certificate) and a leaf."""

    cert_pem: bytes
    key_pem: bytes
    ca_pem: bytes | None = None


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "rtms-gateway simulator"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _san(hosts: tuple[str, ...]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def generate_localhost_material(hosts: tuple[str, ...] = DEFAULT_HOSTS) -> TLSMaterial:
    """A fresh CA and a leaf certificate for `hosts`, valid from a minute ago for 30 days."""
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("rtms-gateway simulator throwaway CA")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_san(hosts), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return TLSMaterial(
        cert_pem=leaf_cert.public_bytes(serialization.Encoding.PEM),
        key_pem=leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        ca_pem=ca_cert.public_bytes(serialization.Encoding.PEM),
    )


def load_material(cert_file: str | os.PathLike[str], key_file: str | os.PathLike[str]) -> TLSMaterial:
    """A certificate and key the user brought (`--tls-cert/--tls-key`); no CA to hand out."""
    return TLSMaterial(cert_pem=Path(cert_file).read_bytes(), key_pem=Path(key_file).read_bytes())


def write_ca(material: TLSMaterial, path: str | os.PathLike[str]) -> Path:
    """Write the CA certificate (PEM) for clients to trust; returns the path written."""
    if material.ca_pem is None:
        raise ValueError("this certificate was supplied by the user: there is no simulator CA to write")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_bytes(material.ca_pem)
    tmp.replace(target)  # a client polling for the file never reads half of it
    return target


def server_ssl_context(material: TLSMaterial) -> ssl.SSLContext:
    """A TLS ≥ 1.2 server context serving the leaf certificate (and the CA as chain)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    # load_cert_chain only reads files: hand it a private temporary directory.
    with tempfile.TemporaryDirectory(prefix="rtms-sim-tls-") as tmp:
        cert_path = Path(tmp) / "cert.pem"
        key_path = Path(tmp) / "key.pem"
        cert_path.write_bytes(material.cert_pem + (material.ca_pem or b""))
        key_path.write_bytes(material.key_pem)
        os.chmod(key_path, 0o600)
        ctx.load_cert_chain(cert_path, key_path)
    return ctx


def client_ssl_context(ca_pem: bytes) -> ssl.SSLContext:
    """A verifying client context trusting only `ca_pem` (handy for tests and tools)."""
    ctx = ssl.create_default_context(cadata=ca_pem.decode("ascii"))
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx
