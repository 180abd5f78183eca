"""Key figures of an offline run, per site and for the whole network, as plain JSON-able data.

Reduces a SimulationResult to counts, session statistics, peaks and utilisation figures; it
must not write files or recompute the load curve (peaks come from `result.load` as given).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from simulator.records import SimulationResult

KWH_DECIMALS = 3
KW_DECIMALS = 3
HOURS_DECIMALS = 4
RATE_DECIMALS = 4
SHARE_DECIMALS = 6


def summarise(result: SimulationResult) -> dict[str, Any]:
    """Per-site (under "sites", keyed by name in site order) and network-wide ("total") figures.

    Numbers are rounded to fixed decimals so the JSON is byte-stable. Counts and sums over no
    sessions are 0; a statistic that is undefined (a mean or median over no sessions, a ratio
    whose denominator is zero, the time of a peak when the load is zero) is None (JSON null),
    never NaN. Per-session statistics use the sessions where both ends of the span were
    reached; shares of time (idle_share, utilisation) clip spans to the horizon and treat an
    end that was never reached after a start that was (still plugged in, still charging) as
    the horizon. capacity_factor uses the energy inside the horizon (from the load curve),
    energy_kwh the energy the sessions report.
    """
    names = [site.name for site in result.sites]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"site names must be unique to key the summary, repeated: {duplicates}")

    cols = result.sessions.columns
    # Sessions grouped by site once, so that each site is a slice rather than a mask.
    order = np.argsort(np.asarray(cols["site"], dtype=np.int64), kind="stable")
    by_site = {k: np.asarray(v)[order] for k, v in cols.items()}
    bounds = np.searchsorted(by_site["site"], np.arange(len(result.sites) + 1))
    load = result.load
    turned_away = np.asarray(result.turned_away, dtype=np.int64)
    sites: dict[str, Any] = {}
    for i, site in enumerate(result.sites):
        rows = slice(int(bounds[i]), int(bounds[i + 1]))
        sites[site.name] = {
            "archetype": site.archetype,
            "chargers": site.chargers,
            "connectors": site.connectors,
            "installed_kw": _round(site.installed_kw, KW_DECIMALS),
            **_figures(
                result,
                {k: v[rows] for k, v in by_site.items()},
                load.site_kw[i] if i < load.site_kw.shape[0] else np.zeros(0),
                chargers=site.chargers,
                connectors=site.connectors,
                installed_kw=site.installed_kw,
                turned_away=int(turned_away[i]) if i < turned_away.size else 0,
            ),
        }
    chargers = sum(site.chargers for site in result.sites)
    connectors = sum(site.connectors for site in result.sites)
    installed_kw = sum(site.installed_kw for site in result.sites)
    total = _figures(
        result,
        cols,
        load.total_kw,
        chargers=chargers,
        connectors=connectors,
        installed_kw=installed_kw,
        turned_away=int(turned_away.sum()),
    )
    return {
        "scenario": result.scenario_name,
        "seed": result.seed,
        "start": format_utc(result.start),
        "days": result.days,
        "timezone": result.timezone,
        "resolution_s": load.resolution_s,
        "chargers": chargers,
        "connectors": connectors,
        "installed_kw": _round(installed_kw, KW_DECIMALS),
        "sites": sites,
        "total": total,
    }


def format_utc(moment: datetime) -> str:
    """ISO-8601 UTC with whole seconds and a trailing Z, e.g. 2025-01-06T07:42:13Z."""
    if moment.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _figures(
    result: SimulationResult,
    cols: dict[str, np.ndarray],
    kw: np.ndarray,
    *,
    chargers: int,
    connectors: int,
    installed_kw: float,
    turned_away: int,
) -> dict[str, Any]:
    """The figures shared by one site and the network total."""
    horizon_s = result.horizon_s
    horizon_h = horizon_s / 3600.0
    n = int(cols["arrival_s"].shape[0])
    delivered = np.asarray(cols["energy_delivered_kwh"], dtype=np.float64)
    wanted = np.asarray(cols["energy_wanted_kwh"], dtype=np.float64)
    connected_s = _span(cols["plug_in_s"], cols["plug_out_s"])
    charging_s = _span(cols["charge_start_s"], cols["charge_end_s"])
    connected_in_horizon_s = _clipped_span(cols["plug_in_s"], cols["plug_out_s"], horizon_s)
    charging_in_horizon_s = _clipped_span(cols["charge_start_s"], cols["charge_end_s"], horizon_s)

    res_h = result.load.resolution_s / 3600.0
    energy_in_horizon_kwh = float(kw.sum()) * res_h
    peak_kw, peak_time = _peak(result, kw)
    wanted_total = float(np.nansum(wanted))
    delivered_total = float(np.nansum(delivered))
    connected_total_s = float(connected_in_horizon_s.sum())
    # An EV waited when it plugged in later than it arrived: it queued for a free connector.
    wait_s = cols["plug_in_s"] - cols["arrival_s"]
    waits = wait_s[wait_s > 0.0]
    return {
        "sessions": n,
        "sessions_per_charger_per_day": _round(_ratio(n, chargers * result.days), RATE_DECIMALS),
        "energy_kwh": {
            "total": _round(delivered_total, KWH_DECIMALS),
            "mean": _round(_stat(delivered, np.mean), KWH_DECIMALS),
            "median": _round(_stat(delivered, np.median), KWH_DECIMALS),
            "p90": _round(_stat(delivered, lambda v: np.percentile(v, 90)), KWH_DECIMALS),
        },
        "connection_h": {
            "mean": _round(_hours(_stat(connected_s, np.mean)), HOURS_DECIMALS),
            "median": _round(_hours(_stat(connected_s, np.median)), HOURS_DECIMALS),
        },
        "charging_h": {
            "mean": _round(_hours(_stat(charging_s, np.mean)), HOURS_DECIMALS),
            "median": _round(_hours(_stat(charging_s, np.median)), HOURS_DECIMALS),
        },
        "idle_share": _round(
            _complement(_ratio(float(charging_in_horizon_s.sum()), connected_total_s)),
            SHARE_DECIMALS,
        ),
        "peak_kw": _round(peak_kw, KW_DECIMALS),
        "peak_time": peak_time,
        "coincidence_factor": _round(_ratio(peak_kw, installed_kw), SHARE_DECIMALS),
        "utilisation": _round(_ratio(connected_total_s, connectors * horizon_s), SHARE_DECIMALS),
        "capacity_factor": _round(
            _ratio(energy_in_horizon_kwh, installed_kw * horizon_h), SHARE_DECIMALS
        ),
        "turned_away": turned_away,
        "waited": int(waits.size),
        "wait_h": {
            "mean": _round(_hours(_stat(waits, np.mean)), HOURS_DECIMALS),
            "max": _round(_hours(_stat(waits, np.max)), HOURS_DECIMALS),
        },
        "energy_wanted_kwh": _round(wanted_total, KWH_DECIMALS),
        "energy_served_share": _round(_ratio(delivered_total, wanted_total), SHARE_DECIMALS),
    }


def _span(begin: np.ndarray, end: np.ndarray) -> np.ndarray:
    """end - begin for the rows where both were reached (NaN dropped)."""
    d = np.asarray(end, dtype=np.float64) - np.asarray(begin, dtype=np.float64)
    return d[np.isfinite(d)]


def _clipped_span(begin: np.ndarray, end: np.ndarray, horizon_s: float) -> np.ndarray:
    """Seconds of [begin, end) inside [0, horizon); an unreached end means still going."""
    begin = np.asarray(begin, dtype=np.float64)
    started = np.isfinite(begin)
    end = np.where(np.isnan(end), horizon_s, end)[started]
    lo = np.clip(begin[started], 0.0, horizon_s)
    hi = np.clip(end, 0.0, horizon_s)
    return np.maximum(hi - lo, 0.0)


def _peak(result: SimulationResult, kw: np.ndarray) -> tuple[float | None, str | None]:
    """Highest interval average and the UTC start of the first interval that reaches it."""
    if kw.size == 0:
        return None, None
    k = int(np.argmax(kw))
    peak = float(kw[k])
    if not peak > 0.0:
        return max(peak, 0.0), None
    moment = result.load.start + timedelta(seconds=k * result.load.resolution_s)
    return peak, format_utc(moment)


def _stat(values: np.ndarray, fn: Callable[[np.ndarray], Any]) -> float | None:
    """fn over the finite values, None if there are none."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(fn(v)) if v.size else None


def _hours(seconds: float | None) -> float | None:
    return None if seconds is None else seconds / 3600.0


def _ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or den == 0:
        return None
    return num / den


def _complement(share: float | None) -> float | None:
    return None if share is None else 1.0 - share


def _round(value: float | None, decimals: int) -> float | None:
    """Fixed decimals, no negative zero, None for anything not finite."""
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), decimals) + 0.0
