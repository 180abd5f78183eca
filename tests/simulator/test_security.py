"""OCPP security profiles 1-3 end to end on loopback: runs against the embedded CSMS in each
profile, and every way a connection must fail (wrong password, wrong CA, missing or foreign
client certificate), each with its one-line error and never a secret in sight."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from simulator.certs import CertPaths, generate_certs
from simulator.cli import app
from simulator.csms import __main__ as csms_main
from simulator.csms.server import CsmsConfig, CsmsServer
from simulator.fleet import charger_id
from simulator.run import RunError, Runner, RunOptions
from simulator.scenario import Scenario, TargetConfig
from simulator.transport import (
    ConnectSettings,
    Secret,
    TransportError,
    open_connection,
)
from tests.conftest import busy_scenario

PW_ENV = "FLEETSIM_TEST_SECURITY_PW"
# A password per charger: the CSMS and the chargers both replace {charger_id}.
PASSWORD = "Zq8-{charger_id}-s3cret-Pw"
RUN_TIMEOUT_S = 60


@dataclass(frozen=True)
class Pki:
    """Two unrelated test PKIs: `good` is the CSMS's, `other` one it has never seen."""

    good: CertPaths
    other: CertPaths


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = tmp_path_factory.mktemp("pki")
    ids = ["CP-1", "CP-2", "CP-3"]
    return Pki(generate_certs(root / "good", ids), generate_certs(root / "other", ids))


@pytest.fixture
def password(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv(PW_ENV, PASSWORD)
    yield PASSWORD


async def _server(profile: int, pki: Pki, password: str | None = None) -> CsmsServer:
    config = CsmsConfig(
        host="127.0.0.1",
        port=0,
        security_profile=profile,
        password=None if password is None else Secret(password),
        cert_dir=pki.good.out_dir if profile >= 2 else None,
    )
    server = CsmsServer(config)
    await server.start()
    return server


@pytest.fixture
async def csms1(pki: Pki, password: str) -> AsyncIterator[CsmsServer]:
    server = await _server(1, pki, password)
    yield server
    await server.stop()


@pytest.fixture
async def csms2(pki: Pki, password: str) -> AsyncIterator[CsmsServer]:
    server = await _server(2, pki, password)
    yield server
    await server.stop()


@pytest.fixture
async def csms3(pki: Pki) -> AsyncIterator[CsmsServer]:
    server = await _server(3, pki)
    yield server
    await server.stop()


async def _connect(target: TargetConfig, url: str, charger_id: str = "CP-1") -> None:
    """Open one charger's connection and close it again; TransportError when refused."""
    settings = ConnectSettings.from_target(target, url, None)
    settings = ConnectSettings(**{**_fields(settings), "open_timeout_s": 5.0})
    async with asyncio.timeout(15):
        ws = await open_connection(settings, charger_id, "ocpp1.6")
        await ws.close()


def _fields(settings: ConnectSettings) -> dict[str, Any]:
    return {name: getattr(settings, name) for name in settings.__slots__}


async def _refused(target: TargetConfig, url: str, charger_id: str = "CP-1") -> str:
    with pytest.raises(TransportError) as info:
        await _connect(target, url, charger_id)
    message = str(info.value)
    assert "\n" not in message
    assert PASSWORD.replace("{charger_id}", charger_id) not in message
    return message


# -- each profile end to end: a short run against the embedded CSMS ---------------------------


def _secured(profile: int, **target: Any) -> Scenario:
    scenario = busy_scenario(duration="2s")
    fields: dict[str, Any] = {"security_profile": profile, **target}
    if profile in (1, 2):
        fields["password_env"] = PW_ENV
    new_target = TargetConfig(**fields)
    online = scenario.online.model_copy(update={"target": new_target})
    return scenario.model_copy(update={"online": online})


@pytest.mark.parametrize("profile", [1, 2, 3])
async def test_a_run_against_the_embedded_csms_in_each_profile(
    profile: int, password: str, tmp_path: Path
) -> None:
    # Profile 2/3 without cert_dir: the runner writes a temporary PKI for its chargers.
    options = RunOptions(metrics_port=None, live=False, chargers=2, csms_db=tmp_path / "csms.db")
    async with asyncio.timeout(RUN_TIMEOUT_S):
        result = await Runner(_secured(profile), options).run()
    report = result.report
    assert result.csms_url is not None
    assert result.csms_url.startswith("wss://" if profile >= 2 else "ws://")
    assert report["connect_errors"] == {}
    assert report["chargers"]["connected_end"] == 2
    assert report["actions"]["BootNotification"]["count"] >= 2
    assert report["ledger"]["transactions_started"] > 0
    assert report["ledger"]["messages_unsent"] == 0
    text = json.dumps(report)
    assert "s3cret" not in text


async def test_a_run_uses_a_given_cert_dir(pki: Pki, tmp_path: Path) -> None:
    scenario = busy_scenario(duration="1s").rescaled(2)
    ids = [
        charger_id(scenario.charger_id_pattern, site.site_name, i)
        for site in scenario.sites
        for i in range(site.chargers)
    ]
    cert_dir = tmp_path / "pki"
    generate_certs(cert_dir, ids)
    target = TargetConfig(security_profile=3, cert_dir=cert_dir)
    scenario = scenario.model_copy(
        update={"online": scenario.online.model_copy(update={"target": target})}
    )
    options = RunOptions(metrics_port=None, live=False)
    async with asyncio.timeout(RUN_TIMEOUT_S):
        result = await Runner(scenario, options).run()
    assert result.report["connect_errors"] == {}
    assert result.report["chargers"]["connected_end"] == 2


async def test_an_embedded_run_checks_its_password_and_certificates_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PW_ENV, raising=False)
    options = RunOptions(metrics_port=None, live=False, duration="1s")
    with pytest.raises(RunError) as info:
        await Runner(_secured(1), options).run()
    assert str(info.value) == f"target.password_env: environment variable {PW_ENV} is not set"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RunError) as info:
        await Runner(_secured(3, cert_dir=empty), options).run()
    assert str(info.value) == (
        f"target.cert_dir: {empty}: missing server.pem, server.key, ca.pem (see `fleetsim certs`)"
    )


async def test_a_run_with_the_wrong_password_reports_the_one_line_reason(
    csms1: CsmsServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(PW_ENV, "not-the-password")
    scenario = _secured(1)
    options = RunOptions(target=csms1.url, metrics_port=None, live=False, duration="1s")
    with caplog.at_level(logging.DEBUG):
        async with asyncio.timeout(RUN_TIMEOUT_S):
            result = await Runner(scenario, options).run()
    report = result.report
    assert report["chargers"]["connected_peak"] == 0
    assert list(report["connect_errors"]) == [
        "CSMS refused the connection: HTTP 401 (wrong password?)"
    ]
    assert csms1.gate.refused[401] >= 6
    for secret in ("not-the-password", "s3cret"):
        assert secret not in caplog.text
        assert secret not in json.dumps(report)


# -- profile 1: basic auth, a password per charger ------------------------------------------


async def test_profile_1_checks_the_password_of_each_charger(csms1: CsmsServer) -> None:
    target = TargetConfig(security_profile=1, password_env=PW_ENV)
    await _connect(target, csms1.url, "CP-1")
    await _connect(target, csms1.url, "CP-2")
    # CP-1's password is not CP-2's: the template is filled per charger on both sides.
    literal = Secret(PASSWORD.replace("{charger_id}", "CP-1"))
    settings = ConnectSettings(csms1.url, "{charger_id}", literal, ping_interval_s=None)
    with pytest.raises(TransportError) as info:
        await open_connection(settings, "CP-2", "ocpp1.6")
    assert str(info.value) == "CSMS refused the connection: HTTP 401 (wrong password?)"
    # So is a user name that is not the charger's.
    wrong_user = TargetConfig(security_profile=1, password_env=PW_ENV, username="admin")
    message = await _refused(wrong_user, csms1.url)
    assert message == "CSMS refused the connection: HTTP 401 (wrong password?)"
    no_auth = await _refused(TargetConfig(), csms1.url)
    assert no_auth == "CSMS refused the connection: HTTP 401 (wrong password?)"
    assert csms1.gate.refused == {401: 3}


async def test_wrong_password_is_refused_without_showing_it(
    csms1: CsmsServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(PW_ENV, "Wr0ng-{charger_id}-guess")
    target = TargetConfig(security_profile=1, password_env=PW_ENV)
    with caplog.at_level(logging.DEBUG):
        message = await _refused(target, csms1.url)
    assert message == "CSMS refused the connection: HTTP 401 (wrong password?)"
    assert "Wr0ng" not in caplog.text and "s3cret" not in caplog.text
    assert "refused: HTTP 401" in caplog.text  # the CSMS says so, by charger, not by secret
    assert "s3cret" not in repr(csms1.config)


# -- profile 2: TLS with the server verified, basic auth --------------------------------------


async def test_profile_2_verifies_the_server_and_checks_the_password(
    csms2: CsmsServer, pki: Pki
) -> None:
    assert csms2.url.startswith("wss://")
    good = TargetConfig(security_profile=2, password_env=PW_ENV, ca_file=pki.good.ca_cert)
    await _connect(good, csms2.url)
    # cert_dir supplies the CA when ca_file is not given.
    await _connect(
        TargetConfig(security_profile=2, password_env=PW_ENV, cert_dir=pki.good.out_dir),
        csms2.url,
    )


async def test_profile_2_with_the_wrong_ca_fails_verification(csms2: CsmsServer, pki: Pki) -> None:
    wrong = TargetConfig(security_profile=2, password_env=PW_ENV, ca_file=pki.other.ca_cert)
    message = await _refused(wrong, csms2.url)
    assert message == (
        "TLS certificate verification failed: unable to get local issuer certificate"
    )
    # The system's CAs do not know the test CA either: never a silent insecure fallback.
    system = TargetConfig(security_profile=2, password_env=PW_ENV)
    assert (await _refused(system, csms2.url)).startswith("TLS certificate verification failed")
    assert csms2.gate.refused == {}  # refused by the charger, before any HTTP


async def test_profile_2_with_the_wrong_password(
    csms2: CsmsServer, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PW_ENV, "nope-nope-nope")
    target = TargetConfig(security_profile=2, password_env=PW_ENV, cert_dir=pki.good.out_dir)
    message = await _refused(target, csms2.url)
    assert message == "CSMS refused the connection: HTTP 401 (wrong password?)"


async def test_a_plain_ws_url_is_refused_for_profiles_2_and_3(pki: Pki) -> None:
    target = TargetConfig(security_profile=2, password_env=PW_ENV)
    with pytest.raises(TransportError) as info:
        ConnectSettings.from_target(target, "ws://127.0.0.1:9", None)
    assert str(info.value) == (
        "target: security_profile 2 needs a wss:// URL (TLS), got ws://127.0.0.1:9"
    )


# -- profile 3: mutual TLS, a certificate per charger -----------------------------------------


def _client_target(paths: CertPaths, ca: Path | None = None) -> TargetConfig:
    return TargetConfig(
        security_profile=3,
        ca_file=ca,
        client_cert=paths.client_cert_template,
        client_key=paths.client_key_template,
    )


async def test_profile_3_accepts_each_chargers_own_certificate(csms3: CsmsServer, pki: Pki) -> None:
    assert csms3.url.startswith("wss://")
    target = TargetConfig(security_profile=3, cert_dir=pki.good.out_dir)
    for charger in ("CP-1", "CP-2", "CP-3"):
        await _connect(target, csms3.url, charger)
    await _connect(_client_target(pki.good, pki.good.ca_cert), csms3.url, "CP-2")
    assert csms3.gate.refused == {}


async def test_profile_3_refuses_a_certificate_of_another_charger(
    csms3: CsmsServer, pki: Pki
) -> None:
    # CP-2's certificate and key, presented by CP-1.
    target = TargetConfig(
        security_profile=3,
        ca_file=pki.good.ca_cert,
        client_cert=str(pki.good.client_cert("CP-2")),
        client_key=str(pki.good.client_key("CP-2")),
    )
    message = await _refused(target, csms3.url, "CP-1")
    assert message == (
        "CSMS refused the connection: HTTP 403 (client certificate not issued for this charger id?)"
    )
    assert csms3.gate.refused == {403: 1}
    assert "CP-1" not in csms3.connections


async def test_profile_3_refuses_a_certificate_from_another_ca(csms3: CsmsServer, pki: Pki) -> None:
    message = await _refused(_client_target(pki.other, pki.good.ca_cert), csms3.url)
    assert message == (
        "CSMS closed the connection after the TLS handshake: it did not accept the client "
        "certificate (signed by a CA it does not trust?)"
    )
    assert not csms3.connections


async def test_profile_3_without_a_client_certificate(
    csms3: CsmsServer, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    # A charger whose certificate file is missing never tries without one.
    target = TargetConfig(security_profile=3, cert_dir=pki.good.out_dir)
    message = await _refused(target, csms3.url, "CP-9")
    assert message == (
        f"target.client_cert: no file at {pki.good.client_cert_template} for this charger "
        "(missing client certificate or key)"
    )
    # A charger configured for TLS without a certificate is refused by the CSMS.
    plain_tls = TargetConfig(ca_file=pki.good.ca_cert)
    with caplog.at_level(logging.INFO):
        message = await _refused(plain_tls, csms3.url)
    assert message == "CSMS refused the connection: HTTP 403 (client certificate required?)"
    assert csms3.gate.refused == {403: 1}
    assert "charger CP-1 refused: HTTP 403, no client certificate" in caplog.text


async def test_profile_3_with_the_wrong_server_ca(csms3: CsmsServer, pki: Pki) -> None:
    message = await _refused(_client_target(pki.good, pki.other.ca_cert), csms3.url)
    assert message.startswith("TLS certificate verification failed: ")


async def test_a_tls_alert_about_the_client_certificate_is_named(pki: Pki) -> None:
    """A CSMS whose TLS stack sends its alert (unlike asyncio's): the alert is in the line."""
    import socket
    import ssl
    import threading
    import time

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.good.server_cert, pki.good.server_key)
    context.load_verify_locations(pki.good.ca_cert)
    context.verify_mode = ssl.CERT_REQUIRED
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve_once() -> None:
        conn, _ = listener.accept()
        tls = context.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
        try:
            tls.do_handshake()
        except (ssl.SSLError, OSError):
            # The alert went out; closing at once would reset the connection (the client's
            # HTTP request is unread) and the reset could overtake the alert.
            time.sleep(0.3)
        tls.close()

    thread = threading.Thread(target=serve_once, daemon=True)
    thread.start()
    try:
        message = await _refused(TargetConfig(ca_file=pki.good.ca_cert), f"wss://127.0.0.1:{port}")
    finally:
        listener.close()
        thread.join(10)
    assert message == (
        "CSMS requires a TLS client certificate (security profile 3): "
        "tlsv13 alert certificate required"
    )


# -- configuration mistakes: one line each ----------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"security_profile": 1}, "security_profile 1 authenticates with a password"),
        ({"security_profile": 2}, "security_profile 2 authenticates with a password"),
        (
            {"security_profile": 2, "password_env": "X", "url": "ws://h:1"},
            "security_profile 2 needs a wss:// URL",
        ),
        (
            {"security_profile": 3, "password_env": "X"},
            "security_profile 3 authenticates with the client certificate",
        ),
        ({"security_profile": 3, "client_cert": "c.pem"}, "give both client_cert and client_key"),
        (
            {"security_profile": 2, "password_env": "X", "client_cert": "c", "client_key": "k"},
            "client_cert/client_key are for security_profile: 3",
        ),
        ({"security_profile": 3, "url": "wss://h:1"}, "needs a client certificate per charger"),
        ({"security_profile": 1, "password_env": "X", "cert_dir": "d"}, "cert_dir is for"),
        ({"security_profile": 4}, "security_profile"),
    ],
)
def test_target_security_mistakes(fields: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError, match=words.replace("/", ".").replace("?", ".")):
        TargetConfig(**fields)


def test_the_security_options_of_the_csms_commands(
    tmp_path: Path, pki: Pki, capsys: pytest.CaptureFixture[str]
) -> None:
    cases: list[tuple[list[str], str]] = [
        (["--security-profile", "1"], "security profile 1 needs a password"),
        (["--security-profile", "2", "--password-env", "HOME"], "needs a certificate directory"),
        (["--security-profile", "3", "--cert-dir", str(tmp_path)], "missing server.pem"),
        (["--security-profile", "1", "--password-env", "FLEETSIM_NO_SUCH_VAR"], "is not set"),
        (
            [
                "--security-profile",
                "3",
                "--password-env",
                "HOME",
                "--cert-dir",
                str(pki.good.out_dir),
            ],
            "takes no password",
        ),
        (["--security-profile", "1", "--password-file", str(tmp_path / "nope")], "cannot read"),
    ]
    # An address no interface has: were a check missing, the CSMS would fail to listen (with
    # another message) instead of serving forever.
    where = ["--host", "203.0.113.1", "--port", "0"]
    for args, words in cases:
        with pytest.raises(SystemExit) as info:
            csms_main.main([*where, *args])
        err = capsys.readouterr().err
        assert info.value.code == 2 and words in err, (args, err)
        assert len(err.strip().splitlines()) == 1, err
        result = CliRunner().invoke(app, ["csms", *where, *args])
        assert result.exit_code == 2 and words in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
