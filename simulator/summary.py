"""Key figures of an offline run, per site and for the whole network, as plain JSON-able data.

Reduces a SimulationResult to counts, session statistics, peaks and utilisation figures; it
must not write files or recompute the load curve (peaks come from `result.load` as given).
Sites under control (load management, static charging profiles) also get the figures that
compare policies: the exact instantaneous peak from the charging pieces, the grid limit, the
share of energy delivered and the share of sessions fully served.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from models.physics import piece_soc_array
from simulator.records import UNRESTRICTED_COLUMN, PieceTable, SimulationResult, SiteInfo

KWH_DECIMALS = 3
KW_DECIMALS = 3
HOURS_DECIMALS = 4
RATE_DECIMALS = 4
SHARE_DECIMALS = 6
# A session is fully served when it got at least this share of the energy its EV would have
# taken in the same stay unrestricted (limited only by its EVSE's rating and itself).
FULLY_SERVED_SHARE = 0.99
# ... or when what it missed is below this (kWh): rounding, not a limit, on a near-full car.
FULLY_SERVED_SLACK_KWH = 1e-6
# Below this |b| (kW per unit SoC) a piece draws constant power (as in loadcurve).
_FLAT_SLOPE = 1e-12
# Rows expanded at once for the exact peak of sloped pieces (bounds the temporaries).
_PEAK_MAX_ROWS = 2_000_000


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
            **_control(result, i, site, {k: v[rows] for k, v in by_site.items()}),
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
    summary: dict[str, Any] = {
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
    if result.faults is not None:
        # Station faults (connector faults, power losses) when the scenario has them.
        summary["faults"] = result.faults
    return summary


def _control(
    result: SimulationResult, index: int, site: SiteInfo, cols: dict[str, np.ndarray]
) -> dict[str, Any]:
    """The "control" block of a controlled site (nothing for the others).

    peak_kw is the highest instantaneous draw inside the horizon, exact from the charging
    pieces (not an interval average). energy_delivered_share is delivered over requested
    energy (what the drivers wanted), energy_unrestricted_share delivered over what the EVs
    would have taken unrestricted in the same stays; sessions_fully_served counts the sessions
    that got at least FULLY_SERVED_SHARE of that unrestricted energy (sessions arriving in the
    horizon; a car still plugged in at the end is judged on its stay so far).
    """
    if not site.controlled:
        return {}
    peak_kw, peak_s = site_peak_kw(result.pieces, index, result.horizon_s)
    delivered = np.asarray(cols["energy_delivered_kwh"], dtype=np.float64)
    wanted = np.asarray(cols["energy_wanted_kwh"], dtype=np.float64)
    unrestricted = np.asarray(
        cols.get(UNRESTRICTED_COLUMN, np.full(delivered.shape, np.nan)), dtype=np.float64
    )
    judged = np.isfinite(unrestricted) & np.isfinite(delivered)
    served = delivered[judged] >= np.minimum(
        FULLY_SERVED_SHARE * unrestricted[judged],
        unrestricted[judged] - FULLY_SERVED_SLACK_KWH,
    )
    n_judged = int(judged.sum())
    delivered_total = float(np.nansum(delivered))
    peak_time = None
    if peak_s is not None:
        peak_time = format_utc(result.start + timedelta(seconds=peak_s))
    return {
        "control": {
            "policy": site.load_policy,
            "grid_limit_kw": _round(site.grid_limit_kw, KW_DECIMALS),
            "charging_profiles": site.charging_profiles,
            "peak_kw": _round(peak_kw, KW_DECIMALS),
            "peak_time": peak_time,
            "energy_requested_kwh": _round(float(np.nansum(wanted)), KWH_DECIMALS),
            "energy_unrestricted_kwh": _round(
                float(unrestricted[judged].sum()) if n_judged else None, KWH_DECIMALS
            ),
            "energy_delivered_kwh": _round(delivered_total, KWH_DECIMALS),
            "energy_delivered_share": _round(
                _ratio(delivered_total, float(np.nansum(wanted))), SHARE_DECIMALS
            ),
            "energy_unrestricted_share": _round(
                _ratio(float(delivered[judged].sum()), float(unrestricted[judged].sum())),
                SHARE_DECIMALS,
            ),
            "sessions_fully_served": int(served.sum()),
            "sessions_fully_served_share": _round(
                _ratio(int(served.sum()), n_judged), SHARE_DECIMALS
            ),
        }
    }


def site_peak_kw(pieces: PieceTable, site: int, horizon_s: float) -> tuple[float, float | None]:
    """The highest instantaneous kW the site draws in [0, horizon_s], and when (None: no load).

    Exact: on a piece, power is p0 * exp(b t / (3600 C)) (convex), so between two consecutive
    piece boundaries the site's power is a sum of convex functions and peaks at one end; the
    peak is the largest left or right limit at a boundary.
    """
    sel = np.flatnonzero(np.asarray(pieces.site) == site)
    t0 = np.asarray(pieces.t0_s, dtype=np.float64)[sel]
    lo = np.maximum(t0, 0.0)
    hi = np.minimum(np.asarray(pieces.t1_s, dtype=np.float64)[sel], horizon_s)
    keep = hi > lo
    if not keep.any():
        return 0.0, None
    sel, t0, lo, hi = sel[keep], t0[keep], lo[keep], hi[keep]
    a = np.asarray(pieces.a, dtype=np.float64)[sel]
    b = np.asarray(pieces.b, dtype=np.float64)[sel]
    times = np.unique(np.concatenate([lo, hi]))
    n = times.size
    i0 = np.searchsorted(times, lo)
    i1 = np.searchsorted(times, hi)
    # right[k]: pieces with i0 <= k < i1 (just after times[k]); left[k]: i0 < k <= i1.
    right = np.zeros(n + 1)
    left = np.zeros(n + 2)
    flat = np.abs(b) < _FLAT_SLOPE
    np.add.at(right, i0[flat], a[flat])
    np.add.at(right, i1[flat], -a[flat])
    np.add.at(left, i0[flat] + 1, a[flat])
    np.add.at(left, i1[flat] + 1, -a[flat])
    right = np.cumsum(right)[:n]
    left = np.cumsum(left)[:n]
    curved = np.flatnonzero(~flat)
    if curved.size:
        cap = np.asarray(pieces.capacity_kwh, dtype=np.float64)[sel]
        soc0 = np.asarray(pieces.soc0, dtype=np.float64)[sel]
        counts = i1[curved] - i0[curved] + 1
        ends = np.cumsum(counts)
        first = 0
        while first < curved.size:
            done = int(ends[first - 1]) if first else 0
            stop = max(int(np.searchsorted(ends, done + _PEAK_MAX_ROWS, side="right")), first + 1)
            group = curved[first:stop]
            m = counts[first:stop]
            owner = np.repeat(group, m)
            offset = np.arange(owner.size) - np.repeat(np.cumsum(m) - m, m)
            k = i0[owner] + offset
            soc = piece_soc_array(a[owner], b[owner], cap[owner], soc0[owner], times[k] - t0[owner])
            power = np.maximum(a[owner] + b[owner] * soc, 0.0)
            right += np.bincount(k, weights=np.where(k < i1[owner], power, 0.0), minlength=n)
            left += np.bincount(k, weights=np.where(k > i0[owner], power, 0.0), minlength=n)
            first = stop
    both = np.maximum(left, right)
    k = int(np.argmax(both))
    peak = float(both[k])
    if not peak > 0.0:
        return 0.0, None
    return peak, float(times[k])


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
