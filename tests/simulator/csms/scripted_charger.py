"""A scripted charger for testing the CSMS's side of CSMS-initiated operations: a real websocket
client on 127.0.0.1 whose RpcConnection validates every CALL the CSMS sends against the official
schema (an invalid one is answered with a CALLERROR and counted in `invalid`), records the valid
ones in `calls`, and answers each with a canned schema-valid response.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from simulator.csms import CsmsServer
from simulator.rpc import CallResult, Handler, OcppError, RpcConnection
from simulator.schemas import FrameValidator

SUBPROTOCOL = {"1.6": "ocpp1.6", "2.0.1": "ocpp2.0.1"}
STAMP = "2030-01-01T12:00:00.000Z"

Responder = Callable[[dict[str, Any]], dict[str, Any]]


def _results(key: str, status_key: str) -> Responder:
    """Echo each requested variable back with an Accepted status (GetVariables/SetVariables)."""

    def answer(p: dict[str, Any]) -> dict[str, Any]:
        data = p["getVariableData" if key == "getVariableResult" else "setVariableData"]
        out = []
        for item in data:
            result = {status_key: "Accepted", "component": item["component"]}
            result["variable"] = item["variable"]
            if key == "getVariableResult":
                result["attributeValue"] = "300"
            out.append(result)
        return {key: out}

    return answer


def _const(payload: dict[str, Any]) -> Responder:
    return lambda p: dict(payload)


ACCEPTED = _const({"status": "Accepted"})
RESPONSES: dict[str, dict[str, Responder]] = {
    "1.6": {
        "Reset": ACCEPTED,
        "RemoteStartTransaction": ACCEPTED,
        "RemoteStopTransaction": ACCEPTED,
        "SetChargingProfile": ACCEPTED,
        "ClearChargingProfile": ACCEPTED,
        "GetCompositeSchedule": ACCEPTED,
        "ChangeAvailability": ACCEPTED,
        "UnlockConnector": _const({"status": "Unlocked"}),
        "ClearCache": ACCEPTED,
        "GetConfiguration": _const(
            {"configurationKey": [{"key": "HeartbeatInterval", "readonly": False, "value": "300"}]}
        ),
        "ChangeConfiguration": ACCEPTED,
        "TriggerMessage": ACCEPTED,
        "ReserveNow": ACCEPTED,
        "CancelReservation": ACCEPTED,
        "SendLocalList": ACCEPTED,
        "GetLocalListVersion": _const({"listVersion": 3}),
        "UpdateFirmware": _const({}),
        "GetDiagnostics": _const({"fileName": "diagnostics.log"}),
        "DataTransfer": _const({"status": "Accepted", "data": "pong"}),
    },
    "2.0.1": {
        "Reset": ACCEPTED,
        "RequestStartTransaction": ACCEPTED,
        "RequestStopTransaction": ACCEPTED,
        "SetChargingProfile": ACCEPTED,
        "ClearChargingProfile": ACCEPTED,
        "GetCompositeSchedule": ACCEPTED,
        "GetChargingProfiles": ACCEPTED,
        "ChangeAvailability": ACCEPTED,
        "UnlockConnector": _const({"status": "Unlocked"}),
        "ClearCache": ACCEPTED,
        "GetVariables": _results("getVariableResult", "attributeStatus"),
        "SetVariables": _results("setVariableResult", "attributeStatus"),
        "GetBaseReport": ACCEPTED,
        "TriggerMessage": ACCEPTED,
        "ReserveNow": ACCEPTED,
        "CancelReservation": ACCEPTED,
        "SendLocalList": ACCEPTED,
        "GetLocalListVersion": _const({"versionNumber": 3}),
        "UpdateFirmware": ACCEPTED,
        "GetLog": _const({"status": "Accepted", "filename": "diagnostics.log"}),
        "DataTransfer": _const({"status": "Accepted", "data": {"pong": True}}),
    },
}


def report_parts(action: str, request_id: int) -> list[dict[str, Any]]:
    """Two report parts answering a GetChargingProfiles / GetBaseReport request."""
    if action == "ReportChargingProfiles":
        profile = {
            "id": 5,
            "stackLevel": 0,
            "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Relative",
            "chargingSchedule": [
                {
                    "id": 5,
                    "chargingRateUnit": "A",
                    "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16}],
                }
            ],
        }
        base = {"requestId": request_id, "chargingLimitSource": "CSO", "chargingProfile": [profile]}
        return [{**base, "evseId": 1, "tbc": True}, {**base, "evseId": 2}]
    item = {
        "component": {"name": "OCPPCommCtrlr"},
        "variable": {"name": "HeartbeatInterval"},
        "variableAttribute": [{"value": "300"}],
        "variableCharacteristics": {"dataType": "integer", "supportsMonitoring": False},
    }
    base = {"requestId": request_id, "generatedAt": STAMP, "reportData": [item]}
    return [{**base, "seqNo": 0, "tbc": True}, {**base, "seqNo": 1}]


class ScriptedCharger:
    """One scripted charger of a given version connected to a CsmsServer (see the module
    docstring). `errors` makes an action answer with that CALLERROR code, `silent` makes it
    never answer, and `reports` makes GetChargingProfiles / GetBaseReport send their report
    parts once answered."""

    def __init__(self, server: CsmsServer, charger_id: str, version: str) -> None:
        self.server = server
        self.charger_id = charger_id
        self.version = version
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.invalid: list[str] = []
        self.errors: dict[str, str] = {}
        self.silent: set[str] = set()
        self.reports = False
        self._hold: asyncio.Future[dict[str, Any]] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.ws: ClientConnection | None = None
        self.rpc: RpcConnection | None = None
        self._serve: asyncio.Task[str] | None = None

    # RpcObserver: only invalid frames matter here.
    def call_done(self, *args: Any) -> None:
        pass

    def call_handled(self, *args: Any) -> None:
        pass

    def invalid_frame(self, version: str, direction: str, action: str | None, reason: str) -> None:
        self.invalid.append(f"{direction} {action}: {reason}")

    def handlers(self) -> Mapping[str, Handler]:
        return {action: self._handler(action) for action in RESPONSES[self.version]}

    def _handler(self, action: str) -> Handler:
        def handle(payload: dict[str, Any]) -> dict[str, Any] | Awaitable[dict[str, Any]]:
            self.calls.append((action, payload))
            if action in self.errors:
                raise OcppError(self.errors[action], f"scripted {self.errors[action]}")
            if action in self.silent:
                if self._hold is None:
                    self._hold = asyncio.get_running_loop().create_future()
                return self._hold
            if self.reports and action in ("GetChargingProfiles", "GetBaseReport"):
                report = (
                    "ReportChargingProfiles" if action == "GetChargingProfiles" else "NotifyReport"
                )
                self._spawn(self._send_reports(report, payload["requestId"]))
            return RESPONSES[self.version][action](payload)

        return handle

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_reports(self, action: str, request_id: int) -> None:
        await asyncio.sleep(0)  # after the response has gone out
        for part in report_parts(action, request_id):
            await self.send(action, part)

    async def send(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        """A charger-initiated call; returns the CSMS's response payload."""
        assert self.rpc is not None
        outcome = await self.rpc.call(action, payload)
        assert isinstance(outcome, CallResult), outcome
        return outcome.payload

    def actions(self) -> list[str]:
        return [action for action, _ in self.calls]

    def last(self, action: str) -> dict[str, Any]:
        """The payload of the latest call of `action`."""
        for name, payload in reversed(self.calls):
            if name == action:
                return payload
        raise AssertionError(f"{self.charger_id} never got {action}: {self.actions()}")

    async def connect(self, boot: bool = True) -> ScriptedCharger:
        url = f"{self.server.url}/{self.charger_id}"
        self.ws = await connect(
            url,
            subprotocols=[Subprotocol(SUBPROTOCOL[self.version])],
            compression=None,
            proxy=None,
        )
        self.rpc = RpcConnection(
            self.ws,
            self.version,
            handlers=self.handlers(),
            validator=FrameValidator(self.version),
            observer=self,
            call_timeout_s=5.0,
        )
        self._serve = asyncio.create_task(self.rpc.serve())
        if boot:
            await self.boot()
        return self

    async def boot(self) -> None:
        if self.version == "1.6":
            payload: dict[str, Any] = {"chargePointVendor": "Acme", "chargePointModel": "S1"}
        else:
            payload = {
                "chargingStation": {"vendorName": "Acme", "model": "S2"},
                "reason": "PowerUp",
            }
        assert (await self.send("BootNotification", payload))["status"] == "Accepted"

    async def close(self) -> None:
        if self._hold is not None and not self._hold.done():
            self._hold.set_result(RESPONSES[self.version]["Reset"]({}))
        for task in list(self._tasks):
            task.cancel()
        if self.ws is not None:
            await self.ws.close()
        if self._serve is not None:
            await self._serve
        await asyncio.gather(*self._tasks, return_exceptions=True)


@contextlib.asynccontextmanager
async def scripted(
    server: CsmsServer, charger_id: str, version: str, boot: bool = True
) -> AsyncIterator[ScriptedCharger]:
    charger = ScriptedCharger(server, charger_id, version)
    await charger.connect(boot)
    try:
        yield charger
    finally:
        await charger.close()


async def until(condition: Callable[[], bool]) -> None:
    """Wait for the other side to catch up (callers bound the wait with asyncio.timeout)."""
    while not condition():
        await asyncio.sleep(0.005)
