"""Tests of simulator.metrics: percentile accuracy, Prometheus series and the exporter."""

from __future__ import annotations

import math
import socket
import urllib.request
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from simulator.metrics import FleetMetrics, LatencyHistogram

QS = (0.0, 1.0, 10.0, 25.0, 50.0, 75.0, 90.0, 99.0, 99.9, 99.99, 100.0)


def _filled(values: np.ndarray) -> LatencyHistogram:
    hist = LatencyHistogram()
    for v in values:
        hist.record(float(v))
    return hist


# -- LatencyHistogram ------------------------------------------------------------------------------


@pytest.mark.parametrize(("seed", "mu", "sigma"), [(1, -3.0, 1.5), (2, -6.0, 2.5), (3, 0.0, 1.0)])
def test_percentiles_within_one_percent_of_numpy(seed: int, mu: float, sigma: float) -> None:
    rng = np.random.default_rng(seed)
    # 19 997 samples: no q * n / 100 lands on an integer, where numpy's float rounding of the
    # rank (e.g. 0.999 * 20000 = 19980.0000000002) would pick the neighbouring sample.
    samples = np.clip(rng.lognormal(mu, sigma, 19_997), 1e-6, 3600.0)
    hist = _filled(samples)
    for q in QS:
        # Nearest rank ("inverted_cdf") is the definition the histogram implements.
        expected = float(np.percentile(samples, q, method="inverted_cdf"))
        got = hist.percentile(q)
        assert abs(got / expected - 1.0) <= 0.01, (q, got, expected)
    assert hist.count == samples.size
    assert hist.max_s == float(samples.max())
    assert hist.sum_s == pytest.approx(float(samples.sum()), rel=1e-9)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.floats(min_value=1e-6, max_value=3600.0), min_size=1, max_size=200),
    st.integers(min_value=0, max_value=1000),
)
def test_any_percentile_within_one_percent(values: list[float], q_tenths: int) -> None:
    hist = _filled(np.array(values))
    # The nearest-rank sample, with the rank computed exactly (q has one decimal).
    rank = max(1, math.ceil(Fraction(q_tenths * len(values), 1000)))
    expected = sorted(values)[rank - 1]
    assert abs(hist.percentile(q_tenths / 10) / expected - 1.0) <= 0.01


def test_merge_equals_recording_everything() -> None:
    rng = np.random.default_rng(7)
    a, b = rng.lognormal(-4, 1, 3000), rng.lognormal(-2, 0.5, 1000)
    merged = _filled(a)
    merged.merge(_filled(b))
    together = _filled(np.concatenate([a, b]))
    assert merged.count == together.count == 4000
    assert merged.max_s == together.max_s
    assert merged.min_s == together.min_s
    assert merged.sum_s == pytest.approx(together.sum_s)
    assert merged.percentiles(QS) == together.percentiles(QS)
    # Merging into an empty histogram and merging an empty one both work.
    empty = LatencyHistogram()
    empty.merge(together)
    together.merge(LatencyHistogram())
    assert empty.percentiles(QS) == together.percentiles(QS)


def test_empty_histogram_and_lazy_allocation() -> None:
    hist = LatencyHistogram()
    assert hist._counts is None  # no bucket memory until something is recorded
    assert hist.count == 0
    assert hist.percentile(50) == 0.0
    assert hist.percentile(100) == 0.0
    assert hist.max_s == 0.0
    assert hist.min_s == 0.0
    with pytest.raises(ValueError):
        hist.percentile(101)
    with pytest.raises(ValueError):
        hist.percentile(-1)


def test_single_value_exact_and_max_exact() -> None:
    hist = LatencyHistogram()
    hist.record(0.123456)
    assert hist.percentile(50) == 0.123456
    hist.record(0.5)
    hist.record(0.000_321)
    assert hist.percentile(100) == 0.5
    assert hist.percentile(0) == 0.000_321
    assert hist.percentile(50) == pytest.approx(0.123456, rel=0.01)


def test_out_of_range_values_clamp() -> None:
    hist = LatencyHistogram()
    for v in (1e-9, -1.0, float("nan"), 7200.0):
        hist.record(v)
    assert hist.count == 4
    assert hist.max_s == 7200.0  # the exact max survives clamping into the top bucket
    assert hist.percentile(100) == 7200.0
    # Negative and NaN count as zero and share the bottom (<= 1 µs) bucket with 1e-9.
    assert hist.percentile(25) <= 1.01e-6
    assert hist.min_s == 0.0 and hist.percentile(0) == 0.0
    assert 3600.0 * 0.99 <= hist.percentile(99) <= 7200.0


def test_reset_and_copy() -> None:
    hist = _filled(np.array([0.01, 0.02, 0.03]))
    twin = hist.copy()
    hist.reset()
    assert hist.count == 0 and hist.percentile(99) == 0.0 and hist.max_s == 0.0
    assert twin.count == 3 and twin.max_s == 0.03
    hist.record(0.2)
    assert hist.percentile(50) == 0.2
    assert twin.percentile(100) == 0.03


# -- FleetMetrics ----------------------------------------------------------------------------------


def _samples(metrics: FleetMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(metrics.registry).decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def _record_some(metrics: FleetMetrics) -> None:
    metrics.set_chargers(3)
    metrics.connect_attempt()
    metrics.connected(0.05, reconnect=False)
    metrics.connect_attempt()
    metrics.connected(0.07, reconnect=True)
    metrics.connect_attempt()
    metrics.connect_failed("refused")
    metrics.call_done("1.6", "MeterValues", "result", 0.012, 0.010)
    metrics.call_done("1.6", "MeterValues", "result", 0.020, 0.015)
    metrics.call_done("2.0.1", "MeterValues", "error", 0.030, 0.025)
    metrics.call_done("1.6", "Heartbeat", "timeout", 30.0, 0.0)
    metrics.call_done("1.6", "Heartbeat", "closed", 0.0, 0.0)
    metrics.call_handled("1.6", "RemoteStartTransaction", "handled")
    metrics.call_handled("1.6", "DataTransfer", "error")
    metrics.invalid_frame("1.6", "in", "BootNotification", "missing status")
    metrics.invalid_frame("1.6", "out", None, "not a JSON array")
    metrics.transaction_started()
    metrics.transaction_started()
    metrics.transaction_ended(12_500.0)
    metrics.set_fleet_power_kw(22.5)
    metrics.schedule_lag(0.004)


def _key(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return (name, tuple(sorted(labels.items())))


def test_prometheus_series_after_some_calls() -> None:
    metrics = FleetMetrics()
    _record_some(metrics)
    s = _samples(metrics)

    def messages(version: str, action: str, outcome: str, direction: str = "out") -> float:
        labels = {"version": version, "action": action, "direction": direction, "outcome": outcome}
        return s[_key("fleetsim_ocpp_messages_total", **labels)]

    assert messages("1.6", "MeterValues", "result") == 2
    assert messages("2.0.1", "MeterValues", "error") == 1
    assert messages("1.6", "Heartbeat", "timeout") == 1
    assert messages("1.6", "Heartbeat", "closed") == 1
    assert messages("1.6", "RemoteStartTransaction", "handled", "in") == 1
    assert messages("1.6", "DataTransfer", "error", "in") == 1
    assert messages("1.6", "BootNotification", "invalid", "in") == 1
    assert messages("1.6", "unknown", "invalid", "out") == 1
    duration = _key(
        "fleetsim_ocpp_call_duration_seconds_count", version="1.6", action="MeterValues"
    )
    assert s[duration] == 2
    duration_sum = _key(
        "fleetsim_ocpp_call_duration_seconds_sum", version="1.6", action="MeterValues"
    )
    assert s[duration_sum] == pytest.approx(0.032)
    # A timeout counts in the latency histogram (the charger waited) but has no round trip.
    assert (
        s[_key("fleetsim_ocpp_call_duration_seconds_count", version="1.6", action="Heartbeat")] == 1
    )
    assert s[_key("fleetsim_ocpp_call_rtt_seconds_count", version="1.6", action="Heartbeat")] == 0
    assert s[_key("fleetsim_ocpp_invalid_frames_total", version="1.6", direction="in")] == 1
    assert s[_key("fleetsim_chargers")] == 3
    assert s[_key("fleetsim_chargers_connected")] == 2
    assert s[_key("fleetsim_connects_total")] == 2
    assert s[_key("fleetsim_reconnects_total")] == 1
    assert s[_key("fleetsim_connect_failures_total")] == 1
    assert s[_key("fleetsim_connect_duration_seconds_count")] == 2
    assert s[_key("fleetsim_transactions_active")] == 1
    assert s[_key("fleetsim_transactions_started_total")] == 2
    assert s[_key("fleetsim_transactions_ended_total")] == 1
    assert s[_key("fleetsim_energy_delivered_kilowatt_hours_total")] == 12.5
    assert s[_key("fleetsim_fleet_power_kilowatts")] == 22.5
    assert s[_key("fleetsim_schedule_lag_seconds")] == 0.004
    assert s[_key("fleetsim_schedule_lag_distribution_seconds_count")] == 1


def test_labels_are_only_version_action_direction_outcome() -> None:
    metrics = FleetMetrics()
    _record_some(metrics)
    allowed = {"version", "action", "direction", "outcome", "le"}
    names = set()
    for (name, labels), _ in _samples(metrics).items():
        names.add(name)
        assert {k for k, _ in labels} <= allowed, name
    assert all(n.startswith("fleetsim_") for n in names)
    # The metrics live in their own registry, never the process-wide one.
    assert REGISTRY.get_sample_value("fleetsim_chargers") is None


def test_peer_chosen_action_names_are_bounded() -> None:
    metrics = FleetMetrics()
    metrics.invalid_frame("1.6", "in", "cp-000123/../x", "bad")
    metrics.call_handled("1.6", "Not An Action", "error")
    actions = {dict(labels).get("action") for (_, labels) in _samples(metrics)}
    assert "other" in actions
    assert "cp-000123/../x" not in actions and "Not An Action" not in actions


def test_two_instances_and_explicit_registry() -> None:
    registry = CollectorRegistry()
    first = FleetMetrics(registry)
    second = FleetMetrics()  # would raise "Duplicated timeseries" on a shared registry
    first.set_chargers(5)
    second.set_chargers(7)
    assert registry.get_sample_value("fleetsim_chargers") == 5
    assert second.registry.get_sample_value("fleetsim_chargers") == 7


def test_unknown_outcome_is_rejected() -> None:
    metrics = FleetMetrics()
    with pytest.raises(ValueError):
        metrics.call_done("1.6", "Heartbeat", "weird", 0.1, 0.1)
    with pytest.raises(ValueError):
        metrics.call_handled("1.6", "Reset", "result")
    with pytest.raises(ValueError):
        metrics.invalid_frame("1.6", "sideways", None, "x")


def test_stats_are_plain_detached_data() -> None:
    metrics = FleetMetrics()
    _record_some(metrics)
    stats = metrics.stats()
    mv = stats.actions["MeterValues"]
    assert (mv.count, mv.errors, mv.timeouts, mv.closed) == (3, 1, 0, 0)
    assert mv.latency.max_s == 0.030 and mv.rtt.max_s == 0.025
    hb = stats.actions["Heartbeat"]
    assert (hb.count, hb.errors, hb.timeouts, hb.closed) == (2, 0, 1, 1)
    assert hb.latency.count == 1 and hb.rtt.count == 0
    assert stats.connects == 2 and stats.reconnects == 1 and stats.connect_failures == 1
    assert stats.connect_attempts == 3
    assert stats.connect_failure_reasons == [("refused", 1)]
    assert stats.chargers_connected == 2 and stats.chargers_connected_peak == 2
    assert stats.energy_kwh == 12.5
    assert (stats.invalid_in, stats.invalid_out) == (1, 1)
    assert stats.invalid_reasons == [("missing status", 1), ("not a JSON array", 1)]
    assert stats.calls_handled == 2 and stats.handled_errors == 1
    metrics.call_done("1.6", "MeterValues", "result", 5.0, 5.0)
    assert mv.latency.max_s == 0.030  # the copy does not move


def test_invalid_reasons_keep_first_twenty() -> None:
    metrics = FleetMetrics()
    for i in range(25):
        metrics.invalid_frame("1.6", "in", "Heartbeat", f"reason {i}")
    metrics.invalid_frame("1.6", "in", "Heartbeat", "reason 0")
    reasons = metrics.stats().invalid_reasons
    assert len(reasons) == 21
    assert reasons[0] == ("reason 0", 2)
    assert reasons[-1] == ("(other reasons)", 5)


def test_disconnect_never_below_zero_and_peak() -> None:
    metrics = FleetMetrics()
    metrics.connected(0.01, reconnect=False)
    metrics.connected(0.01, reconnect=False)
    metrics.disconnected()
    metrics.disconnected()
    metrics.disconnected()
    stats = metrics.stats()
    assert stats.chargers_connected == 0 and stats.chargers_connected_peak == 2


def test_snapshot_covers_the_interval_since_the_previous_one() -> None:
    now = [100.0]
    metrics = FleetMetrics(clock=lambda: now[0])
    metrics.set_chargers(10)
    metrics.connected(0.1, reconnect=False)
    for i in range(100):
        metrics.call_done("1.6", "MeterValues", "result", (i + 1) / 1000.0, 0.001)
    metrics.call_done("1.6", "MeterValues", "timeout", 30.0, 0.0)
    metrics.schedule_lag(0.0025)
    now[0] += 2.0
    snap = metrics.snapshot()
    assert snap.elapsed_s == 2.0
    assert snap.calls_per_s == pytest.approx(101 / 2.0)
    assert snap.p99_ms == pytest.approx(100.0, rel=0.01)
    assert (snap.chargers_configured, snap.chargers_connected) == (10, 1)
    assert snap.errors_total == 1
    assert snap.schedule_lag_ms == 2.5
    now[0] += 1.0
    metrics.call_done("1.6", "Heartbeat", "result", 0.005, 0.005)
    snap = metrics.snapshot()
    assert snap.calls_per_s == 1.0
    assert snap.p99_ms == pytest.approx(5.0)  # the earlier interval no longer counts
    assert snap.elapsed_s == 3.0


def test_serve_answers_metrics_then_closes() -> None:
    metrics = FleetMetrics()
    metrics.set_chargers(4)
    metrics.serve(0, "127.0.0.1")
    try:
        port = metrics.server_port
        assert port
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            body = resp.read().decode()
        assert resp.status == 200
        assert "fleetsim_chargers 4.0" in body
    finally:
        metrics.close()
    assert metrics.server_port is None
    metrics.close()  # idempotent
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


def test_serve_on_taken_port_raises_clear_oserror() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        metrics = FleetMetrics()
        with pytest.raises(OSError, match=f"cannot serve Prometheus metrics on 127.0.0.1:{port}"):
            metrics.serve(port)
        assert metrics.server_port is None


def test_call_histogram_buckets_follow_prometheus_le_semantics() -> None:
    metrics = FleetMetrics()
    for latency in (0.0005, 0.001, 0.0011, 0.3, 99.0):
        metrics.call_done("2.0.1", "Heartbeat", "result", latency, latency / 2)
    text = generate_latest(metrics.registry).decode()
    buckets = {
        sample.labels["le"]: sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "fleetsim_ocpp_call_duration_seconds"
        for sample in family.samples
        if sample.name.endswith("_bucket")
    }
    # A value equal to a bound counts in that bound's bucket; counts are cumulative.
    assert buckets["0.001"] == 2
    assert buckets["0.0025"] == 3
    assert buckets["0.25"] == 3 and buckets["0.5"] == 4
    assert buckets["30.0"] == 4 and buckets["+Inf"] == 5
