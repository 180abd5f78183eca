"""`fleetsim run` end to end over real websockets on 127.0.0.1 against the embedded CSMS."""

from __future__ import annotations

import asyncio

import pytest

from simulator.csms import CsmsServer
from simulator.run import Runner, RunOptions
from simulator.schemas import CHARGER_ACTIONS
from tests.conftest import busy_scenario


def _options(url: str, **kw: object) -> RunOptions:
    return RunOptions(target=url, metrics_port=None, live=False, **kw)  # type: ignore[arg-type]


async def test_a_short_run_speaks_both_versions_and_the_ledger_matches_the_csms(
    csms: CsmsServer,
) -> None:
    runner = Runner(busy_scenario(), _options(csms.url))
    async with asyncio.timeout(60):
        result = await runner.run()
    report = result.report

    assert set(report["actions"]) == set(CHARGER_ACTIONS)
    for action, row in report["actions"].items():
        assert row["count"] > 0, action
        assert row["errors"] == 0 and row["timeouts"] == 0, (action, row)
        assert row["p99_ms"] is not None and row["p99_ms"] < 2000.0, (action, row)
    # Every frame the chargers sent passed the official schemas (the rpc layer checks each one
    # and counts failures), and so did everything the CSMS received.
    assert report["invalid_frames"] == {"in": 0, "out": 0, "reasons": []}
    assert csms.stats()["invalid_frames"] == 0
    assert report["chargers"]["connected_end"] == 6
    assert report["simulated_s"] == pytest.approx(4 * 3600, rel=0.1)

    ledger = report["ledger"]
    assert ledger["transactions_started"] >= 10
    # on_stop "stop": every transaction ended, every message delivered.
    assert ledger["transactions_open"] == 0
    assert ledger["messages_dropped"] == 0 and ledger["messages_unsent"] == 0
    assert report["sessions"] > 0

    csms_energy = csms.store.energy_by_charger()
    sim_energy = runner_ledger_by_charger(result)
    assert set(csms_energy) == set(sim_energy)
    for charger, wh in sim_energy.items():
        assert csms_energy[charger] == pytest.approx(wh, abs=1e-6), charger
    transactions = csms.store.transactions()
    assert len(transactions) == ledger["transactions_started"]
    assert all(tx.stopped_at is not None for tx in transactions)
    assert sum(csms_energy.values()) == pytest.approx(ledger["energy_wh"], abs=1e-3)
    assert report["energy_kwh"] == pytest.approx(ledger["energy_wh"] / 1000.0)


def runner_ledger_by_charger(result: object) -> dict[str, float]:
    links = result.links  # type: ignore[attr-defined]
    sink_ledger = links[0].station.sink.ledger
    return dict(sink_ledger.energy_by_charger)


async def test_leave_keeps_transactions_open_at_the_end(csms: CsmsServer) -> None:
    runner = Runner(busy_scenario(on_stop="leave", duration="2s"), _options(csms.url))
    async with asyncio.timeout(60):
        result = await runner.run()
    ledger = result.report["ledger"]
    open_in_csms = sum(1 for tx in csms.store.transactions() if tx.stopped_at is None)
    assert ledger["transactions_open"] == open_in_csms
    assert ledger["transactions_open"] > 0


async def test_slo_thresholds_give_the_verdict(csms: CsmsServer) -> None:
    scenario = busy_scenario(duration="2s")
    strict = scenario.model_copy(
        update={"slo": scenario.slo.model_copy(update={"p99_ms": {"Heartbeat": 1e-6}})}
    )
    result = await Runner(strict, _options(csms.url)).run()
    assert not result.passed
    assert result.report["slo"]["passed"] is False
    lenient = scenario.model_copy(
        update={"slo": scenario.slo.model_copy(update={"p99_ms": {"*": 5000.0}})}
    )
    result = await Runner(lenient, _options(csms.url)).run()
    assert result.passed, result.report["slo"]


async def test_an_early_stop_still_stops_cleanly_and_reports(csms: CsmsServer) -> None:
    runner = Runner(busy_scenario(duration="10m"), _options(csms.url))
    task = asyncio.create_task(runner.run())
    await asyncio.sleep(2.0)
    runner.request_stop()
    async with asyncio.timeout(30):
        result = await task
    assert result.interrupted
    assert result.report["interrupted"] is True
    assert result.report["wall_s"] < 10
    assert result.report["ledger"]["transactions_open"] == 0


async def test_a_stalled_generator_shows_in_the_schedule_lag(csms: CsmsServer) -> None:
    import time

    runner = Runner(busy_scenario(duration="3s"), _options(csms.url))
    task = asyncio.create_task(runner.run())
    await asyncio.sleep(1.5)
    time.sleep(0.5)  # the generator's thread is busy: nothing due can run
    async with asyncio.timeout(60):
        result = await task
    lag = result.report["schedule_lag_ms"]
    assert lag["max"] >= 400.0, lag
    assert lag["p50"] < 100.0, lag
