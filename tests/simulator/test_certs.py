"""Test certificates for security profiles 2 and 3: what `generate_certs` and `fleetsim certs`
write, that Python's TLS stack accepts it, and that thousands come quickly."""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import ssl
import stat
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from typer.testing import CliRunner

from simulator.certs import CertError, common_name, generate_certs
from simulator.cli import app


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def test_a_ca_a_server_and_a_client_per_charger(tmp_path: Path) -> None:
    paths = generate_certs(tmp_path, ["CP-1", "CP-2", "CP-1"], days=10)
    assert paths.clients == 2  # each id once
    ca = _cert(paths.ca_cert)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    ca_key = _key(paths.ca_key)
    assert ca_key.curve.name == "secp256r1"
    assert ca_key.public_key().public_numbers() == ca.public_key().public_numbers()  # type: ignore[union-attr]

    server = _cert(paths.server_cert)
    server.verify_directly_issued_by(ca)
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    assert set(sans.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    }
    usage = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert _key(paths.server_key).curve.name == "secp256r1"

    for charger in ("CP-1", "CP-2"):
        cert = _cert(paths.client_cert(charger))
        cert.verify_directly_issued_by(ca)
        assert common_name(cert) == charger
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
        key = _key(paths.client_key(charger))
        assert key.curve.name == "secp256r1"
        assert key.public_key().public_numbers() == cert.public_key().public_numbers()  # type: ignore[union-attr]
        lifetime = cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
        assert datetime.timedelta(days=9.9) < lifetime <= datetime.timedelta(days=10)
    assert paths.client_cert_template.endswith("clients/{charger_id}.pem")
    assert paths.client_cert_template.replace("{charger_id}", "CP-2") == str(
        paths.client_cert("CP-2")
    )
    # Private keys are the owner's alone.
    for key_path in (paths.ca_key, paths.server_key, paths.client_key("CP-1")):
        assert stat.S_IMODE(key_path.stat().st_mode) == 0o600, key_path
    assert stat.S_IMODE(paths.ca_cert.stat().st_mode) == 0o644


def test_pythons_tls_stack_loads_them_both_ways(tmp_path: Path) -> None:
    paths = generate_certs(tmp_path, ["CP-1"])
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(paths.server_cert, paths.server_key)
    server.load_verify_locations(paths.ca_cert)
    client = ssl.create_default_context(cafile=str(paths.ca_cert))
    client.load_cert_chain(paths.client_cert("CP-1"), paths.client_key("CP-1"))
    # A TLS handshake in memory, checking the server's name against the SAN for 127.0.0.1.
    server.verify_mode = ssl.CERT_REQUIRED
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    c = client.wrap_bio(c_in, c_out, server_hostname="127.0.0.1")
    s = server.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        for side in (c, s):
            with contextlib.suppress(ssl.SSLWantReadError):
                side.do_handshake()
        s_in.write(c_out.read())
        c_in.write(s_out.read())
    peer = s.getpeercert()
    assert peer is not None and (("commonName", "CP-1"),) in peer["subject"]
    assert c.getpeercert() is not None


def test_an_existing_ca_signs_new_chargers(tmp_path: Path) -> None:
    first = generate_certs(tmp_path, ["CP-1"])
    ca_pem = first.ca_cert.read_bytes()
    second = generate_certs(tmp_path, ["CP-2"])
    assert second.ca_cert.read_bytes() == ca_pem
    ca = _cert(second.ca_cert)
    _cert(second.client_cert("CP-1")).verify_directly_issued_by(ca)
    _cert(second.client_cert("CP-2")).verify_directly_issued_by(ca)
    fresh = generate_certs(tmp_path, ["CP-3"], reuse_ca=False)
    assert fresh.ca_cert.read_bytes() != ca_pem


@pytest.mark.parametrize("charger_id", ["../escape", "a/b", ".hidden", "", "x" * 129, "sp ace"])
def test_ids_that_cannot_name_a_file_are_refused(tmp_path: Path, charger_id: str) -> None:
    with pytest.raises(CertError, match="cannot name a certificate file"):
        generate_certs(tmp_path, ["CP-1", charger_id])
    assert not (tmp_path / "clients" / "CP-1.pem").exists()  # checked before writing


def test_thousands_of_chargers_quickly(tmp_path: Path) -> None:
    ids = [f"CP-{i:05d}" for i in range(1000)]
    began = time.perf_counter()
    paths = generate_certs(tmp_path, ids)
    elapsed = time.perf_counter() - began
    # Measured 0.45 s on one core; generous for a loaded CI machine.
    assert elapsed < 20.0, elapsed
    assert paths.clients == 1000
    assert len(list((tmp_path / "clients").glob("*.pem"))) == 1000


def _invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    return result.exit_code, result.stdout, result.stderr


def test_fleetsim_certs_for_n_chargers_and_for_a_scenario(tmp_path: Path) -> None:
    code, out, _ = _invoke(
        "certs", "--out", str(tmp_path / "a"), "--chargers", "3", "--charger-id-pattern", "X{index}"
    )
    assert code == 0 and "wrote 3 client certificates" in out
    assert sorted(p.name for p in (tmp_path / "a" / "clients").glob("*.pem")) == [
        "X1.pem",
        "X2.pem",
        "X3.pem",
    ]
    code, out, _ = _invoke("certs", "--out", str(tmp_path / "b"), "--chargers", "2")
    assert code == 0 and (tmp_path / "b" / "clients" / "CP-00002.pem").is_file()
    code, out, _ = _invoke(
        "certs", "--out", str(tmp_path / "c"), "--scenario", "quickstart", "--chargers", "4"
    )
    assert code == 0 and "wrote 4 client certificates" in out, out
    from simulator.scenario import load_scenario

    scenario = load_scenario("quickstart").rescaled(4)
    from simulator.fleet import charger_id

    expected = {
        f"{charger_id(scenario.charger_id_pattern, site.site_name, i)}.pem"
        for site in scenario.sites
        for i in range(site.chargers)
    }
    assert {p.name for p in (tmp_path / "c" / "clients").glob("*.pem")} == expected
    code, _, _ = _invoke("certs", "--out", str(tmp_path / "d"), "--days", "2", "--chargers", "1")
    lifetime = _cert(tmp_path / "d" / "clients" / "CP-00001.pem").not_valid_after_utc
    assert lifetime - datetime.datetime.now(datetime.UTC) < datetime.timedelta(days=2.01)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ([], "--chargers: how many"),
        (["--chargers", "0"], "--chargers: expected at least 1"),
        (["--chargers", "2", "--days", "0"], "--days"),
        (["--chargers", "2", "--charger-id-pattern", "CP"], "must contain {index}"),
        (["--chargers", "2", "--charger-id-pattern", "CP-{nope}"], "does not format"),
        (["--chargers", "2", "--charger-id-pattern", "a/{index}"], "cannot name a certificate"),
        (["--scenario", "quickstart", "--charger-id-pattern", "X{index}"], "either --scenario"),
        (["--scenario", "no-such-scenario"], "no-such-scenario"),
    ],
)
def test_fleetsim_certs_mistakes_are_one_line_and_exit_2(
    tmp_path: Path, args: list[str], words: str
) -> None:
    code, out, err = _invoke("certs", "--out", str(tmp_path / "pki"), *args)
    assert code == 2, (out, err)
    assert words in err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in out + err
