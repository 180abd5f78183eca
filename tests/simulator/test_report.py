"""Tests of simulator.report: report figures, SLO verdicts, terminal output and the live panel."""

from __future__ import annotations

import asyncio
import io
import time
from pathlib import Path

import orjson
import pytest
from rich.console import Console

from simulator import report as report_mod
from simulator.metrics import FleetMetrics
from simulator.report import (
    LivePanel,
    SloCheck,
    build_report,
    evaluate_slos,
    render_summary,
    slo_section,
    write_report,
)
from simulator.scenario import SloConfig


def _metrics() -> FleetMetrics:
    """100 MeterValues at 1..100 ms (2 errors, 1 timeout, 1 closed) and 4 BootNotifications."""
    metrics = FleetMetrics()
    metrics.set_chargers(4)
    for i in range(1, 98):
        metrics.call_done("1.6", "MeterValues", "result", i / 1000.0, i / 2000.0)
    metrics.call_done("1.6", "MeterValues", "error", 0.098, 0.049)
    metrics.call_done("2.0.1", "MeterValues", "error", 0.099, 0.0495)
    metrics.call_done("1.6", "MeterValues", "timeout", 0.100, 0.0)
    metrics.call_done("1.6", "MeterValues", "closed", 0.0, 0.0)
    for latency in (0.2, 0.3, 0.4, 0.5):
        metrics.call_done("1.6", "BootNotification", "result", latency, latency)
    for duration in (0.010, 0.020, 0.030):
        metrics.connect_attempt()
        metrics.connected(duration, reconnect=False)
    metrics.connect_attempt()
    metrics.connected(0.040, reconnect=True)
    metrics.disconnected()
    metrics.connect_attempt()
    metrics.connect_failed("refused")
    for lag_ms in range(1, 101):
        metrics.schedule_lag(lag_ms / 1000.0)
    metrics.invalid_frame("1.6", "in", "Heartbeat", "bad currentTime")
    metrics.invalid_frame("1.6", "in", "Heartbeat", "bad currentTime")
    metrics.invalid_frame("1.6", "out", "MeterValues", "missing meterValue")
    return metrics


def _report(metrics: FleetMetrics | None = None, **extra: object) -> dict:
    return build_report(
        metrics or _metrics(),
        scenario_name="depot",
        chargers=4,
        wall_s=10.0,
        sim_s=3600.0,
        speed=360.0,
        sessions=7,
        energy_kwh=123.45678,
        extra=dict(extra) or None,
    )


def test_report_numbers_match_recorded_data() -> None:
    report = _report(run_id="abc")
    assert report["scenario"] == "depot"
    assert (report["wall_s"], report["simulated_s"], report["speed"]) == (10.0, 3600.0, 360.0)
    mv = report["actions"]["MeterValues"]
    assert (mv["count"], mv["errors"], mv["timeouts"], mv["closed"]) == (101, 2, 1, 1)
    assert mv["rate_per_s"] == 10.1
    # Latency covers the 100 answered or timed-out calls: 1..100 ms (nearest rank).
    assert mv["p50_ms"] == pytest.approx(50.0, rel=0.01)
    assert mv["p90_ms"] == pytest.approx(90.0, rel=0.01)
    assert mv["p99_ms"] == pytest.approx(99.0, rel=0.01)
    assert mv["p999_ms"] == pytest.approx(100.0, rel=0.01)
    assert mv["max_ms"] == 100.0
    # The round trip exists only for the 99 answered calls.
    assert mv["rtt"]["max_ms"] == 49.5
    assert mv["rtt"]["p50_ms"] == pytest.approx(25.0, rel=0.01)
    boot = report["actions"]["BootNotification"]
    assert boot["count"] == 4 and boot["max_ms"] == 500.0
    assert boot["p50_ms"] == pytest.approx(300.0, rel=0.01)
    assert report["totals"] == {
        "calls": 105,
        "errors": 2,
        "timeouts": 1,
        "error_rate": round(3 / 105, 6),
        "calls_per_s": 10.5,
    }
    chargers = report["chargers"]
    assert chargers["configured"] == 4
    assert (chargers["connected_end"], chargers["connected_peak"]) == (3, 4)
    assert (chargers["connects"], chargers["reconnects"], chargers["connect_failures"]) == (4, 1, 1)
    assert chargers["connect_ms"]["max"] == 40.0
    assert chargers["connect_ms"]["p50"] == pytest.approx(20.0, rel=0.01)
    assert report["sessions"] == 7
    assert report["energy_kwh"] == 123.457
    assert report["schedule_lag_ms"]["p99"] == pytest.approx(99.0, rel=0.01)
    assert report["schedule_lag_ms"]["max"] == 100.0
    assert report["invalid_frames"] == {
        "in": 2,
        "out": 1,
        "reasons": [
            {"reason": "bad currentTime", "count": 2},
            {"reason": "missing meterValue", "count": 1},
        ],
    }
    assert report["run_id"] == "abc"
    # Every ms figure has at most 3 decimals, and the whole thing is JSON.
    assert round(mv["p50_ms"], 3) == mv["p50_ms"]
    assert orjson.loads(orjson.dumps(report)) == report


def test_empty_run_reports_nulls_not_zeros() -> None:
    report = _report(FleetMetrics())
    assert report["actions"] == {}
    assert report["totals"]["calls"] == 0 and report["totals"]["error_rate"] == 0.0
    assert report["schedule_lag_ms"] == {"p50": None, "p99": None, "max": None}
    assert report["chargers"]["connect_ms"]["p99"] is None


def test_extra_may_not_replace_built_keys() -> None:
    with pytest.raises(ValueError, match="totals"):
        _report(totals={})


def _by_name(checks: list[SloCheck]) -> dict[str, SloCheck]:
    return {c.name: c for c in checks}


def test_latency_slos_with_star_and_override() -> None:
    report = _report()
    checks = _by_name(
        evaluate_slos(SloConfig(p99_ms={"*": 150.0, "BootNotification": 600.0}), report)
    )
    assert set(checks) == {"p99_ms[MeterValues]", "p99_ms[BootNotification]"}
    assert checks["p99_ms[MeterValues]"].passed
    assert checks["p99_ms[MeterValues]"].value == report["actions"]["MeterValues"]["p99_ms"]
    assert checks["p99_ms[BootNotification]"].threshold == 600.0
    assert checks["p99_ms[BootNotification]"].passed

    checks = _by_name(evaluate_slos(SloConfig(p50_ms={"*": 100.0}, p90_ms={"*": 1.0}), report))
    assert checks["p50_ms[MeterValues]"].passed
    assert not checks["p50_ms[BootNotification]"].passed  # 300 ms > 100 ms
    assert checks["p50_ms[BootNotification]"].note == "above threshold"
    assert not checks["p90_ms[MeterValues]"].passed
    assert slo_section(list(checks.values()))["passed"] is False


def test_slo_on_action_that_never_ran_fails() -> None:
    checks = evaluate_slos(SloConfig(p99_ms={"StatusNotification": 500.0}), _report())
    assert checks == [SloCheck("p99_ms[StatusNotification]", 500.0, None, False, "no calls")]
    star = evaluate_slos(SloConfig(p999_ms={"*": 500.0}), _report(FleetMetrics()))
    assert star == [SloCheck("p999_ms[*]", 500.0, None, False, "no calls")]
    assert slo_section(star)["passed"] is False


def test_latency_slo_with_only_cut_off_calls_fails() -> None:
    metrics = FleetMetrics()
    metrics.call_done("1.6", "Heartbeat", "closed", 0.0, 0.0)
    (check,) = evaluate_slos(SloConfig(p99_ms={"Heartbeat": 500.0}), _report(metrics))
    assert not check.passed and check.value is None and "no latency data" in check.note


def test_run_level_slos() -> None:
    report = _report()
    loose = SloConfig(
        max_error_rate=0.05,
        max_schedule_lag_ms=150.0,
        min_connected_ratio=0.75,
        max_invalid_frames=3,
    )
    checks = _by_name(evaluate_slos(loose, report))
    assert all(c.passed for c in checks.values()), checks
    assert checks["error_rate"].value == pytest.approx(3 / 105, abs=1e-6)
    assert checks["connected_ratio"].value == 0.75
    assert checks["invalid_frames"].value == 3.0
    assert slo_section(list(checks.values())) == {
        "passed": True,
        "checks": [
            {"name": c.name, "threshold": c.threshold, "value": c.value, "passed": True, "note": ""}
            for c in checks.values()
        ],
    }
    strict = SloConfig(
        max_error_rate=0.01,
        max_schedule_lag_ms=50.0,
        min_connected_ratio=0.9,
        max_invalid_frames=2,
    )
    checks = _by_name(evaluate_slos(strict, report))
    assert {n for n, c in checks.items() if not c.passed} == {
        "error_rate",
        "schedule_lag_p99_ms",
        "connected_ratio",
        "invalid_frames",
    }
    assert checks["connected_ratio"].note == "below threshold"


def test_run_level_slos_without_data_fail() -> None:
    report = _report(FleetMetrics())
    config = SloConfig(max_error_rate=0.5, max_schedule_lag_ms=100.0)
    checks = _by_name(evaluate_slos(config, report))
    assert checks["error_rate"].value is None and not checks["error_rate"].passed
    assert not checks["schedule_lag_p99_ms"].passed
    assert slo_section([]) == {"passed": True, "checks": []}


def test_render_summary_shows_actions_and_verdict() -> None:
    report = _report()
    checks = evaluate_slos(SloConfig(p99_ms={"MeterValues": 150.0, "Heartbeat": 10.0}), report)
    console = Console(record=True, width=160, force_terminal=False)
    render_summary(report, checks, console)
    text = console.export_text()
    mv_line = next(line for line in text.splitlines() if "MeterValues" in line)
    assert "101" in mv_line and "100.0" in mv_line
    assert "BootNotification" in text
    assert "PASS p99_ms[MeterValues]" in text
    assert "FAIL p99_ms[Heartbeat]: no data vs 10 (no calls)" in text
    assert "SLO: FAIL" in text
    assert "chargers 3/4 connected" in text
    assert "invalid x2: bad currentTime" in text


def test_write_report(tmp_path: Path) -> None:
    report = _report()
    path = tmp_path / "deep" / "dir" / "report.json"
    write_report(report, path)
    assert orjson.loads(path.read_bytes()) == report
    assert path.read_text().startswith('{\n  "scenario": "depot"')


async def _run_panel(panel: LivePanel, stop_after_s: float) -> float:
    stop = asyncio.Event()
    task = asyncio.create_task(panel.run(stop))
    await asyncio.sleep(stop_after_s)
    started = time.monotonic()
    stop.set()
    await asyncio.wait_for(task, 1.0)
    return time.monotonic() - started


async def test_live_panel_on_terminal_refreshes_and_stops_promptly() -> None:
    metrics = _metrics()
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=160)
    stopped_in = await _run_panel(LivePanel(metrics, console, interval_s=0.02), 0.15)
    assert stopped_in < 0.2
    assert "chargers 3/4" in out.getvalue()
    assert "calls/s" in out.getvalue()


async def test_live_panel_plain_output_stops_promptly(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=160)
    # Long interval: the panel must still return as soon as stop is set.
    stopped_in = await _run_panel(LivePanel(_metrics(), console, interval_s=1.0), 0.05)
    assert stopped_in < 0.2
    assert out.getvalue() == ""  # nothing yet: plain lines come every 10 s
    monkeypatch.setattr(report_mod, "PLAIN_INTERVAL_S", 0.02)
    await _run_panel(LivePanel(_metrics(), console, interval_s=0.01), 0.1)
    lines = out.getvalue().splitlines()
    assert lines and all("chargers 3/4" in line for line in lines)


def test_render_summary_shows_the_ledger_verdict_faults_and_recovery() -> None:
    report = _report()
    report["ledger"] = {
        "transactions_started": 3,
        "transactions_ended": 3,
        "transactions_open": 0,
        "messages_dropped": 0,
        "messages_unsent": 0,
        "reconciliation": {
            "ok": False,
            "csms_checked": True,
            "matched": 2,
            "mismatches": ["cp1 transaction 9: acknowledged, not at the CSMS"],
        },
    }
    report["faults"] = {"csms_restart": 1, "connection_drop": 4}
    report["recovery"] = [
        {
            "kind": "csms_restart",
            "scope": "fleet",
            "chargers": 4,
            "recovered": False,
            "time_to_50pct_s": 1.25,
            "time_to_99pct_s": None,
            "time_to_100pct_s": None,
            "time_to_queues_drained_s": None,
            "reconnect_attempts": {"mean": 2.5, "max": 4},
        }
    ]
    console = Console(record=True, width=200, force_terminal=False)
    render_summary(report, [], console)
    text = console.export_text()
    assert "ledger does NOT reconcile with the CSMS database:" in text
    assert "cp1 transaction 9: acknowledged, not at the CSMS" in text
    assert "faults: csms_restart x1, connection_drop x4" in text
    assert (
        "recovery after csms_restart (fleet, 4 chargers): 50% 1.2 s, 99% never, 100% never, "
        "queues drained never; attempts per charger mean 2.5 max 4"
    ) in text
