"""Fault configuration: the scenario's `faults` and the charger model's reconnect and offline
queue settings, `--fault` options, their one-line errors, and `--fault` on the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError
from typer.testing import CliRunner

from simulator.cli import app
from simulator.scenario import (
    FAULT_ERROR_CODES,
    ChargerModel,
    ConnectionDropsConfig,
    ConnectorFaultsConfig,
    CsmsMisbehaviourConfig,
    CsmsRestartConfig,
    FaultsConfig,
    OutageConfig,
    PowerLossConfig,
    ReconnectConfig,
    ScenarioError,
    load_scenario,
    merge_faults,
    parse_fault_option,
    parse_scenario,
)

SITES = [
    {"name": "depot", "archetype": "depot_van", "chargers": 2},
    {"name": "homes", "archetype": "home", "chargers": 3},
]


def scenario(faults: dict[str, Any], **charger: Any) -> Any:
    sites = [dict(SITES[0], charger=charger), SITES[1]] if charger else SITES
    return parse_scenario({"sites": sites, "faults": faults}, "f.yaml")


def problems(faults: dict[str, Any], **charger: Any) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        scenario(faults, **charger)
    return info.value.problems


# -- the models ------------------------------------------------------------------------------------


def test_a_scenario_without_faults_has_none_and_chargers_have_the_documented_defaults() -> None:
    s = scenario({})
    assert s.faults == FaultsConfig() and not s.faults.station_faults
    assert s.faults.wall_outages() == [] and s.faults.drops_mtbf_s() is None
    model = ChargerModel()
    assert model.reconnect == ReconnectConfig(
        wait_minimum_s=1.0, random_range_s=10.0, repeat_times=6, max_s=600.0, mode="jittered"
    )
    assert (model.offline_queue_limit, model.offline_queue_policy) == (
        10_000,
        "drop_meter_values",
    )
    assert (model.message_attempts, model.message_retry_s) == (3, 60.0)


def test_charger_reconnect_and_queue_settings_are_read_and_bounded() -> None:
    s = scenario(
        {},
        reconnect={"wait_minimum_s": 2, "mode": "synchronised", "max_s": 60},
        offline_queue_limit=5,
        offline_queue_policy="drop_oldest",
        message_attempts=5,
        message_retry_s=0,
    )
    charger = s.sites[0].charger
    assert charger.reconnect.mode == "synchronised" and charger.reconnect.wait_minimum_s == 2.0
    assert (charger.offline_queue_limit, charger.offline_queue_policy) == (5, "drop_oldest")
    for field, value in [
        ("reconnect", {"wait_minimum_s": 0}),
        ("reconnect", {"repeat_times": 33}),
        ("reconnect", {"mode": "random"}),
        ("reconnect", {"jitter": 1}),
        ("offline_queue_limit", 0),
        ("offline_queue_policy", "drop_all"),
        ("message_attempts", 0),
        ("message_retry_s", -1),
    ]:
        (line,) = problems({}, **{field: value})
        assert line.startswith(f"f.yaml: sites[0].charger.{field}"), line


MODELS: list[type[BaseModel]] = [
    ReconnectConfig,
    ConnectionDropsConfig,
    OutageConfig,
    ConnectorFaultsConfig,
    PowerLossConfig,
    CsmsMisbehaviourConfig,
    CsmsRestartConfig,
    FaultsConfig,
]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_fault_field_is_described_for_the_schema(model: type[BaseModel]) -> None:
    assert model.__doc__
    for name, field in model.model_fields.items():
        assert field.description, f"{model.__name__}.{name} has no description"
    for name in ("reconnect", "offline_queue_limit", "offline_queue_policy", "message_attempts"):
        assert ChargerModel.model_fields[name].description


def test_the_cli_schema_shows_the_faults() -> None:
    out = CliRunner().invoke(app, ["scenarios", "--schema"])
    schema = json.loads(out.output)
    assert "faults" in schema["properties"]
    defs = schema["$defs"]
    assert "RetryBackOffWaitMinimum" in json.dumps(defs["ReconnectConfig"])
    assert defs["ConnectorFaultsConfig"]["properties"]["mtbf"]["description"]


def test_a_scenario_file_with_faults_loads(tmp_path: Path) -> None:
    path = tmp_path / "faulty.yaml"
    path.write_text(
        "sites:\n  - {name: depot, archetype: depot_van, chargers: 2}\n"
        "faults:\n"
        "  connection_drops: {mtbf: 10m, sites: [depot]}\n"
        "  outages:\n    - {at: 2m, duration: 30s}\n    - {at: 60s, duration: 1m, site: depot}\n"
        "  connector_faults: {mtbf: 30d, repair: 1h, error_codes: [GroundFailure]}\n"
        "  power_loss: {mtbf: 90d, at: [2h], downtime: 5m, site: depot}\n"
        "  csms: {slow_p: 0.1, slow_s: 3, error_p: 0.01, close_p: 0.001, actions: [Heartbeat]}\n"
        "  csms_restarts:\n    - {at: 5m, down: 20s, signal: term}\n"
    )
    faults = load_scenario(path).faults
    assert faults.station_faults
    assert faults.wall_outages() == [(60.0, 60.0, "depot"), (120.0, 30.0, None)]
    assert faults.drops_mtbf_s() == 600.0
    assert faults.connector_faults is not None and faults.connector_faults.mtbf_s() == 30 * 86400
    assert faults.connector_faults.repair_s() == 3600.0
    pl = faults.power_loss
    assert pl is not None and (pl.mtbf_s(), pl.at_s(), pl.downtime_s()) == (90 * 86400, [7200], 300)
    assert faults.csms_restarts[0].signal == "term"


@pytest.mark.parametrize(
    ("faults", "where"),
    [
        ({"outages": [{"at": "1m", "duration": "1m", "site": "nowhere"}]}, "outages[0].site"),
        (
            {"connection_drops": {"mtbf": "1m", "sites": ["depot", "x"]}},
            "connection_drops.sites[1]",
        ),
        ({"connector_faults": {"mtbf": "1d", "sites": ["x"]}}, "connector_faults.sites[0]"),
        ({"power_loss": {"at": ["1h"], "site": "x"}}, "power_loss.site"),
    ],
)
def test_a_fault_naming_an_unknown_site_is_one_line_naming_the_field(
    faults: dict[str, Any], where: str
) -> None:
    (line,) = problems(faults)
    assert line.startswith(f"f.yaml: faults: {where}: unknown site "), line
    assert "(sites: depot, homes)" in line and "\n" not in line


@pytest.mark.parametrize(
    ("faults", "where", "words"),
    [
        (
            {"connector_faults": {"mtbf": "1d", "error_codes": ["NoError"]}},
            "error_codes",
            "NoError",
        ),
        ({"connector_faults": {"mtbf": "1d", "error_codes": ["Melted"]}}, "error_codes", "Melted"),
        ({"connector_faults": {"mtbf": "1d", "error_codes": []}}, "error_codes", "at least 1"),
        ({"connector_faults": {"mtbf": "10s"}}, "mtbf", "too short"),
        ({"connector_faults": {"repair": "1h"}}, "mtbf", "required"),
        ({"connector_faults": {"mtbf": "1d", "repair": "0h"}}, "repair", "positive"),
        ({"power_loss": {"downtime": "1m"}}, "", "give mtbf"),
        ({"power_loss": {"at": ["soon"]}}, "at", "cannot read"),
        ({"power_loss": {"at": ["1h"], "downtime": "-1m"}}, "downtime", "cannot read"),
        ({"power_loss": {"mtbf": "59s"}}, "mtbf", "too short"),
        ({"outages": [{"at": "1m", "duration": "0s"}]}, "[0].duration", "positive"),
        ({"outages": [{"at": "later", "duration": "1s"}]}, "[0].at", "cannot read"),
        ({"connection_drops": {"mtbf": "500ms"}}, "mtbf", "too short"),
        ({"csms": {"slow_p": 0.6, "error_p": 0.6}}, "", "at most 1"),
        ({"csms": {"slow_s": 0}}, "slow_s", "greater than 0"),
        ({"csms": {"actions": ["Dance"]}}, "actions", "Dance"),
        ({"csms_restarts": [{"at": "1m", "signal": "hup"}]}, "[0].signal", "'kill' or 'term'"),
        ({"csms_restarts": [{"at": "1m", "down": "0s"}]}, "[0].down", "positive"),
        ({"floods": {}}, "", "unknown field"),
    ],
)
def test_bad_fault_settings_are_one_line_each(
    faults: dict[str, Any], where: str, words: str
) -> None:
    (line,) = problems(faults)
    (section,) = faults
    path = f"faults.{section}" + (where if where.startswith("[") or not where else f".{where}")
    assert line.startswith(f"f.yaml: {path}: "), line
    assert words in line and "\n" not in line


def test_every_error_code_but_no_error_is_a_fault_code() -> None:
    assert "NoError" not in FAULT_ERROR_CODES and len(FAULT_ERROR_CODES) == 15
    assert ConnectorFaultsConfig(mtbf="1d", error_codes=list(FAULT_ERROR_CODES))


# -- --fault options ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("drops:mtbf=10m", FaultsConfig(connection_drops=ConnectionDropsConfig(mtbf="10m"))),
        (
            "drops:mtbf=10m,sites=depot+homes",
            FaultsConfig(
                connection_drops=ConnectionDropsConfig(mtbf="10m", sites=["depot", "homes"])
            ),
        ),
        (
            "outage:at=60s,duration=30s,site=depot",
            FaultsConfig(outages=[OutageConfig(at="60s", duration="30s", site="depot")]),
        ),
        (
            " connector : mtbf=7d , repair=1h,error_codes=GroundFailure+OtherError ",
            FaultsConfig(
                connector_faults=ConnectorFaultsConfig(
                    mtbf="7d", repair="1h", error_codes=["GroundFailure", "OtherError"]
                )
            ),
        ),
        (
            "power-loss:at=2h+26h,downtime=5m",
            FaultsConfig(power_loss=PowerLossConfig(at=["2h", "26h"], downtime="5m")),
        ),
        (
            "csms:slow_p=0.05,slow_s=2,actions=MeterValues",
            FaultsConfig(
                csms=CsmsMisbehaviourConfig(slow_p=0.05, slow_s=2.0, actions=["MeterValues"])
            ),
        ),
        ("csms-restart:at=60s", FaultsConfig(csms_restarts=[CsmsRestartConfig(at="60s")])),
        (
            "csms-restart:at=60s,down=10s,signal=term",
            FaultsConfig(csms_restarts=[CsmsRestartConfig(at="60s", down="10s", signal="term")]),
        ),
    ],
)
def test_good_fault_options(text: str, expected: FaultsConfig) -> None:
    assert parse_fault_option(text) == expected
    assert parse_fault_option(text, sites=["depot", "homes"]) == expected


@pytest.mark.parametrize(
    ("text", "field", "words"),
    [
        ("flood:at=1m", "kind", "unknown fault kind 'flood'"),
        ("", "kind", "expected KIND:key=value"),
        ("drops", "mtbf", "required field is missing"),
        ("drops:mtbf", "mtbf", "expected key=value"),
        ("drops:=5", "=5", "expected key=value"),
        ("drops:mtbf=soon", "mtbf", "cannot read duration"),
        ("drops:mtbf=10m,mtbf=5m", "mtbf", "given twice"),
        ("drops:mtbf=10m,speed=3", "speed", "unknown key (expected mtbf, sites)"),
        ("outage:at=60s", "duration", "required"),
        ("outage:at=60s,duration=30s,site=nowhere", "site", "unknown site 'nowhere'"),
        ("drops:mtbf=1m,sites=depot+x", "sites[1]", "unknown site 'x'"),
        ("connector:mtbf=7d,error_codes=NoError", "error_codes", "NoError"),
        ("power-loss:downtime=5m", "power-loss", "give mtbf"),
        ("csms:slow_p=2", "slow_p", "less than or equal to 1"),
        ("csms:slow_p=0.7,close_p=0.7", "csms", "at most 1"),
        ("csms-restart:at=1m,signal=hup", "signal", "'kill' or 'term'"),
    ],
)
def test_bad_fault_options_are_one_line_naming_the_option_and_field(
    text: str, field: str, words: str
) -> None:
    with pytest.raises(ValueError) as info:
        parse_fault_option(text, sites=["depot", "homes"])
    message = str(info.value)
    assert message.startswith(f"--fault {text.strip()}: {field}: "), message
    assert words in message and "\n" not in message


def test_a_fault_option_with_a_newline_stays_on_one_line() -> None:
    with pytest.raises(ValueError) as info:
        parse_fault_option("drops:\nmtbf=soon")
    assert "\n" not in str(info.value)


def test_command_line_faults_add_outages_and_restarts_and_replace_single_faults() -> None:
    base = scenario(
        {
            "connection_drops": {"mtbf": "10m"},
            "outages": [{"at": "1m", "duration": "1m"}],
            "connector_faults": {"mtbf": "30d"},
        }
    ).faults
    extra = [
        parse_fault_option("drops:mtbf=1m"),
        parse_fault_option("outage:at=5s,duration=1s"),
        parse_fault_option("csms-restart:at=2m"),
    ]
    merged = merge_faults(base, extra)
    assert merged.drops_mtbf_s() == 60.0
    assert merged.wall_outages() == [(5.0, 1.0, None), (60.0, 60.0, None)]
    assert [r.at for r in merged.csms_restarts] == ["2m"]
    assert merged.connector_faults == base.connector_faults
    assert merge_faults(base, []) == base
    assert base.drops_mtbf_s() == 600.0  # the scenario's own config is untouched


# -- the CLI ---------------------------------------------------------------------------------------


def test_simulate_with_faults_on_the_command_line(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = CliRunner().invoke(
        app,
        [
            "simulate",
            "quickstart",
            "--days",
            "1",
            "--out",
            str(out),
            "-q",
            "--fault",
            "connector:mtbf=12h,repair=2h,sites=street",
            "--fault",
            "power-loss:at=1h,downtime=10m,site=homes",
        ],
    )
    assert result.exit_code == 0, result.output
    faults = json.loads((out / "summary.json").read_text())["faults"]
    assert faults["sites"]["homes"]["power_losses"] == 8  # every home charger, once
    assert faults["sites"]["street"]["connector_faults"] > 0
    assert faults["sites"]["homes"]["connector_faults"] == 0
    assert faults["connector_downtime_h"] > 0
    plain = CliRunner().invoke(
        app, ["simulate", "quickstart", "--days", "1", "--out", str(tmp_path / "p"), "-q"]
    )
    assert plain.exit_code == 0
    assert "faults" not in json.loads((tmp_path / "p" / "summary.json").read_text())


@pytest.mark.parametrize(
    ("command", "fault", "words"),
    [
        ("simulate", "connector:mtbf=1d,sites=nowhere", "sites[0]: unknown site 'nowhere'"),
        ("run", "outage:at=1m", "duration: required field is missing"),
    ],
)
def test_a_bad_fault_option_is_one_line_and_exit_2(command: str, fault: str, words: str) -> None:
    # A real process: what a user sees, with no traceback anywhere; `run` fails before it
    # starts anything.
    proc = subprocess.run(
        [sys.executable, "-m", "simulator.cli", command, "quickstart", "--fault", fault],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    line = proc.stderr.strip()
    assert line.startswith(f"fleetsim: error: --fault {fault}: {words}"), line
    assert "\n" not in line
    assert "Traceback" not in proc.stdout


def test_reading_a_bad_fault_keeps_pydantic_errors_out(tmp_path: Path) -> None:
    with pytest.raises(ValueError) as info:
        parse_fault_option("csms:slow_s=fast")
    assert not isinstance(info.value, ValidationError)
    assert str(info.value).startswith("--fault csms:slow_s=fast: slow_s: ")


def test_run_hands_the_scenario_with_the_command_line_faults_to_the_runner(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import simulator.run

    seen: list[Any] = []

    def fake_run(scenario: Any, options: Any, console: Any) -> Any:
        seen.append(scenario)
        raise simulator.run.RunError("stopped by the test")

    monkeypatch.setattr(simulator.run, "run_scenario", fake_run)
    result = CliRunner().invoke(
        app,
        [
            "run",
            "quickstart",
            "--fault",
            "outage:at=5s,duration=2s,site=homes",
            "--fault",
            "drops:mtbf=1m",
        ],
    )
    assert result.exit_code == 2 and "stopped by the test" in result.output
    (scenario,) = seen
    assert scenario.faults.wall_outages() == [(5.0, 2.0, "homes")]
    assert scenario.faults.drops_mtbf_s() == 60.0
