"""The embedded CSMS's HTTP API: a small JSON interface on loopback through which a person or a
test sends any CSMS-initiated operation to any connected charger and reads what the CSMS knows
(chargers, transactions, operations sent, notifications received).

Built on the standard library's http.server: a ThreadingHTTPServer in its own thread. Every
request's work runs on the CSMS's event loop (asyncio.run_coroutine_threadsafe, bounded in time),
so the store and the connections are only ever touched from the loop. It binds to loopback only
and, since any web page the user visits can send requests to loopback, it answers only requests
addressed to a loopback host name (DNS rebinding) and takes POST bodies only as
application/json (a cross-site form or simple fetch cannot send that without a CORS preflight,
which this API never grants).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import logging
import socket
import socketserver
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

import orjson

from simulator.csms.commands import (
    BadArguments,
    CallFailed,
    CommandError,
    NotConnected,
    Reply,
    UnknownCharger,
    iso,
)

if TYPE_CHECKING:
    from simulator.csms.server import CsmsServer

log = logging.getLogger(__name__)

# Loopback names the API binds to, and the address family of each.
LOOPBACK = {"127.0.0.1": socket.AF_INET, "localhost": socket.AF_INET, "::1": socket.AF_INET6}
MAX_BODY = 1 << 20
MAX_WAIT_S = 30.0
REPORT_WAIT_S = 5.0  # how long an HTTP request waits for the report that answers it, by default
# Beyond the charger's call timeout and a report's wait: the loop may be busy.
_BRIDGE_SLACK_S = 10.0

# POST /chargers/{id}/<name> -> the CsmsCommands method it calls with the body's fields.
COMMAND_ROUTES: dict[str, str] = {
    "reset": "reset",
    "remote-start": "remote_start",
    "remote-stop": "remote_stop",
    "charging-profile": "set_charging_profile",
    "clear-charging-profile": "clear_charging_profile",
    "composite-schedule": "get_composite_schedule",
    "charging-profiles": "get_charging_profiles",
    "availability": "change_availability",
    "unlock": "unlock",
    "clear-cache": "clear_cache",
    "trigger": "trigger_message",
    "reserve": "reserve_now",
    "cancel-reservation": "cancel_reservation",
    "local-list": "send_local_list",
    "firmware": "update_firmware",
    "diagnostics": "get_diagnostics",
    "log": "get_log",
    "base-report": "get_base_report",
    "data-transfer": "data_transfer",
    "call": "call",
}
# Commands answered by a report: the HTTP request waits for it (`wait_s`, default 5 s).
_REPORTED = frozenset({"charging-profiles", "base-report"})

ENDPOINTS = (
    "GET  /chargers[?connected=true]",
    "GET  /chargers/{id}",
    "GET  /transactions[?charger=ID][&open=true][&limit=N]",
    "GET  /operations[?charger=ID][&limit=N]",
    "GET  /notifications[?charger=ID][&action=NAME][&limit=N]",
    "GET  /chargers/{id}/configuration[?key=K&key=...]",
    "GET  /chargers/{id}/local-list",
    "POST /chargers/{id}/configuration",
    *(f"POST /chargers/{{id}}/{name}" for name in COMMAND_ROUTES),
)


class ApiBindError(ValueError):
    """The HTTP API cannot listen where asked: not a loopback address, or the port is taken."""


class ApiError(Exception):
    """An HTTP error answer: status and a one-line message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = " ".join(message.split())


def loopback_family(host: str) -> tuple[str, socket.AddressFamily]:
    """The address to bind for a loopback host and its family; ApiBindError for anything else
    (the API drives chargers and has no authentication: it must not be reachable from
    elsewhere)."""
    name = host.strip().strip("[]").lower()
    family = LOOPBACK.get(name)
    if family is None:
        raise ApiBindError(
            f"the HTTP API listens on loopback only (127.0.0.1, ::1 or localhost), not {host!r}"
        )
    return ("127.0.0.1" if name == "localhost" else name), family


def _host_name(header: str | None) -> str | None:
    """The host name of a Host header, without its port."""
    if header is None:
        return None
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    api: CsmsHttpApi

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks up the host's FQDN (a reverse DNS query that can take
        # seconds on a machine without DNS); the name is never used here.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "fleetsim-csms"

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def _handle(self, method: str) -> None:
        api = self.server.api
        try:
            if _host_name(self.headers.get("Host")) not in (None, *LOOPBACK):
                raise ApiError(
                    HTTPStatus.FORBIDDEN, "requests must be addressed to a loopback host"
                )
            split = urlsplit(self.path)
            query = parse_qs(split.query, keep_blank_values=True)
            body: dict[str, Any] | None = None
            if method == "POST":
                body = self._body()
            status, answer = api.handle(method, split.path, query, body)
        except ApiError as exc:
            status, answer = exc.status, {"error": exc.message}
        except Exception:  # a bug of ours: say so in one line, keep serving
            log.exception("HTTP API %s %s failed", method, self.path)
            status, answer = HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal error"}
        data = orjson.dumps(answer, option=orjson.OPT_INDENT_2) + b"\n"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict[str, Any]:
        if self.headers.get_content_type() != "application/json":
            raise ApiError(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                "POST bodies must be sent as Content-Type: application/json (curl --json)",
            )
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise ApiError(HTTPStatus.BAD_REQUEST, "bad Content-Length") from None
        if not 0 <= length <= MAX_BODY:
            raise ApiError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {MAX_BODY} bytes")
        raw = self.rfile.read(length)
        if not raw.strip():
            return {}
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ApiError(HTTPStatus.BAD_REQUEST, f"body is not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise ApiError(HTTPStatus.BAD_REQUEST, "body must be a JSON object")
        return body


Query = Mapping[str, list[str]]


def _q_one(query: Query, name: str) -> str | None:
    values = query.get(name)
    return None if not values else values[-1]


def _q_bool(query: Query, name: str) -> bool | None:
    value = _q_one(query, name)
    if value is None:
        return None
    if value.lower() in ("true", "1", "yes", ""):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise ApiError(HTTPStatus.BAD_REQUEST, f"?{name}: expected true or false (got {value!r})")


def _q_limit(query: Query, default: int) -> int:
    value = _q_one(query, "limit")
    if value is None:
        return default
    if not value.isdigit() or not 1 <= int(value) <= 1_000_000:
        raise ApiError(HTTPStatus.BAD_REQUEST, f"?limit: expected 1..1000000 (got {value!r})")
    return int(value)


def _json_text(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


class CsmsHttpApi:
    """The loopback HTTP API of one CsmsServer: routes requests to `CsmsCommands` and to the
    store's records, maps failures onto status codes (400 bad input, 404 unknown charger or
    route, 409 charger not connected, 502 the charger answered a CALLERROR or not at all).

    `start` must be called on the server's event loop; requests are served by threads that hand
    their work to that loop.
    """

    def __init__(self, server: CsmsServer, host: str = "127.0.0.1", port: int = 0) -> None:
        self.server = server
        self.bind_host, self.family = loopback_family(host)
        self.requested_port = port
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._inflight: set[concurrent.futures.Future[Any]] = set()

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Bind (ApiBindError if the port is taken) and serve in a daemon thread."""
        if self._httpd is not None:
            raise RuntimeError("HTTP API already started")
        self._loop = asyncio.get_running_loop()
        cls = _Server6 if self.family == socket.AF_INET6 else _Server
        try:
            httpd = cls((self.bind_host, self.requested_port), _Handler)
        except OSError as exc:
            raise ApiBindError(
                f"cannot listen on {self.bind_host} port {self.requested_port}: "
                f"{exc.strerror or exc}"
            ) from None
        httpd.api = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="csms-http-api"
        )
        self._thread.daemon = True
        self._thread.start()

    async def stop(self) -> None:
        """Stop serving; requests still waiting on the loop are answered 503."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        for future in list(self._inflight):
            future.cancel()
        await asyncio.to_thread(httpd.shutdown)
        httpd.server_close()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 5.0)

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("HTTP API not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        host = f"[{self.bind_host}]" if ":" in self.bind_host else self.bind_host
        return f"http://{host}:{self.port}"

    # -- request handling (HTTP threads) -------------------------------------------------------

    def handle(
        self, method: str, path: str, query: Query, body: dict[str, Any] | None
    ) -> tuple[int, Any]:
        """Route one request and run its work on the event loop; (status, JSON answer)."""
        route = self._route(method, [unquote(s) for s in path.split("/") if s], query, body)
        loop = self._loop
        if loop is None or loop.is_closed():
            raise ApiError(HTTPStatus.SERVICE_UNAVAILABLE, "the CSMS is not running")
        # The charger's call timeout bounds the work; a report may be awaited on top of it.
        timeout = self.server.config.call_timeout_s + MAX_WAIT_S + _BRIDGE_SLACK_S
        try:
            future = asyncio.run_coroutine_threadsafe(_answer(route), loop)
        except RuntimeError:  # the loop closed between the check and here
            raise ApiError(HTTPStatus.SERVICE_UNAVAILABLE, "the CSMS is stopping") from None
        self._inflight.add(future)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise ApiError(HTTPStatus.GATEWAY_TIMEOUT, "the CSMS did not answer in time") from None
        except concurrent.futures.CancelledError:
            raise ApiError(HTTPStatus.SERVICE_UNAVAILABLE, "the CSMS is stopping") from None
        finally:
            self._inflight.discard(future)

    def _route(
        self, method: str, parts: list[str], query: Query, body: dict[str, Any] | None
    ) -> Callable[[], Awaitable[tuple[int, Any]]]:
        """The coroutine function that answers this request (routing and body checks happen
        here, in the HTTP thread, before the loop is bothered)."""
        allowed: tuple[str, ...] = ()
        n = len(parts)
        if n == 0:
            allowed = ("GET",)
            if method == "GET":
                return self._index
        elif parts[0] == "chargers" and n == 1:
            allowed = ("GET",)
            if method == "GET":
                return lambda: self._chargers(query)
        elif parts[0] == "chargers" and n == 2:
            allowed = ("GET",)
            if method == "GET":
                return lambda: self._charger(parts[1])
        elif parts[0] == "chargers" and n == 3 and parts[2] == "configuration":
            allowed = ("GET", "POST")
            if method == "GET":
                return lambda: self._get_configuration(parts[1], query)
            if method == "POST":
                assert body is not None
                return lambda: self._set_configuration(parts[1], body)
        elif parts[0] == "chargers" and n == 3 and parts[2] in COMMAND_ROUTES:
            allowed = ("GET", "POST") if parts[2] == "local-list" else ("POST",)
            if method == "GET" and parts[2] == "local-list":
                return lambda: self._command(parts[1], "get_local_list_version", {})
            if method == "POST":
                assert body is not None
                args = dict(body)
                if parts[2] in _REPORTED:
                    wait = args.setdefault("wait_s", REPORT_WAIT_S)
                    if not isinstance(wait, int | float) or not 0 <= wait <= MAX_WAIT_S:
                        raise ApiError(
                            HTTPStatus.BAD_REQUEST, f"wait_s: expected 0..{MAX_WAIT_S:g} seconds"
                        )
                method_name = COMMAND_ROUTES[parts[2]]
                return lambda: self._command(parts[1], method_name, args)
        elif n == 1 and parts[0] in ("transactions", "operations", "notifications"):
            allowed = ("GET",)
            if method == "GET":
                reader = {
                    "transactions": self._transactions,
                    "operations": self._operations,
                    "notifications": self._notifications,
                }[parts[0]]
                return lambda: reader(query)
        shown = "/" + "/".join(parts)
        if allowed:
            raise ApiError(
                HTTPStatus.METHOD_NOT_ALLOWED, f"{method} {shown}: use {' or '.join(allowed)}"
            )
        raise ApiError(HTTPStatus.NOT_FOUND, f"no endpoint {method} {shown} (GET / lists them)")

    # -- answers (event loop) ------------------------------------------------------------------

    async def _index(self) -> tuple[int, Any]:
        return HTTPStatus.OK, {"endpoints": list(ENDPOINTS)}

    async def _command(
        self, charger_id: str, method_name: str, args: dict[str, Any]
    ) -> tuple[int, Any]:
        commands = self.server.commands
        commands.connection(charger_id)  # 404 / 409 before any argument is looked at
        method = getattr(commands, method_name)
        try:
            bound = inspect.signature(method).bind(charger_id, **args)
        except TypeError as exc:
            raise BadArguments(f"{method_name}: {exc}") from None
        reply: Reply = await method(*bound.args, **bound.kwargs)
        return HTTPStatus.OK, _reply_json(reply, with_reports=method_name in _REPORTING)

    async def _get_configuration(self, charger_id: str, query: Query) -> tuple[int, Any]:
        commands = self.server.commands
        keys = query.get("key") or None
        if commands.version(charger_id) == "1.6":
            return HTTPStatus.OK, _reply_json(await commands.get_configuration(charger_id, keys))
        if not keys:
            raise BadArguments(
                "OCPP 2.0.1: name the variables, ?key=OCPPCommCtrlr.HeartbeatInterval&key=..., "
                "or POST /chargers/{id}/base-report for all of them"
            )
        return HTTPStatus.OK, _reply_json(await commands.get_variables(charger_id, keys))

    async def _set_configuration(self, charger_id: str, body: dict[str, Any]) -> tuple[int, Any]:
        commands = self.server.commands
        version = commands.version(charger_id)
        forms = [k for k in ("key", "values", "variables") if k in body]
        unknown = sorted(set(body) - {"key", "value", "values", "variables"})
        if len(forms) != 1 or unknown or (("key" in body) != ("value" in body)):
            raise BadArguments(
                'configuration: send {"key": K, "value": V} or {"values": {K: V, ...}}'
                + ' (2.0.1 also {"variables": [...]})'
            )
        values: Any
        if "key" in body:
            values = {body["key"]: body["value"]}
        elif "values" in body:
            values = body["values"]
            if not isinstance(values, dict) or not values:
                raise BadArguments("values: expected a non-empty object {key: value}")
        else:
            if version == "1.6":
                raise BadArguments("variables: OCPP 1.6 has configuration keys; use values")
            values = body["variables"]
        if version != "1.6":
            return HTTPStatus.OK, _reply_json(await commands.set_variables(charger_id, values))
        answers = []
        for key, value in values.items():
            answers.append(_reply_json(await commands.change_configuration(charger_id, key, value)))
        if len(answers) == 1:
            return HTTPStatus.OK, answers[0]
        return HTTPStatus.OK, {"charger": charger_id, "version": version, "results": answers}

    async def _chargers(self, query: Query) -> tuple[int, Any]:
        connected = _q_bool(query, "connected")
        chargers = self._charger_rows(None)
        if connected is not None:
            chargers = [c for c in chargers if c["connected"] is connected]
        return HTTPStatus.OK, {"chargers": chargers}

    async def _charger(self, charger_id: str) -> tuple[int, Any]:
        rows = self._charger_rows(charger_id)
        if not rows:
            raise UnknownCharger(f"unknown charger {charger_id!r}")
        charger = rows[0]
        open_txs = [
            asdict(tx) for tx in self.server.store.transactions(charger_id) if tx.stopped_at is None
        ]
        charger["open_transactions"] = open_txs
        if charger["connected"]:
            charger["clock"] = iso(self.server.commands.charger_time(charger_id))
        return HTTPStatus.OK, charger

    def _charger_rows(self, charger_id: str | None) -> list[dict[str, Any]]:
        store = self.server.store
        where, params = ("", ()) if charger_id is None else (" WHERE charger_id = ?", (charger_id,))
        chargers: dict[str, dict[str, Any]] = {}
        for (
            cid,
            version,
            vendor,
            model,
            serial,
            firmware,
            boots,
            last_boot,
            last_seen,
        ) in store.query(
            "SELECT charger_id, version, vendor, model, serial, firmware, boots, last_boot,"
            f" last_seen FROM chargers{where} ORDER BY charger_id",
            params,
        ):
            conn = self.server.connections.get(cid)
            chargers[cid] = {
                "id": cid,
                "version": conn.version if conn is not None else version,
                "connected": conn is not None and not conn.closed,
                "booted": bool(boots),
                "boots": boots,
                "vendor": vendor,
                "model": model,
                "serial": serial,
                "firmware": firmware,
                "last_boot": last_boot,
                "last_seen": last_seen,
                "connectors": [],
            }
        for cid, evse, connector, status, error, stamp in store.query(
            "SELECT charger_id, evse_id, connector_id, status, error_code, timestamp"
            f" FROM statuses{where} ORDER BY charger_id, evse_id, connector_id",
            params,
        ):
            charger = chargers.get(cid)
            if charger is not None:
                charger["connectors"].append(
                    {
                        "evse_id": evse,
                        "connector_id": connector,
                        "status": status,
                        "error_code": error,
                        "timestamp": stamp,
                    }
                )
        return list(chargers.values())

    async def _transactions(self, query: Query) -> tuple[int, Any]:
        only_open = _q_bool(query, "open")
        limit = _q_limit(query, 1000)
        txs = self.server.store.transactions(_q_one(query, "charger"))
        if only_open is not None:
            txs = [tx for tx in txs if (tx.stopped_at is None) is only_open]
        return HTTPStatus.OK, {"transactions": [asdict(tx) for tx in txs[-limit:]]}

    async def _operations(self, query: Query) -> tuple[int, Any]:
        records = self.server.store.operations(_q_one(query, "charger"), _q_limit(query, 100))
        operations = []
        for r in records:
            op = asdict(r)
            op["request"] = _json_text(r.request)
            op["response"] = _json_text(r.response)
            operations.append(op)
        return HTTPStatus.OK, {"operations": operations}

    async def _notifications(self, query: Query) -> tuple[int, Any]:
        clauses, params = [], []
        for field, name in (("charger_id", "charger"), ("action", "action")):
            value = _q_one(query, name)
            if value is not None:
                clauses.append(f"{field} = ?")
                params.append(value)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self.server.store.query(
            f"SELECT charger_id, action, received_at, payload FROM notifications{where}"
            " ORDER BY rowid DESC LIMIT ?",
            (*params, _q_limit(query, 100)),
        )
        notes = [
            {"charger": cid, "action": action, "received_at": at, "payload": orjson.loads(p)}
            for cid, action, at, p in reversed(rows)
        ]
        return HTTPStatus.OK, {"notifications": notes}


_REPORTING = frozenset({"get_charging_profiles", "get_base_report"})


def _reply_json(reply: Reply, with_reports: bool = False) -> dict[str, Any]:
    op = reply.operation
    answer: dict[str, Any] = {
        "charger": op.charger_id,
        "version": op.version,
        "action": op.action,
        "operation_id": op.id,
        "request": op.request,
        "response": dict(reply),
    }
    if with_reports:
        answer["reports"] = reply.reports
    return answer


async def _answer(route: Callable[[], Awaitable[tuple[int, Any]]]) -> tuple[int, Any]:
    """Run a route on the loop and turn command failures into their HTTP answers."""
    try:
        return await route()
    except BadArguments as exc:
        return HTTPStatus.BAD_REQUEST, {"error": str(exc)}
    except UnknownCharger as exc:
        return HTTPStatus.NOT_FOUND, {"error": str(exc)}
    except NotConnected as exc:
        return HTTPStatus.CONFLICT, {"error": str(exc)}
    except CallFailed as exc:
        op = exc.operation
        return HTTPStatus.BAD_GATEWAY, {
            "error": str(exc),
            "charger": op.charger_id,
            "action": op.action,
            "operation_id": op.id,
            "outcome": op.outcome,
            "request": op.request,
            "response": op.response,
        }
    except CommandError as exc:  # a subclass added later: still the caller's to read
        return HTTPStatus.BAD_REQUEST, {"error": str(exc)}
    except ApiError as exc:
        return exc.status, {"error": exc.message}


__all__ = ["ENDPOINTS", "LOOPBACK", "ApiBindError", "CsmsHttpApi", "loopback_family"]
