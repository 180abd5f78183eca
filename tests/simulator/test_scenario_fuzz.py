"""Malformed scenario files through `fleetsim validate` (and `simulate`/`run`): exit code 2 and
one line per problem naming the file and the field, never a traceback, a hang or a crash.

The files are the bundled scenarios with one mutation each (a key deleted or added, a value of
the wrong type, negative, huge, NaN, unicode, nested a hundred levels deep, an unknown
archetype, an impossible power), then raw garbage: random text and bytes, truncated and
damaged files, alias bombs, unreadable paths. Most go through typer's CliRunner in-process; a
few through a real `python -m simulator.cli` process.
"""

from __future__ import annotations

import codecs
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args, get_origin

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from typer.testing import CliRunner

import simulator.scenario as scenario_module
from models.archetypes import ARCHETYPES
from simulator.cli import app
from simulator.scenario import MAX_PROBLEMS, Scenario, SiteConfig, bundled_scenarios

FLEETSIM = [sys.executable, "-m", "simulator.cli"]
SUBPROCESS_TIMEOUT_S = 120
Loc = tuple[str | int, ...]


def _plain(value: Any) -> Any:
    """A tree copy: YAML anchors share objects, and a mutation must touch one place only."""
    return json.loads(json.dumps(value))


BUNDLED: dict[str, dict[str, Any]] = {
    p.stem: _plain(yaml.safe_load(p.read_text(encoding="utf-8"))) for p in bundled_scenarios()
}
# Mappings that are pydantic models (or demand overrides): an unknown key is always an error.
MODEL_KEYS = {"charger", "demand", "online", "slo", "target", "load_management"}


def dotted(loc: Loc) -> str:
    """A location as the problem lines write it: sites[0].charger.power_kw."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", part):
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out or "(top level)"


def locations(data: Any, loc: Loc = ()) -> Iterator[tuple[Loc, Any]]:
    """Every value in the tree with its location, the root first."""
    yield loc, data
    if isinstance(data, dict):
        for key, value in data.items():
            yield from locations(value, (*loc, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from locations(value, (*loc, i))


def get(data: Any, loc: Loc) -> Any:
    for part in loc:
        data = data[part]
    return data


def put(data: Any, loc: Loc, value: Any) -> None:
    get(data, loc[:-1])[loc[-1]] = value


# -- running the CLI -----------------------------------------------------------------------------

# Where a problem is: a field path (names, [index], ['quoted key']), "(top level)", a line of
# the file, or the file itself.
_STEP = r"""(?:\.?[A-Za-z_][A-Za-z0-9_]*|\[(?:-?\d+|'[^']*'|"[^"]*"|[^\]'"]*)\])"""
WHERE = re.compile(rf"^(\(top level\)|line \d+(, column \d+)?|cannot read|{_STEP}+): \S", re.DOTALL)


@dataclass
class Outcome:
    code: int
    out: str
    err: str


def invoke(*args: str) -> Outcome:
    result = CliRunner().invoke(app, list(args))
    # Typer turns exit codes into SystemExit; anything else escaped the CLI's error handling.
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        repr(result.exception),
        result.output,
    )
    return Outcome(result.exit_code, result.stdout, result.stderr)


def check_lines(outcome: Outcome, source: str) -> list[str]:
    """Exit 2 with only well-formed problem lines: each names the file, then where in it."""
    assert "Traceback" not in outcome.out + outcome.err
    assert outcome.code == 2, (outcome.out, outcome.err)
    lines = outcome.err.splitlines()
    assert 1 <= len(lines) <= MAX_PROBLEMS + 1, lines
    prefix = f"{source}: "
    for line in lines:
        assert line.startswith(prefix), (line, source)
        rest = line[len(prefix) :]
        assert WHERE.match(rest) or re.match(r"\.\.\. and \d+ more problems$", rest), line
    return lines


def paths_named(lines: list[str], source: str) -> list[str]:
    return [line[len(source) + 2 :] for line in lines]


def validate(path: Path, *, invalid: bool) -> list[str]:
    """`fleetsim validate path`: exit 0 and an ok line, or exit 2 and problem lines."""
    outcome = invoke("validate", str(path))
    assert "Traceback" not in outcome.out + outcome.err
    if outcome.code == 0 and not invalid:
        assert outcome.err == "" and " ".join(outcome.out.split()).startswith(f"ok: {path} ("), (
            outcome
        )
        return []
    return check_lines(outcome, str(path))


# -- mutations of the bundled scenarios ----------------------------------------------------------

# Tokens placed by the mutations and replaced in the YAML text afterwards: what yaml.safe_dump
# cannot write (integers beyond 4,300 digits) or would quote.
RAW: dict[str, str] = {
    "__HUGE_INT__": "9" * 5000,
    "__HUGE_HEX__": "0x" + "f" * 5000,
    "__BIG_INT__": "9" * 400,
    "__BIG_FLOAT__": "1e400",
    "__NAN__": ".nan",
    "__INF__": "-.inf",
    "__BAD_DATE__": "2025-02-30",
    "__BINARY__": "!!binary aGVsbG8=",
    "__PY_OBJECT__": "!!python/object/apply:os.system ['true']",
    "__SELF_ALIAS__": "&loop [*loop]",
    "__DEEP__": "[" * 100 + "]" * 100,
    "__SHALLOW__": "[" * 20 + "]" * 20,
    "__SET__": "!!set {a, b}",
}
# Raw tokens that make any file invalid wherever they are.
ALWAYS_INVALID = {"__HUGE_INT__", "__BAD_DATE__", "__PY_OBJECT__", "__SELF_ALIAS__", "__DEEP__"}


def _garbage(leaves: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        st.none()
        | st.booleans()
        | st.integers(-(10**30), 10**30)
        | st.floats(allow_nan=True, allow_infinity=True)
        | st.text(max_size=20)
        | leaves,
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
        ),
        max_leaves=6,
    )


# Any value, including the raw tokens (which make YAML-level problems, with a line, not a path).
garbage_values = _garbage(st.sampled_from(sorted(RAW)))
# Values that parse: the problem they make is about the field they are in.
parsed_garbage = _garbage(st.nothing())


# Values that pass a field's type check and reach its own validators: durations, offsets,
# times of day, URLs, probabilities, names.
plausible = st.sampled_from(
    [
        "10m",
        "60s",
        "0s",
        "-5s",
        "1e400s",
        "9" * 30 + "d",
        "soon",
        "17:00",
        "Mon 17:00",
        "2025-01-06T17:00",
        "ws://127.0.0.1:9000",
        "wss://user:pw@host/ocpp",
        "http://x",
        "{charger_id}",
        "certs/{charger_id}.pem",
        "GroundFailure",
        "NoError",
        "home",
        "nowhere",
        0,
        1,
        2,
        3,
        -1,
        0.5,
        1.5,
        1e308,
        [],
        ["home"],
        ["10s", "x"],
        {},
        None,
        True,
    ]
)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models a field holds (X, X | None, list[X], tuple[X, ...])."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


@st.composite
def fragments(draw: st.DrawFn, model: type[BaseModel], depth: int = 0) -> dict[str, Any]:
    """Some fields of `model` with plausible or garbage values, nested models included: it
    reaches every model's validators, the sections no bundled scenario has (faults, target)
    among them."""
    out: dict[str, Any] = {}
    for name in draw(st.lists(st.sampled_from(sorted(model.model_fields)), min_size=1, max_size=3)):
        annotation = model.model_fields[name].annotation
        inner = _models_in(annotation)
        if inner and depth < 3 and draw(st.booleans()):
            value: Any = draw(fragments(draw(st.sampled_from(inner)), depth + 1))
            if any(get_origin(a) in (list, tuple) for a in (annotation, *get_args(annotation))):
                value = [value]
        else:
            value = draw(plausible | parsed_garbage)
        out[name] = value
    return out


@dataclass
class Mutant:
    """A bundled scenario with one mistake, and where the problem lines must point when the
    mistake is certain (`loc`; None when the mutant may be valid)."""

    kind: str
    text: str
    loc: Loc | None


@st.composite
def mutants(draw: st.DrawFn) -> Mutant:
    name = draw(st.sampled_from(sorted(BUNDLED)))
    data = _plain(BUNDLED[name])
    sites = data["sites"]
    i = draw(st.integers(0, len(sites) - 1))
    kind = draw(
        st.sampled_from(
            [
                "delete",
                "replace",
                "unknown_key",
                "wrong_type",
                "negative",
                "archetype",
                "power",
                "chargers",
                "demand",
                "raw",
                "fields",
                "site_fields",
            ]
        )
    )
    loc: Loc | None = None
    everything = [loc for loc, _ in locations(data) if loc]
    if kind == "delete":
        keys = [loc for loc in everything if isinstance(loc[-1], str)]
        where = draw(st.sampled_from(keys))
        del get(data, where[:-1])[where[-1]]
    elif kind == "replace":
        put(data, draw(st.sampled_from(everything)), draw(garbage_values))
    elif kind == "unknown_key":
        mappings = [()] + [
            loc
            for loc, value in locations(data)
            if isinstance(value, dict)
            and loc
            and (loc[-1] in MODEL_KEYS or loc[-2:-1] == ("sites",))
        ]
        where = draw(st.sampled_from(mappings))
        key = draw(st.sampled_from(["zz_unknown", "Sites", "chargerz", "power_kW", "ünknown"]))
        get(data, where)[key] = draw(parsed_garbage)
        loc = (*where, key)
    elif kind == "wrong_type":
        # A mapping with an unknown key is wrong for every field: numbers, strings, models,
        # demand overrides, the EV mix, the SLO tables.
        loc = draw(st.sampled_from(everything))
        put(data, loc, {"zz_unknown": [1]})
    elif kind == "negative":
        numbers = [
            loc
            for loc, value in locations(data)
            if isinstance(value, int | float) and not isinstance(value, bool)
        ]
        put(data, draw(st.sampled_from(numbers)), -draw(st.floats(0.001, 1e9)))
    elif kind == "archetype":
        bad = draw(st.text(min_size=1, max_size=15).filter(lambda t: t not in ARCHETYPES))
        sites[i]["archetype"] = bad
        loc = ("sites", i, "archetype")
    elif kind == "power":
        charger = sites[i].setdefault("charger", {})
        impossible = draw(
            st.sampled_from(
                [
                    {"power_kw": 0},
                    {"power_kw": -11},
                    {"power_kw": 5000},
                    {"power_kw": 90, "kind": "ac", "phases": 1},  # 391 A on one phase
                    {"power_kw": 50, "kind": "ac", "phases": 3},  # 72 A per phase
                ]
            )
        )
        charger.update(impossible)
        loc = ("sites", i, "charger")
    elif kind == "chargers":
        sites[i]["chargers"] = draw(st.integers(-(10**12), -1) | st.integers(10**7, 10**40))
        loc = ("sites", i, "chargers")
    elif kind == "demand":
        params = ARCHETYPES[sites[i]["archetype"]].params.model_dump()
        param = draw(st.sampled_from(sorted(params)))
        sites[i].setdefault("demand", {})[param] = draw(garbage_values)
    elif kind == "fields":
        data.update(draw(fragments(Scenario)))
    elif kind == "site_fields":
        sites[i].update(draw(fragments(SiteConfig)))
    else:  # raw: a token that is wrong wherever it is
        token = draw(st.sampled_from(sorted(ALWAYS_INVALID)))
        put(data, draw(st.sampled_from(everything)), token)
        loc = ()
    text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
    for token, raw in RAW.items():
        text = text.replace(token, raw)
    return Mutant(kind, text, loc)


@settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(mutant=mutants())
def test_mutated_bundled_scenarios_fail_with_lines_naming_file_and_field(
    tmp_path: Path, mutant: Mutant
) -> None:
    path = tmp_path / "mutant.yaml"
    path.write_text(mutant.text, encoding="utf-8")
    lines = validate(path, invalid=mutant.loc is not None)
    event(f"{mutant.kind}: {'invalid' if lines else 'still valid'}")
    if mutant.loc:
        # The mistake is named: its field path, or one that starts with it (a model reports
        # the unknown key inside the mapping that replaced a number, say).
        wanted = dotted(mutant.loc)
        named = paths_named(lines, str(path))
        assert any(rest.startswith(wanted) and rest[len(wanted)] in ".[:" for rest in named), (
            wanted,
            named,
        )


# -- garbage ------------------------------------------------------------------------------------

yaml_ish = st.text(
    alphabet=st.sampled_from(list("sitearchymo_0123456789 :-[]{},&*!|>'\"#%@`?\n\t.\\"))
    | st.characters(),
    max_size=300,
)


@st.composite
def damaged(draw: st.DrawFn) -> bytes:
    """A bundled scenario cut short, with bytes inserted, re-encoded or garbage appended."""
    text = yaml.safe_dump(BUNDLED[draw(st.sampled_from(sorted(BUNDLED)))], sort_keys=False)
    raw = text.encode()
    how = draw(st.sampled_from(["truncate", "insert", "utf16", "latin1", "append", "flow"]))
    if how == "truncate":
        raw = raw[: draw(st.integers(0, len(raw) - 1))]
    elif how == "insert":
        at = draw(st.integers(0, len(raw)))
        raw = raw[:at] + draw(st.binary(min_size=1, max_size=8)) + raw[at:]
    elif how == "utf16":
        raw = codecs.BOM_UTF16_LE + text.replace("sites", "sitez").encode("utf-16-le")
    elif how == "latin1":
        raw = raw.replace(b"name: ", "name: \u00e9t\u00e9 ".encode("latin-1"), 1)
    elif how == "append":
        raw += draw(st.binary(min_size=1, max_size=40))
    else:
        raw = raw.replace(b"sites:", b"sites: [", 1)
    return raw


@settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    raw=st.one_of(
        yaml_ish.map(lambda t: t.encode("utf-8", "surrogatepass")),
        st.binary(max_size=200),
        damaged(),
    )
)
def test_garbage_files_fail_with_lines_naming_the_file(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "garbage.yaml"
    path.write_bytes(raw)
    validate(path, invalid=False)


# -- the cases the issue names, one by one ---------------------------------------------------------

SITE = "sites:\n  - archetype: home\n"
EXPLICIT: list[tuple[str, str, str, str]] = [
    ("unknown key", SITE + "    chargerz: 3\n", "sites[0].chargerz", "unknown field"),
    ("unknown top-level key", "sitez: []\n" + SITE, "sitez", "unknown field"),
    ("key that is no name", "'bad key': 1\n" + SITE, "['bad key']", "unknown field"),
    ("emoji code in a key", "':smile:': 1\n" + SITE, "[':smile:']", "unknown field"),
    ("wrong type", SITE + "    chargers: many\n", "sites[0].chargers", "integer"),
    ("wrong type of section", "online: 5\n" + SITE, "online", "dictionary"),
    ("negative count", SITE + "    chargers: -4\n", "sites[0].chargers", "greater than"),
    ("negative days", "days: -1\n" + SITE, "days", "greater than 0"),
    ("unknown archetype", "sites:\n  - archetype: garage\n", "sites[0].archetype", "garage"),
    (
        "impossible AC power",
        SITE + "    charger: {power_kw: 90, kind: ac, phases: 1}\n",
        "sites[0].charger",
        "at most 63 A",
    ),
    (
        "impossible power",
        SITE + "    charger: {power_kw: 5000}\n",
        "sites[0].charger.power_kw",
        "less than or equal to 1000",
    ),
    ("NaN", "days: .nan\n" + SITE, "days", "nan"),
    ("huge number", "seed: " + "9" * 5000 + "\n" + SITE, "line 1, column 7", "4300 digits"),
    ("impossible date", "start: 2025-02-30\n" + SITE, "line 1, column 8", "out of range"),
    ("start out of range", "start: 9999-12-30T00:00:00\n" + SITE, "start", "1970 and 2200"),
    ("charger id pattern", "charger_id_pattern: '{index[0]}'\n" + SITE, "charger_id_pattern", ""),
    (
        "pattern with attributes",
        "charger_id_pattern: '{site.__class__}-{index}'\n" + SITE,
        "charger_id_pattern",
        "unknown field {site.__class__}",
    ),
    ("wide pattern", "charger_id_pattern: '{index:>999999999}'\n" + SITE, "charger_id_pattern", ""),
    ("time zone folder", "timezone: Europe\n" + SITE, "timezone", "unknown time zone"),
    ("name is a path", "name: /etc\n" + SITE, "name", "output folder"),
    ("invalid YAML", "sites:\n  - archetype: home\n   chargers: [1, 2\n", "line 3", "invalid YAML"),
    ("tab", "sites:\n\t- archetype: home\n", "line 2, column 1", "invalid YAML"),
    ("duplicate key", SITE + SITE, "line 3, column 1", "duplicate key 'sites'"),
    ("list at top level", "- sites\n- home\n", "(top level)", "expected a mapping"),
    ("empty file", "", "(top level)", "got NoneType"),
    ("deeply nested", "sites: " + "[" * 500 + "]" * 500 + "\n", "line 1", "nested deeper"),
    ("alias to itself", "sites: &s [*s]\n", "line 1", "refers to a node that contains it"),
    (
        "alias bomb",
        "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
        + "".join(
            f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n"
            for p, c in zip("abcdefg", "bcdefgh", strict=True)
        )
        + SITE,
        "line 6, column 4",
        "aliases expand",
    ),
    ("python tag", "sites: !!python/object/apply:os.system ['true']\n", "line 1", "invalid YAML"),
    ("NUL", "sites:\x00\n", "line 1, column 7", "unacceptable character"),
]


@pytest.mark.parametrize(("case", "text", "where", "words"), EXPLICIT, ids=[c[0] for c in EXPLICIT])
def test_each_kind_of_mistake_is_one_line_naming_file_and_field(
    tmp_path: Path, case: str, text: str, where: str, words: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    lines = validate(path, invalid=True)
    assert any(line.startswith(f"{path}: {where}") and words in line for line in lines), (
        case,
        lines,
    )


def test_unreadable_files_are_one_line_each(tmp_path: Path) -> None:
    folder = tmp_path / "folder.yaml"
    folder.mkdir()
    loop = tmp_path / "loop.yaml"
    loop.symlink_to(loop)
    dangling = tmp_path / "dangling.yaml"
    dangling.symlink_to(tmp_path / "nowhere.yaml")
    latin = tmp_path / "latin1.yaml"
    latin.write_bytes("name: caf\u00e9\n".encode("latin-1") + SITE.encode())
    cases = {
        folder: "cannot read: Is a directory",
        loop: "cannot read: Too many levels of symbolic links",
        dangling: "cannot read: no such file (bundled scenarios: ",
        tmp_path / "missing.yaml": "cannot read: no such file",
        Path("/dev/zero"): "cannot read: larger than 10 MB",
        latin: "line 1: cannot read: not UTF-8 text (byte 0xe9)",
        tmp_path / ("x" * 300 + ".yaml"): "cannot read: File name too long",
    }
    if os.geteuid() != 0:  # root reads anything
        locked = tmp_path / "locked.yaml"
        locked.write_text(SITE)
        locked.chmod(0)
        cases[locked] = "cannot read: Permission denied"
    for path, words in cases.items():
        source = str(path)
        [line] = check_lines(invoke("validate", source), source)
        assert line.startswith(f"{source}: {words}"), line
    # A NUL in a path can only come from Python; it still is one line.
    [line] = check_lines(invoke("validate", "bad\x00name.yaml"), "bad\\x00name.yaml")
    assert "cannot read" in line


def test_file_names_that_cannot_be_printed_are_escaped(tmp_path: Path) -> None:
    # A newline or an undecodable byte in a file name must not break the one-line rule.
    for name in ("two\nlines.yaml", os.fsdecode(b"caf\xe9.yaml"), "tab\there.yaml"):
        path = tmp_path / name
        path.write_text(SITE + "    chargers: -1\n")
        shown = str(path).encode("utf-8", "surrogateescape").decode("ascii", "backslashreplace")
        shown = shown.replace("\n", "\\n").replace("\t", "\\t").replace("\\xe9", "\\udce9")
        [line] = check_lines(invoke("validate", str(path)), shown)
        assert "sites[0].chargers" in line


def test_a_bug_applying_a_site_is_still_one_line_naming_the_site(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(site: SiteConfig) -> None:
        raise TypeError("a bug below\nthe scenario layer")

    monkeypatch.setattr(scenario_module, "resolve_site", broken)
    path = tmp_path / "ok.yaml"
    path.write_text(SITE)
    [line] = check_lines(invoke("validate", str(path)), str(path))
    # Even its message is kept on one line.
    assert line == f"{path}: sites[0]: cannot use: TypeError: a bug below\\nthe scenario layer"


def test_many_mistakes_are_listed_up_to_a_limit(tmp_path: Path) -> None:
    path = tmp_path / "many.yaml"
    sites = [{"name": f"s{i}", "archetype": "home", "chargers": -1} for i in range(80)]
    path.write_text(yaml.safe_dump({"sites": sites}))
    lines = check_lines(invoke("validate", str(path)), str(path))
    assert len(lines) == MAX_PROBLEMS + 1
    assert lines[-1] == f"{path}: ... and 30 more problems"


def test_validate_reports_every_file_and_exits_2_if_any_is_bad(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(SITE + "    chargers: -4\n")
    outcome = invoke("validate", "quickstart", str(bad), "home")
    assert outcome.code == 2
    assert outcome.out.splitlines() == [
        "ok: quickstart (4 sites, 16 chargers)",
        "ok: home (1 sites, 200 chargers)",
    ]
    [line] = outcome.err.splitlines()
    assert line.startswith(f"{bad}: sites[0].chargers: ")


@pytest.mark.parametrize("command", ["simulate", "run"])
def test_simulate_and_run_stop_at_a_bad_file_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text(SITE + "    charger: {power_kw: 90, kind: ac, phases: 1}\n")
    [line] = check_lines(invoke(command, str(bad), "-q"), str(bad))
    assert "at most 63 A" in line
    assert list(tmp_path.iterdir()) == [bad]  # no output folder, no database


# -- real processes ------------------------------------------------------------------------------


def _bad_files(folder: Path) -> list[Path]:
    files = []
    for i, (_, text, _, _) in enumerate(EXPLICIT):
        path = folder / f"bad{i:02d}.yaml"
        path.write_text(text, encoding="utf-8")
        files.append(path)
    return files


def test_a_real_process_reports_every_bad_file_without_a_traceback(tmp_path: Path) -> None:
    files = _bad_files(tmp_path)
    proc = subprocess.run(
        [*FLEETSIM, "validate", *map(str, files), str(tmp_path / "folder")],
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_S,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    # Every file has its lines, in order, and each line names its file.
    named = [line.split(": ", 1)[0] for line in lines]
    assert list(dict.fromkeys(named)) == [*map(str, files), str(tmp_path / "folder")]


@pytest.mark.parametrize("command", ["simulate", "run"])
def test_a_real_simulate_or_run_exits_2_on_a_bad_file(tmp_path: Path, command: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("sites:\n  - archetype: garage\n    chargers: -3\n")
    proc = subprocess.run(
        [*FLEETSIM, command, str(bad), "-q"],
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_S,
        cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.splitlines()
    assert [line.split(": ")[1] for line in lines] == ["sites[0].archetype", "sites[0].chargers"]
    assert all(line.startswith(f"{bad}: ") for line in lines)
    assert sorted(tmp_path.iterdir()) == [bad]
