"""The CSMS's loopback HTTP API against scripted chargers of both OCPP versions over real
websockets: every endpoint reaches the charger as the right schema-valid operation, the reads
show what the CSMS knows, failures get their status codes, only loopback is ever bound, the
process entry point announces the API, and `fleetsim csms --help` documents it.
"""

from __future__ import annotations

import asyncio
import http.client
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from simulator.cli import app
from simulator.csms import CsmsConfig, CsmsServer
from simulator.csms.http_api import COMMAND_ROUTES, ApiBindError, CsmsHttpApi, loopback_family
from simulator.run import RunError, Runner, RunOptions, embedded_csms
from tests.conftest import busy_scenario
from tests.simulator.csms.scripted_charger import RESPONSES, STAMP, scripted, until

REPO = Path(__file__).resolve().parents[3]
JSON = {"Content-Type": "application/json"}


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[CsmsServer]:
    config = CsmsConfig(port=0, db_path=tmp_path / "csms.db", api_port=0, call_timeout_s=5.0)
    csms = CsmsServer(config)
    await csms.start()
    try:
        yield csms
    finally:
        await csms.stop()


async def request(
    server: CsmsServer,
    method: str,
    path: str,
    body: Any = None,
    *,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """One HTTP request from another thread (the API hands its work to this loop, so a
    blocking request on the loop's own thread would wait for itself)."""
    assert server.api is not None
    port = server.api.port

    def send() -> tuple[int, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        try:
            data = raw if raw is not None else None if body is None else orjson.dumps(body)
            sent = dict(JSON if method == "POST" else {})
            sent.update(headers or {})
            conn.request(method, path, body=data, headers=sent)
            response = conn.getresponse()
            return response.status, orjson.loads(response.read())
        finally:
            conn.close()

    return await asyncio.to_thread(send)


PROFILE = {"purpose": "TxDefaultProfile", "unit": "A", "periods": [{"start_s": 0, "limit": 16}]}
# (endpoint, body, action for 1.6, action for 2.0.1); None: not in that version.
ENDPOINTS: list[tuple[str, dict[str, Any], str | None, str | None]] = [
    ("reset", {"kind": "soft"}, "Reset", "Reset"),
    ("remote-start", {"id_tag": "TAG-1", "evse_id": 1}, "RemoteStartTransaction", None),
    ("remote-start", {"id_tag": "TAG-1", "evse_id": 1}, None, "RequestStartTransaction"),
    ("remote-stop", {"transaction_id": "17"}, "RemoteStopTransaction", "RequestStopTransaction"),
    ("charging-profile", {"evse_id": 1, "profile": PROFILE}, "SetChargingProfile", None),
    ("charging-profile", {"evse_id": 1, "profile": PROFILE}, None, "SetChargingProfile"),
    ("clear-charging-profile", {"purpose": "TxProfile"}, "ClearChargingProfile", None),
    ("clear-charging-profile", {"profile_id": 3}, None, "ClearChargingProfile"),
    ("composite-schedule", {"evse_id": 1, "duration_s": 600}, "GetCompositeSchedule", None),
    ("composite-schedule", {"evse_id": 0, "duration_s": 600}, None, "GetCompositeSchedule"),
    ("charging-profiles", {"evse_id": 1, "wait_s": 0}, None, "GetChargingProfiles"),
    ("availability", {"operative": False, "evse_id": 1}, "ChangeAvailability", None),
    ("availability", {"operative": True}, None, "ChangeAvailability"),
    ("unlock", {"evse_id": 1}, "UnlockConnector", "UnlockConnector"),
    ("clear-cache", {}, "ClearCache", "ClearCache"),
    ("trigger", {"message": "Heartbeat"}, "TriggerMessage", "TriggerMessage"),
    ("reserve", {"id_tag": "TAG-2", "expiry": 900}, "ReserveNow", "ReserveNow"),
    ("cancel-reservation", {"reservation_id": 4}, "CancelReservation", "CancelReservation"),
    ("local-list", {"version": 2, "entries": {"T": "Accepted"}}, "SendLocalList", None),
    ("local-list", {"version": 2, "entries": {"T": "Blocked"}}, None, "SendLocalList"),
    ("firmware", {"location": "https://fw.example/a.bin"}, "UpdateFirmware", "UpdateFirmware"),
    ("diagnostics", {"location": "https://logs.example/"}, "GetDiagnostics", "GetLog"),
    ("log", {"location": "https://l.example/", "log_type": "SecurityLog"}, None, "GetLog"),
    ("base-report", {"report_base": "SummaryInventory", "wait_s": 0}, None, "GetBaseReport"),
    ("data-transfer", {"vendor_id": "acme", "data": "x"}, "DataTransfer", "DataTransfer"),
    ("call", {"action": "ClearCache", "payload": {}}, "ClearCache", "ClearCache"),
    ("configuration", {"key": "HeartbeatInterval", "value": 60}, "ChangeConfiguration", None),
    (
        "configuration",
        {"key": "OCPPCommCtrlr.HeartbeatInterval", "value": 60},
        None,
        "SetVariables",
    ),
]


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_every_endpoint_reaches_the_charger_as_its_operation(
    server: CsmsServer, version: str
) -> None:
    cases = [
        (name, body, action)
        for name, body, v16, v201 in ENDPOINTS
        if (action := v16 if version == "1.6" else v201) is not None
    ]
    # Every command route is exercised in at least one of the two versions.
    assert {name for name, *_ in ENDPOINTS} == {*COMMAND_ROUTES, "configuration"}
    async with asyncio.timeout(20), scripted(server, "CP-1", version) as cp:
        for endpoint, body, action in cases:
            status, answer = await request(server, "POST", f"/chargers/CP-1/{endpoint}", body)
            assert status == 200, (endpoint, answer)
            assert answer["action"] == action and answer["version"] == version
            assert answer["charger"] == "CP-1" and isinstance(answer["operation_id"], int)
            # What the API says it sent is what the charger got, and its answer comes back.
            assert cp.calls[-1] == (action, answer["request"]), endpoint
            assert answer["response"] == RESPONSES[version][action](answer["request"])
        # GET forms: the configuration and the local list's version.
        key = "HeartbeatInterval" if version == "1.6" else "OCPPCommCtrlr.HeartbeatInterval"
        status, answer = await request(server, "GET", f"/chargers/CP-1/configuration?key={key}")
        assert status == 200
        if version == "1.6":
            assert cp.calls[-1] == ("GetConfiguration", {"key": ["HeartbeatInterval"]})
            assert answer["response"]["configurationKey"][0]["value"] == "300"
        else:
            assert cp.calls[-1][0] == "GetVariables"
            assert answer["response"]["getVariableResult"][0]["attributeValue"] == "300"
        status, answer = await request(server, "GET", "/chargers/CP-1/local-list")
        assert status == 200 and cp.calls[-1] == ("GetLocalListVersion", {})
        assert answer["response"] == (
            {"listVersion": 3} if version == "1.6" else {"versionNumber": 3}
        )
        assert cp.invalid == [] and server.counters.invalid_frames == 0


async def test_several_configuration_values_and_reports_in_one_request(server: CsmsServer) -> None:
    async with asyncio.timeout(15):
        async with (
            scripted(server, "CP-16", "1.6") as cp16,
            scripted(server, "CS-2", "2.0.1") as cs,
        ):
            values = {"values": {"HeartbeatInterval": 60, "LocalAuthListEnabled": False}}
            status, answer = await request(server, "POST", "/chargers/CP-16/configuration", values)
            assert status == 200 and [r["action"] for r in answer["results"]] == [
                "ChangeConfiguration",
                "ChangeConfiguration",
            ]
            assert cp16.last("ChangeConfiguration") == {
                "key": "LocalAuthListEnabled",
                "value": "false",
            }
            values = {"values": {"OCPPCommCtrlr.HeartbeatInterval": 60, "EVSE@1.Power": 7400}}
            status, answer = await request(server, "POST", "/chargers/CS-2/configuration", values)
            assert status == 200 and len(cs.last("SetVariables")["setVariableData"]) == 2
            cs.reports = True
            status, answer = await request(
                server, "POST", "/chargers/CS-2/charging-profiles", {"purpose": "TxDefaultProfile"}
            )
            assert status == 200 and [p["evseId"] for p in answer["reports"]] == [1, 2]
            # 2.0.1 has no key list to read whole: the API says how to get everything.
            status, answer = await request(server, "GET", "/chargers/CS-2/configuration")
            assert status == 400 and "base-report" in answer["error"]


async def test_reads_show_chargers_transactions_operations_and_notifications(
    server: CsmsServer,
) -> None:
    async with asyncio.timeout(15):
        async with (
            scripted(server, "CP-16", "1.6") as cp16,
            scripted(server, "CS-2", "2.0.1") as cs,
        ):
            status_payload = {"connectorId": 1, "errorCode": "NoError", "status": "Charging"}
            await cp16.send("StatusNotification", {**status_payload, "timestamp": STAMP})
            start = {"connectorId": 1, "idTag": "T1", "meterStart": 0, "timestamp": STAMP}
            tx_id = (await cp16.send("StartTransaction", start))["transactionId"]
            await cs.send("FirmwareStatusNotification", {"status": "Downloading"})
            await request(server, "POST", "/chargers/CS-2/clear-cache", {})

            status, index = await request(server, "GET", "/")
            assert status == 200 and "GET  /chargers/{id}" in index["endpoints"]
            status, answer = await request(server, "GET", "/chargers")
            assert status == 200
            chargers = {c["id"]: c for c in answer["chargers"]}
            assert set(chargers) == {"CP-16", "CS-2"}
            one = chargers["CP-16"]
            assert (one["version"], one["connected"], one["booted"], one["vendor"]) == (
                "1.6",
                True,
                True,
                "Acme",
            )
            assert one["last_seen"] is not None
            assert [(c["connector_id"], c["status"]) for c in one["connectors"]] == [
                (1, "Charging")
            ]
            status, detail = await request(server, "GET", "/chargers/CP-16")
            assert status == 200
            assert [t["transaction_id"] for t in detail["open_transactions"]] == [str(tx_id)]
            assert detail["clock"].startswith("2030-01-01T12:00")  # the charger's own time
        await until(lambda: not server.connections)
        status, answer = await request(server, "GET", "/chargers?connected=true")
        assert status == 200 and answer["chargers"] == []
        status, answer = await request(server, "GET", "/transactions?charger=CP-16&open=true")
        assert status == 200 and [t["id_tag"] for t in answer["transactions"]] == ["T1"]
        status, answer = await request(server, "GET", "/transactions?open=false")
        assert status == 200 and answer["transactions"] == []
        status, answer = await request(server, "GET", "/operations?charger=CS-2")
        assert status == 200
        (op,) = answer["operations"]
        assert (op["action"], op["outcome"], op["request"], op["response"]) == (
            "ClearCache",
            "result",
            {},
            {"status": "Accepted"},
        )
        status, answer = await request(
            server, "GET", "/notifications?action=FirmwareStatusNotification"
        )
        assert status == 200
        assert [(n["charger"], n["payload"]) for n in answer["notifications"]] == [
            ("CS-2", {"status": "Downloading"})
        ]


async def test_failures_get_their_status_codes(server: CsmsServer) -> None:
    async with asyncio.timeout(15):
        async with scripted(server, "CP-GONE", "1.6"):
            pass
        await until(lambda: "CP-GONE" not in server.connections)
        async with scripted(server, "CP-1", "2.0.1") as cp:
            cp.errors["Reset"] = "InternalError"
            cases: list[tuple[str, str, Any, dict[str, Any], int, str]] = [
                ("POST", "/chargers/NOPE/reset", {}, {}, 404, "unknown charger 'NOPE'"),
                ("GET", "/chargers/NOPE", None, {}, 404, "unknown charger 'NOPE'"),
                ("POST", "/chargers/CP-GONE/reset", {}, {}, 409, "'CP-GONE' is not connected"),
                ("POST", "/chargers/CP-1/reset", {}, {}, 502, "CALLERROR InternalError"),
                ("POST", "/chargers/CP-1/reset", b"{not json", {}, 400, "body is not JSON"),
                ("POST", "/chargers/CP-1/reset", b"[1]", {}, 400, "body must be a JSON object"),
                ("POST", "/chargers/CP-1/reset", {"kynd": "soft"}, {}, 400, "'kynd'"),
                ("POST", "/chargers/CP-1/remote-start", {}, {}, 400, "'id_tag'"),
                ("POST", "/chargers/CP-1/reset", {"kind": 3}, {}, 400, "kind: expected"),
                ("POST", "/chargers/CP-1/unlock", {"evse_id": True}, {}, 400, "evse_id"),
                (
                    "POST",
                    "/chargers/CP-1/call",
                    {"action": "Reset", "payload": {}},
                    {},
                    400,
                    "type",
                ),
                (
                    "POST",
                    "/chargers/CP-1/reset",
                    b"{}",
                    {"Content-Type": "text/plain"},
                    415,
                    "application/json",
                ),
                ("POST", "/chargers/CP-1/fly", {}, {}, 404, "no endpoint POST /chargers/CP-1/fly"),
                ("GET", "/chargers/CP-1/reset", None, {}, 405, "use POST"),
                ("DELETE", "/chargers", None, {}, 405, "use GET"),
                ("GET", "/transactions?open=maybe", None, {}, 400, "?open"),
                ("GET", "/operations?limit=0", None, {}, 400, "?limit"),
                ("GET", "/chargers", None, {"Host": "evil.example:80"}, 403, "loopback"),
            ]
            for method, path, body, headers, code, words in cases:
                raw = body if isinstance(body, bytes) else None
                status, answer = await request(
                    server,
                    method,
                    path,
                    None if raw is not None else body,
                    raw=raw,
                    headers=headers,
                )
                assert status == code, (method, path, answer)
                assert words in answer["error"] and "\n" not in answer["error"], answer
            # The failed call is recorded and its CALLERROR shown.
            status, answer = await request(server, "GET", "/operations?charger=CP-1")
            assert [(o["action"], o["outcome"]) for o in answer["operations"]] == [
                ("Reset", "error")
            ]
            assert answer["operations"][0]["response"]["code"] == "InternalError"
            # Only the CALLERROR'd Reset reached the charger; bad input never did.
            assert cp.actions() == ["Reset"]


async def test_only_loopback_is_ever_bound(tmp_path: Path) -> None:
    assert loopback_family("localhost") == ("127.0.0.1", socket.AF_INET)
    assert loopback_family("[::1]") == ("::1", socket.AF_INET6)
    for host in ("0.0.0.0", "192.168.1.10", "::", "example.com", ""):
        with pytest.raises(ApiBindError, match="loopback only"):
            loopback_family(host)
    config = CsmsConfig(port=0, db_path=tmp_path / "c.db", api_port=0, api_host="0.0.0.0")
    server = CsmsServer(config)
    with pytest.raises(ApiBindError, match=r"not '0\.0\.0\.0'"):
        await server.start()
    assert server.api is None and server._server is None  # nothing was bound
    await server.stop()
    with pytest.raises(ApiBindError):
        CsmsHttpApi(server, "10.0.0.1", 0)


async def test_a_taken_api_port_is_one_line_and_nothing_keeps_listening(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = CsmsConfig(port=0, db_path=tmp_path / "c.db", api_port=port)
        server = CsmsServer(config)
        with pytest.raises(ApiBindError, match=f"port {port}"):
            await server.start()
        await server.stop()
        assert server.api is None


async def test_the_csms_process_announces_its_api_and_refuses_other_hosts(
    tmp_path: Path,
) -> None:
    async with asyncio.timeout(30):
        async with embedded_csms(tmp_path / "csms.db", api_port=0) as csms:
            assert csms.url.startswith("ws://127.0.0.1:") and csms.api_url is not None
            port = int(csms.api_url.rsplit(":", 1)[1])

            def get() -> tuple[int, Any]:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                conn.request("GET", "/chargers")
                response = conn.getresponse()
                return response.status, orjson.loads(response.read())

            assert await asyncio.to_thread(get) == (200, {"chargers": []})
        proc = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "simulator.csms", "--port", "0", "--db", ":memory:"),
            *("--api-port", "0", "--api-host", "0.0.0.0"),
            cwd=REPO,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
    assert proc.returncode == 2 and out == b""
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1 and "loopback only" in lines[0], lines


async def test_run_refuses_an_api_port_without_the_embedded_csms() -> None:
    options = RunOptions(target="ws://127.0.0.1:1", csms_api_port=0, metrics_port=None, live=False)
    with pytest.raises(RunError, match="--csms-api-port needs the embedded CSMS"):
        await Runner(busy_scenario(), options).run()


def test_fleetsim_csms_help_documents_every_endpoint() -> None:
    result = CliRunner().invoke(app, ["csms", "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0
    text = result.output
    for name in (*COMMAND_ROUTES, "configuration"):
        assert f"  {name} " in text, name
    for read in ("/chargers", "/chargers/{id}", "/transactions", "/operations", "/notifications"):
        assert read in text, read
    for word in ("--api-port", "--sites", "400", "404", "409", "502", "application/json"):
        assert word in text, word
    run_help = CliRunner().invoke(app, ["run", "--help"], env={"COLUMNS": "120"}).output
    assert "--csms-api-port" in run_help
