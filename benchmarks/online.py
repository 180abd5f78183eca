"""Online generator throughput and memory: N idle chargers, then a sustained Heartbeat load.

Everything runs on 127.0.0.1. A minimal CSMS (canned orjson answers, no validation, no
database) runs in child processes so that the generator, driven in this process through the
`Runner` API of `fleetsim run`, is what is measured. Two runs of the same fleet:

1. idle: every charger connects and boots (the CSMS hands out a one-day heartbeat interval),
   giving the connect rate and the resident memory of a connected, idle fleet;
2. load: the CSMS hands out a heartbeat interval that, at the chosen speed, makes the fleet
   offer `--rate` Heartbeats per second; over a fixed window it measures the calls answered,
   the generator's CPU time, latency percentiles and errors.

Targets (issue): 10,000 chargers in one process under 400 MB RSS, and at least 10,000 OCPP
calls per second per generator core. One JSON object goes to stdout. Run with
`python benchmarks/online.py` (10,000 chargers, about 2 minutes) or `--quick` (1,000 chargers,
5 s window, a smoke run).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

# The generator's imports are deferred to `main` so a CSMS worker (the same file run with
# --csms-worker) starts fast and stays small.

HOST = "127.0.0.1"
IDLE_INTERVAL_S = 86_400  # heartbeat interval of the idle run: none fall in the run
LOAD_INTERVAL_S = 60  # heartbeat interval of the load run (simulated seconds)
CONNECT_TIMEOUT_S = 180.0
CSMS_START_TIMEOUT_S = 20.0
RSS_TARGET_MB = 400.0
CALLS_PER_CORE_TARGET = 10_000.0
QUIET_GC_THRESHOLD = 50_000  # as simulator.clock.RUN_GC_THRESHOLD, for --gc quiet/freeze
_CANNED_TIME = "2025-01-06T00:00:00.000Z"


# -- the minimal CSMS (child process) --------------------------------------------------------------


def _canned(version: str) -> dict[str, bytes]:
    """Schema-valid CALLRESULT payloads of every charger-initiated action, serialised once."""
    if version == "1.6":
        table: dict[str, Any] = {
            "Heartbeat": {"currentTime": _CANNED_TIME},
            "StatusNotification": {},
            "Authorize": {"idTagInfo": {"status": "Accepted"}},
            "StopTransaction": {"idTagInfo": {"status": "Accepted"}},
            "MeterValues": {},
            "DataTransfer": {"status": "Accepted"},
            "DiagnosticsStatusNotification": {},
            "FirmwareStatusNotification": {},
        }
    else:
        table = {
            "Heartbeat": {"currentTime": _CANNED_TIME},
            "StatusNotification": {},
            "Authorize": {"idTokenInfo": {"status": "Accepted"}},
            "TransactionEvent": {},
            "MeterValues": {},
            "NotifyEvent": {},
            "NotifyReport": {},
            "SecurityEventNotification": {},
        }
    return {action: orjson.dumps(payload) for action, payload in table.items()}


_TABLES = {"ocpp1.6": _canned("1.6"), "ocpp2.0.1": _canned("2.0.1")}


def _boot_answer(interval: int) -> bytes:
    return orjson.dumps({"status": "Accepted", "currentTime": _CANNED_TIME, "interval": interval})


def _interval_of(path: str, default: int) -> int:
    """Chargers connect to /i{interval}/{charger_id}: the interval their boot is answered with."""
    first = path.lstrip("/").split("/", 1)[0]
    if first.startswith("i") and first[1:].isdigit():
        return int(first[1:])
    return default


async def _csms_connection(ws: Any, default_interval: int) -> None:
    """Answer every CALL of one charger with a canned CALLRESULT; no validation, no state."""
    from websockets.exceptions import ConnectionClosed

    table = _TABLES.get(ws.subprotocol or "", _TABLES["ocpp1.6"])
    boot = _boot_answer(_interval_of(ws.request.path, default_interval))
    loads, dumps = orjson.loads, orjson.dumps
    recv, send = ws.recv, ws.send
    tx_id = 0
    with contextlib.suppress(ConnectionClosed):
        while True:
            frame = loads(await recv(decode=False))
            if type(frame) is not list or len(frame) != 4 or frame[0] != 2:
                continue
            action = frame[2]
            body = table.get(action)
            if body is None:
                if action == "BootNotification":
                    body = boot
                elif action == "StartTransaction":
                    tx_id += 1
                    body = dumps({"idTagInfo": {"status": "Accepted"}, "transactionId": tx_id})
                else:
                    reply = dumps([4, frame[1], "NotImplemented", "", {}])
                    await send(reply, text=True)
                    continue
            await send(b"[3," + dumps(frame[1]) + b"," + body + b"]", text=True)


def _exit_when_parent_goes() -> None:
    """The parent holds our stdin: when it closes (the parent ended), end this process."""
    with contextlib.suppress(OSError):
        while sys.stdin.buffer.read(4096):
            pass
    os._exit(0)


async def _csms_main(port: int, interval: int) -> None:
    from websockets.asyncio.server import serve
    from websockets.typing import Subprotocol

    async def handler(ws: Any) -> None:
        await _csms_connection(ws, interval)

    server = await serve(
        handler,
        HOST,
        port,
        subprotocols=[Subprotocol("ocpp1.6"), Subprotocol("ocpp2.0.1")],
        compression=None,
        ping_interval=None,
        max_size=256 * 1024,
        max_queue=32,
        reuse_port=True,
        backlog=4096,
    )
    bound = server.sockets[0].getsockname()[1]
    print(f"FLEETSIM_BENCH_CSMS_LISTENING {bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()


def csms_worker(port: int, interval: int) -> int:
    """Entry point of a CSMS child: serve on `port` (0: any) with SO_REUSEPORT until SIGTERM."""
    import uvloop

    threading.Thread(target=_exit_when_parent_goes, daemon=True).start()
    gc.freeze()
    uvloop.run(_csms_main(port, interval))
    sys.stdout.flush()
    os._exit(0)  # no interpreter shutdown under the daemon thread blocked on stdin


# -- process helpers ------------------------------------------------------------------------------

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def rss_mb() -> float:
    """Current resident set size of this process (VmRSS), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return math.nan


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def process_cpu_s() -> tuple[float, float]:
    """User and system CPU seconds of this process (all threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


class GcTimer:
    """Counts the garbage collector's passes and their wall time while installed."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.passes = [0, 0, 0]
        self.longest_s = 0.0
        self._began = 0.0

    def __enter__(self) -> GcTimer:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *_: object) -> None:
        gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
            return
        took = time.perf_counter() - self._began
        self.seconds += took
        self.longest_s = max(self.longest_s, took)
        self.passes[info["generation"]] += 1


def child_cpu_s(pid: int) -> float:
    """User + system CPU seconds of another process, from /proc/<pid>/stat."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return math.nan
    fields = text.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


class CsmsProcesses:
    """The benchmark's CSMS workers, sharing one port through SO_REUSEPORT."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.port = 0

    def start(self, workers: int, interval: int) -> None:
        for _ in range(workers):
            proc = subprocess.Popen(
                [
                    sys.executable,
                    os.path.abspath(__file__),
                    "--csms-worker",
                    "--port",
                    str(self.port),
                    "--interval",
                    str(interval),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
            self.procs.append(proc)
            line = self._first_line(proc)
            words = line.decode(errors="replace").split()
            if len(words) != 2 or words[0] != "FLEETSIM_BENCH_CSMS_LISTENING":
                raise RuntimeError(f"the benchmark CSMS did not start: {line!r}")
            self.port = int(words[1])

    @staticmethod
    def _first_line(proc: subprocess.Popen[bytes]) -> bytes:
        assert proc.stdout is not None
        out: list[bytes] = []
        reader = threading.Thread(target=lambda: out.append(proc.stdout.readline()))  # type: ignore[union-attr]
        reader.start()
        reader.join(CSMS_START_TIMEOUT_S)
        return out[0] if out else b"(no answer within the start timeout)"

    def cpu_s(self) -> float:
        return sum(child_cpu_s(p.pid) for p in self.procs)

    def kill(self) -> None:
        """Terminate every worker (and kill those that do not go); safe to call twice."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# -- measurements ---------------------------------------------------------------------------------


def _make_metrics_class() -> type:
    from simulator.metrics import FleetMetrics, LatencyHistogram

    class BenchMetrics(FleetMetrics):
        """FleetMetrics that also note the first connection attempt, the moment the last
        charger booted, and (while a window is open) Heartbeat latency and round trip."""

        def __init__(self, chargers: int) -> None:
            super().__init__()
            self.expected = chargers
            self.first_attempt: float | None = None
            self.booted = 0
            self.all_booted_at: float | None = None
            self.window: LatencyHistogram | None = None
            self.window_rtt = LatencyHistogram()

        def connect_attempt(self) -> None:
            if self.first_attempt is None:
                self.first_attempt = time.monotonic()
            super().connect_attempt()

        def call_done(
            self, version: str, action: str, outcome: str, latency_s: float, rtt_s: float
        ) -> None:
            super().call_done(version, action, outcome, latency_s, rtt_s)
            window = self.window
            if window is not None:
                if action == "Heartbeat" and outcome == "result":
                    window.record(latency_s)
                    self.window_rtt.record(rtt_s)
            elif action == "BootNotification" and outcome == "result":
                self.booted += 1
                if self.booted == self.expected:
                    self.all_booted_at = time.monotonic()

    return BenchMetrics


@dataclass
class Totals:
    """Fleet-wide call counters at one instant (from FleetMetrics.stats())."""

    calls: int = 0
    errors: int = 0
    timeouts: int = 0
    closed: int = 0
    statuses: int = 0
    invalid: int = 0
    by_action: dict[str, int] = field(default_factory=dict)

    @classmethod
    def read(cls, metrics: Any) -> Totals:
        stats = metrics.stats()
        out = cls(invalid=stats.invalid_in + stats.invalid_out)
        for name, action in stats.actions.items():
            out.calls += action.count
            out.errors += action.errors
            out.timeouts += action.timeouts
            out.closed += action.closed
            out.by_action[name] = action.count
        out.statuses = out.by_action.get("StatusNotification", 0)
        return out


async def _loop_lag_probe(hist: Any, period_s: float = 0.01) -> None:
    """How late the event loop wakes a 10 ms sleep: the generator's own scheduling delay."""
    while True:
        before = time.monotonic()
        await asyncio.sleep(period_s)
        hist.record(time.monotonic() - before - period_s)


def _profiler(path: Path | None) -> Any:
    """A running cProfile.Profile when `path` is given (the load window is profiled)."""
    if path is None:
        return None
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    return profiler


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


def _scenario(args: argparse.Namespace, speed: float) -> Any:
    from simulator.scenario import parse_scenario

    return parse_scenario(
        {
            "name": "bench-online",
            "sites": [
                {
                    "name": "bench",
                    "archetype": "home",
                    "chargers": args.chargers,
                    # No arrivals at all: the chargers only boot, report status and heartbeat.
                    "demand": {"sessions_per_charger_day": 0},
                    "charger": {"ocpp_version": args.version},
                }
            ],
            "online": {
                "speed": speed,
                "duration": f"{args.timeout}s",
                "ramp": args.ramp,
                "ping_interval_s": None,
                "validate_frames": not args.no_validate,
                "call_timeout_s": 30,
            },
        },
        "benchmarks/online.py",
    )


class FleetRun:
    """One Runner driven as a task: start it, wait until the fleet is up, stop it."""

    def __init__(self, args: argparse.Namespace, url: str, speed: float) -> None:
        from simulator.run import Runner, RunOptions

        self.chargers = args.chargers
        self.timeout_s = float(args.timeout)
        self.metrics = _make_metrics_class()(args.chargers)
        self.runner = Runner(
            _scenario(args, speed),
            RunOptions(target=url, metrics_port=None, live=False, duration=float(args.timeout)),
            metrics=self.metrics,
        )
        self.began = 0.0
        self.task: asyncio.Task[Any] | None = None

    def start(self) -> None:
        self.began = time.monotonic()
        self.task = asyncio.create_task(self.runner.run())

    async def wait_up(self, statuses_per_charger: int) -> bool:
        """Until every charger booted and sent its boot statuses; False on timeout."""
        deadline = time.monotonic() + min(CONNECT_TIMEOUT_S, self.timeout_s / 3)
        want = self.chargers * statuses_per_charger
        while time.monotonic() < deadline:
            assert self.task is not None
            if self.task.done():
                self.task.result()  # raises what ended the run
                return False
            if (
                self.metrics.all_booted_at is not None
                and Totals.read(self.metrics).statuses >= want
            ):
                return True
            await asyncio.sleep(0.05)
        return False

    async def stop(self) -> dict[str, Any]:
        """End the run cleanly; its report."""
        self.runner.request_stop(interrupted=False)
        assert self.task is not None
        result = await self.task
        report: dict[str, Any] = result.report
        return report


# -- the benchmark --------------------------------------------------------------------------------


async def measure(args: argparse.Namespace, csms: CsmsProcesses) -> dict[str, Any]:
    from simulator.metrics import LatencyHistogram

    chargers = args.chargers
    base = f"ws://{HOST}:{csms.port}"
    # Boot statuses of a home charger (one connector): 1.6 also reports connector 0.
    statuses = 2 if args.version == "1.6" else 1
    gc.collect()
    rss_before = rss_mb()

    # 1. idle: connect and boot the whole fleet, measure memory once it is quiet.
    idle = FleetRun(args, f"{base}/i{IDLE_INTERVAL_S}", speed=1.0)
    idle.start()
    up = await idle.wait_up(statuses)
    m = idle.metrics
    stats = m.stats()
    first = m.first_attempt or idle.began
    booted_at = m.all_booted_at or time.monotonic()
    connect_s = booted_at - first
    await asyncio.sleep(args.idle_s)
    gc.collect()
    rss_idle = rss_mb()
    idle_stats = m.stats()
    idle_totals = Totals.read(m)
    idle_report = await idle.stop()
    connect = {
        "all_up": up,
        "connected": stats.chargers_connected_peak,
        "connected_after_idle": idle_stats.chargers_connected,
        "booted": m.booted,
        "build_seconds": round(first - idle.began, 3),
        "connect_seconds": round(connect_s, 3),
        "connections_per_s": round(chargers / connect_s, 1) if connect_s > 0 else None,
        "connect_attempts": stats.connect_attempts,
        "connect_failures": stats.connect_failures,
        "connect_failure_reasons": dict(stats.connect_failure_reasons),
        "connect_ms_p50": _ms(stats.connect_time.percentile(50.0)),
        "connect_ms_p99": _ms(stats.connect_time.percentile(99.0)),
        "idle_calls": idle_totals.by_action,
        "sessions": idle_report["sessions"],
    }
    del idle, m, stats, idle_stats
    gc.collect()

    # 2. load: every charger heartbeats so that the fleet offers `rate` calls per second.
    speed = LOAD_INTERVAL_S * args.rate / chargers
    load = FleetRun(args, f"{base}/i{LOAD_INTERVAL_S}", speed=speed)
    load.start()
    load_up = await load.wait_up(statuses)
    lm = load.metrics
    gc_saved = gc.get_threshold()
    if args.gc != "default":
        # What-if experiment (not what users get): tune the collector once the fleet is up.
        gc.set_threshold(QUIET_GC_THRESHOLD, gc_saved[1], gc_saved[2])
        if args.gc == "freeze":
            gc.freeze()
    await asyncio.sleep(args.settle_s)
    loop_lag = LatencyHistogram()
    probe = asyncio.create_task(_loop_lag_probe(loop_lag))
    lag0 = lm.stats().schedule_lag
    t0 = Totals.read(lm)
    lm.window = LatencyHistogram()
    profiler = _profiler(args.profile)
    with GcTimer() as gc_timer:
        wall0, (user0, sys0), csms0 = time.monotonic(), process_cpu_s(), csms.cpu_s()
        await asyncio.sleep(args.window)
        wall1, (user1, sys1), csms1 = time.monotonic(), process_cpu_s(), csms.cpu_s()
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(args.profile)
    window, lm.window = lm.window, None
    t1 = Totals.read(lm)
    lag1 = lm.stats().schedule_lag
    probe.cancel()
    gc.set_threshold(*gc_saved)
    rss_load = rss_mb()
    connected_load = lm.stats().chargers_connected
    load_report = await load.stop()

    wall = wall1 - wall0
    cpu = user1 - user0 + sys1 - sys0
    calls = t1.calls - t0.calls
    per_core = calls / cpu if cpu > 0 else 0.0
    # Schedule lag of the window: the run's histogram only grows, so compare counts.
    lag_p99 = lag1.percentile(99.0) if lag1.count > lag0.count else 0.0
    rss_kb_per = (rss_idle - rss_before) * 1024.0 / chargers
    figures: dict[str, Any] = {
        "benchmark": "online",
        "chargers": chargers,
        "ocpp_version": args.version,
        "validate_frames": not args.no_validate,
        "csms_workers": args.csms_workers,
        "gc_mode": args.gc,
        "connected": connect["connected"],
        "connect_seconds": connect["connect_seconds"],
        "connections_per_s": connect["connections_per_s"],
        "rss_mb_before": round(rss_before, 1),
        "rss_mb_connected_idle": round(rss_idle, 1),
        "rss_kb_per_idle_charger": round(rss_kb_per, 2),
        "rss_mb_load_end": round(rss_load, 1),
        "max_rss_mb": round(peak_rss_mb(), 1),
        "offered_calls_per_s": args.rate,
        "speed": round(speed, 4),
        "heartbeat_interval_s": LOAD_INTERVAL_S,
        "window_s": round(wall, 3),
        "calls": calls,
        "calls_per_s": round(calls / wall, 1),
        "generator_cpu_s": round(cpu, 3),
        "generator_cpu_util": round(cpu / wall, 3),
        "generator_sys_s": round(sys1 - sys0, 3),
        "gc_s": round(gc_timer.seconds, 3),
        "gc_passes_by_generation": gc_timer.passes,
        "gc_longest_ms": _ms(gc_timer.longest_s),
        "calls_per_generator_core_s": round(per_core, 1),
        "csms_cpu_util": round((csms1 - csms0) / wall, 3),
        "p50_ms": _ms(window.percentile(50.0)),
        "p99_ms": _ms(window.percentile(99.0)),
        "p999_ms": _ms(window.percentile(99.9)),
        "max_ms": _ms(window.max_s),
        "rtt_p50_ms": _ms(lm.window_rtt.percentile(50.0)),
        "rtt_p99_ms": _ms(lm.window_rtt.percentile(99.0)),
        "schedule_lag_p99_ms": _ms(lag_p99),
        "loop_lag_p99_ms": _ms(loop_lag.percentile(99.0)),
        "loop_lag_max_ms": _ms(loop_lag.max_s),
        "errors": t1.errors - t0.errors,
        "timeouts": t1.timeouts - t0.timeouts,
        "closed": t1.closed - t0.closed,
        "invalid_frames": t1.invalid - t0.invalid,
        "window_calls_by_action": {
            k: v - t0.by_action.get(k, 0)
            for k, v in t1.by_action.items()
            if v > t0.by_action.get(k, 0)
        },
        "saturated": calls / wall < 0.95 * args.rate,
        "connect": connect,
        "load_run": {
            "all_up": load_up,
            "connected_in_window": connected_load,
            "sessions": load_report["sessions"],
            "messages_unsent": load_report["ledger"]["messages_unsent"],
        },
        "sessions": connect["sessions"] + load_report["sessions"],
        "targets": {
            "rss_under_400mb": rss_idle < RSS_TARGET_MB,
            "calls_per_core_over_10k": per_core >= CALLS_PER_CORE_TARGET,
        },
    }
    return figures


def _watchdog(seconds: float, csms: CsmsProcesses) -> threading.Timer:
    """Kill the CSMS and exit non-zero if the benchmark has not ended after `seconds`."""

    def expire() -> None:
        sys.stderr.write(f"online benchmark: hard timeout of {seconds:.0f} s reached\n")
        sys.stderr.flush()
        csms.kill()
        os._exit(3)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    return timer


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chargers", type=int, default=10_000)
    parser.add_argument("--window", type=float, default=20.0, help="load window, wall seconds")
    parser.add_argument("--version", choices=("1.6", "2.0.1"), default="1.6")
    parser.add_argument("--no-validate", action="store_true", help="skip frame validation")
    parser.add_argument("--quick", action="store_true", help="1,000 chargers, 5 s window")
    parser.add_argument(
        "--rate", type=float, default=20_000.0, help="Heartbeats per second the fleet offers"
    )
    parser.add_argument("--ramp", type=float, default=100_000.0, help="connections per second")
    parser.add_argument("--csms-workers", type=int, default=1)
    parser.add_argument("--idle-s", type=float, default=3.0, help="idle seconds before RSS")
    parser.add_argument("--settle-s", type=float, default=3.0, help="load seconds before window")
    parser.add_argument(
        "--gc",
        choices=("default", "quiet", "freeze"),
        default="default",
        help="what-if: once the load run's fleet is up, raise the young-generation threshold "
        "(quiet) and also gc.freeze() the connections (freeze); default: as `fleetsim run`",
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="hard limit, seconds")
    parser.add_argument("--profile", type=Path, help="write a cProfile of the load window here")
    # Internal: run as one of the benchmark's CSMS workers.
    parser.add_argument("--csms-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--interval", type=int, default=IDLE_INTERVAL_S, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.chargers, args.window = 1_000, 5.0
        args.idle_s = args.settle_s = 1.0
        args.timeout = min(args.timeout, 120.0)
    if args.chargers < 1 or args.window <= 0 or args.rate <= 0 or args.csms_workers < 1:
        parser.error("--chargers, --window, --rate and --csms-workers must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.csms_worker:
        return csms_worker(args.port, args.interval)

    import uvloop

    started = time.monotonic()
    csms = CsmsProcesses()
    watchdog = _watchdog(args.timeout, csms)
    try:
        csms.start(args.csms_workers, IDLE_INTERVAL_S)
        figures = uvloop.run(measure(args, csms))
    finally:
        csms.kill()
        watchdog.cancel()
    figures["wall_s"] = round(time.monotonic() - started, 1)
    json.dump(figures, sys.stdout, indent=2)
    sys.stdout.write("\n")
    ok = figures["sessions"] == 0 and figures["connect"]["all_up"]
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
