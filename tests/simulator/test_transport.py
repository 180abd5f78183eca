"""Opening charger connections: subprotocol, basic auth from env/file, ramp and backoff."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from http import HTTPStatus
from pathlib import Path

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from simulator.scenario import TargetConfig
from simulator.transport import (
    ConnectionRamp,
    ConnectSettings,
    Secret,
    TransportError,
    load_password,
    open_connection,
    redact_url,
)

PASSWORD = "s3cret-pass"


async def _echo(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


def _check_auth(connection: ServerConnection, request: Request) -> Response | None:
    expected = "Basic " + base64.b64encode(f"CP-1:{PASSWORD}".encode()).decode()
    if request.headers.get("Authorization") != expected:
        return connection.respond(HTTPStatus.UNAUTHORIZED, "no\n")
    return None


@pytest.fixture
async def server() -> AsyncIterator[str]:
    async with serve(
        _echo,
        "127.0.0.1",
        0,
        subprotocols=["ocpp1.6"],  # type: ignore[list-item]
        process_request=_check_auth,
    ) as srv:
        port = next(iter(srv.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}"


def test_secret_never_shows_itself() -> None:
    secret = Secret(PASSWORD)
    assert PASSWORD not in repr(secret)
    assert PASSWORD not in str(secret)
    assert PASSWORD not in repr(ConnectSettings("ws://x", "u", secret))
    assert secret.reveal() == PASSWORD


def test_password_from_environment_and_file(tmp_path: Path) -> None:
    target = TargetConfig(password_env="FLEETSIM_TEST_PW")
    loaded = load_password(target, {"FLEETSIM_TEST_PW": PASSWORD})
    assert loaded is not None and loaded.reveal() == PASSWORD
    with pytest.raises(TransportError, match="FLEETSIM_TEST_PW is not set"):
        load_password(target, {})
    path = tmp_path / "pw"
    path.write_text(PASSWORD + "\n", encoding="utf-8")
    loaded = load_password(TargetConfig(password_file=path), {})
    assert loaded is not None and loaded.reveal() == PASSWORD
    with pytest.raises(TransportError, match="cannot read"):
        load_password(TargetConfig(password_file=tmp_path / "missing"), {})
    assert load_password(TargetConfig(), {}) is None


async def test_connects_with_subprotocol_and_basic_auth(server: str) -> None:
    settings = ConnectSettings(server, "{charger_id}", Secret(PASSWORD), ping_interval_s=None)
    ws = await open_connection(settings, "CP-1", "ocpp1.6")
    try:
        assert ws.subprotocol == "ocpp1.6"
        await ws.send("[2]")
        assert await asyncio.wait_for(ws.recv(), 2) == "[2]"
    finally:
        await ws.close()


async def test_wrong_password_is_a_clear_error(server: str) -> None:
    settings = ConnectSettings(server, "{charger_id}", Secret("bad-Pw-42"), ping_interval_s=None)
    with pytest.raises(TransportError, match="HTTP 401") as info:
        await open_connection(settings, "CP-1", "ocpp1.6")
    assert "bad-Pw-42" not in str(info.value)


async def test_unsupported_subprotocol_is_refused(server: str) -> None:
    settings = ConnectSettings(server, "{charger_id}", Secret(PASSWORD), ping_interval_s=None)
    with pytest.raises(TransportError):
        await open_connection(settings, "CP-1", "ocpp2.0.1")


async def test_nothing_listening_is_a_transport_error() -> None:
    settings = ConnectSettings("ws://127.0.0.1:9", ping_interval_s=None, open_timeout_s=2)
    with pytest.raises(TransportError, match="cannot connect"):
        await open_connection(settings, "CP-1", "ocpp1.6")


def test_charger_ids_are_quoted_into_the_url() -> None:
    settings = ConnectSettings("ws://127.0.0.1:9000/ocpp/")
    assert settings.url_for("site a/1") == "ws://127.0.0.1:9000/ocpp/site%20a%2F1"
    headers = Headers(ConnectSettings("ws://h", "{charger_id}", Secret("p")).auth_header("X"))
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"X:p").decode()


async def test_ramp_spaces_connection_attempts() -> None:
    ramp = ConnectionRamp(rate=50.0)
    loop = asyncio.get_running_loop()
    times: list[float] = []

    async def one() -> None:
        await ramp.acquire()
        times.append(loop.time())

    await asyncio.gather(*(one() for _ in range(10)))
    times.sort()
    span = times[-1] - times[0]
    assert span >= 9 * 0.02 * 0.9  # ten attempts at 50/s take about 0.18 s
    assert span < 0.6


def test_reports_never_carry_url_credentials() -> None:
    assert redact_url("wss://cp:pw@csms.example:443/ocpp") == "wss://csms.example:443/ocpp"
    assert redact_url("ws://127.0.0.1:9000") == "ws://127.0.0.1:9000"


def _tls_files(tmp_path: Path) -> tuple[Path, Path, Path, Path]:
    """A test CA, a server certificate for 127.0.0.1 signed by it, and an unrelated CA."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def ca(cn: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(name(cn))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        return key, cert

    ca_key, ca_cert = ca("fleetsim test CA")
    _, other_cert = ca("some other CA")
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(name("127.0.0.1"))
        .issuer_name(ca_cert.subject)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    paths = [tmp_path / n for n in ("ca.pem", "other-ca.pem", "server.pem", "server.key")]
    paths[0].write_bytes(ca_cert.public_bytes(pem))
    paths[1].write_bytes(other_cert.public_bytes(pem))
    paths[2].write_bytes(server_cert.public_bytes(pem))
    paths[3].write_bytes(
        server_key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths[0], paths[1], paths[2], paths[3]


async def test_wss_verifies_the_server_against_the_ca_file(tmp_path: Path) -> None:
    import ssl

    ca, other_ca, cert, key = _tls_files(tmp_path)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    async with serve(
        _echo,
        "127.0.0.1",
        0,
        subprotocols=["ocpp1.6"],
        ssl=server_ctx,  # type: ignore[list-item]
    ) as srv:
        port = next(iter(srv.sockets)).getsockname()[1]
        target = TargetConfig(url=f"wss://127.0.0.1:{port}", ca_file=ca)
        settings = ConnectSettings.from_target(target, target.url or "", None)
        ws = await open_connection(settings, "CP-1", "ocpp1.6")
        try:
            await ws.send("[2]")
            assert await asyncio.wait_for(ws.recv(), 2) == "[2]"
        finally:
            await ws.close()
        # A server the CA did not sign: a clear error, never a silent insecure fallback.
        wrong = TargetConfig(url=f"wss://127.0.0.1:{port}", ca_file=other_ca)
        settings = ConnectSettings.from_target(wrong, wrong.url or "", None)
        with pytest.raises(TransportError, match="TLS certificate verification failed"):
            await open_connection(settings, "CP-1", "ocpp1.6")
    with pytest.raises(TransportError, match="ca_file"):
        ConnectSettings.from_target(
            TargetConfig(url="wss://127.0.0.1:1", ca_file=tmp_path / "none.pem"), "wss://x", None
        )
