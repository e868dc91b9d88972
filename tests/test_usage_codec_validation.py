"""A saved usage model is user-editable input: every damaged field is one named error.

Each case takes the model saved from the demo audit log, changes one thing, and checks
that loading it names the file and the field (or row), through the library and the CLI
(exit 3, one line on stderr, nothing on stdout), and that an unchanged model round-trips.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_usage_codec import row_per_line
from typer.testing import CliRunner

from rbac_advisor import usage, usage_codec
from rbac_advisor.cli import app
from rbac_advisor.cli.ingest import load_usage
from rbac_advisor.errors import InputError
from rbac_advisor.usage import UsageKey

ROOT = Path(__file__).resolve().parent.parent
DEMO_LOG = ROOT / "fixtures" / "demo" / "audit.jsonl"
DEMO_RBAC = ROOT / "fixtures" / "demo" / "rbac.yaml"

runner = (
    CliRunner(mix_stderr=False)
    if "mix_stderr" in CliRunner.__init__.__code__.co_varnames
    else CliRunner()
)

Doc = dict[str, Any]

COUNT = f"must be an integer from 0 to {usage_codec.INT_MAX}"
POSITIVE = f"must be an integer from 1 to {usage_codec.INT_MAX}"
TIME = "must be seconds since 1970 within the years 1 to 9999"
DAYS = "entries[0].days must be a list of day numbers (days since 1970) within the years 1 to 9999"
DECISION = 'must be "allow", "forbid" or "unknown"'


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The demo log's usage model, as ``usage --save`` writes it."""
    out = tmp_path_factory.mktemp("model") / "demo.model"
    r = runner.invoke(app, ["usage", str(DEMO_LOG), "--save", str(out)])
    assert r.exit_code == 0, r.output
    return out.read_text()


def put(*path: Any, value: Any) -> Callable[[Doc], None]:
    """A mutation setting the item at ``path`` (keys and indices) to ``value``."""

    def mutate(doc: Doc) -> None:
        *parents, last = path
        target: Any = doc
        for step in parents:
            target = target[step]
        target[last] = value

    return mutate


def delete(*path: Any) -> Callable[[Doc], None]:
    """A mutation removing the item at ``path``."""

    def mutate(doc: Doc) -> None:
        *parents, last = path
        target: Any = doc
        for step in parents:
            target = target[step]
        del target[last]

    return mutate


def repeat_first(table: str) -> Callable[[Doc], None]:
    """A mutation appending a copy of the first row of ``table``."""
    return lambda doc: doc[table].append(copy.deepcopy(doc[table][0]))


def first_after_last(doc: Doc) -> None:
    """Entry 0 first seen after it was last seen."""
    doc["entries"][0][6] = doc["entries"][0][7] + 1000


def end_before_start(doc: Doc) -> None:
    """A window that ends before it starts."""
    doc["end"] = doc["start"] - 100_000


def unsorted_groups(doc: Doc) -> None:
    """The first identity's groups (there are several) in reverse order."""
    groups = doc["identities"][0][1]
    assert len(groups) > 1
    groups.reverse()


def bad_day_in_last_entry(doc: Doc) -> None:
    """Many valid days first (more than one chunk), then one out of range in the last entry."""
    doc["entries"][0][8] = list(range(100_000))
    doc["entries"][-1][8] = [usage_codec.DAY_MAX + 1]


# (case id, mutation, message after "<file>: damaged usage model: "; {rows} is the number of
# entries, {last} the last entry's index, {activity} and {ips} the numbers of those rows).
CASES: list[tuple[str, Callable[[Doc], None], str]] = [
    ("requests-float", put("requests", value=1.5), f"requests {COUNT}"),
    ("requests-negative", put("requests", value=-3), f"requests {COUNT}"),
    ("requests-bool", put("requests", value=True), f"requests {COUNT}"),
    ("requests-null", put("requests", value=None), f"requests {COUNT}"),
    ("requests-missing", delete("requests"), "requests is missing"),
    ("unauthenticated-str", put("unauthenticated", value="0"), f"unauthenticated {COUNT}"),
    (
        "unauthenticated-over-requests",
        put("unauthenticated", value=10**6),
        "unauthenticated must not exceed requests",
    ),
    ("filtered-str", put("filtered", value="3"), f"filtered {COUNT}"),
    ("start-str", put("start", value="yesterday"), "start must be null or seconds since 1970"),
    ("start-huge", put("start", value=1e300), "start must be null or seconds since 1970"),
    ("end-negative-huge", put("end", value=-1e12), "end must be null or seconds since 1970"),
    ("start-null-only", put("start", value=None), "start and end must both be null or both"),
    ("end-before-start", end_before_start, "start must not be after end"),
    ("identity-index-negative", put("entries", 0, 0, value=-1), "entries[0].identity must be"),
    ("identity-index-past-end", put("entries", 0, 0, value=999), "entries[0].identity must be"),
    ("identity-index-float", put("entries", 0, 0, value=0.0), "entries[0].identity must be"),
    ("identity-index-bool", put("entries", 0, 0, value=True), "entries[0].identity must be"),
    ("access-index-negative", put("entries", 0, 1, value=-2), "entries[0].access must be"),
    (
        "decision-unknown-name",
        put("entries", 0, 2, value="maybe"),
        f"entries[0].decision {DECISION}",
    ),
    ("decision-list", put("entries", 0, 2, value=["allow"]), f"entries[0].decision {DECISION}"),
    (
        "reason-index-below",
        put("entries", 0, 3, value=-2),
        "entries[0].reason must be -1 (none) or",
    ),
    ("reason-index-past-end", put("entries", 0, 3, value=999), "entries[0].reason must be -1"),
    ("reason-index-str", put("entries", 0, 3, value="0"), "entries[0].reason must be -1"),
    ("tool-int", put("entries", 0, 4, value=5), "entries[0].tool must be a string"),
    ("tool-null", put("entries", 0, 4, value=None), "entries[0].tool must be a string"),
    ("count-negative", put("entries", 0, 5, value=-5), f"entries[0].count {POSITIVE}"),
    ("count-zero", put("entries", 0, 5, value=0), f"entries[0].count {POSITIVE}"),
    ("count-str", put("entries", 0, 5, value="7"), f"entries[0].count {POSITIVE}"),
    ("count-float", put("entries", 0, 5, value=1.9), f"entries[0].count {POSITIVE}"),
    ("count-bool", put("entries", 0, 5, value=True), f"entries[0].count {POSITIVE}"),
    ("count-huge", put("entries", 0, 5, value=10**30), f"entries[0].count {POSITIVE}"),
    ("count-over-max", put("entries", 0, 5, value=2**53), f"entries[0].count {POSITIVE}"),
    ("first-huge", put("entries", 0, 6, value=1e300), f"entries[0].first {TIME}"),
    ("first-inf-str", put("entries", 0, 6, value="inf"), f"entries[0].first {TIME}"),
    ("first-nan-str", put("entries", 0, 6, value="nan"), f"entries[0].first {TIME}"),
    ("first-before-year-1", put("entries", 0, 6, value=-1e12), f"entries[0].first {TIME}"),
    ("first-bool", put("entries", 0, 6, value=False), f"entries[0].first {TIME}"),
    ("last-huge", put("entries", 0, 7, value=1e300), f"entries[0].last {TIME}"),
    ("first-after-last", first_after_last, "entries[0].first must not be after entries[0].last"),
    ("days-str", put("entries", 0, 8, value="12"), DAYS),
    ("days-huge", put("entries", 0, 8, value=[10**12]), DAYS),
    ("days-below-year-1", put("entries", 0, 8, value=[usage_codec.DAY_MIN - 1]), DAYS),
    ("days-str-item", put("entries", 0, 8, value=["1"]), DAYS),
    ("days-float-item", put("entries", 0, 8, value=[1.5]), DAYS),
    ("days-bool-item", put("entries", 0, 8, value=[True]), DAYS),
    ("days-late-chunk", bad_day_in_last_entry, "entries[{last}].days must be a list of day"),
    ("entry-not-list", put("entries", 0, value="x"), "entries[0] must be a list of 9 items"),
    ("entry-short", put("entries", 0, value=[0, 0, "allow"]), "entries[0] must be a list of 9"),
    (
        "entry-repeated",
        repeat_first("entries"),
        "entries[{rows}] repeats entries[0] (the same identity, access, decision, reason and tool)",
    ),
    ("entries-object", put("entries", value={}), "entries must be a list"),
    ("entries-null", put("entries", value=None), "entries must be a list"),
    ("entries-missing", delete("entries"), "entries is missing"),
    ("groups-str", put("identities", 0, 1, value="system:authenticated"), "identities[0] must"),
    ("groups-unsorted", unsorted_groups, "identities[0] must be [user, groups]"),
    ("groups-repeated", put("identities", 0, 1, value=["a", "a"]), "identities[0] must be"),
    ("user-int", put("identities", 0, 0, value=5), "identities[0] must be [user, groups]"),
    ("access-verb-int", put("accesses", 0, 0, value=5), "accesses[0] must be a list of 7 strings"),
    ("access-group-null", put("accesses", 0, 1, value=None), "accesses[0] must be a list of 7"),
    ("access-flag-int", put("accesses", 0, 7, value=1), "accesses[0] must be a list of 7 strings"),
    ("binding-kind", put("reasons", 0, 0, 0, value="Bogus"), "reasons[0].binding must be"),
    ("role-kind", put("reasons", 0, 1, 0, value="Bogus"), "reasons[0].role must be"),
    ("subject-short", put("reasons", 0, 2, value=["User"]), "reasons[0].subject must be a list"),
    ("reason-short", put("reasons", 0, value=[]), "reasons[0] must be a list of 3 items"),
    ("source-lines-str", put("sources", 0, "lines", value="many"), f"sources[0].lines {COUNT}"),
    ("source-path-int", put("sources", 0, "path", value=5), "sources[0].path must be a string"),
    ("source-sha-null", put("sources", 0, "sha256", value=None), "sources[0].sha256 must be"),
    ("source-sha-missing", delete("sources", 0, "sha256"), "sources[0].sha256 is missing"),
    (
        "source-missing-str",
        put("sources", 0, "missing_fields", value="user.groups"),
        "sources[0].missing_fields must be a list of strings",
    ),
    (
        "source-first-error-null",
        put("sources", 0, "first_error", value=None),
        "sources[0].first_error must be a string",
    ),
    ("source-skipped-str", put("sources", 0, "skipped", value="2"), f"sources[0].skipped {COUNT}"),
    ("source-skipped-neg", put("sources", 0, "skipped", value=-2), f"sources[0].skipped {COUNT}"),
    (
        "source-ignored-float",
        put("sources", 0, "ignored", value=1.5),
        f"sources[0].ignored {COUNT}",
    ),
    ("source-not-object", put("sources", 0, value=[]), "sources[0] must be an object"),
    ("sources-str", put("sources", value="x"), "sources must be a list"),
    ("session-time-str", put("sessions", 0, 0, value="now"), f"sessions[0].time {TIME}"),
    ("session-time-huge", put("sessions", 0, 0, value=1e300), f"sessions[0].time {TIME}"),
    ("session-user-int", put("sessions", 0, 1, value=5), "sessions[0].user must be a string"),
    ("session-decision", put("sessions", 0, 9, value="maybe"), f"sessions[0].decision {DECISION}"),
    ("session-short", put("sessions", 0, value=[0.0]), "sessions[0] must be a list of 10 items"),
    ("activity-day-huge", put("activity", 0, 2, value=10**12), "activity[0].day must be a day"),
    ("activity-count-str", put("activity", 0, 3, value="lots"), f"activity[0].requests {POSITIVE}"),
    ("activity-user-int", put("activity", 0, 0, value=7), "activity[0].user must be a string"),
    (
        "activity-repeated",
        repeat_first("activity"),
        "activity[{activity}] repeats activity[0] (the same user, tool and day)",
    ),
    ("ips-str", put("client_ips", 0, 2, value="127.0.0.1"), "client_ips[0].addresses must be"),
    ("ips-int", put("client_ips", 0, 2, value=[1, 2]), "client_ips[0].addresses must be a list"),
    (
        "ips-repeated",
        repeat_first("client_ips"),
        "client_ips[{ips}] repeats client_ips[0] (the same user and tool)",
    ),
]


def damaged(
    saved: str,
    mutate: Callable[[Doc], None],
    expected: str,
    layout: Callable[[Doc], str] = json.dumps,
) -> tuple[str, str]:
    """The saved model with one mutation, and the expected message with its counts filled.

    ``layout`` writes the document: one JSON text (read whole) by default.
    """
    doc = json.loads(saved)
    facts = {
        "rows": len(doc["entries"]),
        "last": len(doc["entries"]) - 1,
        "activity": len(doc["activity"]),
        "ips": len(doc["client_ips"]),
    }
    mutate(doc)
    return layout(doc), expected.format(**facts)


def _rows_on_lines(doc: Doc) -> str:
    """``doc`` laid out as models are saved (values orjson refuses, such as 10**30, too)."""
    return row_per_line(doc, lambda v: json.dumps(v, separators=(",", ":"), sort_keys=True))


@pytest.mark.parametrize("layout", [json.dumps, _rows_on_lines], ids=["whole", "row-per-line"])
@pytest.mark.parametrize(("mutate", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_damage_is_named(
    saved: str, mutate: Callable[[Doc], None], expected: str, layout: Callable[[Doc], str]
) -> None:
    text, message = damaged(saved, mutate, expected, layout)
    with pytest.raises(InputError) as err:
        usage.loads(text, "m.json")
    assert str(err.value).startswith(f"m.json: damaged usage model: {message}")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(("mutate", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_damage_is_one_line_exit_3(
    saved: str, mutate: Callable[[Doc], None], expected: str, tmp_path: Path
) -> None:
    text, message = damaged(saved, mutate, expected)
    p = tmp_path / "m.json"
    p.write_text(text)
    r = runner.invoke(app, ["usage", "--load", str(p)])
    assert r.exit_code == 3, r.exception
    assert r.stdout == ""
    assert (
        r.stderr.startswith(f"error: {p}: damaged usage model: {message}")
        and r.stderr.count("\n") == 1
    )


# One case per part of the model: each run starts a Python process.
SUBPROCESS_IDS = {
    "count-negative",
    "days-str",
    "entry-repeated",
    "identity-index-negative",
    "groups-str",
    "start-str",
    "source-skipped-str",
    "session-user-int",
    "ips-int",
}
SUBPROCESS_CASES = [c for c in CASES if c[0] in SUBPROCESS_IDS]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [c[1:] for c in SUBPROCESS_CASES],
    ids=[c[0] for c in SUBPROCESS_CASES],
)
def test_python_m_usage_load_says_one_line(
    saved: str, mutate: Callable[[Doc], None], expected: str, tmp_path: Path
) -> None:
    text, message = damaged(saved, mutate, expected)
    p = tmp_path / "m.json"
    p.write_text(text)
    r = subprocess.run(
        [sys.executable, "-m", "rbac_advisor", "usage", "--load", str(p)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (r.returncode, r.stdout) == (3, "")
    assert (
        r.stderr.startswith(f"error: {p}: damaged usage model: {message}")
        and r.stderr.count("\n") == 1
    )


def test_analyze_with_a_damaged_model_says_one_line(saved: str, tmp_path: Path) -> None:
    text, message = damaged(saved, put("entries", 0, 5, value=-5), f"entries[0].count {POSITIVE}")
    p = tmp_path / "m.json"
    p.write_text(text)
    args = ["analyze", "--usage", str(p), "--rbac", str(DEMO_RBAC), "--out", str(tmp_path / "o")]
    r = subprocess.run(
        [sys.executable, "-m", "rbac_advisor", *args], capture_output=True, text=True, check=False
    )
    assert (r.returncode, r.stdout, r.stderr) == (
        3,
        "",
        f"error: {p}: damaged usage model: {message}; {usage_codec.REBUILD}\n",
    )


@pytest.mark.parametrize(
    ("version", "shown"), [(1.0, "1.0"), (True, "True"), ("1", "'1'"), (2, "2"), (None, "None")]
)
def test_other_versions_are_refused(saved: str, version: Any, shown: str) -> None:
    doc = json.loads(saved)
    doc["version"] = version
    with pytest.raises(InputError) as err:
        usage.loads(json.dumps(doc), "m.json")
    assert str(err.value) == f"m.json: usage format version {shown} is not supported (reads 1)"


def test_not_json_or_not_a_model_is_named() -> None:
    with pytest.raises(InputError, match=r"^m.json: not a saved usage model: invalid JSON"):
        usage.loads('{"format": "rbac-advisor/usage", ', "m.json")
    with pytest.raises(InputError, match=r'^m.json: not a saved usage model \(no "format"'):
        usage.loads("[]", "m.json")


def test_an_unchanged_model_loads_and_round_trips_byte_identically(
    saved: str, tmp_path: Path
) -> None:
    model = usage.loads(saved, "demo.model")
    assert usage.dumps(model) == saved
    src = tmp_path / "in.model"
    src.write_text(saved)
    out = tmp_path / "out.model"
    r = runner.invoke(app, ["usage", "--load", str(src), "--save", str(out)])
    assert r.exit_code == 0, r.output
    assert out.read_bytes() == saved.encode()


def test_loaded_keys_hash_and_merge_as_built_ones(saved: str) -> None:
    loaded = usage.loads(saved)
    for k in loaded.entries:
        assert hash(k) == hash(UsageKey(k.identity, k.access, k.decision, k.via, k.tool))
    built = load_usage(
        [str(DEMO_LOG)],
        skip_malformed=False,
        since=None,
        until=None,
        kubectl_only=False,
        progress=False,
        workers=1,
    )
    merged = loaded.merge(built)
    assert list(merged.entries) == list(built.entries) == list(loaded.entries)
    assert all(merged.entries[k].count == 2 * s.count for k, s in built.entries.items())


def test_older_models_without_optional_fields_load(saved: str) -> None:
    doc = json.loads(saved)
    del doc["filtered"]
    for s in doc["sources"]:
        del s["ignored"], s["first_error"]
    model = usage.loads(json.dumps(doc))
    assert model.filtered == 0
    assert [(s.ignored, s.first_error) for s in model.sources] == [(0, "")] * len(doc["sources"])


def test_edited_values_at_the_limits_load(saved: str) -> None:
    doc = json.loads(saved)
    entry = doc["entries"][0]
    entry[5] = usage_codec.INT_MAX
    entry[6], entry[7] = usage_codec.TIME_MIN, 253402300799  # a whole second, as an integer
    entry[8] = [usage_codec.DAY_MIN, usage_codec.DAY_MAX]
    doc["start"], doc["end"] = None, None
    model = usage.loads(json.dumps(doc))
    stats = next(s for s in model.entries.values() if s.count == usage_codec.INT_MAX)
    assert (stats.first, stats.last) == (usage_codec.TIME_MIN, 253402300799.0)
    assert type(stats.last) is float
    assert stats.days == {usage_codec.DAY_MIN, usage_codec.DAY_MAX}
    assert (model.start, model.end) == (None, None)


def test_a_value_repeated_in_a_table_is_one_value(saved: str) -> None:
    """Rows naming two copies of one identity are one use: repeated if alike, else kept."""
    model = usage.loads(saved)
    doc = json.loads(saved)
    doc["identities"].append(copy.deepcopy(doc["identities"][0]))
    copy_at = len(doc["identities"]) - 1
    first = next(n for n, e in enumerate(doc["entries"]) if e[0] == 0)
    moved = copy.deepcopy(doc)
    moved["entries"][first][0] = copy_at  # the same use, through the copy
    assert usage.loads(json.dumps(moved)) == model
    assert usage.dumps(usage.loads(json.dumps(moved))) == saved  # the copy is not written
    twice = copy.deepcopy(doc)
    twice["entries"].append([copy_at, *doc["entries"][first][1:]])
    with pytest.raises(InputError, match=rf"repeats entries\[{first}\]"):
        usage.loads(json.dumps(twice))


def test_tables_in_any_order_load_as_the_same_model(saved: str) -> None:
    model = usage.loads(saved)
    doc = json.loads(saved)
    for table in ("identities", "accesses", "reasons"):
        n = len(doc[table])
        perm = list(reversed(range(n)))  # new position of each old one
        doc[table] = [doc[table][n - 1 - k] for k in range(n)]
        col = {"identities": 0, "accesses": 1, "reasons": 3}[table]
        for e in doc["entries"]:
            if e[col] >= 0:
                e[col] = perm[e[col]]
    doc["entries"].reverse()
    doc["identities"].append(["nobody", []])  # used by no entry: not kept
    loaded = usage.loads(json.dumps(doc))
    assert loaded == model and usage.dumps(loaded) == saved
