"""The `fleetsim` command line: run, csms, simulate, validate, scenarios.

A thin layer over the Python API: it parses options, shows progress and tables, and turns every
user mistake into one line on stderr with exit code 2. It holds no simulation logic.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich import box
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from typer.exceptions import TyperException

from simulator.loadcurve import parse_resolution
from simulator.scenario import (
    FaultsConfig,
    Scenario,
    ScenarioError,
    bundled_scenarios,
    describe,
    load_scenario,
    merge_faults,
    parse_duration,
    parse_fault_option,
)

app = typer.Typer(
    name="fleetsim",
    help="Charger-fleet simulator and OCPP load generator: calibrated stochastic EV demand, "
    "run online against a CSMS (OCPP 1.6J / 2.0.1) or offline faster than real time.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
# Error lines quote the user's own text (file names, keys, values): printed as given, never
# as markup or emoji (":smile:" in a key must not become a smiley).
errors = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)

EXIT_USAGE = 2


def fail(message: str) -> NoReturn:
    """Print one line naming the problem and exit with the usage-error code."""
    errors.print(f"fleetsim: error: {message}", markup=False)
    raise typer.Exit(EXIT_USAGE)


def _load(ref: str) -> Scenario:
    try:
        return load_scenario(ref)
    except ScenarioError as exc:
        for line in exc.problems:
            errors.print(line, markup=False)
        raise typer.Exit(EXIT_USAGE) from None


FAULT_HELP = (
    "inject a fault, added to the scenario's `faults` (repeatable): KIND:key=value,... with "
    "KIND drops, outage, connector, power-loss, csms or csms-restart and the keys of its "
    "scenario section; list items joined with '+'. E.g. connector:mtbf=7d,repair=1h, "
    "power-loss:at=2h+26h,downtime=5m, outage:at=60s,duration=30s,site=depot"
)


def _with_faults(scenario: Scenario, options: list[str] | None) -> Scenario:
    """The scenario with the --fault options added to its faults (one line, exit 2, on a bad
    value)."""
    if not options:
        return scenario
    sites = [site.site_name for site in scenario.sites]
    extra: list[FaultsConfig] = []
    for text in options:
        try:
            extra.append(parse_fault_option(text, sites))
        except ValueError as exc:
            fail(str(exc))
    return scenario.model_copy(update={"faults": merge_faults(scenario.faults, extra)})


def _parse_start(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        fail(f"--start: expected an ISO-8601 date or time such as 2025-03-03T00:00 (got {text!r})")


@app.command()
def simulate(
    scenario: Annotated[str, typer.Argument(help="scenario file, or the name of a bundled one")],
    days: Annotated[
        float | None, typer.Option(help="simulated days (default: the scenario's)")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="seed (default: the scenario's)")] = None,
    out: Annotated[
        Path | None, typer.Option(help="output folder (default: out/<scenario>)")
    ] = None,
    chargers: Annotated[
        int | None, typer.Option(help="rescale to N chargers in total, sites kept in proportion")
    ] = None,
    resolution: Annotated[
        str, typer.Option(help="load curve step: 1min, 5min, 15min or 1h")
    ] = "15min",
    start: Annotated[str | None, typer.Option(help="simulated start, ISO-8601")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar or table")] = False,
    fault: Annotated[
        list[str] | None,
        typer.Option(
            "--fault",
            help=FAULT_HELP + ". Offline only connector faults and power loss apply",
        ),
    ] = None,
) -> None:
    """Run a scenario offline, faster than real time, and write sessions, load and summary."""
    from simulator.offline import simulate as run_simulation
    from simulator.output import write_all

    loaded = _with_faults(_load(scenario), fault)
    try:
        resolution_s = parse_resolution(resolution)
    except ValueError as exc:
        fail(f"--resolution: {exc}")
    if days is not None and not 0 < days <= 3660:
        fail(f"--days: expected a number of days in (0, 3660] (got {days})")
    if seed is not None and seed < 0:
        fail(f"--seed: expected a non-negative integer (got {seed})")
    if chargers is not None and chargers < 1:
        fail(f"--chargers: expected at least 1 (got {chargers})")
    start_at = _parse_start(start)
    if chargers is not None and sum(site.chargers for site in loaded.sites) == 0:
        fail(f"--chargers: {scenario} has no chargers to rescale (every site has chargers: 0)")
    out_dir = out or Path("out") / loaded.name

    with Progress(
        TextColumn("[bold]simulating[/bold] {task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}%"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=quiet or not console.is_terminal,
    ) as progress:
        task = progress.add_task(loaded.name, total=1.0)

        def on_progress(done: float, total: float) -> None:
            progress.update(task, completed=done / total)

        result = run_simulation(
            loaded,
            days=days,
            seed=seed,
            chargers=chargers,
            start=start_at,
            resolution=resolution_s,
            on_progress=on_progress,
        )
    try:
        paths = write_all(result, out_dir, resolution_s)
    except OSError as exc:
        fail(f"--out: cannot write to {out_dir}: {exc.strerror or exc}")
    if not quiet:
        _print_summary(result.summary)
        for path in paths:
            console.print(f"wrote {path}")


def _print_summary(summary: dict[str, object]) -> None:
    sites = summary.get("sites")
    if not isinstance(sites, dict):
        return
    title = f"{summary.get('scenario')}: {summary.get('days')} days from {summary.get('start')}"
    table = Table(title=title, box=box.SIMPLE_HEAD, padding=(0, 0), pad_edge=False)
    # Short headers: the table must stay readable in an 80-column terminal.
    for col in (
        "site",
        "sessions",
        "/chg/day",
        "kWh",
        "med kWh",
        "idle",
        "peak kW",
        "coinc.",
        "util.",
        "waited",
        "away",
    ):
        table.add_column(col, justify="left" if col == "site" else "right", no_wrap=True)
    rows = [*sites.items(), ("total", summary.get("total"))]
    for name, s in rows:
        if not isinstance(s, dict):
            continue
        energy = s.get("energy_kwh") or {}

        def fmt(value: object, spec: str) -> str:
            return "-" if value is None else format(value, spec)

        table.add_row(
            str(name),
            fmt(s.get("sessions"), "d"),
            fmt(s.get("sessions_per_charger_per_day"), ".2f"),
            fmt(energy.get("total") or 0, ",.0f"),
            fmt(energy.get("median"), ".1f"),
            fmt(s.get("idle_share"), ".0%"),
            fmt(s.get("peak_kw"), ".1f"),
            fmt(s.get("coincidence_factor"), ".2f"),
            fmt(s.get("utilisation"), ".0%"),
            fmt(s.get("waited"), "d"),
            fmt(s.get("turned_away"), "d"),
        )
    console.print(table)
    console.print(
        "idle: share of plugged-in time not charging; coinc.: peak / installed kW; "
        "util.: share of connector-hours occupied; waited: EVs that queued for a connector; "
        "away: EVs that found none within their patience",
        style="dim",
    )
    _print_control(sites)


def _print_control(sites: dict[str, object]) -> None:
    """The figures that compare load-management policies, for the sites that have control."""
    controlled = [
        (name, s["control"]) for name, s in sites.items() if isinstance(s, dict) and "control" in s
    ]
    if not controlled:
        return
    table = Table(title="site control", box=box.SIMPLE_HEAD, padding=(0, 0), pad_edge=False)
    for col in ("site", "policy", "profiles", "limit kW", "peak kW", "energy", "of unres.", "full"):
        table.add_column(col, justify="left" if col in ("site", "policy") else "right")
    for name, c in controlled:
        if not isinstance(c, dict):
            continue

        def fmt(value: object, spec: str) -> str:
            return "-" if value is None else format(value, spec)

        table.add_row(
            str(name),
            str(c.get("policy") or "-"),
            fmt(c.get("charging_profiles"), "d"),
            fmt(c.get("grid_limit_kw"), ".1f"),
            fmt(c.get("peak_kw"), ".1f"),
            fmt(c.get("energy_delivered_share"), ".1%"),
            fmt(c.get("energy_unrestricted_share"), ".1%"),
            fmt(c.get("sessions_fully_served_share"), ".1%"),
        )
    console.print(table)
    console.print(
        "peak kW: highest instantaneous draw (exact); energy: delivered / requested; "
        "of unres.: delivered / what the EVs would have taken unrestricted in the same stays; "
        "full: sessions that got >= 99 % of that",
        style="dim",
    )


EXIT_SLO_BROKEN = 1


@app.command()
def run(
    scenario: Annotated[str, typer.Argument(help="scenario file, or the name of a bundled one")],
    target: Annotated[
        str | None,
        typer.Option(
            help="CSMS websocket URL (ws:// or wss://); chargers connect to TARGET/<charger id>. "
            "Default: the scenario's target, else an embedded CSMS on loopback"
        ),
    ] = None,
    chargers: Annotated[
        int | None, typer.Option(help="rescale to N chargers in total, sites kept in proportion")
    ] = None,
    speed: Annotated[
        float | None,
        typer.Option(help="simulated seconds per wall second (default: the scenario's)"),
    ] = None,
    duration: Annotated[
        str | None,
        typer.Option(help="wall-clock length of the run: 90s, 10m, 2h (default: the scenario's)"),
    ] = None,
    metrics_port: Annotated[int, typer.Option(help="Prometheus exporter port (0: none)")] = 9464,
    metrics_addr: Annotated[
        str,
        typer.Option(
            help="address the exporter binds (0.0.0.0 lets a Prometheus on another host scrape)"
        ),
    ] = "127.0.0.1",
    report: Annotated[Path | None, typer.Option(help="write the JSON report here")] = None,
    start: Annotated[
        str | None, typer.Option(help="simulated start, ISO-8601 (default: now)")
    ] = None,
    csms_db: Annotated[
        Path | None,
        typer.Option(help="keep the embedded CSMS's SQLite database here (default: discarded)"),
    ] = None,
    no_validate: Annotated[
        bool, typer.Option("--no-validate", help="do not check frames against the OCPP schemas")
    ] = False,
    csms_api_port: Annotated[
        int | None,
        typer.Option(
            help="serve the embedded CSMS's HTTP API on this loopback port (0: any free port); "
            "see `fleetsim csms --help`"
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no live panel")] = False,
    fault: Annotated[list[str] | None, typer.Option("--fault", help=FAULT_HELP)] = None,
) -> None:
    """Run the fleet online against a CSMS, each charger on its own OCPP websocket.

    Time runs at --speed simulated seconds per wall second. What is not given here comes from
    the scenario's `online:` section; a CSMS password comes from online.target.password_env
    or password_file, never from the command line, and online.target.security_profile (1-3)
    selects basic auth, TLS or mutual TLS (the embedded CSMS then serves the same profile).
    Faults (--fault or the scenario's `faults:`) are injected while it runs; the report says
    how the fleet recovered, and reconciles every transaction message with the CSMS.
    Exit code 1 when an SLO of the scenario is broken, the ledger does not reconcile or no
    charger could connect, 2 on a usage error."""
    from simulator.report import render_summary, write_report
    from simulator.run import RunError, RunOptions, run_scenario

    loaded = _with_faults(_load(scenario), fault)
    if chargers is not None and chargers < 1:
        fail(f"--chargers: expected at least 1 (got {chargers})")
    if speed is not None and not 0 < speed <= 100_000:
        fail(f"--speed: expected a number in (0, 100000] (got {speed})")
    if duration is not None:
        try:
            parse_duration(duration)
        except ValueError as exc:
            fail(f"--duration: {exc}")
    if target is not None:
        if not target.startswith(("ws://", "wss://")):
            fail(f"--target: expected a ws:// or wss:// URL (got {target!r})")
        if "@" in target.split("/")[2]:
            # A password on the command line ends up in shell history and `ps`.
            fail(
                "--target: remove the user:password part; set target.password_env or "
                "target.password_file in the scenario instead"
            )
    if not 0 <= metrics_port <= 65535:
        fail(f"--metrics-port: expected a port number (got {metrics_port})")
    if csms_api_port is not None and not 0 <= csms_api_port <= 65535:
        fail(f"--csms-api-port: expected a port number (got {csms_api_port})")
    options = RunOptions(
        target=target,
        chargers=chargers,
        speed=speed,
        duration=duration,
        metrics_port=metrics_port or None,
        metrics_addr=metrics_addr,
        report_path=report,
        live=not quiet,
        start=_parse_start(start),
        csms_db=csms_db,
        validate=False if no_validate else None,
        csms_api_port=csms_api_port,
    )
    try:
        result = run_scenario(loaded, options, errors)
    except RunError as exc:
        fail(str(exc))
    render_summary(result.report, result.checks, console)
    never_connected = result.report["chargers"]["connected_peak"] == 0
    if never_connected:
        reasons = result.report.get("connect_errors") or {"no attempt finished": 0}
        errors.print(
            f"fleetsim: error: no charger could connect: {next(iter(reasons))}", markup=False
        )
    if report is not None:
        try:
            write_report(result.report, report)
        except OSError as exc:
            fail(f"--report: cannot write {report}: {exc.strerror or exc}")
        console.print(f"wrote {report}")
    if not result.passed or never_connected:
        raise typer.Exit(EXIT_SLO_BROKEN)


@app.command()
def csms(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on (0: any free port)")] = 9000,
    db: Annotated[
        Path | None, typer.Option(help="SQLite database file (default: in memory)")
    ] = None,
    heartbeat: Annotated[
        int, typer.Option(help="heartbeat interval given to chargers at boot, seconds")
    ] = 300,
    id_tags: Annotated[
        Path | None,
        typer.Option(help="file of accepted id tags, one per line (default: accept all)"),
    ] = None,
    no_validate: Annotated[
        bool, typer.Option("--no-validate", help="do not check frames against the OCPP schemas")
    ] = False,
    api_port: Annotated[
        int | None,
        typer.Option(help="serve the HTTP API on this port (0: any free port; default: none)"),
    ] = None,
    api_host: Annotated[
        str, typer.Option(help="address of the HTTP API: 127.0.0.1, ::1 or localhost only")
    ] = "127.0.0.1",
    sites: Annotated[
        Path | None,
        typer.Option(help="sites file: grid limit and policy per site for load management"),
    ] = None,
    chaos: Annotated[
        str | None,
        typer.Option(
            help="misbehave towards chargers (fault tests): slow_p=P,slow_s=S,error_p=P,"
            "close_p=P[,actions=A+B][,seed=N]"
        ),
    ] = None,
    no_durable: Annotated[
        bool,
        typer.Option(
            "--no-durable",
            help="answer transaction messages before they are committed (a crash loses them)",
        ),
    ] = False,
    security_profile: Annotated[
        int,
        typer.Option(
            help="OCPP security profile: 1 basic auth, 2 TLS + basic auth (wss://), "
            "3 mutual TLS: a client certificate signed by the CA whose CN is the charger id"
        ),
    ] = 0,
    password_env: Annotated[
        str | None,
        typer.Option(
            help="profiles 1/2: environment variable holding the password; {charger_id} in "
            "it is replaced (a password per charger)"
        ),
    ] = None,
    password_file: Annotated[
        Path | None, typer.Option(help="profiles 1/2: file whose first line is the password")
    ] = None,
    username: Annotated[
        str, typer.Option(help="profiles 1/2: the expected basic-auth user (template)")
    ] = "{charger_id}",
    cert_dir: Annotated[
        Path | None,
        typer.Option(
            help="profiles 2/3: ca.pem, server.pem and server.key, as `fleetsim certs` writes"
        ),
    ] = None,
) -> None:
    """Run the embedded CSMS: OCPP 1.6J and 2.0.1 on ws://HOST:PORT/<charger id>, recording
    boots, statuses, transactions, meter values, notifications and the operations it sends in
    SQLite. Stop with Ctrl-C.

    With --api-port, a JSON HTTP API on loopback sends any operation to a
    connected charger and answers {request, response}. Errors are {"error"}
    with 400 bad input, 404 unknown charger, 409 not connected, 502 CALLERROR
    or no answer. POST bodies need Content-Type: application/json (curl
    --json). Times: ISO-8601, or seconds from the charger's own clock.

    GET  /chargers   /chargers/{id}   /transactions?charger=CP-1&open=true
    GET  /operations?charger=CP-1   /notifications?charger=CP-1&action=A
    GET  /chargers/{id}/configuration?key=HeartbeatInterval
         (2.0.1: ?key=OCPPCommCtrlr.HeartbeatInterval)
    GET  /chargers/{id}/local-list              the local list's version
    POST /chargers/{id}/<operation>, with an example body:
      configuration      {"key": "HeartbeatInterval", "value": 60}
      reset              {"kind": "soft"}  (hard, immediate, on_idle)
      remote-start       {"id_tag": "TAG-1", "evse_id": 1}
      remote-stop        {"transaction_id": "17"}
      charging-profile   {"evse_id": 1, "profile": {"purpose": "TxProfile",
                         "unit": "A", "periods": [{"start_s": 0, "limit": 16}]}}
      clear-charging-profile  {"purpose": "TxDefaultProfile"}
      composite-schedule {"evse_id": 1, "duration_s": 3600, "unit": "W"}
      charging-profiles  {"evse_id": 1}  (2.0.1; answers with the reports)
      availability       {"operative": false, "evse_id": 1}
      unlock             {"evse_id": 1}
      clear-cache        {}
      trigger            {"message": "MeterValues", "evse_id": 1}
      reserve            {"id_tag": "TAG-1", "expiry": 900, "evse_id": 1}
      cancel-reservation {"reservation_id": 12}
      local-list         {"version": 2, "entries": {"TAG-1": "Accepted"}}
      firmware           {"location": "https://fw.example/v2.bin"}
      diagnostics        {"location": "https://logs.example/upload"}
      log                {"location": "...", "log_type": "SecurityLog"} (2.0.1)
      base-report        {"report_base": "FullInventory"}  (2.0.1)
      data-transfer      {"vendor_id": "acme", "message_id": "ping"}
      call               {"action": "Reset", "payload": {"type": "Hard"}}
    """
    from simulator.csms import CsmsConfig, run_csms
    from simulator.csms.http_api import ApiBindError, loopback_family
    from simulator.csms.server import CsmsServer, SecurityError, server_ssl_context
    from simulator.transport import TransportError, read_secret

    if not 0 <= port <= 65535:
        fail(f"--port: expected a port number (got {port})")
    if api_port is not None and not 0 <= api_port <= 65535:
        fail(f"--api-port: expected a port number (got {api_port})")
    try:
        loopback_family(api_host)
    except ApiBindError as exc:
        fail(f"--api-host: {exc}")
    if sites is not None and not sites.is_file():
        fail(f"--sites: no such file: {sites}")
    if heartbeat <= 0:
        fail(f"--heartbeat: expected a positive number of seconds (got {heartbeat})")
    csms_chaos = None
    if chaos is not None:
        from simulator.csms.chaos import parse_chaos

        try:
            csms_chaos = parse_chaos(chaos)
        except ValueError as exc:
            fail(str(exc))
    tags: frozenset[str] | None = None
    if id_tags is not None:
        try:
            lines = id_tags.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            fail(f"--id-tags: cannot read {id_tags}: {exc.strerror or exc}")
        tags = frozenset(line.strip() for line in lines if line.strip())
    if security_profile not in (0, 1, 2, 3):
        fail(f"--security-profile: expected 0, 1, 2 or 3 (got {security_profile})")
    if password_env and password_file:
        fail("give either --password-env or --password-file, not both")
    try:
        password = read_secret(password_env, password_file)
    except TransportError as exc:
        fail(str(exc))
    if password is not None and security_profile not in (1, 2):
        fail(f"--security-profile {security_profile} takes no password (1 and 2 do)")
    config = CsmsConfig(
        host=host,
        port=port,
        db_path=db,
        heartbeat_interval_s=heartbeat,
        id_tags=tags,
        validate=not no_validate,
        api_port=api_port,
        api_host=api_host,
        sites_path=sites,
        durable=not no_durable,
        chaos=csms_chaos,
        security_profile=security_profile,
        password=password,
        username=username,
        cert_dir=cert_dir,
    )
    try:
        server_ssl_context(config)  # certificates and password checked before listening
    except SecurityError as exc:
        fail(str(exc))

    def ready(server: CsmsServer) -> None:
        scheme = "wss" if security_profile >= 2 else "ws"
        errors.print(
            f"fleetsim csms: listening on {scheme}://{host}:{server.port}/<charger id>",
            markup=False,
        )
        if server.api is not None:
            errors.print(f"fleetsim csms: HTTP API on {server.api.url}/", markup=False)

    try:
        run_csms(config, ready)
    except ApiBindError as exc:
        fail(f"--api-port: {exc}")
    except OSError as exc:
        fail(f"--port {port}: cannot listen on {host}: {exc.strerror or exc}")


DEFAULT_CERT_ID_PATTERN = "CP-{index:05d}"


@app.command()
def certs(
    out: Annotated[Path, typer.Option(help="directory to write the certificates into")],
    chargers: Annotated[
        int | None,
        typer.Option(help="client certificates for N chargers (with --scenario: rescale it to N)"),
    ] = None,
    scenario: Annotated[
        str | None,
        typer.Option(help="one client certificate per charger id of this scenario"),
    ] = None,
    charger_id_pattern: Annotated[
        str | None,
        typer.Option(
            help=f"charger ids without --scenario; {{index}} counts from 1 "
            f"(default {DEFAULT_CERT_ID_PATTERN})"
        ),
    ] = None,
    days: Annotated[float, typer.Option(help="days the certificates stay valid")] = 30.0,
) -> None:
    """Write a test PKI for security profiles 2 and 3: ca.pem/ca.key, server.pem/server.key
    for the embedded CSMS (localhost, 127.0.0.1, ::1) and clients/<charger id>.pem/.key
    (CN = charger id), all EC P-256. A CA already in --out signs the new certificates.

    Point a scenario's online.target.cert_dir (or `fleetsim csms --cert-dir`) at --out."""
    import time

    from simulator.certs import CertError, generate_certs
    from simulator.fleet import charger_id

    if chargers is not None and chargers < 1:
        fail(f"--chargers: expected at least 1 (got {chargers})")
    if not 0 < days <= 36500:
        fail(f"--days: expected a number of days in (0, 36500] (got {days})")
    ids: list[str]
    if scenario is not None:
        if charger_id_pattern is not None:
            fail("give either --scenario or --charger-id-pattern: the scenario names its chargers")
        loaded = _load(scenario)
        if chargers is not None:
            if sum(site.chargers for site in loaded.sites) == 0:
                fail(f"--chargers: {scenario} has no chargers to rescale")
            loaded = loaded.rescaled(chargers)
        pattern = loaded.charger_id_pattern
        ids = [
            charger_id(pattern, site.site_name, i)
            for site in loaded.sites
            for i in range(site.chargers)
        ]
    else:
        if chargers is None:
            fail("--chargers: how many client certificates? (or --scenario)")
        pattern = charger_id_pattern or DEFAULT_CERT_ID_PATTERN
        try:
            ids = [pattern.format(index=i + 1) for i in range(chargers)]
        except (KeyError, IndexError, ValueError) as exc:
            fail(f"--charger-id-pattern: {pattern!r} does not format with {{index}}: {exc}")
        if chargers > 1 and ids[0] == ids[1]:
            fail(f"--charger-id-pattern: {pattern!r} must contain {{index}} so charger ids differ")
    began = time.perf_counter()
    try:
        paths = generate_certs(out, ids, days=days)
    except CertError as exc:
        fail(str(exc))
    elapsed = time.perf_counter() - began
    console.print(
        f"wrote {paths.clients} client certificates, the server certificate and the CA to "
        f"{out} in {elapsed:.1f} s",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


@app.command()
def validate(
    scenarios: Annotated[list[str], typer.Argument(help="scenario files or bundled names")],
) -> None:
    """Check scenario files; print every problem with its file and field, exit 2 if any."""
    failed = False
    for ref in scenarios:
        try:
            scenario = load_scenario(ref)
        except ScenarioError as exc:
            failed = True
            for line in exc.problems:
                errors.print(line, markup=False)
            continue
        chargers = sum(s.chargers for s in scenario.sites)
        console.print(f"ok: {ref} ({len(scenario.sites)} sites, {chargers} chargers)", markup=False)
    if failed:
        raise typer.Exit(EXIT_USAGE)


@app.command("scenarios")
def list_scenarios(
    schema: Annotated[
        bool, typer.Option("--schema", help="print the scenario file's JSON Schema")
    ] = False,
    archetypes: Annotated[
        bool,
        typer.Option(
            "--archetypes",
            help="print every archetype's default charger, sources and demand parameters "
            "(what a site's `demand:` may override)",
        ),
    ] = False,
) -> None:
    """List the bundled scenarios with a one-line description."""
    if schema:
        sys.stdout.write(json.dumps(Scenario.model_json_schema(), indent=2) + "\n")
        return
    if archetypes:
        _print_archetypes()
        return
    table = Table(show_header=True)
    table.add_column("scenario")
    table.add_column("description")
    for path in bundled_scenarios():
        table.add_row(path.stem, describe(path))
    console.print(table)


def _print_archetypes() -> None:
    import yaml

    from models.archetypes import ARCHETYPES

    for name, archetype in ARCHETYPES.items():
        c = archetype.default_charger
        private = "private (one car per charger)" if archetype.private_chargers else "shared"
        sys.stdout.write(
            f"# {name}: {archetype.description}\n"
            f"# charger: {c.kind.upper()} {c.power_kw:g} kW, {c.phases} phases, "
            f"{c.connectors} connector(s), {private}\n"
            f"# sources: {archetype.sources}\n"
        )
        params = {name: {"demand": archetype.params.model_dump(mode="json")}}
        sys.stdout.write(yaml.safe_dump(params, sort_keys=False, default_flow_style=None))
        sys.stdout.write("\n")


def main() -> None:
    """Console-script entry point: usage mistakes become one line on stderr and exit code 2."""
    try:
        code = app(standalone_mode=False)
    except TyperException as exc:
        ctx = getattr(exc, "ctx", None)
        where = f"{ctx.command_path}: " if ctx is not None else ""
        message = " ".join(exc.format_message().split())
        if message:  # empty when the help was shown instead (no command given)
            errors.print(f"fleetsim: error: {where}{message} (see --help)", markup=False)
        sys.exit(getattr(exc, "exit_code", EXIT_USAGE))
    except (typer.Abort, KeyboardInterrupt):
        errors.print("fleetsim: interrupted", markup=False)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
