"""Output files: CSV layout and formatting, JSON, the plot, and byte-for-byte determinism."""

from __future__ import annotations

import csv
import io
import json
import math
import struct
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.loadcurve import bin_load
from simulator.output import (
    PLOT_DPI,
    PLOT_SIZE_IN,
    SESSIONS_HEADER,
    _Column,
    _csv_rows,
    _number_column,
    _utc_column,
    plot_load,
    write_all,
    write_load_csv,
    write_sessions_csv,
    write_summary_json,
)
from simulator.records import (
    SESSION_COLUMNS,
    PieceTable,
    SessionTable,
    SimulationResult,
    SiteInfo,
)
from simulator.summary import summarise

START = datetime(2025, 1, 6, tzinfo=UTC)
NAN = float("nan")
H = 3600.0
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def make_result(
    days: int = 2, seed: int = 1, n_sessions: int = 40, resolution_s: int = 900
) -> SimulationResult:
    """A small random but seeded run over three sites, with names that need CSV quoting."""
    rng = np.random.default_rng(seed)
    sites = [
        SiteInfo("Depot Nord", "depot", chargers=2, connectors=4, installed_kw=44.0),
        SiteInfo('Office "West"', "office", chargers=1, connectors=2, installed_kw=22.0),
        SiteInfo("Retail, Mall", "retail", chargers=1, connectors=2, installed_kw=100.0),
    ]
    charger_ids = [["DEP-1", "DEP-2"], ["OFF-1"], ["RET-1"]]
    horizon = days * 86400.0
    site = rng.integers(0, 3, n_sessions)
    charger = np.where(site == 0, rng.integers(0, 2, n_sessions), 0)
    plug_in = np.sort(rng.uniform(0, horizon - 6 * H, n_sessions))
    charge_h = rng.uniform(0.2, 3.0, n_sessions)
    power = rng.choice([7.4, 11.0, 22.0], n_sessions)
    cols = {
        "site": site,
        "charger": charger,
        "evse_id": rng.integers(1, 3, n_sessions),
        "vehicle": rng.integers(0, 2, n_sessions),
        "arrival_s": plug_in - 30.0,
        "plug_in_s": plug_in,
        "plug_out_s": plug_in + charge_h * H + rng.uniform(0, 2 * H),
        "charge_start_s": plug_in + 5.0,
        "charge_end_s": plug_in + 5.0 + charge_h * H,
        "energy_wanted_kwh": power * charge_h * 1.2,
        "energy_delivered_kwh": power * charge_h,
        "max_power_kw": power,
        "soc_arrival": rng.uniform(0.1, 0.5, n_sessions),
        "soc_departure": rng.uniform(0.6, 1.0, n_sessions),
    }
    columns = {k: np.asarray(cols[k], dtype=t) for k, t in SESSION_COLUMNS.items()}
    pieces = PieceTable(
        site=site.astype("i4"),
        t0_s=columns["charge_start_s"],
        t1_s=columns["charge_end_s"],
        a=power,
        b=np.zeros(n_sessions),
        capacity_kwh=np.full(n_sessions, 60.0),
        soc0=columns["soc_arrival"],
    )
    return SimulationResult(
        scenario_name="output-test",
        seed=seed,
        start=START,
        timezone="Europe/Berlin",
        days=days,
        sites=sites,
        sessions=SessionTable(columns, ["Model Y", "e-Golf, 2019"], charger_ids),
        pieces=pieces,
        load=bin_load(pieces, 3, horizon, resolution_s, START),
        turned_away=np.array([0, 2, 1]),
    )


def one_session_result(**overrides: float) -> SimulationResult:
    """make_result with its sessions replaced by one session with known values."""
    r = make_result()
    row = {
        "site": 2,
        "charger": 0,
        "evse_id": 2,
        "vehicle": 1,
        "arrival_s": 7 * H + 42 * 60 + 13.9,
        "plug_in_s": 7 * H + 45 * 60,
        "plug_out_s": 9 * H,
        "charge_start_s": 7 * H + 46 * 60,
        "charge_end_s": 8.5 * H,
        "energy_wanted_kwh": 20.0,
        "energy_delivered_kwh": 12.3456,
        "max_power_kw": 10.999,
        "soc_arrival": 0.12345,
        "soc_departure": 1.0,
    }
    row.update(overrides)
    r.sessions.columns = {k: np.array([row[k]], dtype=t) for k, t in SESSION_COLUMNS.items()}
    return r


# --- sessions.csv ------------------------------------------------------------------------------


def test_sessions_csv_header_and_one_known_row(tmp_path: Path) -> None:
    path = tmp_path / "sessions.csv"
    write_sessions_csv(one_session_result(), path)
    assert path.read_text(encoding="utf-8").splitlines() == [
        SESSIONS_HEADER,
        '"Retail, Mall",RET-1,2,"e-Golf, 2019",2025-01-06T07:42:13Z,2025-01-06T07:45:00Z,'
        "2025-01-06T09:00:00Z,2025-01-06T07:46:00Z,2025-01-06T08:30:00Z,"
        "20.000,12.346,11.00,0.1235,1.0000",
    ]
    assert SESSIONS_HEADER == (
        "site,charger_id,evse_id,vehicle,arrival,plug_in,plug_out,charge_start,charge_end,"
        "energy_wanted_kwh,energy_delivered_kwh,max_power_kw,soc_arrival,soc_departure"
    )


def test_sessions_csv_leaves_fields_empty_where_the_value_is_nan(tmp_path: Path) -> None:
    path = tmp_path / "sessions.csv"
    r = one_session_result(
        charge_start_s=NAN, charge_end_s=NAN, max_power_kw=NAN, soc_departure=NAN
    )
    write_sessions_csv(r, path)
    row = next(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    assert row["charge_start"] == row["charge_end"] == row["max_power_kw"] == ""
    assert row["soc_departure"] == ""
    assert row["plug_out"] == "2025-01-06T09:00:00Z"


def test_sessions_csv_reads_back_with_the_csv_module(tmp_path: Path) -> None:
    r = make_result()
    path = tmp_path / "sessions.csv"
    write_sessions_csv(r, path)
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    cols = r.sessions.columns
    assert len(rows) == len(r.sessions)
    names = [s.name for s in r.sites]
    for i, row in enumerate(rows):
        site, charger = int(cols["site"][i]), int(cols["charger"][i])
        assert row["site"] == names[site]
        assert row["charger_id"] == r.sessions.charger_ids[site][charger]
        assert row["vehicle"] == r.sessions.vehicle_names[int(cols["vehicle"][i])]
        assert row["evse_id"] == str(int(cols["evse_id"][i]))
        arrival = START + timedelta(seconds=math.floor(cols["arrival_s"][i]))
        assert row["arrival"] == arrival.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert float(row["energy_delivered_kwh"]) == pytest.approx(
            cols["energy_delivered_kwh"][i], abs=5e-4
        )
        assert len(row["soc_arrival"].split(".")[1]) == 4


def test_an_empty_sessions_table_writes_only_the_header(tmp_path: Path) -> None:
    r = make_result(n_sessions=0)
    path = tmp_path / "sessions.csv"
    write_sessions_csv(r, path)
    assert path.read_bytes() == (SESSIONS_HEADER + "\n").encode()


# --- field formatting --------------------------------------------------------------------------


def _column_text(column: _Column) -> list[str]:
    text = _csv_rows([column]).decode()
    return text.split("\n")[:-1]


@settings(max_examples=300, deadline=None)
@given(
    values=st.lists(
        st.one_of(st.floats(-1e9, 1e9), st.sampled_from([NAN, math.inf, -math.inf])),
        min_size=1,
        max_size=20,
    ),
    decimals=st.sampled_from([0, 2, 3, 4]),
)
def test_numbers_print_like_python_fixed_point_formatting(
    values: list[float], decimals: int
) -> None:
    expected = [f"{v:.{decimals}f}" if math.isfinite(v) else "" for v in values]
    expected = [e[1:] if e.startswith("-") and float(e) == 0 else e for e in expected]
    assert _column_text(_number_column(np.array(values), decimals)) == expected


def test_values_that_land_on_a_tie_when_scaled_round_like_python() -> None:
    # 0.12345 * 1e4 is exactly 1234.5 in floating point, yet 0.12345 itself lies above the tie.
    values = np.array([0.12345, 2.675, 1.0005, 0.125, 0.375, 12.5, 13.5])
    assert _column_text(_number_column(values, 4))[0] == "0.1235"
    assert _column_text(_number_column(values, 2)) == [f"{v:.2f}" for v in values]
    assert _column_text(_number_column(values, 0)) == [f"{v:.0f}" for v in values]


def test_tiny_negative_residues_never_print_as_negative_zero() -> None:
    assert _column_text(_number_column(np.array([-1e-15, -0.0, -0.0004, -0.0006]), 3)) == [
        "0.000",
        "0.000",
        "0.000",
        "-0.001",
    ]


@settings(max_examples=200, deadline=None)
@given(
    seconds=st.lists(st.floats(-1e9, 3e9), min_size=1, max_size=20),
    epoch=st.sampled_from([0.0, 1736121600.0, 951782399.5]),
)
def test_timestamps_match_datetime_formatting(seconds: list[float], epoch: float) -> None:
    origin = datetime(1970, 1, 1, tzinfo=UTC)
    expected = [
        (origin + timedelta(seconds=math.floor(epoch + s))).strftime("%Y-%m-%dT%H:%M:%SZ")
        for s in seconds
    ]
    assert _column_text(_utc_column(epoch, np.array(seconds))) == expected


def test_timestamps_of_leap_days_and_missing_values() -> None:
    epoch = datetime(2024, 2, 28, 23, 59, 59, tzinfo=UTC).timestamp()
    assert _column_text(_utc_column(epoch, np.array([0.0, 1.0, NAN, 86401.0]))) == [
        "2024-02-28T23:59:59Z",
        "2024-02-29T00:00:00Z",
        "",
        "2024-03-01T00:00:00Z",
    ]


# --- load.csv and summary.json -----------------------------------------------------------------


def test_load_csv_has_one_row_per_interval_with_site_and_total_columns(tmp_path: Path) -> None:
    r = make_result()
    path = tmp_path / "load.csv"
    write_load_csv(r, path)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == 'timestamp,Depot Nord,"Office ""West""","Retail, Mall",total_kw'
    rows = list(csv.reader(lines[1:]))
    assert len(rows) == r.load.n_intervals == 2 * 96
    assert rows[0][0] == "2025-01-06T00:00:00Z"
    assert rows[1][0] == "2025-01-06T00:15:00Z"
    assert rows[-1][0] == "2025-01-07T23:45:00Z"
    for k, row in enumerate(rows):
        assert [float(x) for x in row[1:]] == pytest.approx(
            [*r.load.site_kw[:, k], r.load.total_kw[k]], abs=5e-4
        )
        assert all(len(x.split(".")[1]) == 3 for x in row[1:])


def test_the_summary_peak_time_is_a_load_csv_row_with_the_peak_total(tmp_path: Path) -> None:
    r = make_result()
    write_load_csv(r, tmp_path / "load.csv")
    total = summarise(r)["total"]
    rows = {
        row["timestamp"]: row
        for row in csv.DictReader(io.StringIO((tmp_path / "load.csv").read_text(encoding="utf-8")))
    }
    assert float(rows[total["peak_time"]]["total_kw"]) == pytest.approx(total["peak_kw"], abs=1e-3)


def test_summary_json_is_sorted_indented_and_ends_with_a_newline(tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    summary = {"b": 1, "a": {"d": None, "c": 2.5}}
    write_summary_json(summary, path)
    text = path.read_text(encoding="utf-8")
    assert text == '{\n  "a": {\n    "c": 2.5,\n    "d": null\n  },\n  "b": 1\n}\n'
    assert json.loads(text) == summary


def test_summary_json_refuses_nan(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_summary_json({"x": NAN}, tmp_path / "summary.json")


# --- plot --------------------------------------------------------------------------------------


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.mark.parametrize("days", [2, 20])
def test_plot_is_a_png_of_the_configured_size(tmp_path: Path, days: int) -> None:
    path = tmp_path / "load.png"
    plot_load(make_result(days=days, n_sessions=20 * days), path)
    data = path.read_bytes()
    assert len(data) > 10_000
    assert png_size(data) == (PLOT_SIZE_IN[0] * PLOT_DPI, PLOT_SIZE_IN[1] * PLOT_DPI)
    assert data.endswith(b"IEND\xaeB`\x82")
    assert b"Software" not in data  # no version stamp that would change the bytes


def test_plot_depends_on_the_data(tmp_path: Path) -> None:
    plot_load(make_result(seed=1), tmp_path / "a.png")
    plot_load(make_result(seed=2), tmp_path / "b.png")
    assert (tmp_path / "a.png").read_bytes() != (tmp_path / "b.png").read_bytes()


# --- write_all ---------------------------------------------------------------------------------


def test_write_all_writes_every_file_and_is_byte_for_byte_deterministic(tmp_path: Path) -> None:
    first = write_all(make_result(), tmp_path / "one" / "nested", 900)
    second = write_all(make_result(), tmp_path / "two", 900)
    assert [p.name for p in first] == ["sessions.csv", "load.csv", "summary.json", "load.png"]
    for a, b in zip(first, second, strict=True):
        assert a.is_file()
        assert a.stat().st_size > 0
        assert a.read_bytes() == b.read_bytes(), a.name
    summary = json.loads(first[2].read_text(encoding="utf-8"))
    assert summary["scenario"] == "output-test"
    assert list(summary["sites"]) == sorted(summary["sites"])  # sort_keys applies to sites too


def test_write_all_rebins_when_asked_for_another_resolution(tmp_path: Path) -> None:
    r = make_result(resolution_s=3600)
    before = r.load
    paths = write_all(r, tmp_path, 300)
    rows = paths[1].read_text(encoding="utf-8").splitlines()[1:]
    assert len(rows) == 2 * 288
    assert rows[1].startswith("2025-01-06T00:05:00Z,")
    assert r.load is before  # the caller's result is untouched
    assert json.loads(paths[2].read_text(encoding="utf-8"))["resolution_s"] == 300
    energy = sum(float(row.rsplit(",", 1)[1]) for row in rows) * 300 / 3600
    assert energy == pytest.approx(before.total_kw.sum(), rel=1e-5)
