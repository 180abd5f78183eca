"""The CSMS's site load manager against scripted chargers over real websockets on 127.0.0.1:
the safe default at boot, TxProfiles as transactions start and end and EVs fill up, lowered
caps confirmed before others are raised, EDF fed by DataTransfer, every frame schema-valid;
and the sites file written from a scenario."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

import pytest

from simulator.csms import CsmsConfig, CsmsServer
from simulator.csms.load_manager import (
    LoadManager,
    SiteEntry,
    read_sites_file,
    write_sites_file,
)
from simulator.rpc import Handler
from simulator.scenario import parse_scenario
from tests.simulator.csms.scripted_charger import ScriptedCharger

T0 = "2030-01-01T08:00:00.000Z"


def at(minutes: int) -> str:
    return f"2030-01-01T{8 + minutes // 60:02d}:{minutes % 60:02d}:00.000Z"


class Charger(ScriptedCharger):
    """A scripted charger that notes when each SetChargingProfile arrived and was answered,
    may hold its answer to TxProfiles for `delay_s`, and may reject the first `reject` ones."""

    def __init__(self, server: CsmsServer, charger_id: str, version: str) -> None:
        super().__init__(server, charger_id, version)
        self.profiles: list[tuple[float, float, dict[str, Any]]] = []
        self.delay_s = 0.0
        self.reject = 0

    def _handler(self, action: str) -> Handler:
        if action != "SetChargingProfile":
            return super()._handler(action)

        async def handle(payload: dict[str, Any]) -> dict[str, Any]:
            received = time.monotonic()
            self.calls.append((action, payload))
            profile = payload.get("csChargingProfiles") or payload["chargingProfile"]
            status = "Accepted"
            if profile["chargingProfilePurpose"] == "TxProfile":
                if self.reject:
                    self.reject -= 1
                    status = "Rejected"
                await asyncio.sleep(self.delay_s)
            self.profiles.append((received, time.monotonic(), payload))
            return {"status": status}

        return handle

    def tx_profiles(self) -> list[tuple[float, float, dict[str, Any]]]:
        return [p for p in self.profiles if _profile(p[2])["chargingProfilePurpose"] == "TxProfile"]


def _profile(payload: dict[str, Any]) -> dict[str, Any]:
    return payload.get("csChargingProfiles") or payload["chargingProfile"]


def _limit(payload: dict[str, Any]) -> float:
    schedule = _profile(payload)["chargingSchedule"]
    if isinstance(schedule, list):
        schedule = schedule[0]
    assert schedule["chargingRateUnit"] == "W"
    (period,) = schedule["chargingSchedulePeriod"]
    return float(period["limit"])


def site(name: str, chargers: list[str], limit_kw: float, policy: str) -> SiteEntry:
    return SiteEntry(
        name=name, grid_limit_kw=limit_kw, policy=policy, chargers=chargers, evse_max_kw=11.0
    )


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[CsmsServer]:
    csms = CsmsServer(CsmsConfig(port=0, db_path=tmp_path / "csms.db", call_timeout_s=5.0))
    await csms.start()
    try:
        yield csms
    finally:
        await csms.stop()


async def settled(lm: LoadManager, *steps: Awaitable[Any]) -> None:
    """Run the chargers' steps, then wait for the load manager to finish reacting."""
    for step in steps:
        await step
    await asyncio.sleep(0.05)  # let the listener's tasks start
    await lm.idle()


def check_valid(server: CsmsServer, *chargers: Charger) -> None:
    for cp in chargers:
        assert cp.invalid == [], cp.invalid
    assert server.counters.invalid_frames == 0


async def test_v16_profiles_follow_sessions_and_lower_before_raising(server: CsmsServer) -> None:
    lm = LoadManager(server, [site("work", ["A", "B", "C"], 15.0, "equal_share")])
    server.listeners.append(lm)
    cps = {cid: Charger(server, cid, "1.6") for cid in "ABC"}
    a, b, c = cps["A"], cps["B"], cps["C"]
    tx: dict[str, int] = {}

    async def start(cp: Charger, minute: int) -> None:
        answer = await cp.send(
            "StartTransaction",
            {"connectorId": 1, "idTag": "TAG", "meterStart": 0, "timestamp": at(minute)},
        )
        tx[cp.charger_id] = answer["transactionId"]

    async def status(cp: Charger, state: str) -> None:
        await cp.send(
            "StatusNotification",
            {"connectorId": 1, "errorCode": "NoError", "status": state, "timestamp": at(30)},
        )

    try:
        async with asyncio.timeout(15):
            for cp in cps.values():
                await cp.connect()
            await settled(lm)
            # Boot: the safe TxDefault on the whole station, the limit over three connectors.
            for cp in cps.values():
                (only,) = cp.profiles
                payload = only[2]
                assert payload["connectorId"] == 0
                assert _profile(payload)["chargingProfilePurpose"] == "TxDefaultProfile"
                assert _profile(payload)["stackLevel"] == 0
                assert _limit(payload) == 5000.0

            # A alone gets its EVSE's rating; its first TxProfile is rejected (the charger has
            # not yet read its transaction id) and sent again.
            a.reject = 1
            await settled(lm, start(a, 0))
            first, second = a.tx_profiles()
            assert first[2] == second[2]
            p = _profile(second[2])
            assert second[2]["connectorId"] == 1
            assert p["transactionId"] == tx["A"] and p["stackLevel"] == 1
            assert p["chargingProfileKind"] == "Relative"
            assert _limit(second[2]) == 11000.0
            assert lm.caps("work") == {"A/1": 11000.0}

            # B: A is lowered to an equal share and answers slowly; B is raised only after.
            a.delay_s = 0.3
            await settled(lm, start(b, 5))
            lowered = a.tx_profiles()[-1]
            (raised,) = b.tx_profiles()
            assert _limit(lowered[2]) == 7500.0 and _limit(raised[2]) == 7500.0
            assert raised[0] >= lowered[1], "B was raised before A's lower was answered"
            assert _profile(raised[2])["transactionId"] == tx["B"]

            # C: A and B lowered to 5000; C keeps the safe default, which is its share.
            a.delay_s = 0.0
            await settled(lm, start(c, 10))
            assert _limit(a.tx_profiles()[-1][2]) == 5000.0
            assert _limit(b.tx_profiles()[-1][2]) == 5000.0
            assert c.tx_profiles() == []
            assert lm.caps("work") == {"A/1": 5000.0, "B/1": 5000.0, "C/1": 5000.0}

            # B full (SuspendedEV): it gets nothing, first; then A and C share the rest.
            b.delay_s = 0.3
            await settled(lm, status(b, "SuspendedEV"))
            zero = b.tx_profiles()[-1]
            assert _limit(zero[2]) == 0.0
            for cp in (a, c):
                up = cp.tx_profiles()[-1]
                assert _limit(up[2]) == 7500.0
                assert up[0] >= zero[1], f"{cp.charger_id} raised before B's lower was answered"

            # A leaves: C takes all it can; B, still full, stays at 0.
            await settled(
                lm,
                a.send(
                    "StopTransaction",
                    {"transactionId": tx["A"], "meterStop": 5000, "timestamp": at(40)},
                ),
            )
            assert _limit(c.tx_profiles()[-1][2]) == 11000.0
            assert lm.caps("work") == {"B/1": 0.0, "C/1": 11000.0}
            # B draws again: the site is shared once more.
            await settled(lm, status(b, "Charging"))
            assert lm.caps("work") == {"B/1": 7500.0, "C/1": 7500.0}
            assert math.fsum(lm.caps("work").values()) <= 15000.0
            check_valid(server, a, b, c)
            assert lm.failures == 0
    finally:
        for cp in cps.values():
            await cp.close()


async def test_v201_edf_uses_the_announced_departure(server: CsmsServer) -> None:
    lm = LoadManager(server, [site("depot", ["X", "Y"], 11.0, "edf")])
    server.listeners.append(lm)
    x, y = Charger(server, "X", "2.0.1"), Charger(server, "Y", "2.0.1")

    def event(kind: str, tx_id: str, minute: int, seq: int, **info: Any) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "eventType": kind,
            "timestamp": at(minute),
            "triggerReason": "Authorized" if kind == "Started" else "StopAuthorized",
            "seqNo": seq,
            "transactionInfo": {"transactionId": tx_id, **info},
            "evse": {"id": 1, "connectorId": 1},
        }
        if kind == "Started":
            payload["idToken"] = {"idToken": "TAG", "type": "ISO14443"}
        return payload

    try:
        async with asyncio.timeout(15):
            await x.connect()
            await y.connect()
            await settled(lm)
            assert [_limit(p[2]) for p in x.profiles] == [5500.0]
            assert x.profiles[0][2]["evseId"] == 0

            await settled(lm, x.send("TransactionEvent", event("Started", "tx-x", 0, 0)))
            (only,) = x.tx_profiles()
            p = _profile(only[2])
            assert only[2]["evseId"] == 1
            assert p["transactionId"] == "tx-x" and _limit(only[2]) == 11000.0

            # Y announces its departure, then starts: it leaves first, so it goes first.
            answer = await y.send(
                "DataTransfer",
                {"vendorId": "org.fleetsim", "messageId": "DepartureTime", "data": at(90)},
            )
            assert answer["status"] == "Accepted"
            unknown = await y.send("DataTransfer", {"vendorId": "org.other", "messageId": "X"})
            assert unknown["status"] == "UnknownVendorId"
            await settled(
                lm,
                y.send(
                    "TransactionEvent", event("Started", "tx-y", 5, 0, chargingState="Charging")
                ),
            )
            assert _limit(x.tx_profiles()[-1][2]) == 0.0
            (raised,) = y.tx_profiles()
            assert _profile(raised[2])["transactionId"] == "tx-y"
            assert _limit(raised[2]) == 11000.0
            assert raised[0] >= x.tx_profiles()[-1][1]

            # Y full: X gets the site again.
            await settled(
                lm,
                y.send(
                    "TransactionEvent",
                    {
                        **event("Updated", "tx-y", 50, 1, chargingState="SuspendedEV"),
                        "triggerReason": "ChargingStateChanged",
                    },
                ),
            )
            assert lm.caps("depot") == {"X/1": 11000.0, "Y/1": 0.0}
            await settled(
                lm, y.send("TransactionEvent", event("Ended", "tx-y", 60, 2, stoppedReason="Local"))
            )
            assert lm.caps("depot") == {"X/1": 11000.0}
            check_valid(server, x, y)
    finally:
        await x.close()
        await y.close()


def test_sites_file_from_a_scenario(tmp_path: Path) -> None:
    scenario = parse_scenario(
        {
            "charger_id_pattern": "{site}-{index:03d}",
            "sites": [
                {
                    "name": "office",
                    "archetype": "workplace",
                    "chargers": 3,
                    "load_management": {"grid_limit_kw": 50, "policy": "fcfs"},
                },
                {"name": "home", "archetype": "home", "chargers": 2},
            ],
        },
        "test",
    )
    path = tmp_path / "sites.json"
    assert write_sites_file(scenario, path) == 1
    (entry,) = read_sites_file(path)
    assert entry.name == "office" and entry.policy == "fcfs" and entry.grid_limit_kw == 50
    assert entry.chargers == ["office-001", "office-002", "office-003"]
    assert entry.connectors == 2 and entry.evse_max_w("office-002") == 11000.0
    assert entry.min_w == 4140.0

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"sites": [{"name": "x", "grid_limit_kw": -1, "chargers": ["a"]}]}))
    with pytest.raises(ValueError) as error:
        read_sites_file(bad)
    assert "bad.json: sites.0.grid_limit_kw" in str(error.value)
    assert "sites.0.evse_max_kw" in str(error.value)
    twice = [
        {"name": n, "grid_limit_kw": 1, "chargers": ["a"], "evse_max_kw": 1} for n in ("p", "q")
    ]
    bad.write_text(json.dumps({"sites": twice}))
    with pytest.raises(ValueError, match="charger 'a' is in sites 'p' and 'q'"):
        read_sites_file(bad)


def test_sites_file_may_be_yaml(tmp_path: Path) -> None:
    path = tmp_path / "sites.yaml"
    path.write_text(
        "sites:\n  - name: yard\n    grid_limit_kw: 22\n    policy: edf\n"
        "    chargers: [Y1, Y2]\n    evse_max_kw: {Y1: 11, Y2: 22}\n    current: dc\n"
    )
    (entry,) = read_sites_file(path)
    assert entry.evse_max_w("Y2") == 22000.0 and entry.min_w == 0.0 and entry.policy == "edf"
    path.write_text("sites: [\n")
    with pytest.raises(ValueError, match=r"sites\.yaml: line 2"):
        read_sites_file(path)
