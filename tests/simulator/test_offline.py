"""The offline simulator end to end: determinism, energy bookkeeping, rescaling, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from models.physics import piece_soc_array
from simulator.cli import app
from simulator.offline import simulate
from simulator.records import SimulationResult
from simulator.scenario import load_scenario

FILES = ("sessions.csv", "load.csv", "summary.json", "load.png")


@pytest.fixture(scope="module")
def quick() -> SimulationResult:
    return simulate(load_scenario("quickstart"), days=3)


def test_sessions_are_whole_and_consistent(quick: SimulationResult) -> None:
    c = quick.sessions.columns
    assert len(quick.sessions) > 20
    done = ~np.isnan(c["plug_out_s"])
    assert np.all(c["arrival_s"] >= 0) and np.all(c["arrival_s"] < 3 * 86400)
    assert np.all(c["plug_in_s"][done] >= c["arrival_s"][done])
    assert np.all(c["charge_start_s"][done] >= c["plug_in_s"][done])
    assert np.all(c["charge_end_s"][done] <= c["plug_out_s"][done])
    assert np.all(c["energy_delivered_kwh"] <= c["energy_wanted_kwh"] + 1e-9)
    assert np.all(c["energy_delivered_kwh"] >= 0)
    assert np.all(c["soc_departure"] <= 1.0)
    # No session draws more than its EVSE is rated for (quickstart: 11, 11, 22 and 50 kW).
    rated = np.array([11.0, 11.0, 22.0, 50.0])[c["site"]]
    assert np.all(c["max_power_kw"] <= rated + 1e-9)
    assert set(np.unique(c["site"])) == {0, 1, 2, 3}


def test_load_curve_holds_exactly_the_energy_of_the_pieces(quick: SimulationResult) -> None:
    p = quick.pieces
    horizon = quick.horizon_s
    t0, t1 = np.clip(p.t0_s, 0, horizon), np.clip(p.t1_s, 0, horizon)
    soc_lo = piece_soc_array(p.a, p.b, p.capacity_kwh, p.soc0, t0 - p.t0_s)
    soc_hi = piece_soc_array(p.a, p.b, p.capacity_kwh, p.soc0, t1 - p.t0_s)
    energy_pieces = float(np.sum((soc_hi - soc_lo) * p.capacity_kwh))
    energy_load = float(quick.load.site_kw.sum()) * quick.load.resolution_s / 3600
    assert energy_load == pytest.approx(energy_pieces, rel=1e-9)
    # Sessions that arrived and left inside the window account for nearly all of it (the rest
    # is cars plugged in across the edges of the window).
    c = quick.sessions.columns
    inside = float(c["energy_delivered_kwh"].sum())
    assert inside == pytest.approx(energy_load, rel=0.25)


def test_the_same_seed_gives_the_same_bytes_and_another_seed_does_not(tmp_path: Path) -> None:
    runner = CliRunner()
    outs = []
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        out = tmp_path / name
        result = runner.invoke(
            app,
            [
                "simulate",
                "quickstart",
                "--days",
                "2",
                "--seed",
                str(seed),
                "--out",
                str(out),
                "--quiet",
            ],
        )
        assert result.exit_code == 0, result.output
        outs.append({f: (out / f).read_bytes() for f in FILES})
    assert outs[0] == outs[1]
    assert outs[0]["sessions.csv"] != outs[2]["sessions.csv"]
    assert outs[0]["load.png"][:8] == b"\x89PNG\r\n\x1a\n"


def test_rescaling_changes_the_fleet_not_the_chargers_that_remain() -> None:
    scenario = load_scenario("quickstart")
    small = simulate(scenario, days=2, chargers=8)
    assert [s.chargers for s in small.sites] == [4, 2, 1, 1]
    full = simulate(scenario, days=2)

    # Charger 0 of the homes site has the same random streams whatever the fleet size, so its
    # sessions are identical (homes have one car per charger: no queueing interaction).
    def first_home_charger(r: SimulationResult) -> np.ndarray:
        c = r.sessions.columns
        mask = (c["site"] == 0) & (c["charger"] == 0)
        return np.column_stack([c["arrival_s"][mask], c["energy_wanted_kwh"][mask]])

    assert np.array_equal(first_home_charger(small), first_home_charger(full))


def test_cli_simulate_writes_every_file_and_prints_a_table(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = CliRunner().invoke(
        app, ["simulate", "quickstart", "--days", "1", "--out", str(out), "--resolution", "1h"]
    )
    assert result.exit_code == 0, result.output
    assert all((out / f).stat().st_size > 0 for f in FILES)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resolution_s"] == 3600
    assert "homes" in result.output and "total" in result.output
    assert len((out / "load.csv").read_text().splitlines()) == 1 + 24


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["simulate", "quickstart", "--resolution", "2min"], "--resolution"),
        (["simulate", "quickstart", "--days", "-1"], "--days"),
        (["simulate", "quickstart", "--chargers", "0"], "--chargers"),
        (["simulate", "quickstart", "--start", "yesterday"], "--start"),
        (["simulate", "no-such-scenario"], "no-such-scenario: cannot read"),
        (["validate", "no-such.yaml"], "no-such.yaml: cannot read"),
        (["simulate", "quickstart", "--days", "abc"], "Invalid value for '--days'"),
        (["simulate", "quickstart", "--bogus"], "No such option: --bogus"),
        (["simulate"], "Missing argument"),
        (["no-such-command"], "No such command"),
    ],
)
def test_cli_mistakes_are_one_line_and_exit_2(args: list[str], words: str) -> None:
    # A real process: what a user sees, with no traceback anywhere.
    proc = subprocess.run(
        [sys.executable, "-m", "simulator.cli", *args], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2, proc.stderr
    assert words in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_cli_validate_and_list(tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["validate", "quickstart", "depot"])
    assert ok.exit_code == 0 and ok.output.count("ok:") == 2
    listed = runner.invoke(app, ["scenarios"])
    assert listed.exit_code == 0 and "dc-corridor" in listed.output
    schema = runner.invoke(app, ["scenarios", "--schema"])
    assert json.loads(schema.output)["title"] == "Scenario"


def test_rescaling_a_network_without_chargers_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("sites:\n  - archetype: home\n    chargers: 0\n")
    proc = subprocess.run(
        [sys.executable, "-m", "simulator.cli", "simulate", str(path), "--chargers", "5"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (
        f"fleetsim: error: --chargers: {path} has no chargers to rescale "
        "(every site has chargers: 0)"
    )


def test_archetype_listing_is_yaml_a_site_can_paste_as_its_demand() -> None:
    import yaml

    from models.archetypes import ARCHETYPES, get_archetype, with_overrides

    listed = CliRunner().invoke(app, ["scenarios", "--archetypes"])
    assert listed.exit_code == 0
    data = yaml.safe_load(listed.output)
    assert set(data) == set(ARCHETYPES)
    for name, entry in data.items():
        params = get_archetype(name).params
        assert with_overrides(params, entry["demand"]) == params  # the defaults, exactly
