"""Opening a charger's websocket to the CSMS: URL, OCPP subprotocol, basic auth, TLS, and the ramp.
(basic auth, TLS, mutual TLS with a certificate per charger), ramp, backoff.

The only code on the charger side that opens sockets. It reads secrets from the environment or
a file and never prints them; it does not frame OCPP messages (that is rpc's job).
"""

from __future__ import annotations

import asyncio
import base64
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidHandshake, InvalidMessage, InvalidStatus, InvalidURI
from websockets.typing import Subprotocol

from simulator.scenario import TargetConfig

# OCPP messages are small (the largest common ones, local lists and reports, stay well under
# MAX_MESSAGE_BYTES): a bigger CALL is refused with a CALLERROR and the connection stays up, as
# a charger advertising its BytesPerMessage does. A frame beyond MAX_FRAME_BYTES closes the
# connection (1009), so a misbehaving CSMS cannot make a charger buffer megabytes.
MAX_MESSAGE_BYTES = 256 * 1024
MAX_FRAME_BYTES = 1024 * 1024


class TransportError(Exception):
    """A connection could not be opened; the message says why in one line."""


class Secret:
    """A password that does not show itself in reprs, logs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


def load_password(target: TargetConfig, environ: dict[str, str] | None = None) -> Secret | None:
    """The basic-auth password from the variable or file the target names (None: no auth)."""
    return read_secret(
        target.password_env,
        target.password_file,
        environ,
        ("target.password_env", "target.password_file"),
    )


def read_secret(
    env_var: str | None,
    path: Path | None,
    environ: Mapping[str, str] | None = None,
    names: tuple[str, str] = ("--password-env", "--password-file"),
) -> Secret | None:
    """A password from environment variable `env_var`, else the first line of file `path`
    (None when neither is named). `names` name the two sources in the one-line errors."""
    env = os.environ if environ is None else environ
    if env_var:
        value = env.get(env_var)
        if value is None:
            raise TransportError(f"{names[0]}: environment variable {env_var} is not set")
        if not value:
            raise TransportError(f"{names[0]}: environment variable {env_var} is empty")
        return Secret(value)
    if path:
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise TransportError(f"{names[1]}: cannot read {path}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise TransportError(f"{names[1]}: {path} is not UTF-8 text") from None
        if not lines or not lines[0]:
            raise TransportError(f"{names[1]}: {path} is empty")
        return Secret(lines[0])
    return None


def client_ssl_context(ca_file: Path | None, cadata: str | None = None) -> ssl.SSLContext:
    """Verifying TLS context for wss://: the given CA bundle (a file, or its PEM text), else
    the system's CAs. Never without verification: there is no insecure fallback."""
    try:
        if cadata is not None:
            context = ssl.create_default_context(cadata=cadata)
        else:
            context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise TransportError(f"target.ca_file: cannot load {ca_file}: {_ssl_reason(exc)}") from None
    # OCPP's security profiles 2 and 3 require TLS 1.2 or newer.
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _ssl_reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason).replace("_", " ").lower()
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _fill(template: str, charger_id: str) -> str:
    # str.replace, not str.format: a path or a password may hold other braces.
    return template.replace("{charger_id}", charger_id)


@dataclass(frozen=True, slots=True)
class ClientCertificates:
    """Security profile 3: a charger's own certificate and key, found from path templates.

    A charger's SSLContext is built when it connects and is not cached: the open connection
    holds it, and it goes with the connection. Measured (OpenSSL 3.0, EC P-256): building one
    costs about 1.4 ms of CPU and each context alive costs about 25 KiB (12.6 KiB of it the
    bare SSL_CTX), on top of the ~9 KiB of any TLS connection, so a connected profile-3 fleet
    of 10,000 chargers holds ~250 MB of contexts; caching them would hold that for offline
    chargers too. The CA is read once (`cadata`), not on every connect."""

    cert_template: str
    key_template: str
    cadata: str | None = field(default=None, repr=False)  # the CA bundle's PEM; None: system

    def context_for(self, charger_id: str) -> ssl.SSLContext:
        context = client_ssl_context(None, self.cadata)
        cert, key = _fill(self.cert_template, charger_id), _fill(self.key_template, charger_id)
        for name, template, path in (
            ("client_cert", self.cert_template, cert),
            ("client_key", self.key_template, key),
        ):
            if not Path(path).is_file():
                # The template, not the path: the same line for every charger counts as one
                # reason in the run's connect errors (the link logs which charger it was).
                raise TransportError(
                    f"target.{name}: no file at {template} for this charger "
                    "(missing client certificate or key)"
                )
        try:
            context.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as exc:
            raise TransportError(
                f"target.client_cert: cannot load {self.cert_template} with "
                f"{self.key_template}: {_ssl_reason(exc)}"
            ) from None
        return context


@dataclass(frozen=True, slots=True)
class ConnectSettings:
    """How every charger of a run connects (shared by all of them)."""

    base_url: str
    username: str | None = None  # template with {charger_id}; None: no basic auth
    password: Secret | None = None  # may itself hold {charger_id}: a password per charger
    ssl_context: ssl.SSLContext | None = None  # shared by every charger (wss://, profile 2)
    ping_interval_s: float | None = 30.0
    open_timeout_s: float = 10.0
    client_certs: ClientCertificates | None = None  # profile 3: a context per charger
    security_profile: int = 0

    @classmethod
    def from_target(
        cls, target: TargetConfig, base_url: str, ping_interval_s: float | None
    ) -> ConnectSettings:
        """The settings of `target` for a CSMS at `base_url`; TransportError (one line) when
        the security profile's needs are not met or a password, CA or directory is unusable."""
        try:
            target.check_security(base_url)
        except ValueError as exc:
            raise TransportError(f"target: {exc}") from None
        password = load_password(target)
        scheme = urlsplit(base_url).scheme
        cert_dir = target.cert_dir
        ca_file = target.ca_file
        cert_template, key_template = target.client_cert, target.client_key
        if cert_dir is not None:
            from simulator.certs import CA_CERT, CLIENT_CERT_TEMPLATE, CLIENT_KEY_TEMPLATE

            if not cert_dir.is_dir():
                raise TransportError(f"target.cert_dir: no such directory: {cert_dir}")
            ca_file = ca_file or cert_dir / CA_CERT
            cert_template = cert_template or str(cert_dir / CLIENT_CERT_TEMPLATE)
            key_template = key_template or str(cert_dir / CLIENT_KEY_TEMPLATE)
        context: ssl.SSLContext | None = None
        client_certs: ClientCertificates | None = None
        if scheme == "wss":
            # Built now even for profile 3: a CA file that does not load fails the run at
            # once, not each charger on its own.
            context = client_ssl_context(ca_file)
            if target.security_profile == 3 and cert_template and key_template:
                cadata: str | None = None
                if ca_file is not None:
                    try:
                        cadata = Path(ca_file).read_text(encoding="ascii")
                    except (OSError, UnicodeDecodeError) as exc:
                        raise TransportError(
                            f"target.ca_file: cannot load {ca_file}: {_ssl_reason(exc)}"
                        ) from None
                client_certs = ClientCertificates(cert_template, key_template, cadata)
                context = None
        # Profile 3 authenticates with the certificate; check_security refused a password.
        return cls(
            base_url=base_url.rstrip("/"),
            username=target.username if password is not None else None,
            password=password,
            ssl_context=context,
            ping_interval_s=ping_interval_s,
            client_certs=client_certs,
            security_profile=target.security_profile,
        )

    def ssl_context_for(self, charger_id: str) -> ssl.SSLContext | None:
        """The TLS context a charger connects with (None: plain ws://); raises TransportError
        when its client certificate cannot be loaded."""
        if self.client_certs is not None:
            return self.client_certs.context_for(charger_id)
        return self.ssl_context

    def url_for(self, charger_id: str) -> str:
        return f"{self.base_url.rstrip('/')}/{quote(charger_id, safe='')}"

    def auth_header(self, charger_id: str) -> dict[str, str]:
        if self.password is None or self.username is None:
            return {}
        user = self.username.format(charger_id=charger_id)
        password = _fill(self.password.reveal(), charger_id)
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        return {"Authorization": f"Basic {token}"}


class _ClosedAfterTls(Exception):
    """The CSMS closed a TLS connection before answering the HTTP upgrade."""


class _ChargerConnection(ClientConnection):
    """A client connection whose failed opening handshake says what really ended it.

    Under TLS 1.3 a server checks the client's certificate after the client's side of the
    handshake is done, so a refusal reaches the client while it waits for the HTTP upgrade
    answer: as a TLS alert (an SSLError in `connection_exc`), or, from servers that close
    without flushing the alert (Python's asyncio and uvloop among them), as a bare EOF.
    websockets reports both as "did not receive a valid HTTP response"."""

    async def handshake(self, *args: Any, **kwargs: Any) -> None:
        try:
            await super().handshake(*args, **kwargs)
        except InvalidMessage as exc:
            lost = self.connection_exc
            if isinstance(lost, ssl.SSLError):
                raise lost from None
            tls = self.transport.get_extra_info("ssl_object") is not None
            if tls and isinstance(exc.__cause__, EOFError):
                raise _ClosedAfterTls() from None
            raise


async def open_connection(
    settings: ConnectSettings, charger_id: str, subprotocol: str
) -> ClientConnection:
    """Open one charger's websocket; raises TransportError with a one-line reason."""
    context = settings.ssl_context_for(charger_id)
    try:
        ws = await connect(
            settings.url_for(charger_id),
            subprotocols=[Subprotocol(subprotocol)],
            additional_headers=settings.auth_header(charger_id),
            ssl=context,
            create_connection=_ChargerConnection,
            # Never route a load test through a proxy picked up from the environment.
            proxy=None,
            compression=None,
            open_timeout=settings.open_timeout_s,
            ping_interval=settings.ping_interval_s,
            ping_timeout=settings.ping_interval_s,
            max_size=MAX_FRAME_BYTES,
            max_queue=32,
            user_agent_header="fleetsim",
        )
    except InvalidStatus as exc:
        status = exc.response.status_code
        raise TransportError(
            f"CSMS refused the connection: HTTP {status}{_status_hint(settings, status)}"
        ) from None
    except InvalidURI as exc:
        raise TransportError(f"invalid CSMS URL: {exc}") from None
    except _ClosedAfterTls:
        if settings.client_certs is not None:
            why = "it did not accept the client certificate (signed by a CA it does not trust?)"
        else:
            why = "does it require a client certificate (security profile 3)?"
        raise TransportError(f"CSMS closed the connection after the TLS handshake: {why}") from None
    except ssl.SSLCertVerificationError as exc:
        raise TransportError(f"TLS certificate verification failed: {exc.verify_message}") from None
    except (InvalidHandshake, OSError, TimeoutError, ssl.SSLError) as exc:
        # A CSMS that refuses a client certificate sends a TLS alert (see _ChargerConnection).
        alert = _client_cert_alert(exc)
        if alert is not None:
            if context is not None and settings.client_certs is None:
                raise TransportError(
                    f"CSMS requires a TLS client certificate (security profile 3): {alert}"
                ) from None
            raise TransportError(f"CSMS rejected the TLS client certificate: {alert}") from None
        raise TransportError(f"cannot connect: {exc or type(exc).__name__}") from None
    if ws.subprotocol != subprotocol:
        await ws.close()
        raise TransportError(f"CSMS did not accept subprotocol {subprotocol}")
    return ws


# TLS alerts a server sends about the client's certificate (OpenSSL reason codes).
_CLIENT_CERT_ALERTS = frozenset(
    {
        "TLSV13_ALERT_CERTIFICATE_REQUIRED",
        "SSLV3_ALERT_BAD_CERTIFICATE",
        "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
        "SSLV3_ALERT_CERTIFICATE_EXPIRED",
        "SSLV3_ALERT_CERTIFICATE_REVOKED",
        "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE",
        "TLSV1_ALERT_UNKNOWN_CA",
        "TLSV1_ALERT_ACCESS_DENIED",
    }
)


def _client_cert_alert(exc: BaseException | None) -> str | None:
    if isinstance(exc, ssl.SSLError) and exc.reason in _CLIENT_CERT_ALERTS:
        return _ssl_reason(exc)
    return None


def _status_hint(settings: ConnectSettings, status: int) -> str:
    if status == 401:
        return " (wrong password?)"
    if status == 403:
        if settings.client_certs is not None:
            return " (client certificate not issued for this charger id?)"
        if settings.ssl_context is not None:
            if settings.password is None:
                return " (client certificate required?)"
            return " (wrong password, or a client certificate required?)"
        return " (wrong password?)"
    return ""


def redact_url(url: str) -> str:
    """The URL without any user:password part, for logs and reports."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return parts._replace(netloc=host).geturl()


class ConnectionRamp:
    """Lets at most `rate` connection attempts start per second, fleet-wide, spaced evenly.

    Waiters are served in the order they asked, so a fleet comes up in a stable order."""

    def __init__(self, rate: float) -> None:
        if rate <= 0:
            raise ValueError("ramp rate must be positive")
        self.interval = 1.0 / rate
        self._next = 0.0

    async def acquire(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        slot = max(now, self._next)
        self._next = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)
