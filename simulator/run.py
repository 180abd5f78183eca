"""An online run (`fleetsim run`): the fleet on a scaled real-time clock, each charger speaking
OCPP to a CSMS, measured, with a report and an SLO verdict at the end.

The runner owns a run's lifetime: it builds the fleet and its links, starts the embedded CSMS
when no target is given, paces connections, shuts down cleanly on a deadline or a signal, and
writes the report. Station behaviour and protocol details live below it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import simpy
from rich.console import Console

from models.calendar import Calendar
from simulator.backoff import RetryBackoff
from simulator.charger import ChargerBehaviour, ChargerControl, ChargerSettings
from simulator.clock import OnlineClock, quiet_gc
from simulator.csms.ledger import CsmsLedger, read_csms_ledger
from simulator.csms.load_manager import write_sites_file
from simulator.events import StopReason
from simulator.fleet import Fleet, FleetOptions
from simulator.injector import FaultInjector
from simulator.ledger import MessageLedger, reconcile
from simulator.link import ChargerLink, LinkContext, LinkPolicy, LinkState
from simulator.metrics import FleetMetrics
from simulator.online import OnlineSink
from simulator.protocol.base import ChargerIdentity, ProtocolAdapter, Timestamps
from simulator.protocol.ops16 import V16Operations
from simulator.protocol.ops201 import V201Operations
from simulator.protocol.v16 import V16Adapter
from simulator.protocol.v201 import V201Adapter
from simulator.recovery import RecoveryTracker
from simulator.report import LivePanel, SloCheck, build_report, evaluate_slos, slo_section
from simulator.scenario import (
    ChargerModel,
    CsmsMisbehaviourConfig,
    OnlineConfig,
    Scenario,
    TargetConfig,
    parse_duration,
)
from simulator.signals import stop_on_signals
from simulator.site_power import SitePowerMeter
from simulator.station import Station
from simulator.transport import (
    ConnectionRamp,
    ConnectSettings,
    TransportError,
    redact_url,
)

_log = logging.getLogger(__name__)

# How long the end of a run waits for queued messages (the final StopTransactions) to go out.
DRAIN_TIMEOUT_S = 15.0
CSMS_START_TIMEOUT_S = 30.0


class RunError(Exception):
    """A run could not start (bad target, busy port, CSMS did not come up): one line."""


@dataclass(frozen=True)
class RunOptions:
    """Command-line overrides of the scenario's `online` settings."""

    target: str | None = None
    chargers: int | None = None
    speed: float | None = None
    duration: str | float | None = None  # "90s", "10m" or seconds
    metrics_port: int | None = 9464  # None: no exporter
    metrics_addr: str = "127.0.0.1"
    report_path: Path | None = None
    live: bool = True
    start: datetime | None = None  # simulated start; default: the wall clock's now
    csms_db: Path | None = None  # embedded CSMS database (default: a temporary file)
    validate: bool | None = None
    csms_api_port: int | None = None  # embedded CSMS's HTTP API (0: a free port; None: none)


@dataclass
class RunResult:
    """What a run produced: the report, the SLO checks, and whether it passed."""

    report: dict[str, Any]
    checks: list[SloCheck]
    interrupted: bool = False
    csms_url: str | None = None
    csms_db: Path | None = None
    links: list[ChargerLink] = field(default_factory=list, repr=False)
    ledger: MessageLedger | None = field(default=None, repr=False)

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)


# -- the embedded CSMS in a child process ---------------------------------------------------------


@dataclass(frozen=True)
class EmbeddedCsms:
    """Where the embedded CSMS listens: its ws:// URL, its HTTP API's URL when it runs, and
    the process itself (a fault scenario kills and restarts it)."""

    url: str
    api_url: str | None = None
    process: CsmsProcess | None = field(default=None, compare=False, repr=False)


class CsmsProcess:
    """The embedded CSMS as a child process, `python -m simulator.csms`, that the run can kill
    and start again on the same ports with the same database, as a backend restart would.

    A child process keeps the CSMS's own work off the generator's core, as a real backend
    would be; it prints its port (and its API's) once it listens."""

    def __init__(self, args: list[str], api_port: int | None) -> None:
        self.args = args  # without --port / --api-port
        self.port = 0
        self.api_port = api_port
        self.restarts = 0
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def start(self) -> EmbeddedCsms:
        args = [*self.args, "--port", str(self.port)]
        if self.api_port is not None:
            args += ["--api-port", str(self.api_port)]
        # Its own session: a Ctrl-C in the terminal reaches the whole foreground process group,
        # and the CSMS must outlive the runner's clean stop, which still delivers the last
        # StopTransactions; the runner terminates it afterwards.
        proc = self._proc = await asyncio.create_subprocess_exec(
            *args,
            stdout=subprocess.PIPE,
            stderr=None,
            stdin=subprocess.PIPE,  # closed when this process ends, however it ends
            start_new_session=True,
        )
        assert proc.stdout is not None
        try:
            async with asyncio.timeout(CSMS_START_TIMEOUT_S):
                line = await proc.stdout.readline()
        except TimeoutError:
            raise RunError("the embedded CSMS did not start within 30 s") from None
        # FLEETSIM_CSMS_LISTENING <port> [<api port>]
        words = line.decode(errors="replace").split()
        expected = 2 if self.api_port is None else 3
        if (
            len(words) != expected
            or words[0] != "FLEETSIM_CSMS_LISTENING"
            or not all(w.isdigit() for w in words[1:])
        ):
            raise RunError("the embedded CSMS failed to start (see the lines above)")
        # A restart listens where the first start did: the chargers know only that URL.
        self.port = int(words[1])
        api_url = None
        if self.api_port is not None:
            self.api_port = int(words[2])
            api_url = f"http://127.0.0.1:{self.api_port}"
        return EmbeddedCsms(f"ws://127.0.0.1:{self.port}", api_url, self)

    async def kill(self, hard: bool = True) -> None:
        """Stop it: SIGKILL (a crash: what it did not commit is lost) or SIGTERM (a clean
        shutdown that writes what it holds)."""
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        if hard:
            proc.kill()
        else:
            proc.terminate()
        try:
            async with asyncio.timeout(10):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()

    async def restart(self) -> None:
        """Start it again on the same ports, retrying while the old socket is released."""
        self.restarts += 1
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CSMS_START_TIMEOUT_S
        while True:
            try:
                await self.start()
                return
            except RunError:
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(0.2)

    async def stop(self) -> None:
        await self.kill(hard=False)


@contextlib.asynccontextmanager
async def embedded_csms(
    db_path: Path,
    heartbeat_s: float = 300.0,
    validate: bool = True,
    api_port: int | None = None,
    sites_path: Path | None = None,
    chaos: str | None = None,
    security_profile: int = 0,
    password_env: str | None = None,
    password_file: Path | None = None,
    username: str = "{charger_id}",
    cert_dir: Path | None = None,
) -> AsyncIterator[EmbeddedCsms]:
    """Start `python -m simulator.csms` on a free loopback port, with its HTTP API on
    `api_port` (0: a free one), site load management from `sites_path` and misbehaviour
    `chaos` (its --chaos option) when given; yields where it listens.

    `security_profile` 1-3 makes it check the basic-auth password (read by the child from
    `password_env`, inherited, or `password_file`: never on its command line) and serve
    TLS (wss://) with the certificates of `cert_dir`."""
    args = [
        sys.executable,
        "-m",
        "simulator.csms",
        "--host",
        "127.0.0.1",
        "--db",
        str(db_path),
        "--heartbeat",
        str(round(heartbeat_s)),
        "--log-level",
        "WARNING",
        "--exit-with-parent",
    ]
    if not validate:
        args.append("--no-validate")
    if sites_path is not None:
        args += ["--sites", str(sites_path)]
    if chaos is not None:
        args += ["--chaos", chaos]
    if security_profile:
        args += ["--security-profile", str(security_profile), "--username", username]
        if password_env is not None:
            args += ["--password-env", password_env]
        if password_file is not None:
            args += ["--password-file", str(password_file)]
        if cert_dir is not None:
            args += ["--cert-dir", str(cert_dir)]
    process = CsmsProcess(args, api_port)
    try:
        csms = await process.start()
        if security_profile >= 2:
            csms = replace(csms, url="wss://" + csms.url.removeprefix("ws://"))
        yield csms
    finally:
        await process.stop()


# -- building the online fleet ------------------------------------------------------------------


def make_adapters(fleet: Fleet, stamps: Timestamps) -> list[tuple[Station, ProtocolAdapter]]:
    """A protocol adapter of the right version and identity for every station of the fleet."""
    out: list[tuple[Station, ProtocolAdapter]] = []
    for station in fleet.stations:
        model = fleet.resolved[station.site.index].config.charger
        identity = ChargerIdentity(
            charger_id=station.charger_id,
            vendor=model.vendor,
            model=model.model,
            serial=f"FS{station.site.index:03d}{station.index:07d}",
            firmware=model.firmware,
        )
        adapter: ProtocolAdapter
        if model.ocpp_version == "2.0.1":
            adapter = V201Adapter(identity, stamps)
        else:
            adapter = V16Adapter(identity, stamps)
        out.append((station, adapter))
    return out


def build_chargers(
    fleet: Fleet, stamps: Timestamps, ctx: LinkContext, online: OnlineConfig
) -> list[ChargerLink]:
    """Every station of the fleet as a networked charger: protocol adapter, the version-agnostic
    charger control (settings, authorisation, operations), its link, and the OCPP operations
    that a CSMS can invoke on it, wired to each other."""
    behaviours: dict[int, tuple[ChargerBehaviour, LinkPolicy]] = {}
    links: list[ChargerLink] = []
    for station, adapter in make_adapters(fleet, stamps):
        model = fleet.resolved[station.site.index].config.charger
        shared = behaviours.get(station.site.index)
        if shared is None:
            shared = behaviours[station.site.index] = (
                ChargerBehaviour.from_model(model),
                link_policy(model),
            )
        behaviour, policy = shared
        settings = ChargerSettings(
            heartbeat_s=ctx.heartbeat_s,
            meter_interval_s=online.meter_interval_s,
            message_attempts=model.message_attempts,
            message_retry_s=model.message_retry_s,
        )
        # The station's `misc` stream: reboot times, firmware outcomes and walk-in drivers are
        # the charger's own draws, so they never shift the demand the fleet sees.
        control = ChargerControl(station, behaviour, settings, station.rng)
        links.append(networked_charger(station, adapter, ctx, control, policy))
    return links


def link_policy(model: ChargerModel) -> LinkPolicy:
    """How chargers of this model reconnect and keep their offline queue."""
    return LinkPolicy(
        RetryBackoff.from_config(model.reconnect),
        model.offline_queue_limit,
        model.offline_queue_policy,
    )


def networked_charger(
    station: Station,
    adapter: ProtocolAdapter,
    ctx: LinkContext,
    control: ChargerControl,
    policy: LinkPolicy | None = None,
) -> ChargerLink:
    """One station's link, with the OCPP operations of its adapter's version, wired both ways:
    the CSMS's calls reach the control through the operations, the control's events (firmware,
    reboots) go out through them, and the control asks the CSMS through the link; a power loss
    of the station takes the link down with it."""
    link = ChargerLink(station, adapter, ctx, control, policy=policy)
    operations: V16Operations | V201Operations
    if adapter.version == "2.0.1":
        operations = V201Operations(link, control)
    else:
        operations = V16Operations(link, control)
    link.operations = operations
    control.listener = operations
    control.remote = link
    control.online = partial(_booted, link)
    station.on_power_loss = partial(_power_lost, control, link)
    return link


def _power_lost(control: ChargerControl, link: ChargerLink, downtime_s: float) -> None:
    control.power_lost(downtime_s)  # the next boot's reason (2.0.1 PowerUp)
    link.power_lost(downtime_s)


def _booted(link: ChargerLink) -> bool:
    return link.state is LinkState.READY


def chaos_option(config: CsmsMisbehaviourConfig | None, seed: int = 0) -> str | None:
    """The embedded CSMS's --chaos value for a scenario's `faults.csms` (None: behave)."""
    if config is None:
        return None
    parts = [
        f"seed={seed}",
        f"slow_p={config.slow_p!r}",
        f"slow_s={config.slow_s!r}",
        f"error_p={config.error_p!r}",
        f"close_p={config.close_p!r}",
    ]
    if config.actions:
        parts.append("actions=" + "+".join(config.actions))
    return ",".join(parts)


def _station_fault(metrics: FleetMetrics, kind: str, what: str) -> None:
    metrics.fault_injected(kind)
    _log.info("fault: %s", what)


@dataclass(frozen=True)
class CsmsBaseline:
    """Where an existing CSMS database stood before a run: its last transaction row and its
    anomaly counts. A run reconciles only what came after, so a database kept across runs
    does not count old transactions or old anomalies."""

    last_row: int = 0
    anomalies: dict[str, int] = field(default_factory=dict)


def csms_baseline(db: Path) -> CsmsBaseline:
    if not db.exists():
        return CsmsBaseline()
    try:
        before = read_csms_ledger(db, after_row=2**62)
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            row = conn.execute("SELECT coalesce(max(id), 0) FROM transactions").fetchone()
    except sqlite3.Error:
        return CsmsBaseline()  # not a CSMS database yet: the CSMS creates its tables
    return CsmsBaseline(int(row[0]), before.anomalies)


def _start_time(options: RunOptions, scenario: Scenario) -> datetime:
    """--start, else the scenario's start, else now: at speed 1 the CSMS's clock and the
    simulated timestamps then agree."""
    if options.start is not None:
        start = options.start
        if start.tzinfo is None:
            start = start.replace(tzinfo=ZoneInfo(scenario.timezone))
        return start.astimezone(UTC)
    if scenario.start is not None:
        return scenario.start_utc()
    return datetime.now(UTC).replace(microsecond=0)


def _fleet_power_kw(fleet: Fleet) -> float:
    now = fleet.env.now
    total = 0.0
    for station in fleet.stations:
        for connector in station.connectors:
            if connector.tx is not None:
                total += connector.sample(now).power_w
    return total / 1000.0


# -- the run ------------------------------------------------------------------------------------


class Runner:
    """One online run of a scenario, from connecting the fleet to writing the report."""

    def __init__(
        self,
        scenario: Scenario,
        options: RunOptions,
        console: Console | None = None,
        metrics: FleetMetrics | None = None,
    ) -> None:
        if options.chargers is not None:
            scenario = scenario.rescaled(options.chargers)
        self.scenario = scenario
        self.options = options
        self.console = console or Console(stderr=True)
        online = scenario.online
        self.speed = options.speed if options.speed is not None else online.speed
        if self.speed <= 0:
            raise RunError("--speed must be positive")
        duration = options.duration if options.duration is not None else online.duration
        try:
            self.duration_s = (
                float(duration) if isinstance(duration, int | float) else parse_duration(duration)
            )
        except ValueError as exc:
            raise RunError(f"--duration: {exc}") from None
        self.validate = online.validate_frames if options.validate is None else options.validate
        self.metrics = metrics or FleetMetrics()
        self.stop_event = asyncio.Event()
        self.interrupted = False
        self.links: list[ChargerLink] = []  # the run's chargers, once built (for watchers)

    def request_stop(self, interrupted: bool = True) -> None:
        """End the run early (Ctrl-C, SIGTERM): it still stops cleanly and reports."""
        self.interrupted = self.interrupted or interrupted
        self.stop_event.set()

    async def run(self) -> RunResult:
        options = self.options
        target = options.target or self.scenario.online.target.url
        faults = self.scenario.faults
        if target is not None:
            if options.csms_api_port is not None:
                raise RunError("--csms-api-port needs the embedded CSMS (no --target)")
            if faults.csms is not None or faults.csms_restarts:
                raise RunError(
                    "faults.csms and faults.csms_restarts act on the embedded CSMS: "
                    "they cannot be used with a target"
                )
            result = await self._run_against(target, None, embedded=False)
            self._reconcile(result, None)
            return result
        if options.csms_db is not None:
            db = options.csms_db
            db.parent.mkdir(parents=True, exist_ok=True)
            baseline = csms_baseline(db)
            async with self._embedded_csms(db) as csms:
                result = await self._run_against(csms.url, db, embedded=True, csms=csms.process)
            # The CSMS has stopped and written everything: hold the ledger against its books.
            self._reconcile(result, db, baseline)
            return result
        with tempfile.TemporaryDirectory(prefix="fleetsim-csms-") as tmp:
            db = Path(tmp) / "csms.db"
            async with self._embedded_csms(db) as csms:
                result = await self._run_against(csms.url, None, embedded=True, csms=csms.process)
            self._reconcile(result, db)
            return result

    def _reconcile(
        self, result: RunResult, db: Path | None, baseline: CsmsBaseline | None = None
    ) -> None:
        """Reconcile the run's ledger with the CSMS's database (None: with itself only); a
        mismatch fails the run."""
        csms = None
        if db is not None:
            baseline = baseline or CsmsBaseline()
            try:
                read = read_csms_ledger(db, after_row=baseline.last_row)
            except (OSError, sqlite3.Error) as exc:
                raise RunError(f"cannot read the embedded CSMS's database {db}: {exc}") from None
            anomalies = {
                kind: n - baseline.anomalies.get(kind, 0) for kind, n in read.anomalies.items()
            }
            csms = CsmsLedger(read.transactions, anomalies)
        ledger = result.ledger
        if ledger is None:
            return
        verdict = reconcile(ledger, csms, {link.charger_id for link in result.links})
        result.report["ledger"]["reconciliation"] = verdict.as_dict()
        note = "" if verdict.ok else f"{verdict.counts['mismatches']} mismatches"
        check = SloCheck(
            "ledger_reconciled", 0.0, float(verdict.counts["mismatches"]), verdict.ok, note
        )
        result.checks.append(check)
        result.report["slo"] = slo_section(result.checks)

    @contextlib.asynccontextmanager
    async def _embedded_csms(self, db: Path) -> AsyncIterator[EmbeddedCsms]:
        api_port = self.options.csms_api_port
        with tempfile.TemporaryDirectory(prefix="fleetsim-sites-") as tmp:
            # Sites with a grid limit are managed by the embedded CSMS, as a real backend's
            # load management would: it pushes the TxProfiles over OCPP.
            sites_path: Path | None = Path(tmp) / "sites.json"
            assert sites_path is not None
            if write_sites_file(self.scenario, sites_path) == 0:
                sites_path = None
            target = await self._embedded_target(Path(tmp))
            async with embedded_csms(
                db,
                validate=self.validate,
                api_port=api_port,
                sites_path=sites_path,
                chaos=chaos_option(self.scenario.faults.csms, self.scenario.seed),
                security_profile=target.security_profile,
                password_env=target.password_env,
                password_file=target.password_file,
                username=target.username,
                cert_dir=target.cert_dir,
            ) as csms:
                if csms.api_url is not None:
                    self.console.print(f"CSMS HTTP API: {csms.api_url}/", markup=False)
                yield csms

    async def _embedded_target(self, tmp: Path) -> TargetConfig:
        """The scenario's target for the embedded CSMS: with security profile 2 or 3 and no
        `cert_dir`, a test PKI for this run's chargers is written under `tmp`, and the
        scenario the chargers connect with names it (they take its CA and client files).
        The CSMS's own checks of its password and certificates run here first, so a mistake
        is one line from the runner rather than a child process that would not start."""
        scenario = self.scenario
        target = scenario.online.target
        if target.security_profile == 0:
            return target
        from simulator.csms.server import CsmsConfig, SecurityError, server_ssl_context
        from simulator.transport import load_password

        try:
            password = load_password(target)
        except TransportError as exc:
            raise RunError(str(exc)) from None
        if target.security_profile >= 2 and target.cert_dir is None:
            from simulator.certs import CertError, generate_certs
            from simulator.fleet import charger_id

            ids = [
                charger_id(scenario.charger_id_pattern, site.site_name, i)
                for site in scenario.sites
                for i in range(site.chargers)
            ]
            cert_dir = tmp / "certs"
            days = self.duration_s / 86400.0 + 1.0  # valid for the whole run
            try:
                # About 0.5 ms per charger: off the loop, so a Ctrl-C is still heard.
                await asyncio.to_thread(generate_certs, cert_dir, ids, days)
            except CertError as exc:
                raise RunError(f"cannot create certificates for the embedded CSMS: {exc}") from None
            target = target.model_copy(update={"cert_dir": cert_dir})
            online = scenario.online.model_copy(update={"target": target})
            self.scenario = scenario.model_copy(update={"online": online})
        try:
            server_ssl_context(
                CsmsConfig(
                    security_profile=target.security_profile,
                    password=password,
                    cert_dir=target.cert_dir,
                )
            )
        except SecurityError as exc:
            raise RunError(f"target.cert_dir: {exc}") from None
        return target

    async def _run_against(
        self, target: str, db: Path | None, embedded: bool, csms: CsmsProcess | None = None
    ) -> RunResult:
        scenario, metrics = self.scenario, self.metrics
        online = scenario.online
        try:
            settings = ConnectSettings.from_target(online.target, target, online.ping_interval_s)
        except TransportError as exc:
            raise RunError(str(exc)) from None

        start = _start_time(self.options, scenario)
        env = simpy.Environment()
        calendar = Calendar(start, scenario.timezone)
        power = SitePowerMeter(
            {
                site.site_name: site.load_management.grid_limit_kw * 1000.0
                for site in scenario.sites
                if site.load_management is not None
            }
        )
        sink = OnlineSink(metrics, power)
        fleet = Fleet(
            scenario,
            env,
            calendar,
            sink,
            sink,
            FleetOptions(meter_interval_s=online.meter_interval_s),
        )
        clock = OnlineClock(env, self.speed, on_lag=metrics.schedule_lag)
        ctx = LinkContext(
            clock=clock,
            settings=settings,
            ramp=ConnectionRamp(online.ramp),
            observer=metrics,
            validate=self.validate,
            call_timeout_s=online.call_timeout_s,
            heartbeat_s=online.heartbeat_s or 300.0,
        )
        stamps = Timestamps(start)
        links = self.links = build_chargers(fleet, stamps, ctx, online)
        for link in links:
            sink.attach(link)
        for version in {link.adapter.version for link in links}:
            ctx.validator(version)
        metrics.set_chargers(len(links))
        if self.options.metrics_port is not None:
            try:
                metrics.serve(self.options.metrics_port, self.options.metrics_addr)
            except OSError as exc:
                raise RunError(
                    f"--metrics-port {self.options.metrics_port}: {exc.strerror or exc}"
                ) from None
        # The fleet is built: freeze it out of the collector's way, collect young objects less
        # often, and freeze again once the connections are up (see _freeze_when_connected).
        gc.collect()
        if fleet.fault_log is not None:
            fleet.fault_log.listener = partial(_station_fault, metrics)
        tracker = RecoveryTracker(links)
        injector = FaultInjector(
            scenario.faults, links, ctx, tracker, metrics, csms, seed=scenario.seed
        )
        with quiet_gc():
            sim_s, connected_end, wall_s = await self._drive(fleet, links, ctx, injector)
        for link in links:
            ctx.ledger.count_unsent(list(link.queue))
        metrics.set_fleet_power_kw(0.0)
        report = build_report(
            metrics,
            scenario_name=scenario.name,
            chargers=len(links),
            wall_s=wall_s,
            sim_s=sim_s,
            speed=self.speed,
            sessions=sink.ledger.sessions,
            energy_kwh=sink.ledger.energy_wh / 1000.0,
            extra={
                "target": "embedded CSMS" if embedded else redact_url(target),
                "start": start.isoformat(),
                "ledger": {
                    "transactions_started": sink.ledger.started,
                    "transactions_ended": sink.ledger.ended,
                    "transactions_open": sink.ledger.open,
                    "energy_wh": round(sink.ledger.energy_wh, 3),
                    **ctx.ledger.summary(),
                },
                "faults": dict(sorted(metrics.faults.items())),
                "recovery": tracker.report(),
                "connect_errors": dict(
                    sorted(ctx.connect_errors.items(), key=lambda kv: -kv[1])[:10]
                ),
                "interrupted": self.interrupted,
            },
        )
        # Booted and connected when the run ended, before the shutdown closed every connection.
        report["chargers"]["connected_end"] = connected_end
        report["sites"] = power.report(fleet.env.now)
        checks = evaluate_slos(scenario.slo, report)
        report["slo"] = slo_section(checks)
        return RunResult(report, checks, self.interrupted, target, db, links, ctx.ledger)

    async def _drive(
        self, fleet: Fleet, links: list[ChargerLink], ctx: LinkContext, injector: FaultInjector
    ) -> tuple[float, int, float]:
        """Run the fleet until the duration ends or a stop is requested, then stop it cleanly;
        returns (simulated seconds, chargers connected at the end, wall seconds)."""
        metrics, clock = self.metrics, ctx.clock
        wall_start = time.monotonic()
        clock.start()
        for link in links:
            link.start()
        clock_task = asyncio.create_task(clock.run())
        tasks = [
            clock_task,
            asyncio.create_task(self._sample_power(fleet)),
            asyncio.create_task(_freeze_when_connected(links)),
            asyncio.create_task(_probe_loop_lag(metrics)),
            asyncio.create_task(injector.tracker.run()),
            *injector.tasks(),
        ]
        if self.options.live:
            panel = LivePanel(metrics, self.console)
            tasks.append(asyncio.create_task(panel.run(self.stop_event)))
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.duration_s):
                    await self.stop_event.wait()
            self.stop_event.set()
            sim_s = clock.sim_now() - clock.sim0
            clock.stop()
            await clock_task
            await self._finish(fleet, links, ctx)
            injector.tracker.close()
            connected_end = sum(1 for link in links if link.state is LinkState.READY)
        finally:
            self.stop_event.set()
            ctx.closing = True
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await asyncio.gather(*(link.close() for link in links), return_exceptions=True)
            metrics.close()
        return sim_s, connected_end, time.monotonic() - wall_start

    async def _finish(self, fleet: Fleet, links: list[ChargerLink], ctx: LinkContext) -> None:
        """Stop open transactions (if the scenario says so) and let the queues drain."""
        env = fleet.env
        if self.scenario.online.on_stop == "stop":
            for station in fleet.stations:
                for connector in station.connectors:
                    connector.end_transaction(StopReason.OTHER)
            # Process the stops at the simulated instant the run ended; nothing later runs.
            while env.peek() <= env.now:
                env.step()
        ctx.draining = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DRAIN_TIMEOUT_S
        while loop.time() < deadline and not all(link.idle for link in links):
            await asyncio.sleep(0.05)

    async def _sample_power(self, fleet: Fleet) -> None:
        """Fleet power for the gauge, once a second (10,000 chargers: a few milliseconds)."""
        while True:
            self.metrics.set_fleet_power_kw(_fleet_power_kw(fleet))
            await asyncio.sleep(1.0)


async def _probe_loop_lag(metrics: FleetMetrics, period_s: float = 0.1) -> None:
    """Schedule lag of the event loop itself: how late a 100 ms sleep wakes up.

    The clock reports lag only when simulation events fall due; protocol timers (heartbeats,
    retries) run on the loop, so a generator saturated by them alone shows here."""
    while True:
        began = time.monotonic()
        await asyncio.sleep(period_s)
        metrics.schedule_lag(time.monotonic() - began - period_s)


async def _freeze_when_connected(links: list[ChargerLink], patience_s: float = 120.0) -> None:
    """Freeze the heap once every charger has first booted (or after `patience_s`).

    Each connection is ~25 KB of long-lived objects; left in the collected generations, every
    full collection walks all of them (about 0.6 s at 10,000 chargers, measured by
    benchmarks/online.py) and steals the generator's core. What dies after the freeze is
    freed by reference counting as usual; only reference cycles among frozen objects wait
    for the end of the run."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience_s
    while loop.time() < deadline and not all(link.state is LinkState.READY for link in links):
        await asyncio.sleep(0.5)
    gc.freeze()


def run_scenario(
    scenario: Scenario, options: RunOptions, console: Console | None = None
) -> RunResult:
    """Run a scenario online on uvloop until its duration ends or SIGINT/SIGTERM arrives."""
    import uvloop

    async def main() -> RunResult:
        runner = Runner(scenario, options, console)
        with stop_on_signals(asyncio.get_running_loop(), runner.request_stop):
            return await runner.run()

    return uvloop.run(main())


__all__ = [
    "EmbeddedCsms",
    "RunError",
    "RunOptions",
    "RunResult",
    "Runner",
    "build_chargers",
    "embedded_csms",
    "make_adapters",
    "networked_charger",
    "run_scenario",
]
