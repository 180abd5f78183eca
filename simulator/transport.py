"""Opening a charger's websocket to the CSMS: URL, OCPP subprotocol, basic auth, TLS, ramp, backoff.

The only code on the charger side that opens sockets. It reads secrets from the environment or
a file and never prints them; it does not frame OCPP messages (that is rpc's job).
"""

from __future__ import annotations

import asyncio
import base64
import os
import random
import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidHandshake, InvalidStatus, InvalidURI
from websockets.typing import Subprotocol

from simulator.scenario import TargetConfig

# OCPP frames are small (the largest common ones, local lists and reports, stay well under
# this); a bound keeps a misbehaving CSMS from making a charger buffer megabytes.
MAX_FRAME_BYTES = 256 * 1024


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
    env = os.environ if environ is None else environ
    if target.password_env:
        value = env.get(target.password_env)
        if value is None:
            raise TransportError(
                f"target.password_env: environment variable {target.password_env} is not set"
            )
        return Secret(value)
    if target.password_file:
        try:
            lines = Path(target.password_file).read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise TransportError(
                f"target.password_file: cannot read {target.password_file}: {exc.strerror}"
            ) from None
        if not lines or not lines[0]:
            raise TransportError(f"target.password_file: {target.password_file} is empty")
        return Secret(lines[0])
    return None


def client_ssl_context(ca_file: Path | None) -> ssl.SSLContext:
    """Verifying TLS context for wss://: the given CA bundle, else the system's CAs."""
    try:
        return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise TransportError(f"target.ca_file: cannot load {ca_file}: {exc}") from None


@dataclass(frozen=True, slots=True)
class ConnectSettings:
    """How every charger of a run connects (shared by all of them)."""

    base_url: str
    username: str | None = None  # template with {charger_id}; None: no basic auth
    password: Secret | None = None
    ssl_context: ssl.SSLContext | None = None
    ping_interval_s: float | None = 30.0
    open_timeout_s: float = 10.0

    @classmethod
    def from_target(
        cls, target: TargetConfig, base_url: str, ping_interval_s: float | None
    ) -> ConnectSettings:
        password = load_password(target)
        scheme = urlsplit(base_url).scheme
        context = client_ssl_context(target.ca_file) if scheme == "wss" else None
        return cls(
            base_url=base_url.rstrip("/"),
            username=target.username if password is not None else None,
            password=password,
            ssl_context=context,
            ping_interval_s=ping_interval_s,
        )

    def url_for(self, charger_id: str) -> str:
        return f"{self.base_url.rstrip('/')}/{quote(charger_id, safe='')}"

    def auth_header(self, charger_id: str) -> dict[str, str]:
        if self.password is None or self.username is None:
            return {}
        user = self.username.format(charger_id=charger_id)
        token = base64.b64encode(f"{user}:{self.password.reveal()}".encode()).decode("ascii")
        return {"Authorization": f"Basic {token}"}


async def open_connection(
    settings: ConnectSettings, charger_id: str, subprotocol: str
) -> ClientConnection:
    """Open one charger's websocket; raises TransportError with a one-line reason."""
    try:
        ws = await connect(
            settings.url_for(charger_id),
            subprotocols=[Subprotocol(subprotocol)],
            additional_headers=settings.auth_header(charger_id),
            ssl=settings.ssl_context,
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
        hint = " (wrong password?)" if status in (401, 403) else ""
        raise TransportError(f"CSMS refused the connection: HTTP {status}{hint}") from None
    except InvalidURI as exc:
        raise TransportError(f"invalid CSMS URL: {exc}") from None
    except ssl.SSLCertVerificationError as exc:
        raise TransportError(f"TLS certificate verification failed: {exc.verify_message}") from None
    except (InvalidHandshake, OSError, TimeoutError, ssl.SSLError) as exc:
        raise TransportError(f"cannot connect: {exc or type(exc).__name__}") from None
    if ws.subprotocol != subprotocol:
        await ws.close()
        raise TransportError(f"CSMS did not accept subprotocol {subprotocol}")
    return ws


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


@dataclass(frozen=True, slots=True)
class Backoff:
    """Reconnect policy: exponential backoff capped at `max_s`, with jitter drawing the delay
    uniformly from [delay x (1 - jitter), delay]. One policy serves the whole fleet; each
    charger only counts its attempts (a random generator per charger would cost ~2.5 KB each).
    """

    initial_s: float = 1.0
    factor: float = 2.0
    max_s: float = 60.0
    jitter: float = 0.5

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait before reconnect attempt number `attempt` (0 = the first retry)."""
        base = min(self.max_s, self.initial_s * self.factor ** min(attempt, 64))
        return base * (1.0 - self.jitter * rng.random())
