"""The embedded CSMS's websocket server: accepts chargers on ws://host:port/{charger_id},
negotiates ocpp1.6 / ocpp2.0.1, and runs one RpcConnection per charger over the shared store.
It also owns what drives chargers from the CSMS side: `commands` (CSMS-initiated operations),
`listeners` (told about boots and transactions, e.g. the site load manager) and, when asked
for, the loopback HTTP API.

It neither frames nor validates OCPP (that is simulator.rpc) nor picks an event loop: uvloop is
chosen only by `run_csms`, the process entry point.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import inspect
import logging
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import NegotiationError
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from simulator.csms.chaos import CsmsChaos
from simulator.csms.commands import CsmsCommands
from simulator.csms.handlers import (
    CsmsCounters,
    CsmsListener,
    Policy,
    Session,
    SessionHooks,
    V16Session,
    V201Session,
)
from simulator.csms.http_api import ApiBindError, CsmsHttpApi
from simulator.csms.store import CsmsStore
from simulator.rpc import RpcConnection
from simulator.schemas import CHARGER_ACTIONS, FrameValidator
from simulator.signals import stop_on_signals
from simulator.transport import Secret

log = logging.getLogger(__name__)

# Subprotocol -> OCPP version; the order is the server's preference when a client offers both.
_VERSIONS = {"ocpp1.6": "1.6", "ocpp2.0.1": "2.0.1"}
_SESSIONS: dict[str, type[Session]] = {"1.6": V16Session, "2.0.1": V201Session}
_MAX_FRAME = 64 * 1024


@dataclass(frozen=True)
class CsmsConfig:
    """How to run the embedded CSMS. `port` 0 picks a free port; `db_path` None keeps the
    database in memory; `id_tags` None accepts every tag; `api_port` (0: a free one) serves the
    HTTP API on `api_host` (loopback only); `sites_path` names the sites file of the site load
    manager (grid limits and policies)."""

    host: str = "127.0.0.1"
    port: int = 9000
    db_path: Path | None = None
    heartbeat_interval_s: int = 300
    id_tags: frozenset[str] | None = None
    validate: bool = True
    call_timeout_s: float = 30.0
    api_port: int | None = None
    api_host: str = "127.0.0.1"
    sites_path: Path | None = None
    # `durable`: transaction messages are answered once stored (see CsmsStore.durable);
    # `chaos`: injected misbehaviour towards chargers (fault tests).
    durable: bool = True
    chaos: CsmsChaos | None = None
    # Security profile (0 none, 1 basic auth, 2 TLS + basic auth, 3 mutual TLS). `password`
    # may hold {charger_id} (a password per charger); `username` is a template too. `cert_dir`
    # (profiles 2 and 3) holds ca.pem, server.pem and server.key as `fleetsim certs` writes.
    security_profile: int = 0
    password: Secret | None = None
    username: str = "{charger_id}"
    cert_dir: Path | None = None


def charger_id_of(path: str) -> str:
    """The charger id in a request path: its last non-empty segment, url-decoded."""
    segments = [s for s in urlsplit(path).path.split("/") if s]
    return unquote(segments[-1]) if segments else ""


def _select_subprotocol(
    connection: ServerConnection, offered: Sequence[Subprotocol]
) -> Subprotocol | None:
    # The client's order wins (it knows which version it prefers); no match is an HTTP 400.
    for subprotocol in offered:
        if subprotocol in _VERSIONS:
            return subprotocol
    raise NegotiationError("expected subprotocol ocpp1.6 or ocpp2.0.1")


class SecurityError(Exception):
    """The security configuration of the CSMS cannot be used: one line naming the problem."""


def server_ssl_context(config: CsmsConfig) -> ssl.SSLContext | None:
    """The TLS context of profiles 2 and 3 (None below): server.pem/server.key from
    `cert_dir`; profile 3 also demands a client certificate signed by its ca.pem."""
    profile = config.security_profile
    if profile not in (0, 1, 2, 3):
        raise SecurityError(f"security profile {profile}: expected 0, 1, 2 or 3")
    if profile in (1, 2) and config.password is None:
        raise SecurityError(
            f"security profile {profile} needs a password (--password-env or --password-file)"
        )
    if profile < 2:
        return None
    cert_dir = config.cert_dir
    if cert_dir is None:
        raise SecurityError(
            f"security profile {profile} needs a certificate directory (--cert-dir)"
        )
    from simulator.certs import cert_paths

    paths = cert_paths(cert_dir)
    needed = [paths.server_cert, paths.server_key] + ([paths.ca_cert] if profile == 3 else [])
    missing = [path.name for path in needed if not path.is_file()]
    if missing:
        raise SecurityError(f"{cert_dir}: missing {', '.join(missing)} (see `fleetsim certs`)")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2  # OCPP's profiles 2 and 3
    try:
        context.load_cert_chain(paths.server_cert, paths.server_key)
        if profile == 3:
            context.load_verify_locations(cafile=paths.ca_cert)
            # A certificate the CA did not sign fails the TLS handshake. Optional, not
            # required, so that a charger without one gets a clear HTTP 403 from the gate
            # instead of a bare close (asyncio does not flush the TLS alert); it never gets
            # past the HTTP upgrade either way.
            context.verify_mode = ssl.CERT_OPTIONAL
    except (OSError, ssl.SSLError) as exc:
        reason = exc.reason if isinstance(exc, ssl.SSLError) else exc.strerror
        raise SecurityError(f"{cert_dir}: cannot load the certificates: {reason}") from None
    return context


def _basic_auth(header: str | None) -> tuple[str, str] | None:
    """(user, password) of a Basic Authorization header, None if absent or malformed."""
    if header is None or header[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def _peer_common_name(connection: ServerConnection) -> str | None:
    """The CN of the client certificate the TLS handshake verified (None without one)."""
    peer = connection.transport.get_extra_info("peercert")
    if not peer:
        return None
    for rdn in peer.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


class _Gate:
    """Decides at the HTTP upgrade whether a charger may connect: a charger id in the path,
    and per security profile the basic-auth password (401) or the client certificate's CN
    (403). Never logs a password, right or wrong."""

    def __init__(self, config: CsmsConfig) -> None:
        self.profile = config.security_profile
        self.password = config.password
        self.username = config.username
        self.refused: dict[int, int] = {}  # HTTP status -> count

    def __call__(self, connection: ServerConnection, request: Request) -> Response | None:
        charger_id = charger_id_of(request.path)
        if not charger_id:
            return connection.respond(
                HTTPStatus.NOT_FOUND, "expected ws://host:port/{charger_id}\n"
            )
        if self.profile in (1, 2) and not self._password_ok(charger_id, request):
            response = connection.respond(HTTPStatus.UNAUTHORIZED, "wrong or missing password\n")
            response.headers["WWW-Authenticate"] = 'Basic realm="fleetsim", charset="UTF-8"'
            return self._refuse(charger_id, response, "wrong or missing password")
        if self.profile == 3:
            common_name = _peer_common_name(connection)
            if common_name is None:
                body = "a client certificate signed by the CSMS's CA is required\n"
                response = connection.respond(HTTPStatus.FORBIDDEN, body)
                return self._refuse(charger_id, response, "no client certificate")
            if common_name != charger_id:
                body = "the client certificate was not issued to this charger id\n"
                response = connection.respond(HTTPStatus.FORBIDDEN, body)
                return self._refuse(charger_id, response, f"certificate CN {common_name!r}")
        return None

    def _password_ok(self, charger_id: str, request: Request) -> bool:
        credentials = _basic_auth(request.headers.get("Authorization"))
        if credentials is None or self.password is None:
            return False
        user, password = credentials
        expected_user = self.username.replace("{charger_id}", charger_id)
        expected = self.password.reveal().replace("{charger_id}", charger_id)
        # Both compared, always, in constant time: the answer's timing tells nothing.
        user_ok = hmac.compare_digest(user.encode(), expected_user.encode())
        password_ok = hmac.compare_digest(password.encode(), expected.encode())
        return user_ok and password_ok

    def _refuse(self, charger_id: str, response: Response, why: str) -> Response:
        status = response.status_code
        count = self.refused[status] = self.refused.get(status, 0) + 1
        # The first refusal of a kind is news; a fleet retrying it would flood the log.
        level = logging.WARNING if count == 1 else logging.DEBUG
        log.log(level, "charger %s refused: HTTP %d, %s", charger_id, status, why)
        return response


class CsmsServer:
    """A small but real CSMS for OCPP 1.6J and 2.0.1 chargers.

    One RpcConnection per charger in `connections`; a second connection with the same charger
    id replaces the first, which is closed. CSMS-initiated operations go through `commands`;
    `listeners` hear of boots, transactions and charging states. Everything runs on the loop
    that called `start` (the HTTP API's threads hand their work to it).
    """

    def __init__(self, config: CsmsConfig) -> None:
        self.config = config
        self.store = CsmsStore(config.db_path, durable=config.durable)
        self.connections: dict[str, RpcConnection] = {}
        self.counters = CsmsCounters()
        self.hooks = SessionHooks()
        self.commands = CsmsCommands(self)
        self.api: CsmsHttpApi | None = None
        self._policy = Policy(config.heartbeat_interval_s, config.id_tags)
        self._validators = (
            {v: FrameValidator(v) for v in _VERSIONS.values()} if config.validate else {}
        )
        for validator in self._validators.values():
            # Compiled now, not on the first message: compiling TransactionEvent's schema takes
            # tens of milliseconds, which would show as a latency spike in the first run.
            validator.warm(CHARGER_ACTIONS)
        self._server: Server | None = None
        self._closing: set[asyncio.Task[None]] = set()
        # Raises SecurityError now, not at the first connection, when certificates are missing.
        self._ssl = server_ssl_context(config)
        self.gate = _Gate(config)

    @property
    def listeners(self) -> list[CsmsListener]:
        """Told about every charger's boot, transactions and charging states (append to it)."""
        return self.hooks.listeners

    def known(self, charger_id: str) -> bool:
        """Whether this charger has ever connected to this CSMS (this database)."""
        if charger_id in self.connections or self.store.is_booted(charger_id):
            return True
        found = self.store.query("SELECT 1 FROM chargers WHERE charger_id = ?", (charger_id,))
        return bool(found)

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen (returns once the socket is bound), start the store's flusher, the site load
        manager (`sites_path`) and the HTTP API (`api_port`)."""
        if self._server is not None:
            raise RuntimeError("CsmsServer already started")
        api: CsmsHttpApi | None = None
        if self.config.api_port is not None:
            # Checked before anything binds: a non-loopback address is refused outright.
            api = CsmsHttpApi(self, self.config.api_host, self.config.api_port)
        if self.config.sites_path is not None:
            from simulator.csms.load_manager import LoadManager

            self.listeners.append(LoadManager.from_file(self, self.config.sites_path))
        self.store.start()
        self._server = await serve(
            self._serve_charger,
            self.config.host,
            self.config.port,
            subprotocols=[Subprotocol(s) for s in _VERSIONS],
            select_subprotocol=_select_subprotocol,
            process_request=self.gate,
            ssl=self._ssl,
            compression=None,
            # OCPP's Heartbeat is the liveness check; websocket pings would add a timer and a
            # frame per charger for nothing.
            ping_interval=None,
            max_size=_MAX_FRAME,
            close_timeout=5,
            # A fleet reconnecting at once (after a CSMS restart) must not overflow the accept
            # queue: the default 100 would turn a burst into SYN retries seconds apart.
            backlog=4096,
        )
        if api is not None:
            try:
                api.start()
            except ApiBindError:
                self._server.close()
                await self._server.wait_closed()
                raise
            self.api = api
            log.info("CSMS HTTP API on %s", api.url)
        log.info("CSMS listening on %s", self.url)

    async def stop(self) -> None:
        """Stop the HTTP API, close the listeners that have a `close` (sync or async), close
        every connection, stop listening, flush and close the store."""
        if self.api is not None:
            await self.api.stop()
            self.api = None
        for listener in self.listeners:
            # A listener with work in flight (the load manager's pushes) may end it here.
            close = getattr(listener, "close", None)
            if close is not None:
                try:
                    pending = close()
                    if inspect.isawaitable(pending):
                        await pending
                except Exception:
                    log.exception("closing CSMS listener %r failed", listener)
        server = self._server
        if server is not None:
            server.close(close_connections=True)
            await server.wait_closed()
        for task in list(self._closing):
            task.cancel()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        await self.store.close()
        log.info("CSMS stopped: %s", self.stats())

    async def __aenter__(self) -> CsmsServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        """The bound port (the real one when configured with port 0)."""
        if self._server is None:
            raise RuntimeError("CsmsServer not started")
        for sock in self._server.sockets:
            return int(sock.getsockname()[1])
        raise RuntimeError("CsmsServer has no socket")

    @property
    def url(self) -> str:
        host = self.config.host
        if ":" in host:
            host = f"[{host}]"
        scheme = "ws" if self._ssl is None else "wss"
        return f"{scheme}://{host}:{self.port}"

    def stats(self) -> dict[str, Any]:
        c = self.counters
        return {
            "connections_open": len(self.connections),
            "connects_total": c.connects_total,
            "replaced": c.replaced,
            "messages": dict(c.messages),
            "errors": dict(c.errors),
            "invalid_frames": c.invalid_frames,
            "unknown_charger_messages": c.unknown_charger_messages,
            "transactions_open": self.store.open_transactions,
        }

    # -- one charger ---------------------------------------------------------------------------

    async def _serve_charger(self, ws: ServerConnection) -> None:
        charger_id = charger_id_of(ws.request.path if ws.request is not None else "")
        version = _VERSIONS[ws.subprotocol or ""]  # select_subprotocol guaranteed one
        config = self.config
        session = _SESSIONS[version](
            charger_id, self.store, self._policy, self.counters, config.validate, self.hooks
        )
        handlers = session.handlers()
        if config.chaos is not None:
            handlers = config.chaos.wrap(handlers, ws, self.store.anomaly)
        rpc = RpcConnection(
            ws,
            version,
            handlers=handlers,
            validator=self._validators.get(version),
            observer=session,
            call_timeout_s=config.call_timeout_s,
        )
        old = self.connections.get(charger_id)
        self.connections[charger_id] = rpc
        self.counters.connects_total += 1
        self.store.connected(charger_id, version, True)
        if old is not None:
            # The newest connection wins (a charger reconnecting after a half-open drop);
            # closing the old one may wait for its close handshake, so not here.
            self.counters.replaced += 1
            task = asyncio.create_task(old.ws.close(1000, "replaced by a new connection"))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        log.debug("charger %s connected (OCPP %s) from %s", charger_id, version, ws.remote_address)
        reason = "closed"
        try:
            reason = await rpc.serve()
        finally:
            if self.connections.get(charger_id) is rpc:
                del self.connections[charger_id]
                self.store.connected(charger_id, version, False)
            log.debug("charger %s disconnected: %s", charger_id, reason)


async def _serve_until_signalled(
    config: CsmsConfig, ready: Callable[[CsmsServer], None] | None
) -> None:
    stop = asyncio.Event()
    server = CsmsServer(config)
    with stop_on_signals(asyncio.get_running_loop(), stop.set):
        try:
            await server.start()
            if ready is not None:
                ready(server)
            await stop.wait()
            log.info("CSMS shutting down")
        finally:
            await server.stop()


def run_csms(config: CsmsConfig, ready: Callable[[CsmsServer], None] | None = None) -> None:
    """Run the CSMS until SIGINT or SIGTERM, then close every connection and flush the store.

    `ready(server)` is called once it listens (`server.port`, and `server.api` when the HTTP
    API runs). Uses uvloop where it is installed. Raises OSError when a port cannot be bound
    and ApiBindError for a non-loopback API address."""
    try:
        import uvloop
    except ImportError:  # Windows
        asyncio.run(_serve_until_signalled(config, ready))
    else:
        uvloop.run(_serve_until_signalled(config, ready))
