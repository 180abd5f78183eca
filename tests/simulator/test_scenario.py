"""Scenario files: bundled ones valid, mistakes reported as one line naming file and field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.scenario import (
    ScenarioError,
    bundled_scenarios,
    largest_remainder,
    load_scenario,
    parse_scenario,
    resolve_site,
)


def test_every_bundled_scenario_validates_and_states_its_sources() -> None:
    names = {p.stem for p in bundled_scenarios()}
    assert {"quickstart", "home", "workplace", "retail", "dc-corridor", "depot"} <= names
    for path in bundled_scenarios():
        scenario = load_scenario(path)
        assert scenario.description, path
        assert "Source" in path.read_text() or "source" in path.read_text(), path
        for site in scenario.sites:
            resolve_site(site)


def test_a_three_line_scenario_is_enough(tmp_path: Path) -> None:
    path = tmp_path / "tiny.yaml"
    path.write_text("sites:\n  - archetype: home\n    chargers: 3\n")
    scenario = load_scenario(path)
    assert scenario.name == "tiny" and scenario.sites[0].site_name == "home"
    assert scenario.seed == 1 and scenario.timezone == "UTC"


def test_a_bundled_scenario_is_found_by_name() -> None:
    assert load_scenario("quickstart").name == "quickstart"


BAD_CASES: list[tuple[str, str, str]] = [
    ("sites:\n  - archetype: home\n    chargerz: 3\n", "sites[0].chargerz", "unknown field"),
    ("sites:\n  - archetype: home\n    chargers: many\n", "sites[0].chargers", "integer"),
    ("sites:\n  - archetype: home\n    chargers: -4\n", "sites[0].chargers", "greater than"),
    ("sites:\n  - archetype: garage\n", "sites[0].archetype", "unknown archetype 'garage'"),
    (
        "sites:\n  - archetype: home\n    charger: {power_kw: 90, kind: ac, phases: 1}\n",
        "sites[0].charger",
        "at most 63 A",
    ),
    (
        "sites:\n  - archetype: home\n    charger: {power_kw: -3}\n",
        "sites[0].charger.power_kw",
        "greater than 0",
    ),
    (
        "sites:\n  - archetype: home\n    demand: {sessions_per_charger_day: -1}\n",
        "sites[0].demand.sessions_per_charger_day",
        "greater than",
    ),
    (
        "sites:\n  - archetype: home\n    demand: {no_such_param: 1}\n",
        "sites[0].demand.no_such_param",
        "unknown field",
    ),
    ("timezone: Mars/Olympus\nsites: [{archetype: home}]\n", "timezone", "unknown time zone"),
    ("vehicles: {Trabant: 1}\nsites: [{archetype: home}]\n", "vehicles", "unknown vehicle"),
    ("sites: []\n", "sites", "at least 1"),
    ("seed: 1\n", "sites", "required field is missing"),
    ("- just\n- a list\n", "(top level)", "expected a mapping"),
    ("sites:\n  - {archetype: home}\n  - {archetype: home}\n", "(top level)", "unique"),
    ("charger_id_pattern: fixed\nsites: [{archetype: home}]\n", "charger_id_pattern", "{index}"),
]


@pytest.mark.parametrize(("text", "field", "words"), BAD_CASES)
def test_mistakes_name_the_file_the_field_and_the_problem(
    tmp_path: Path, text: str, field: str, words: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    lines = info.value.problems
    assert any(line.startswith(f"{path}: {field}") and words in line for line in lines), lines
    assert all("\n" not in line for line in lines)


def test_unreadable_and_invalid_yaml_files(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"missing\.yaml: cannot read: no such file"):
        load_scenario(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("sites:\n  - archetype: home\n   chargers: [1, 2\n")
    with pytest.raises(ScenarioError, match=r"broken\.yaml: line \d+, column \d+: invalid YAML"):
        load_scenario(broken)
    folder = tmp_path / "adir.yaml"
    folder.mkdir()
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(folder)


def test_rescaling_keeps_proportions_and_the_exact_total() -> None:
    assert largest_remainder([8, 4, 3, 1], 160) == [80, 40, 30, 10]
    assert sum(largest_remainder([8, 4, 3, 1], 7)) == 7
    scenario = load_scenario("quickstart").rescaled(1000)
    counts = [s.chargers for s in scenario.sites]
    assert sum(counts) == 1000 and counts == [500, 250, 188, 62]


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-10, 10**6)
    | st.floats(allow_nan=True)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
site_like = st.fixed_dictionaries(
    {},
    optional={
        "archetype": st.sampled_from(["home", "dc_fast", "depot_bus", "nope"]) | json_values,
        "chargers": json_values,
        "name": json_values,
        "charger": st.dictionaries(
            st.sampled_from(["kind", "power_kw", "phases", "connectors", "voltage_v", "x"]),
            json_values,
            max_size=3,
        ),
        "demand": st.dictionaries(
            st.sampled_from(
                [
                    "sessions_per_charger_day",
                    "energy_kwh",
                    "weekday_shares",
                    "connection_mixture",
                    "departure_h",
                    "patience_min",
                    "bogus",
                ]
            ),
            json_values,
            max_size=3,
        ),
    },
)
scenario_like = st.fixed_dictionaries(
    {},
    optional={
        "sites": st.lists(site_like, max_size=3) | json_values,
        "seed": json_values,
        "start": json_values,
        "timezone": json_values,
        "days": json_values,
        "vehicles": json_values,
        "charger_id_pattern": json_values,
        "warmup_days": json_values,
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(scenario_like, json_values))
def test_no_malformed_scenario_ever_raises_anything_but_a_scenario_error(data: Any) -> None:
    try:
        parse_scenario(data, "fuzz.yaml")
    except ScenarioError as exc:
        assert exc.problems and all(p.startswith("fuzz.yaml: ") for p in exc.problems)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_no_garbage_file_ever_raises_anything_but_a_scenario_error(text: str) -> None:
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(text)
    try:
        load_scenario(f.name)
    except ScenarioError as exc:
        assert all(p.startswith(f.name) for p in exc.problems)
    finally:
        Path(f.name).unlink()


def test_yaml_anchor_overrides_apply_to_every_site() -> None:
    scenario = load_scenario("dc-corridor")
    params = [resolve_site(s).params for s in scenario.sites]
    assert {p.departure for p in params} == {"when_charged"}
    assert [resolve_site(s).rating.max_kw for s in scenario.sites] == [150, 250, 350]
    assert yaml.safe_load(Path(bundled_scenarios()[0]).read_text())
