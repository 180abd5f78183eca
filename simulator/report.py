"""The end-of-run report of an online run, its SLO verdict and what the terminal shows.

Turns FleetMetrics read-outs into JSON-able data, checks it against a scenario's SloConfig and
renders it with rich; it must not measure anything itself (simulator.metrics owns that).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson
from rich import box
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from simulator.metrics import FleetMetrics, LatencyHistogram, LiveSnapshot
from simulator.scenario import SloConfig

MS_DECIMALS = 3
RATE_DECIMALS = 3
SHARE_DECIMALS = 6
KWH_DECIMALS = 3
SECONDS_DECIMALS = 3

_PERCENTILES = (("p50_ms", 50.0), ("p90_ms", 90.0), ("p99_ms", 99.0), ("p999_ms", 99.9))
_LATENCY_SLOS = ("p50_ms", "p90_ms", "p99_ms", "p999_ms")
PLAIN_INTERVAL_S = 10.0


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, MS_DECIMALS)


def _figures(hist: LatencyHistogram, qs: tuple[float, ...]) -> list[float | None]:
    """The qs percentiles then the max, in ms; all None for a histogram that holds nothing."""
    if hist.count == 0:
        return [None] * (len(qs) + 1)
    figures: list[float | None] = [_ms(v) for v in hist.percentiles(qs)]
    return [*figures, _ms(hist.max_s)]


def _latency_block(hist: LatencyHistogram) -> dict[str, float | None]:
    """Keys p50_ms, p90_ms, p99_ms, p999_ms and max_ms (values None when empty)."""
    keys = [key for key, _ in _PERCENTILES] + ["max_ms"]
    return dict(zip(keys, _figures(hist, tuple(q for _, q in _PERCENTILES)), strict=True))


def _short_block(hist: LatencyHistogram, qs: tuple[float, ...]) -> dict[str, float | None]:
    """Keys "p50", "p90", ... and "max" in ms (None when empty), for connect time and lag."""
    keys = [f"p{q:g}".replace(".", "") for q in qs] + ["max"]
    return dict(zip(keys, _figures(hist, qs), strict=True))


def build_report(
    metrics: FleetMetrics,
    *,
    scenario_name: str,
    chargers: int,
    wall_s: float,
    sim_s: float,
    speed: float,
    sessions: int,
    energy_kwh: float,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON-able report of a run; `extra` keys are added at the top level.

    Latency figures are in ms rounded to 3 decimals; a figure over no data is None. Rates are
    per wall-clock second. `extra` may not replace a built key (that would silently change what
    the SLO checks read), so a clash raises ValueError.
    """
    stats = metrics.stats()
    per_s = 1.0 / wall_s if wall_s > 0 else 0.0
    actions: dict[str, Any] = {}
    calls = errors = timeouts = 0
    for name, action in stats.actions.items():
        calls += action.count
        errors += action.errors
        timeouts += action.timeouts
        latency = _latency_block(action.latency)
        actions[name] = {
            "count": action.count,
            "errors": action.errors,
            "timeouts": action.timeouts,
            "closed": action.closed,
            "rate_per_s": round(action.count * per_s, RATE_DECIMALS),
            **latency,
            "rtt": _latency_block(action.rtt),
        }
    report: dict[str, Any] = {
        "scenario": scenario_name,
        "wall_s": round(wall_s, SECONDS_DECIMALS),
        "simulated_s": round(sim_s, SECONDS_DECIMALS),
        "speed": speed,
        "actions": actions,
        "totals": {
            "calls": calls,
            "errors": errors,
            "timeouts": timeouts,
            "error_rate": round((errors + timeouts) / calls, SHARE_DECIMALS) if calls else 0.0,
            "calls_per_s": round(calls * per_s, RATE_DECIMALS),
        },
        "chargers": {
            "configured": chargers,
            "connected_end": stats.chargers_connected,
            "connected_peak": stats.chargers_connected_peak,
            "connects": stats.connects,
            "reconnects": stats.reconnects,
            "connect_failures": stats.connect_failures,
            "connect_ms": _short_block(stats.connect_time, (50.0, 90.0, 99.0)),
        },
        "sessions": sessions,
        "energy_kwh": round(energy_kwh, KWH_DECIMALS),
        "schedule_lag_ms": _short_block(stats.schedule_lag, (50.0, 99.0)),
        # What the CSMS asked of the chargers (remote starts, profiles, resets...).
        "operations": {
            action: {"handled": answered, "errors": refused}
            for action, (answered, refused) in sorted(metrics.handled_by_action.items())
        },
        "invalid_frames": {
            "in": stats.invalid_in,
            "out": stats.invalid_out,
            "reasons": [{"reason": r, "count": n} for r, n in stats.invalid_reasons],
        },
    }
    if extra:
        clash = sorted(set(extra) & set(report))
        if clash:
            raise ValueError(f"extra report keys {clash} would replace built ones")
        report.update(extra)
    return report


# -- SLOs ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SloCheck:
    """One SLO compared with a run: e.g. name "p99_ms[MeterValues]", threshold 500.0."""

    name: str
    threshold: float
    value: float | None
    passed: bool
    note: str


def _upper(name: str, threshold: float, value: float | None, missing: str) -> SloCheck:
    """A check that passes when value <= threshold and fails when there is no value."""
    if value is None:
        return SloCheck(name, threshold, None, False, missing)
    passed = value <= threshold
    return SloCheck(name, threshold, value, passed, "" if passed else "above threshold")


def _lower(name: str, threshold: float, value: float | None, missing: str) -> SloCheck:
    """A check that passes when value >= threshold and fails when there is no value."""
    if value is None:
        return SloCheck(name, threshold, None, False, missing)
    passed = value >= threshold
    return SloCheck(name, threshold, value, passed, "" if passed else "below threshold")


def _latency_check(field: str, action: str, threshold: float, report: dict[str, Any]) -> SloCheck:
    name = f"{field}[{action}]"
    row = report["actions"].get(action)
    if row is None or row["count"] == 0:
        # A gate that passes on no data would hide a run that never exercised the action.
        return SloCheck(name, threshold, None, False, "no calls")
    return _upper(name, threshold, row[field], "no latency data (every call was cut off)")


def evaluate_slos(slo: SloConfig, report: dict[str, Any]) -> list[SloCheck]:
    """Every configured SLO checked against a report from build_report, in a stable order.

    Latency SLOs under "*" apply to every action that was called and not named explicitly (an
    explicit entry overrides "*" for its action); "*" with no calls at all fails once. Any SLO
    whose figure has no data fails with a note saying why.
    """
    checks: list[SloCheck] = []
    called = sorted(a for a, row in report["actions"].items() if row["count"] > 0)
    for field in _LATENCY_SLOS:
        limits: dict[str, float] = getattr(slo, field)
        for key, threshold in limits.items():
            if key != "*":
                checks.append(_latency_check(field, key, float(threshold), report))
                continue
            targets = [a for a in called if a not in limits]
            if not called:
                checks.append(SloCheck(f"{field}[*]", float(threshold), None, False, "no calls"))
            for action in targets:
                checks.append(_latency_check(field, action, float(threshold), report))
    totals = report["totals"]
    if slo.max_error_rate is not None:
        rate = totals["error_rate"] if totals["calls"] else None
        checks.append(_upper("error_rate", slo.max_error_rate, rate, "no calls"))
    if slo.max_schedule_lag_ms is not None:
        lag = report["schedule_lag_ms"]["p99"]
        checks.append(_upper("schedule_lag_p99_ms", slo.max_schedule_lag_ms, lag, "no data"))
    if slo.min_connected_ratio is not None:
        chargers = report["chargers"]
        configured = chargers["configured"]
        ratio = (
            round(chargers["connected_end"] / configured, SHARE_DECIMALS) if configured else None
        )
        checks.append(
            _lower("connected_ratio", slo.min_connected_ratio, ratio, "no chargers configured")
        )
    if slo.max_invalid_frames is not None:
        frames = report["invalid_frames"]
        count = float(frames["in"] + frames["out"])
        checks.append(_upper("invalid_frames", float(slo.max_invalid_frames), count, "no data"))
    return checks


def slo_section(checks: list[SloCheck]) -> dict[str, Any]:
    """The report's "slo" entry; passes when every check passes (trivially with no SLOs)."""
    return {"passed": all(c.passed for c in checks), "checks": [asdict(c) for c in checks]}


# -- terminal --------------------------------------------------------------------------------------


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _value(value: float | None) -> str:
    return "no data" if value is None else f"{value:g}"


def render_summary(report: dict[str, Any], checks: list[SloCheck], console: Console) -> None:
    """Print the per-action latency table, the run's key lines and the SLO verdict."""
    table = Table(
        title=Text(f"OCPP calls — {report['scenario']} (latency in ms, from when each was due)"),
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    # Action names are the point of the table: never truncate them; the numbers fit 80 columns.
    table.add_column("action", no_wrap=True, min_width=len("StatusNotification"))
    for header in ("count", "err", "t/o", "p50", "p90", "p99", "p99.9", "max"):
        table.add_column(header, justify="right", no_wrap=True)
    for name, row in report["actions"].items():
        table.add_row(
            name,
            str(row["count"]),
            str(row["errors"]),
            str(row["timeouts"]),
            *(_cell(row[key]) for key in ("p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms")),
        )
    console.print(table)

    totals = report["totals"]
    chargers = report["chargers"]
    lag = report["schedule_lag_ms"]
    invalid = report["invalid_frames"]
    console.print(
        f"calls {totals['calls']} ({totals['calls_per_s']:.1f}/s), "
        f"errors {totals['errors']}, timeouts {totals['timeouts']}, "
        f"error rate {totals['error_rate'] * 100:.3f} %"
    )
    console.print(
        f"chargers {chargers['connected_end']}/{chargers['configured']} connected at end "
        f"(peak {chargers['connected_peak']}), connects {chargers['connects']}, "
        f"reconnects {chargers['reconnects']}, failures {chargers['connect_failures']}, "
        f"connect p99 {_cell(chargers['connect_ms']['p99'])} ms"
    )
    console.print(
        f"sessions {report['sessions']}, energy {report['energy_kwh']:.3f} kWh, "
        f"simulated {report['simulated_s']:.0f} s in {report['wall_s']:.1f} s "
        f"(speed {report['speed']:g}x)"
    )
    console.print(
        f"schedule lag p50 {_cell(lag['p50'])} ms, p99 {_cell(lag['p99'])} ms, "
        f"max {_cell(lag['max'])} ms; invalid frames in {invalid['in']}, out {invalid['out']}"
    )
    for reason in invalid["reasons"][:5]:
        console.print(Text(f"  invalid x{reason['count']}: {reason['reason']}"))
    ledger = report.get("ledger")
    if isinstance(ledger, dict):
        console.print(
            f"transactions started {ledger['transactions_started']}, ended "
            f"{ledger['transactions_ended']}, open {ledger['transactions_open']}; messages "
            f"dropped {ledger['messages_dropped']}, unsent at the end {ledger['messages_unsent']}"
        )
        if ledger["messages_unsent"]:
            console.print(
                Text(
                    "  messages were still queued when the run ended: the CSMS (or the "
                    "generator) could not keep up with the traffic offered",
                    style="yellow",
                )
            )
        verdict = ledger.get("reconciliation")
        if isinstance(verdict, dict):
            against = "the CSMS database" if verdict["csms_checked"] else "itself"
            if verdict["ok"]:
                console.print(f"ledger reconciled with {against}: {verdict['matched']} matched")
            else:
                console.print(Text(f"ledger does NOT reconcile with {against}:", style="bold red"))
                for line in verdict["mismatches"]:
                    console.print(Text(f"  {line}"))
    faults = report.get("faults")
    if faults:
        console.print("faults: " + ", ".join(f"{kind} x{n}" for kind, n in faults.items()))
    for episode in report.get("recovery") or ():
        console.print(_recovery_line(episode))

    if not checks:
        console.print("SLO: none configured")
        return
    for check in checks:
        verdict = "[green]PASS[/green]" if check.passed else "[bold red]FAIL[/bold red]"
        note = f" ({check.note})" if check.note else ""
        line = Text.from_markup(f"{verdict} ")
        line.append(f"{check.name}: {_value(check.value)} vs {check.threshold:g}{note}")
        console.print(line)
    passed = all(c.passed for c in checks)
    console.print(Text.from_markup("SLO: [green]PASS[/green]" if passed else "SLO: [bold red]FAIL"))


def _recovery_line(episode: dict[str, Any]) -> Text:
    """One line per recovery episode: seconds from the end of the disruption to 50/99/100 %
    booted and to drained queues, and connection attempts per charger."""

    def sec(key: str) -> str:
        value = episode.get(key)
        return "never" if value is None else f"{value:.1f} s"

    attempts = episode["reconnect_attempts"]
    text = (
        f"recovery after {episode['kind']} ({episode['scope']}, {episode['chargers']} chargers): "
        f"50% {sec('time_to_50pct_s')}, 99% {sec('time_to_99pct_s')}, "
        f"100% {sec('time_to_100pct_s')}, queues drained {sec('time_to_queues_drained_s')}; "
        f"attempts per charger mean {attempts['mean']} max {attempts['max']}"
    )
    return Text(text, style="" if episode["recovered"] else "yellow")


def format_snapshot(snap: LiveSnapshot) -> str:
    """One status line from a live snapshot."""
    minutes, seconds = divmod(int(snap.elapsed_s), 60)
    return (
        f"{minutes:3d}:{seconds:02d}  chargers {snap.chargers_connected}/{snap.chargers_configured}"
        f"  calls/s {snap.calls_per_s:8.1f}  p99 {snap.p99_ms:8.1f} ms"
        f"  sessions {snap.transactions_active}  errors {snap.errors_total}"
        f"  invalid {snap.invalid_frames}  lag {snap.schedule_lag_ms:.1f} ms"
    )


class LivePanel:
    """Shows a refreshing status line while a run goes on.

    On a terminal it redraws with rich Live every `interval_s`; otherwise (CI logs, pipes) it
    prints a plain line every PLAIN_INTERVAL_S so logs stay small. Each refresh calls
    metrics.snapshot(), so the rate and p99 shown cover the time since the previous line.
    """

    def __init__(self, metrics: FleetMetrics, console: Console, interval_s: float = 1.0) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self.metrics = metrics
        self.console = console
        self.interval_s = interval_s

    async def run(self, stop: asyncio.Event) -> None:
        """Refresh until `stop` is set; returns as soon as it is."""
        if self.console.is_terminal:
            await self._run_live(stop)
        else:
            await self._run_plain(stop)

    @staticmethod
    async def _wait(stop: asyncio.Event, timeout_s: float) -> bool:
        """Sleep up to timeout_s but wake at once on stop; True when stop is set."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout_s)
        return stop.is_set()

    async def _run_live(self, stop: asyncio.Event) -> None:
        # auto_refresh=False: no rich refresh thread reading our state; we redraw ourselves.
        with Live(
            Text(format_snapshot(self.metrics.snapshot())),
            console=self.console,
            auto_refresh=False,
            transient=False,
        ) as live:
            live.refresh()
            while not await self._wait(stop, self.interval_s):
                live.update(Text(format_snapshot(self.metrics.snapshot())), refresh=True)

    async def _run_plain(self, stop: asyncio.Event) -> None:
        interval_s = max(self.interval_s, PLAIN_INTERVAL_S)
        while not await self._wait(stop, interval_s):
            self.console.print(Text(format_snapshot(self.metrics.snapshot())))


def write_report(report: dict[str, Any], path: Path) -> None:
    """Write the report as indented JSON, creating parent directories."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE))
