"""Test certificates for OCPP security profiles 2 and 3: a CA, a server certificate for the
embedded CSMS, and a client certificate per charger (CN = charger id), all EC P-256.

Writes PEM files only; it opens no sockets and never builds an SSLContext (transport.py and
the CSMS server do). For tests and load runs, not for production PKI: keys are unencrypted.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_CERT = "ca.pem"
CA_KEY = "ca.key"
SERVER_CERT = "server.pem"
SERVER_KEY = "server.key"
CLIENTS = "clients"
# Where a charger finds its own certificate and key under a certificate directory.
CLIENT_CERT_TEMPLATE = f"{CLIENTS}/{{charger_id}}.pem"
CLIENT_KEY_TEMPLATE = f"{CLIENTS}/{{charger_id}}.key"
SERVER_NAMES = ("localhost", "127.0.0.1", "::1")
# A charger id becomes a file name: refuse anything that could climb out of clients/.
_SAFE_ID = re.compile(r"^[A-Za-z0-9_\-][A-Za-z0-9_.\-]*$")
# Certificates start an hour early, so a clock a little behind ours still accepts them.
_BACKDATE = datetime.timedelta(hours=1)
_ORG = "fleetsim test PKI"


class CertError(Exception):
    """Certificates could not be written or read; the message says why in one line."""


@dataclass(frozen=True)
class CertPaths:
    """Where `generate_certs` put the files: the CA, the CSMS's server certificate, and one
    certificate and key per charger under `clients/`."""

    out_dir: Path
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    clients: int  # client certificates written by this call

    @property
    def client_cert_template(self) -> str:
        """Path template of a charger's certificate, with {charger_id}."""
        return str(self.out_dir / CLIENT_CERT_TEMPLATE)

    @property
    def client_key_template(self) -> str:
        """Path template of a charger's private key, with {charger_id}."""
        return str(self.out_dir / CLIENT_KEY_TEMPLATE)

    def client_cert(self, charger_id: str) -> Path:
        return self.out_dir / CLIENT_CERT_TEMPLATE.format(charger_id=charger_id)

    def client_key(self, charger_id: str) -> Path:
        return self.out_dir / CLIENT_KEY_TEMPLATE.format(charger_id=charger_id)


def cert_paths(out_dir: Path) -> CertPaths:
    """The file layout of a certificate directory (whether or not the files exist)."""
    return CertPaths(
        out_dir=out_dir,
        ca_cert=out_dir / CA_CERT,
        ca_key=out_dir / CA_KEY,
        server_cert=out_dir / SERVER_CERT,
        server_key=out_dir / SERVER_KEY,
        clients=0,
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORG),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _write(path: Path, data: bytes, private: bool) -> None:
    # Keys are created readable by their owner only, from the first byte on.
    mode = 0o600 if private else 0o644
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    if private:
        os.chmod(path, mode)  # an existing file keeps its old mode through O_TRUNC


class _Issuer:
    """The test CA: signs leaf certificates (the per-certificate cost is one EC key pair and
    one ECDSA signature, about 0.2 ms together)."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
        self.key = key
        self.cert = cert
        self._aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key())

    @classmethod
    def new(cls, now: datetime.datetime, days: float) -> _Issuer:
        key = ec.generate_private_key(ec.SECP256R1())
        name = _name("fleetsim test CA")
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    @classmethod
    def load(cls, cert_path: Path, key_path: Path) -> _Issuer:
        try:
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        except OSError as exc:
            raise CertError(f"cannot read the CA in {cert_path.parent}: {exc.strerror}") from None
        except (ValueError, TypeError) as exc:
            raise CertError(f"{cert_path.parent}: not a usable CA certificate/key: {exc}") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise CertError(f"{key_path}: the CA key must be an EC key")
        if key.public_key().public_numbers() != cert.public_key().public_numbers():  # type: ignore[union-attr]
            raise CertError(f"{key_path} is not the key of {cert_path}")
        return cls(key, cert)

    def issue(
        self,
        common_name: str,
        now: datetime.datetime,
        days: float,
        usage: x509.ObjectIdentifier,
        names: list[x509.GeneralName] | None = None,
    ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            # A leaf never outlives its CA (a reused CA may expire before `days`).
            .not_valid_after(
                min(now + datetime.timedelta(days=days), self.cert.not_valid_after_utc)
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=True,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(self._aki, critical=False)
        )
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return key, builder.sign(self.key, hashes.SHA256())


def check_charger_id(charger_id: str) -> None:
    """Raise CertError unless the id can name a certificate file under clients/."""
    if not _SAFE_ID.match(charger_id) or len(charger_id) > 128:
        raise CertError(
            f"charger id {charger_id!r} cannot name a certificate file "
            "(letters, digits, '.', '_' and '-' only, at most 128)"
        )


def generate_certs(
    out_dir: Path,
    charger_ids: Iterable[str],
    days: float = 30.0,
    reuse_ca: bool = True,
) -> CertPaths:
    """Write a test PKI into `out_dir`: ca.pem/ca.key, server.pem/server.key (SAN localhost,
    127.0.0.1, ::1; serverAuth) and clients/<id>.pem/.key for every charger id (CN = id;
    clientAuth). Keys are EC P-256, written with mode 0600.

    With `reuse_ca` an existing ca.pem/ca.key in `out_dir` signs the new certificates, so
    certificates issued earlier (and any trust store holding ca.pem) stay valid. Raises
    CertError with a one-line reason. About 0.25 ms per charger (1,000 in well under a second
    on one core; see tests/simulator/test_certs.py)."""
    if not 0 < days <= 36500:
        raise CertError(f"days: expected a number of days in (0, 36500] (got {days})")
    ids = list(dict.fromkeys(charger_ids))  # once each, in order
    for charger_id in ids:
        check_charger_id(charger_id)
    paths = cert_paths(out_dir)
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    try:
        (out_dir / CLIENTS).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CertError(f"cannot create {out_dir / CLIENTS}: {exc.strerror or exc}") from None
    try:
        if reuse_ca and paths.ca_cert.exists() and paths.ca_key.exists():
            issuer = _Issuer.load(paths.ca_cert, paths.ca_key)
        else:
            issuer = _Issuer.new(now, days)
            _write(paths.ca_key, _key_pem(issuer.key), private=True)
            _write(paths.ca_cert, _cert_pem(issuer.cert), private=False)
        sans: list[x509.GeneralName] = [
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("::1")),
        ]
        key, cert = issuer.issue("localhost", now, days, ExtendedKeyUsageOID.SERVER_AUTH, sans)
        _write(paths.server_key, _key_pem(key), private=True)
        _write(paths.server_cert, _cert_pem(cert), private=False)
        client_auth = ExtendedKeyUsageOID.CLIENT_AUTH
        for charger_id in ids:
            key, cert = issuer.issue(charger_id, now, days, client_auth)
            _write(paths.client_key(charger_id), _key_pem(key), private=True)
            # The chain a charger presents: its certificate only; the CSMS holds the CA.
            _write(paths.client_cert(charger_id), _cert_pem(cert), private=False)
    except OSError as exc:
        raise CertError(f"cannot write into {out_dir}: {exc.strerror or exc}") from None
    return CertPaths(
        out_dir=out_dir,
        ca_cert=paths.ca_cert,
        ca_key=paths.ca_key,
        server_cert=paths.server_cert,
        server_key=paths.server_key,
        clients=len(ids),
    )


def common_name(cert: x509.Certificate) -> str | None:
    """The subject's CN of a certificate (None when it has none)."""
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not attrs:
        return None
    value = attrs[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


__all__ = [
    "CA_CERT",
    "CA_KEY",
    "CLIENT_CERT_TEMPLATE",
    "CLIENT_KEY_TEMPLATE",
    "SERVER_CERT",
    "SERVER_KEY",
    "SERVER_NAMES",
    "CertError",
    "CertPaths",
    "cert_paths",
    "check_charger_id",
    "common_name",
    "generate_certs",
]
