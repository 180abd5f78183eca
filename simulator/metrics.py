"""Every measurement of an online run: in-process latency histograms and the Prometheus registry.

Owns all latency arithmetic (percentiles, intervals) and the metric names and labels; it must not
format reports, print to the terminal or decide SLO verdicts (that is simulator.report).
"""

from __future__ import annotations

import bisect
import errno
import math
import re
import threading
import time
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from wsgiref.simple_server import WSGIServer

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric

# -- LatencyHistogram ------------------------------------------------------------------------------

# Geometric buckets [LOW * G**i, LOW * G**(i+1)); reporting the bucket's geometric midpoint
# bounds the relative error by sqrt(G) - 1 = 0.75 %, leaving headroom under the 1 % promise for
# float rounding at bucket edges.
_LOW_S = 1e-6
_HIGH_S = 3600.0
_GROWTH = 1.015
_INV_LOW = 1.0 / _LOW_S
_INV_LOG_GROWTH = 1.0 / math.log(_GROWTH)
_BUCKETS = int(math.log(_HIGH_S / _LOW_S) * _INV_LOG_GROWTH) + 1
_LAST = _BUCKETS - 1
_REPRESENTATIVES = _LOW_S * np.power(_GROWTH, np.arange(_BUCKETS, dtype=np.float64) + 0.5)


class LatencyHistogram:
    """Log-bucketed histogram of durations in seconds with <= 1 % relative percentile error.

    Covers 1 µs to 1 h (values outside clamp into the edge buckets, the exact max and min are
    kept apart); memory is fixed (~12 KiB) and allocated on the first record, so an action that
    never runs costs nothing. Percentiles use the nearest-rank definition (numpy's
    "inverted_cdf"): the true sample lies in the chosen bucket, so only the bucket width errs.
    """

    __slots__ = ("_count", "_counts", "_max", "_min", "_sum")

    def __init__(self) -> None:
        self._counts: array[int] | None = None
        self._count = 0
        self._sum = 0.0
        self._max = 0.0
        self._min = math.inf

    def record(self, seconds: float) -> None:
        """Add one duration; negative and NaN durations count as 0 (a clock step, not data)."""
        counts = self._counts
        if counts is None:
            counts = self._counts = array("Q", [0]) * _BUCKETS
        if not seconds >= 0.0:  # also catches NaN
            seconds = 0.0
        self._count += 1
        self._sum += seconds
        if seconds > self._max:
            self._max = seconds
        if seconds < self._min:
            self._min = seconds
        if seconds <= _LOW_S:
            counts[0] += 1
        elif seconds >= _HIGH_S:
            counts[_LAST] += 1
        else:
            counts[int(math.log(seconds * _INV_LOW) * _INV_LOG_GROWTH)] += 1

    @property
    def count(self) -> int:
        return self._count

    @property
    def sum_s(self) -> float:
        return self._sum

    @property
    def max_s(self) -> float:
        """The exact largest value recorded (0.0 when empty)."""
        return self._max

    @property
    def min_s(self) -> float:
        """The exact smallest value recorded (0.0 when empty)."""
        return self._min if self._count else 0.0

    def percentile(self, q: float) -> float:
        """The q-th percentile (q in [0, 100]) in seconds; 0.0 when empty, exact at 0 and 100."""
        return self.percentiles((q,))[0]

    def percentiles(self, qs: Sequence[float]) -> list[float]:
        """Several percentiles at the cost of one pass over the buckets."""
        for q in qs:
            if not 0.0 <= q <= 100.0:
                raise ValueError(f"percentile {q!r} is outside [0, 100]")
        if self._counts is None or self._count == 0:
            return [0.0 for _ in qs]
        cumulative = np.cumsum(np.frombuffer(self._counts, dtype=np.uint64))
        out: list[float] = []
        for q in qs:
            if q >= 100.0:
                out.append(self._max)
                continue
            if q <= 0.0:
                out.append(self._min)
                continue
            # The small slack stops float noise (e.g. 29 * 100 / 100 = 29.000000000000004) from
            # moving the rank one sample up.
            rank = max(1, math.ceil(q * self._count / 100.0 - 1e-9))
            index = int(np.searchsorted(cumulative, rank, side="left"))
            # Clamping into [min, max] keeps the answer inside the recorded range, which makes
            # single-valued histograms exact and tames the open-ended edge buckets.
            value = float(_REPRESENTATIVES[index])
            out.append(min(max(value, self._min), self._max))
        return out

    def merge(self, other: LatencyHistogram) -> None:
        """Add every value recorded in `other` to this histogram."""
        if other._counts is None or other._count == 0:
            return
        if self._counts is None:
            self._counts = array("Q", other._counts)
        else:
            mine = np.frombuffer(self._counts, dtype=np.uint64)
            mine += np.frombuffer(other._counts, dtype=np.uint64)
        self._count += other._count
        self._sum += other._sum
        self._max = max(self._max, other._max)
        self._min = min(self._min, other._min)

    def reset(self) -> None:
        """Forget every value; the bucket memory is kept for reuse."""
        if self._counts is not None:
            np.frombuffer(self._counts, dtype=np.uint64)[:] = 0
        self._count = 0
        self._sum = 0.0
        self._max = 0.0
        self._min = math.inf

    def copy(self) -> LatencyHistogram:
        """An independent histogram with the same contents."""
        twin = LatencyHistogram()
        twin.merge(self)
        return twin


# -- FleetMetrics ----------------------------------------------------------------------------------

CALL_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
CONNECT_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
LAG_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

CALL_OUTCOMES = frozenset({"result", "error", "timeout", "closed"})
HANDLED_OUTCOMES = frozenset({"handled", "error"})
DIRECTIONS = frozenset({"in", "out"})

MAX_REASONS = 20
_MAX_REASON_CHARS = 200
# Actions in incoming or invalid frames are chosen by the peer; past this many distinct names
# (or for a name that is not an OCPP-style identifier) the label becomes "other", so a
# misbehaving CSMS cannot blow up the series count.
_MAX_ACTION_LABELS = 200
_ACTION_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,63}$")
OTHER_ACTION = "other"
UNKNOWN_ACTION = "unknown"
OTHER_REASONS = "(other reasons)"


@dataclass(frozen=True, slots=True)
class LiveSnapshot:
    """What the live panel shows: run totals plus rates over the interval since the last one."""

    elapsed_s: float
    chargers_configured: int
    chargers_connected: int
    calls_per_s: float
    p99_ms: float
    transactions_active: int
    errors_total: int
    invalid_frames: int
    schedule_lag_ms: float


@dataclass(frozen=True, slots=True)
class ActionStats:
    """Counts and (copied) latency histograms of one charger-initiated action, all versions."""

    count: int
    errors: int
    timeouts: int
    closed: int
    latency: LatencyHistogram
    rtt: LatencyHistogram


@dataclass(frozen=True, slots=True)
class MetricsStats:
    """Plain data for the end-of-run report; histograms are copies, safe to keep."""

    actions: dict[str, ActionStats]
    connect_time: LatencyHistogram
    schedule_lag: LatencyHistogram
    chargers_configured: int
    chargers_connected: int
    chargers_connected_peak: int
    connect_attempts: int
    connects: int
    reconnects: int
    connect_failures: int
    connect_failure_reasons: list[tuple[str, int]]
    calls_handled: int
    handled_errors: int
    transactions_started: int
    transactions_ended: int
    transactions_active: int
    energy_kwh: float
    invalid_in: int
    invalid_out: int
    invalid_reasons: list[tuple[str, int]]


@dataclass(slots=True)
class _ActionTally:
    """Mutable per-action counters behind ActionStats."""

    count: int = 0
    errors: int = 0
    timeouts: int = 0
    closed: int = 0
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    rtt: LatencyHistogram = field(default_factory=LatencyHistogram)


# -- lock-free metric families for the per-call hot path ---------------------------------------
# prometheus_client takes a lock and scans the buckets on every observe(); at 10,000 calls a
# second those two histograms and the message counter cost about a tenth of the generator's
# core (measured by benchmarks/online.py). These children are plain integers updated on the
# event loop and turned into metric families only when Prometheus scrapes. A scrape from the
# exporter's thread may see one call counted in a bucket and not yet in the sum: harmless.


class _FastCounterChild:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def inc(self, amount: int = 1) -> None:
        self.value += amount


class _FastHistogramChild:
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last is the +Inf overflow
        self.sum = 0.0

    def observe(self, value: float) -> None:
        # bisect_left: a value equal to a bound belongs to that bound's bucket (le semantics).
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value


class _FastFamily:
    """A labelled counter or histogram whose children are plain numbers (see above)."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: tuple[str, ...],
        bounds: tuple[float, ...] | None = None,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = labelnames
        self.bounds = bounds
        self.children: dict[tuple[str, ...], Any] = {}

    def labels(self, *values: str) -> Any:
        child = self.children.get(values)
        if child is None:
            child = _FastCounterChild() if self.bounds is None else _FastHistogramChild(self.bounds)
            self.children[values] = child
        return child

    def collect(self) -> Metric:
        labels = list(self.labelnames)
        if self.bounds is None:
            name = self.name.removesuffix("_total")
            counter = CounterMetricFamily(name, self.documentation, labels=labels)
            for values, child in list(self.children.items()):
                counter.add_metric(list(values), child.value)
            return counter
        histogram = HistogramMetricFamily(self.name, self.documentation, labels=labels)
        for values, child in list(self.children.items()):
            cumulative, buckets = 0, []
            for bound, count in zip((*self.bounds, math.inf), list(child.counts), strict=True):
                cumulative += count
                buckets.append(("+Inf" if math.isinf(bound) else repr(float(bound)), cumulative))
            histogram.add_metric(list(values), buckets, child.sum)
        return histogram


class _FastCollector:
    """Exposes the lock-free families to a Prometheus registry at scrape time."""

    def __init__(self, families: Sequence[_FastFamily]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return [family.collect() for family in self.families]


@dataclass(slots=True)
class _CallChildren:
    """Pre-bound Prometheus children of one (version, action), so the hot path skips .labels."""

    duration: Any
    rtt: Any
    messages: dict[str, Any]


class _ReasonTally:
    """Counts of the first MAX_REASONS distinct reasons; later new reasons share one bucket."""

    __slots__ = ("counts", "other")

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.other = 0

    def add(self, reason: str) -> None:
        reason = reason[:_MAX_REASON_CHARS]
        if reason in self.counts:
            self.counts[reason] += 1
        elif len(self.counts) < MAX_REASONS:
            self.counts[reason] = 1
        else:
            self.other += 1

    def items(self) -> list[tuple[str, int]]:
        out = list(self.counts.items())
        if self.other:
            out.append((OTHER_REASONS, self.other))
        return out


class FleetMetrics:
    """Receives every measurement of one run and keeps it both in-process and for Prometheus.

    Every instance has its own CollectorRegistry (never the global one), so two runs or tests in
    one process do not collide. Labels are only version, action, direction and outcome: never a
    charger id, which would make one series per charger. Not thread-safe for recording: call it
    from the event loop only (Prometheus scrapes from its own thread are safe).
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self._clock = clock
        self._started = clock()
        reg = self.registry
        buckets = tuple(float(b) for b in CALL_BUCKETS_S)
        self._call_duration = _FastFamily(
            "fleetsim_ocpp_call_duration_seconds",
            "Latency of charger-initiated CALLs from when the message was due to its answer",
            ("version", "action"),
            buckets,
        )
        self._call_rtt = _FastFamily(
            "fleetsim_ocpp_call_rtt_seconds",
            "Round trip of charger-initiated CALLs from send to answer",
            ("version", "action"),
            buckets,
        )
        self._messages = _FastFamily(
            "fleetsim_ocpp_messages_total",
            "OCPP CALLs by direction and outcome",
            ("version", "action", "direction", "outcome"),
        )
        reg.register(_FastCollector([self._call_duration, self._call_rtt, self._messages]))
        self._invalid = Counter(
            "fleetsim_ocpp_invalid_frames_total",
            "Frames failing OCPP-J framing or schema validation",
            ("version", "direction"),
            registry=reg,
        )
        self._chargers = Gauge("fleetsim_chargers", "Chargers configured", registry=reg)
        self._connected_gauge = Gauge(
            "fleetsim_chargers_connected", "Chargers with an open connection", registry=reg
        )
        self._connect_attempts_c = Counter(
            "fleetsim_connect_attempts_total", "Connection attempts", registry=reg
        )
        self._connects_c = Counter(
            "fleetsim_connects_total", "Successful connections (incl. reconnects)", registry=reg
        )
        self._reconnects_c = Counter(
            "fleetsim_reconnects_total", "Successful connections after a lost one", registry=reg
        )
        self._connect_failures_c = Counter(
            "fleetsim_connect_failures_total", "Failed connection attempts", registry=reg
        )
        self._connect_duration = Histogram(
            "fleetsim_connect_duration_seconds",
            "Time to connect including the websocket handshake",
            registry=reg,
            buckets=CONNECT_BUCKETS_S,
        )
        self._tx_active = Gauge(
            "fleetsim_transactions_active", "Charging transactions in progress", registry=reg
        )
        self._tx_started = Counter(
            "fleetsim_transactions_started_total", "Transactions started", registry=reg
        )
        self._tx_ended = Counter(
            "fleetsim_transactions_ended_total", "Transactions ended", registry=reg
        )
        self._power = Gauge(
            "fleetsim_fleet_power_kilowatts", "Power drawn by the whole fleet", registry=reg
        )
        self._energy = Counter(
            "fleetsim_energy_delivered_kilowatt_hours_total",
            "Energy delivered by ended transactions",
            registry=reg,
        )
        self._faults = Counter(
            "fleetsim_faults_injected_total",
            "Faults injected into the run (outages, drops, connector faults, power losses, ...)",
            ("kind",),
            registry=reg,
        )
        self._lag_gauge = Gauge(
            "fleetsim_schedule_lag_seconds",
            "Latest delay between when an event was due and when it ran",
            registry=reg,
        )
        self._lag_hist = Histogram(
            "fleetsim_schedule_lag_distribution_seconds",
            "Delay between when an event was due and when it ran",
            registry=reg,
            buckets=LAG_BUCKETS_S,
        )

        # Pre-bound children and in-process tallies.
        self._call_children: dict[tuple[str, str], _CallChildren] = {}
        self._handled_children: dict[tuple[str, str, str], Any] = {}
        self._invalid_children: dict[tuple[str, str, str], tuple[Any, Any]] = {}
        self._peer_actions: set[str] = set()
        self._actions: dict[str, _ActionTally] = {}
        self._interval = LatencyHistogram()
        self._interval_calls = 0
        self._last_snapshot = self._started
        self._errors_total = 0
        self._calls_handled = 0
        self._handled_errors = 0
        # CSMS-initiated calls by action: [answered, refused with a CALLERROR], for the report.
        self.handled_by_action: dict[str, list[int]] = {}
        self._invalid_in = 0
        self._invalid_out = 0
        self._invalid_reasons = _ReasonTally()
        self._chargers_configured = 0
        self._chargers_connected = 0
        self._connected_peak = 0
        self._connect_attempts = 0
        self._connects = 0
        self._reconnects = 0
        self._connect_failures = 0
        self._failure_reasons = _ReasonTally()
        self._connect_time = LatencyHistogram()
        self._tx_started_n = 0
        self._tx_ended_n = 0
        self._tx_active_n = 0
        self._energy_kwh = 0.0
        self._lag = LatencyHistogram()
        self._lag_latest_s = 0.0
        self._server: WSGIServer | None = None
        self._server_thread: threading.Thread | None = None
        self.faults: dict[str, int] = {}  # injected faults by kind, for the report

    # -- rpc layer ---------------------------------------------------------------------------------

    def call_done(
        self, version: str, action: str, outcome: str, latency_s: float, rtt_s: float
    ) -> None:
        """A charger-initiated CALL finished (outcome result, error, timeout or closed).

        Latency (from due) is recorded for every outcome but "closed": a timeout is exactly
        what the charger waited, while a dropped connection says nothing about the CSMS.
        The round trip only exists when an answer arrived (result or error).
        """
        children = self._call_children.get((version, action))
        if children is None:
            children = self._bind_call(version, action)
        counter = children.messages.get(outcome)
        if counter is None:
            counter = self._bind_outcome(children, version, action, outcome)
        counter.inc()
        tally = self._actions.get(action)
        if tally is None:
            tally = self._actions[action] = _ActionTally()
        tally.count += 1
        self._interval_calls += 1
        if outcome == "closed":
            tally.closed += 1
            return
        children.duration.observe(latency_s)
        tally.latency.record(latency_s)
        self._interval.record(latency_s)
        if outcome == "timeout":
            tally.timeouts += 1
            self._errors_total += 1
            return
        if outcome == "error":
            tally.errors += 1
            self._errors_total += 1
        children.rtt.observe(rtt_s)
        tally.rtt.record(rtt_s)

    def _bind_call(self, version: str, action: str) -> _CallChildren:
        children = _CallChildren(
            duration=self._call_duration.labels(version, action),
            rtt=self._call_rtt.labels(version, action),
            messages={},
        )
        self._call_children[(version, action)] = children
        return children

    def _bind_outcome(
        self, children: _CallChildren, version: str, action: str, outcome: str
    ) -> Any:
        if outcome not in CALL_OUTCOMES:
            raise ValueError(f"unknown call outcome {outcome!r} (expected {sorted(CALL_OUTCOMES)})")
        child = self._messages.labels(version, action, "out", outcome)
        children.messages[outcome] = child
        return child

    def call_handled(self, version: str, action: str, outcome: str) -> None:
        """An incoming CALL from the CSMS was answered ("handled") or refused ("error")."""
        key = (version, action, outcome)
        child = self._handled_children.get(key)
        if child is None:
            if outcome not in HANDLED_OUTCOMES:
                raise ValueError(f"unknown handled outcome {outcome!r}")
            child = self._messages.labels(version, self._peer_action(action), "in", outcome)
            self._handled_children[key] = child
        child.inc()
        self._calls_handled += 1
        counts = self.handled_by_action.get(action)
        if counts is None:
            counts = self.handled_by_action[action] = [0, 0]
        if outcome == "error":
            self._handled_errors += 1
            counts[1] += 1
        else:
            counts[0] += 1

    def invalid_frame(self, version: str, direction: str, action: str | None, reason: str) -> None:
        """A frame failed framing or schema validation; the first reasons are kept."""
        key = (version, direction, action or "")
        children = self._invalid_children.get(key)
        if children is None:
            if direction not in DIRECTIONS:
                raise ValueError(f"unknown direction {direction!r} (expected 'in' or 'out')")
            label = self._peer_action(action) if action else UNKNOWN_ACTION
            children = (
                self._invalid.labels(version, direction),
                self._messages.labels(version, label, direction, "invalid"),
            )
            self._invalid_children[key] = children
        children[0].inc()
        children[1].inc()
        if direction == "in":
            self._invalid_in += 1
        else:
            self._invalid_out += 1
        self._invalid_reasons.add(reason)

    def _peer_action(self, action: str) -> str:
        """The label for an action named by the peer, bounded in number and shape."""
        if action in self._peer_actions:
            return action
        if not _ACTION_NAME.match(action) or len(self._peer_actions) >= _MAX_ACTION_LABELS:
            return OTHER_ACTION
        self._peer_actions.add(action)
        return action

    # -- connections -------------------------------------------------------------------------------

    def connect_attempt(self) -> None:
        """A charger starts opening its websocket."""
        self._connect_attempts += 1
        self._connect_attempts_c.inc()

    def connected(self, duration_s: float, reconnect: bool) -> None:
        """A connection opened after `duration_s` (TCP, TLS and websocket handshake)."""
        self._connects += 1
        self._connects_c.inc()
        if reconnect:
            self._reconnects += 1
            self._reconnects_c.inc()
        self._chargers_connected += 1
        self._connected_peak = max(self._connected_peak, self._chargers_connected)
        self._connected_gauge.set(self._chargers_connected)
        self._connect_duration.observe(max(duration_s, 0.0))
        self._connect_time.record(duration_s)

    def connect_failed(self, reason: str) -> None:
        """A connection attempt failed."""
        self._connect_failures += 1
        self._connect_failures_c.inc()
        self._failure_reasons.add(reason)

    def disconnected(self) -> None:
        """An open connection closed."""
        # Never below zero, so a stray double report cannot show negative chargers.
        self._chargers_connected = max(self._chargers_connected - 1, 0)
        self._connected_gauge.set(self._chargers_connected)

    # -- fleet state -------------------------------------------------------------------------------

    def transaction_started(self) -> None:
        self._tx_started_n += 1
        self._tx_active_n += 1
        self._tx_started.inc()
        self._tx_active.set(self._tx_active_n)

    def transaction_ended(self, energy_wh: float) -> None:
        self._tx_ended_n += 1
        self._tx_active_n = max(self._tx_active_n - 1, 0)
        self._tx_ended.inc()
        self._tx_active.set(self._tx_active_n)
        if energy_wh > 0:  # a Counter refuses negative increments
            self._energy_kwh += energy_wh / 1000.0
            self._energy.inc(energy_wh / 1000.0)

    def fault_injected(self, kind: str) -> None:
        """A fault of `kind` was injected (connection_drop, outage, csms_restart, ...)."""
        self.faults[kind] = self.faults.get(kind, 0) + 1
        self._faults.labels(kind).inc()

    def set_fleet_power_kw(self, kw: float) -> None:
        self._power.set(kw)

    def set_chargers(self, n: int) -> None:
        self._chargers_configured = n
        self._chargers.set(n)

    def schedule_lag(self, lag_s: float) -> None:
        """How late the generator ran an event that was due (0 when on time)."""
        lag_s = max(lag_s, 0.0)
        self._lag_latest_s = lag_s
        self._lag_gauge.set(lag_s)
        self._lag_hist.observe(lag_s)
        self._lag.record(lag_s)

    # -- exporter ----------------------------------------------------------------------------------

    def serve(self, port: int, addr: str = "127.0.0.1") -> tuple[WSGIServer, threading.Thread]:
        """Start the Prometheus HTTP exporter for this registry (port 0 picks a free port)."""
        if self._server is not None:
            raise RuntimeError("the metrics exporter is already running")
        try:
            server, thread = start_http_server(port, addr, registry=self.registry)
        except OSError as exc:
            code = exc.errno if exc.errno is not None else errno.EADDRINUSE
            raise OSError(
                code,
                f"cannot serve Prometheus metrics on {addr}:{port}: {exc.strerror or exc}"
                " (is another run or exporter using the port? choose another port)",
            ) from exc
        self._server, self._server_thread = server, thread
        return server, thread

    @property
    def server_port(self) -> int | None:
        """The port the exporter listens on, or None when it is not running."""
        return None if self._server is None else int(self._server.server_address[1])

    def close(self) -> None:
        """Stop the exporter if it runs; safe to call more than once."""
        server, thread = self._server, self._server_thread
        self._server = self._server_thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5.0)

    # -- read-outs ---------------------------------------------------------------------------------

    def snapshot(self) -> LiveSnapshot:
        """Totals plus rate and p99 over the interval since the previous snapshot (then reset)."""
        now = self._clock()
        interval_s = now - self._last_snapshot
        calls_per_s = self._interval_calls / interval_s if interval_s > 0 else 0.0
        p99_ms = self._interval.percentile(99.0) * 1000.0
        self._interval.reset()
        self._interval_calls = 0
        self._last_snapshot = now
        return LiveSnapshot(
            elapsed_s=now - self._started,
            chargers_configured=self._chargers_configured,
            chargers_connected=self._chargers_connected,
            calls_per_s=calls_per_s,
            p99_ms=p99_ms,
            transactions_active=self._tx_active_n,
            errors_total=self._errors_total,
            invalid_frames=self._invalid_in + self._invalid_out,
            schedule_lag_ms=self._lag_latest_s * 1000.0,
        )

    def stats(self) -> MetricsStats:
        """Everything the end-of-run report needs, as copies detached from further recording."""
        actions = {
            name: ActionStats(
                count=t.count,
                errors=t.errors,
                timeouts=t.timeouts,
                closed=t.closed,
                latency=t.latency.copy(),
                rtt=t.rtt.copy(),
            )
            for name, t in sorted(self._actions.items())
        }
        return MetricsStats(
            actions=actions,
            connect_time=self._connect_time.copy(),
            schedule_lag=self._lag.copy(),
            chargers_configured=self._chargers_configured,
            chargers_connected=self._chargers_connected,
            chargers_connected_peak=self._connected_peak,
            connect_attempts=self._connect_attempts,
            connects=self._connects,
            reconnects=self._reconnects,
            connect_failures=self._connect_failures,
            connect_failure_reasons=self._failure_reasons.items(),
            calls_handled=self._calls_handled,
            handled_errors=self._handled_errors,
            transactions_started=self._tx_started_n,
            transactions_ended=self._tx_ended_n,
            transactions_active=self._tx_active_n,
            energy_kwh=self._energy_kwh,
            invalid_in=self._invalid_in,
            invalid_out=self._invalid_out,
            invalid_reasons=self._invalid_reasons.items(),
        )
