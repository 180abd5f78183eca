"""The files `fleetsim simulate` leaves behind: sessions.csv, load.csv, summary.json, load.png.

Formats a SimulationResult vectorised and byte-stably (same result, same bytes). It must not
change the result or compute figures itself: numbers come from loadcurve and summary.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from simulator.loadcurve import (
    RESOLUTIONS,
    bin_load,
    daily_profile,
    daily_stats,
    interval_starts_s,
    n_intervals,
)
from simulator.records import SimulationResult
from simulator.summary import summarise

if TYPE_CHECKING:
    from matplotlib.axes import Axes

SESSIONS_HEADER = (
    "site,charger_id,evse_id,vehicle,arrival,plug_in,plug_out,charge_start,charge_end,"
    "energy_wanted_kwh,energy_delivered_kwh,max_power_kw,soc_arrival,soc_departure"
)
# Session time columns in CSV order, then the numeric columns with their decimals.
_TIME_COLUMNS = ("arrival_s", "plug_in_s", "plug_out_s", "charge_start_s", "charge_end_s")
_NUMBER_COLUMNS = (
    ("energy_wanted_kwh", 3),
    ("energy_delivered_kwh", 3),
    ("max_power_kw", 2),
    ("soc_arrival", 4),
    ("soc_departure", 4),
)
LOAD_DECIMALS = 3
# Rows formatted per batch: bounds the byte matrices alive at once to some tens of MB.
_ROWS_PER_BATCH = 100_000

PLOT_DPI = 100
PLOT_SIZE_IN = (12.0, 9.0)
# Beyond this many days the period panel shows daily mean and peak instead of every interval.
PLOT_FULL_CURVE_MAX_DAYS = 14
# More lines than this make the legend and the profile unreadable; the largest sites are shown.
PLOT_MAX_SITES = 8

PathLike = str | os.PathLike[str]


def write_sessions_csv(result: SimulationResult, path: PathLike) -> None:
    """One row per session, times ISO-8601 UTC (whole seconds, floored), NaN as an empty field."""
    table = result.sessions
    cols = table.columns
    site_names = _label_table([s.name for s in result.sites])
    # Charger ids of all sites in one flat table, addressed by site offset + charger index.
    offsets = np.cumsum([0] + [len(ids) for ids in table.charger_ids]).astype(np.int64)
    charger_ids = _label_table([cid for ids in table.charger_ids for cid in ids])
    vehicles = _label_table(table.vehicle_names)
    epoch0 = result.start.timestamp()
    with open(path, "wb") as out:
        out.write((SESSIONS_HEADER + "\n").encode("utf-8"))
        for sl in _batches(len(table)):
            site = np.asarray(cols["site"][sl], dtype=np.int64)
            charger = offsets[site] + np.asarray(cols["charger"][sl], dtype=np.int64)
            fields = [
                _take(site_names, site),
                _take(charger_ids, charger),
                _number_column(cols["evse_id"][sl], 0),
                _take(vehicles, np.asarray(cols["vehicle"][sl], dtype=np.int64)),
            ]
            fields += [_utc_column(epoch0, cols[name][sl]) for name in _TIME_COLUMNS]
            fields += [_number_column(cols[name][sl], d) for name, d in _NUMBER_COLUMNS]
            out.write(_csv_rows(fields))


def write_load_csv(result: SimulationResult, path: PathLike) -> None:
    """One row per interval: its UTC start, average kW of every site, and the network total."""
    load = result.load
    names = _label_table([s.name for s in result.sites])
    labels = [names.chars[i, : names.lengths[i]].tobytes() for i in range(len(result.sites))]
    header = b",".join([b"timestamp", *labels, b"total_kw"]) + b"\n"
    starts = interval_starts_s(load)
    total = load.total_kw
    epoch0 = load.start.timestamp()
    with open(path, "wb") as out:
        out.write(header)
        for sl in _batches(load.n_intervals):
            fields = [_utc_column(epoch0, starts[sl])]
            fields += [_number_column(row[sl], LOAD_DECIMALS) for row in load.site_kw]
            fields.append(_number_column(total[sl], LOAD_DECIMALS))
            out.write(_csv_rows(fields))


def write_summary_json(summary: dict[str, Any], path: PathLike) -> None:
    """The summary as JSON: sorted keys, 2-space indent, trailing newline, NaN refused."""
    text = json.dumps(summary, sort_keys=True, indent=2, allow_nan=False, ensure_ascii=False)
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        out.write(text + "\n")


def write_all(result: SimulationResult, out_dir: Path, resolution_s: int) -> list[Path]:
    """Write sessions.csv, load.csv, summary.json and load.png into out_dir (created if needed).

    The load curve is re-binned from the pieces when `result.load` is not already at
    `resolution_s` over the whole horizon; `result` itself is left unchanged.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    load = result.load
    expected = (len(result.sites), n_intervals(result.horizon_s, resolution_s))
    summary = result.summary
    if (
        load.resolution_s != resolution_s
        or load.site_kw.shape != expected
        or load.start != result.start
    ):
        load = bin_load(
            result.pieces, len(result.sites), result.horizon_s, resolution_s, result.start
        )
        result = dataclasses.replace(result, load=load)
        summary = {}  # peaks depend on the resolution: the stored summary no longer applies
    paths = [out_dir / name for name in ("sessions.csv", "load.csv", "summary.json", "load.png")]
    write_sessions_csv(result, paths[0])
    write_load_csv(result, paths[1])
    write_summary_json(summary or summarise(result), paths[2])
    plot_load(result, paths[3])
    return paths


def plot_load(result: SimulationResult, path: PathLike) -> None:
    """PNG with the average daily profile by local hour and the load over the whole period."""
    # A bare Figure renders through Agg without touching pyplot's global state or backend.
    from matplotlib.figure import Figure

    fig = Figure(figsize=PLOT_SIZE_IN, layout="constrained")
    profile_ax, period_ax = fig.subplots(2, 1)
    load = result.load
    shown = _sites_to_show(result)
    colours = [f"C{j % 10}" for j in range(len(shown))]
    note = (
        ""
        if len(shown) == len(result.sites)
        else (f" — largest {len(shown)} of {len(result.sites)} sites by energy")
    )
    fig.suptitle(
        f"{result.scenario_name}: {result.days} days from {result.start.date().isoformat()}, "
        f"seed {result.seed}, {_resolution_label(load.resolution_s)} intervals",
        fontsize=13,
    )
    if load.n_intervals == 0 or not result.sites:
        for ax in (profile_ax, period_ax):
            ax.text(0.5, 0.5, "no load data", ha="center", va="center", transform=ax.transAxes)
    else:
        _plot_profile(profile_ax, result, shown, colours, note)
        _plot_period(period_ax, result, shown, colours, note)
    fig.savefig(path, format="png", dpi=PLOT_DPI, metadata={"Software": None})


def _plot_profile(
    ax: Axes, result: SimulationResult, shown: list[int], colours: list[str], note: str
) -> None:
    from matplotlib.lines import Line2D

    profile = daily_profile(result.load, result.timezone)
    for j, i in enumerate(shown):
        name = result.sites[i].name
        ax.plot(profile.hours, profile.weekday_kw[i], color=colours[j], lw=1.8, label=name)
        ax.plot(profile.hours, profile.weekend_kw[i], color=colours[j], lw=1.4, ls="--")
    handles, _ = ax.get_legend_handles_labels()
    handles.append(Line2D([], [], color="0.3", lw=1.8, label="weekday (Mon–Fri)"))
    if np.isfinite(profile.weekend_kw[shown]).any():
        handles.append(Line2D([], [], color="0.3", lw=1.4, ls="--", label="weekend (Sat–Sun)"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9)
    ax.set_title(f"Average daily load profile per site{note}")
    ax.set_xlabel(f"local hour of day ({result.timezone})")
    ax.set_ylabel("average load (kW)")
    ax.set_xlim(0, 24)
    ax.set_xticks(range(0, 25, 3))
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)


def _plot_period(
    ax: Axes, result: SimulationResult, shown: list[int], colours: list[str], note: str
) -> None:
    import matplotlib.dates as mdates

    load = result.load
    if result.days > PLOT_FULL_CURVE_MAX_DAYS:
        stats = daily_stats(load, result.timezone)
        ax.plot(stats.days, stats.peak_kw, color="C3", lw=1.2, label="daily peak (total)")
        ax.plot(stats.days, stats.mean_kw, color="black", lw=1.6, label="daily mean (total)")
        locator = mdates.AutoDateLocator()
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        ax.set_title("Network load per local day: mean and peak of the total")
        ax.set_xlabel(f"local date ({result.timezone})")
    else:
        from zoneinfo import ZoneInfo

        zone = ZoneInfo(result.timezone)
        start = np.datetime64(load.start.astimezone(UTC).replace(tzinfo=None), "s")
        times = start + (interval_starts_s(load) * 1000).astype("timedelta64[ms]")
        # The total goes underneath: where one site carries all the load the two coincide,
        # and the site's colour should stay visible.
        ax.step(times, load.total_kw, where="post", color="0.2", alpha=0.45, lw=2.2, label="total")
        for j, i in enumerate(shown):
            ax.step(
                times,
                load.site_kw[i],
                where="post",
                color=colours[j],
                lw=0.9,
                label=result.sites[i].name,
            )
        locator = mdates.AutoDateLocator(tz=zone)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=zone))
        ax.set_title(f"Load over the whole period, total and per site{note}")
        ax.set_xlabel(f"local time ({result.timezone})")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9)
    ax.set_ylabel("average load (kW)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)


def _resolution_label(resolution_s: int) -> str:
    names = [name for name, seconds in RESOLUTIONS.items() if seconds == resolution_s]
    return names[0] if names else f"{resolution_s} s"


def _sites_to_show(result: SimulationResult) -> list[int]:
    """Site indices to draw, in site order: all, or the PLOT_MAX_SITES with the most energy."""
    n = len(result.sites)
    if n <= PLOT_MAX_SITES:
        return list(range(n))
    energy = result.load.site_kw.sum(axis=1)
    # Stable sort on -energy keeps ties in site order, so the choice is deterministic.
    top = np.argsort(-energy, kind="stable")[:PLOT_MAX_SITES]
    return sorted(int(i) for i in top)


def _batches(n: int) -> Iterator[slice]:
    for first in range(0, n, _ROWS_PER_BATCH):
        yield slice(first, min(first + _ROWS_PER_BATCH, n))


@dataclass(frozen=True, slots=True)
class _Column:
    """One CSV column of a batch as bytes: row r's text is its `lengths[r]` bytes of `chars`.

    The text sits at the left of the row, or at the right when `right_aligned` (numbers, whose
    digits are produced from the last one up).
    """

    chars: np.ndarray  # uint8, shape (rows, width)
    lengths: np.ndarray  # int64, shape (rows,)
    right_aligned: bool = False


def _csv_rows(columns: Sequence[_Column]) -> bytes:
    """The rows joined by commas and terminated by newlines.

    Every field and separator of a row is laid side by side in one byte matrix with a mask of
    the bytes in use; a boolean selection then reads them out in row order. Formatting each
    field through Python strings costs ~0.2 us per field, this a few ns per byte.
    """
    n = columns[0].lengths.size
    widths = [c.chars.shape[1] for c in columns]
    matrix = np.empty((n, sum(widths) + len(columns)), dtype=np.uint8)
    used = np.empty(matrix.shape, dtype=bool)
    at = 0
    for i, (col, width) in enumerate(zip(columns, widths, strict=True)):
        span = np.arange(width)
        matrix[:, at : at + width] = col.chars
        if col.right_aligned:
            np.greater_equal(span, (width - col.lengths)[:, None], out=used[:, at : at + width])
        else:
            np.less(span, col.lengths[:, None], out=used[:, at : at + width])
        at += width
        matrix[:, at] = ord("\n") if i == len(columns) - 1 else ord(",")
        used[:, at] = True
        at += 1
    return matrix[used].tobytes()


def _label_table(labels: Sequence[str]) -> _Column:
    """UTF-8 CSV fields (RFC 4180 quoting where needed) of a small set of labels, by index."""
    encoded = []
    for label in labels:
        text = str(label)
        if any(c in text for c in ',"\r\n'):
            text = '"' + text.replace('"', '""') + '"'
        encoded.append(text.encode("utf-8"))
    width = max((len(e) for e in encoded), default=0)
    chars = np.zeros((len(encoded), max(width, 1)), dtype=np.uint8)
    for i, e in enumerate(encoded):
        chars[i, : len(e)] = np.frombuffer(e, dtype=np.uint8)
    lengths = np.array([len(e) for e in encoded], dtype=np.int64)
    return _Column(chars, lengths)


def _take(table: _Column, index: np.ndarray) -> _Column:
    return _Column(table.chars[index], table.lengths[index], table.right_aligned)


# 10, 100, ... 10**18: the number of these <= n is the digit count of n minus one.
_POW10 = 10 ** np.arange(1, 19, dtype=np.int64)
# |x| * 10**decimals must stay an exact integer in float64 to be printed digit by digit.
_MAX_SCALED = float(2**53)


def _number_column(values: np.ndarray, decimals: int) -> _Column:
    """Fixed-decimal text of each value as f"{x:.{decimals}f}" prints it; empty for NaN/inf.

    One difference on purpose: a value that rounds to zero prints without a minus sign.
    """
    v = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(v)
    scale = 10**decimals
    magnitude = np.abs(np.where(finite, v, 0.0))
    product = magnitude * scale
    scaled = np.rint(product)
    if scaled.size and scaled.max() >= _MAX_SCALED:
        raise ValueError(f"value too large to write with {decimals} decimals: {magnitude.max()}")
    # |x| * scale is itself rounded, so a value just off a tie (0.12345 -> 1234.5) can land on
    # it and round the wrong way; Python's correctly rounded formatting settles those few.
    near_tie = np.abs(product - np.floor(product) - 0.5) < 1e-6 + product * 1e-15
    for i in np.flatnonzero(near_tie).tolist():
        scaled[i] = float(f"{magnitude[i]:.{decimals}f}".replace(".", ""))
    q = scaled.astype(np.int64)
    negative = (v < 0) & (q > 0)
    whole = q // scale
    fraction = q - whole * scale
    int_digits = 1 + np.searchsorted(_POW10, whole, side="right")
    tail = decimals + 1 if decimals else 0  # the point and the decimals
    max_digits = int(int_digits.max()) if int_digits.size else 1
    width = 1 + max_digits + tail
    chars = np.zeros((v.size, width), dtype=np.uint8)
    for j in range(decimals):
        chars[:, width - 1 - j] = 48 + fraction % 10
        fraction //= 10
    if decimals:
        chars[:, width - tail] = ord(".")
    for j in range(max_digits):
        chars[:, width - tail - 1 - j] = 48 + whole % 10
        whole //= 10
    lengths = int_digits + tail + negative
    chars[np.flatnonzero(negative), (width - lengths)[negative]] = ord("-")
    lengths[~finite] = 0
    return _Column(chars, lengths, right_aligned=True)


def _utc_column(epoch0: float, seconds: np.ndarray) -> _Column:
    """ISO-8601 UTC ('2025-01-06T07:42:13Z') of epoch0 + seconds, floored; empty for NaN.

    Calendar fields come from integer arithmetic on days since 1970 (the proleptic Gregorian
    civil-from-days algorithm); numpy's datetime_as_string plus a byte conversion took 5x longer.
    """
    s = np.asarray(seconds, dtype=np.float64)
    absolute = np.floor(epoch0 + s)
    finite = np.isfinite(absolute)
    whole = np.where(finite, absolute, 0.0).astype(np.int64)
    days, second_of_day = np.divmod(whole, 86400)
    year, month, day = _civil_from_days(days)
    if finite.any() and (year[finite].min() < 1 or year[finite].max() > 9999):
        raise ValueError("timestamps must fall in the years 1 to 9999")
    hour, rest = np.divmod(second_of_day, 3600)
    minute, second = np.divmod(rest, 60)
    chars = np.frombuffer(b"0000-00-00T00:00:00Z" * s.size, dtype=np.uint8).reshape(s.size, 20)
    chars = chars.copy()
    for field, at, digits in (
        (year, 0, 4),
        (month, 5, 2),
        (day, 8, 2),
        (hour, 11, 2),
        (minute, 14, 2),
        (second, 17, 2),
    ):
        value = field.copy()
        for j in range(digits - 1, -1, -1):
            value, digit = np.divmod(value, 10)
            chars[:, at + j] = 48 + digit
    lengths = np.where(finite, 20, 0).astype(np.int64)
    return _Column(chars, lengths)


def _civil_from_days(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Year, month, day of each count of days since 1970-01-01 (proleptic Gregorian)."""
    z = days + 719468  # days since 0000-03-01, the start of a 400-year era
    era = np.floor_divide(z, 146097)
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153  # month counted from March
    day = doy - (153 * mp + 2) // 5 + 1
    month = np.where(mp < 10, mp + 3, mp - 9)
    year = yoe + era * 400 + (month <= 2)
    return year, month, day
