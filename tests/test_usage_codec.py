"""Saving a usage model in pieces: the reference bytes, read back unchanged.

The reference is the document built whole, its top-level keys sorted, each row of a
non-empty array encoded by ``orjson.dumps`` (sorted keys) on a line of its own; every saved
model must keep those exact bytes. Models saved before rows had lines of their own (the
whole document in one ``orjson.dumps`` call) still load to the same model.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from audit_samples import event, read_logs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from rbac_advisor import usage, usage_codec, usage_entries
from rbac_advisor.audit import parse_record
from rbac_advisor.cli import app
from rbac_advisor.errors import InputError
from rbac_advisor.events import Decision, ReasonRef
from rbac_advisor.rbac import Access, BindingKey, BindingKind, Identity, RoleKey, RoleKind, Subject
from rbac_advisor.usage import Session, SourceInfo, Stats, Usage, UsageKey

ROOT = Path(__file__).resolve().parent.parent
DEMO_LOG = ROOT / "fixtures" / "demo" / "audit.jsonl"

runner = (
    CliRunner(mix_stderr=False)
    if "mix_stderr" in CliRunner.__init__.__code__.co_varnames
    else CliRunner()
)


def one_piece(u: Usage) -> str:
    """The reference bytes of ``u`` (see the module docstring)."""
    return row_per_line(reference_doc(u))


def _sorted_json(v: Any) -> str:
    return orjson.dumps(v, option=orjson.OPT_SORT_KEYS).decode()


def row_per_line(doc: dict[str, Any], dump: Callable[[Any], str] = _sorted_json) -> str:
    """``doc`` with each row of its non-empty top-level arrays on a line of its own."""

    def value(v: Any) -> str:
        if isinstance(v, list) and v:
            return "[\n" + ",\n".join(map(dump, v)) + "\n]"
        return dump(v)

    return "{" + ",".join(f"{json.dumps(k)}:{value(doc[k])}" for k in sorted(doc)) + "}\n"


def compact(u: Usage) -> str:
    """``u`` as models were first saved: the document in one orjson call."""
    return orjson.dumps(reference_doc(u), option=orjson.OPT_SORT_KEYS).decode() + "\n"


def reference_doc(u: Usage) -> dict[str, Any]:
    """The whole document of ``u`` as one dict."""
    idents = sorted({k.identity for k in u.entries})
    accesses = sorted({k.access for k in u.entries})
    reasons = sorted({k.via for k in u.entries if k.via is not None})
    ii = {x: i for i, x in enumerate(idents)}
    ai = {x: i for i, x in enumerate(accesses)}
    ri = {x: i for i, x in enumerate(reasons)}
    b = [[str(r.binding.kind), r.binding.name, r.binding.namespace] for r in reasons]
    ro = [[str(r.role.kind), r.role.name, r.role.namespace] for r in reasons]
    s = [
        [r.subject.kind, r.subject.name, r.subject.namespace, r.subject.api_group] for r in reasons
    ]
    doc: dict[str, Any] = {
        "format": usage_codec.FORMAT,
        "version": usage_codec.VERSION,
        "requests": u.requests,
        "unauthenticated": u.unauthenticated,
        "filtered": u.filtered,
        "start": u.start,
        "end": u.end,
        "sources": [
            {
                "path": x.path,
                "format": x.format,
                "lines": x.lines,
                "requests": x.requests,
                "skipped": x.skipped,
                "ignored": x.ignored,
                "sha256": x.sha256,
                "missing_fields": list(x.missing_fields),
                "first_error": x.first_error,
            }
            for x in u.sources
        ],
        "identities": [[i.user, list(i.groups)] for i in idents],
        "accesses": [
            [
                a.verb,
                a.api_group,
                a.resource,
                a.subresource,
                a.namespace,
                a.name,
                a.path,
                a.resource_request,
            ]
            for a in accesses
        ],  # fmt: skip
        "reasons": [list(row) for row in zip(b, ro, s, strict=True)],
        "entries": [
            [
                ii[k.identity],
                ai[k.access],
                str(k.decision),
                -1 if k.via is None else ri[k.via],
                k.tool,
                v.count,
                v.first,
                v.last,
                sorted(v.days),
            ]
            for k, v in u.entries.items()
        ],  # fmt: skip
        "activity": [[a, t, d, n] for (a, t, d), n in u.activity.items()],
        "client_ips": [[a, t, sorted(v)] for (a, t), v in u.client_ips.items()],
        "sessions": [
            [
                x.time,
                x.user,
                x.verb,
                x.resource,
                x.namespace,
                x.name,
                x.uri,
                x.source_ip,
                x.tool,
                str(x.decision),
            ]
            for x in u.sessions
        ],  # fmt: skip
    }
    return doc


def evs(*dicts: dict[str, Any]) -> list[Any]:
    return [e for d in dicts for e in parse_record(d).events]


def varied() -> Usage:
    """Reasons, denials, sessions, several days and tools, odd characters and fractions."""
    ex = {
        "verb": "create",
        "ref": {"resource": "pods", "namespace": "ns", "name": "p", "subresource": "exec"},
        "uri": "/api/v1/namespaces/ns/pods/p/exec?command=sh",
    }
    rb = 'RBAC: allowed by RoleBinding "rb/ns" of ClusterRole "view" to Group "dev"'
    crb = 'RBAC: allowed by ClusterRoleBinding "c" of ClusterRole "r" to User "zoë \\"q\\""'
    u = usage.build(
        evs(
            event(audit_id="1", reason=rb, time="2026-11-01T10:00:00.123457Z"),
            event(audit_id="2", user='zoë "q"', reason=crb, time="2026-11-03T23:59:59.999999Z"),
            event(audit_id="3", user="用户", decision="forbid", code=403, ua="Helm/3.15.2"),
            event(audit_id="4", user="bob", ip="fe80::1", time="2026-11-02T00:00:00Z", **ex),
            event(audit_id="5", user="bob", groups=[], verb="list", uri="/api/v1/pods",
                  ref={"resource": "pods", "apiVersion": "v1"}),
            event(audit_id="6", user="", groups=[], code=401, decision=None),
        )
    )  # fmt: skip
    src = SourceInfo('logs/a\\b "ü".log', "native", 7, 6, 1, "ab" * 32, ("user.groups",), 2, "x")
    return dataclasses.replace(
        u, sources=tuple(sorted((src, SourceInfo("-", "gke", 0, 0, 0, "", ()))))
    )


def many(users: int = 40) -> Usage:
    """Enough entries, identities, activity and addresses for many pieces."""
    tools = ("kubectl/v1.36.3 (linux/amd64) kubernetes/abc1234", "k9s/v0.32.5", "curl/8.5.0")
    return usage.build(
        evs(
            *(
                event(audit_id=f"{n}-{v}", user=f"user-{n:03d}", verb=v, ua=tools[n % 3],
                      ip=f"10.0.{n}.{len(v)}", time=f"2026-11-{1 + n % 28:02d}T10:00:0{n % 10}.5Z")
                for n in range(users)
                for v in ("get", "list", "watch")
            )
        )
    )  # fmt: skip


MODELS = {
    "empty": usage.empty,
    "demo": lambda: read_logs([str(DEMO_LOG)]),
    "varied": varied,
    "many": many,
}


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("rows", [None, 1, 2, 5, 1000])
def test_pieces_are_the_one_piece_bytes_and_load_back(name: str, rows: int | None) -> None:
    u = MODELS[name]()
    expected = one_piece(u)
    pieces = list(usage_codec.dump_chunks(u, rows))
    assert "".join(pieces) == expected == usage_codec.dumps(u)
    assert usage_codec.loads(expected) == u
    assert usage_codec.dumps(usage_codec.loads(expected)) == expected


def test_the_models_exercise_what_they_are_for() -> None:
    assert usage_codec.dumps(usage.empty()).startswith('{"accesses":[],"activity":[],')
    doc = json.loads(usage_codec.dumps(varied()))
    assert doc["reasons"] and doc["sessions"] and len(doc["sources"]) == 2
    assert {e[2] for e in doc["entries"]} == {"allow", "forbid"}
    assert any(isinstance(e[6], float) and e[6] % 1 for e in doc["entries"])
    assert len(json.loads(usage_codec.dumps(many()))["entries"]) == 120


def test_large_tables_come_in_bounded_pieces() -> None:
    u = many(200)
    assert len(u.entries) == 600 and len(u.activity) == len(u.client_ips) == 200
    pieces = list(usage_codec.dump_chunks(u, 10))
    text = "".join(pieces)
    assert text == one_piece(u)
    # entries, identities, activity and client_ips: at least one piece per 10 rows each
    assert len(pieces) >= (600 + 3 * 200) // 10
    longest = max(map(len, pieces))
    assert longest < 3000 and longest * 100 < len(text)


def test_a_piece_size_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="rows must be at least 1, not 0"):
        list(usage_codec.dump_chunks(usage.empty(), 0))


def test_save_writes_the_one_piece_bytes_in_small_pieces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(usage_codec, "ROWS", 1)
    seen: list[str] = []
    real = usage_codec.dump_chunks

    def counted(u: Usage, rows: int | None = None) -> Any:
        for piece in real(u, rows):
            seen.append(piece)
            yield piece

    monkeypatch.setattr(usage_codec, "dump_chunks", counted)
    out = tmp_path / "m.json"
    r = runner.invoke(app, ["usage", str(DEMO_LOG), "--save", str(out)])
    assert r.exit_code == 0, r.stderr
    expected = one_piece(read_logs([str(DEMO_LOG)]))
    assert out.read_text(encoding="utf-8") == expected == "".join(seen)
    assert len(seen) > 2 * len(json.loads(expected)["entries"])


# ---- any model ---------------------------------------------------------------------------

names = st.text(max_size=6)
groups = st.sets(names, max_size=3).map(lambda g: tuple(sorted(g)))
times = st.floats(usage_codec.TIME_MIN, usage_codec.TIME_MAX, exclude_max=True)
days = st.frozensets(st.integers(usage_codec.DAY_MIN, usage_codec.DAY_MAX), max_size=3)
reasons = st.builds(
    ReasonRef,
    st.builds(BindingKey, st.sampled_from(list(BindingKind)), names, names),
    st.builds(RoleKey, st.sampled_from(list(RoleKind)), names, names),
    st.builds(Subject, names, names, names, names),
)
keys = st.builds(
    UsageKey,
    st.builds(Identity, names, groups),
    st.builds(Access, names, names, names, names, names, names, names, st.booleans()),
    st.sampled_from(list(Decision)),
    st.none() | reasons,
    names,
)


@st.composite
def stats(draw: st.DrawFn) -> Stats:
    first, last = sorted((draw(times), draw(times)))
    return Stats(draw(st.integers(1, usage_codec.INT_MAX)), first, last, draw(days))


@st.composite
def models(draw: st.DrawFn) -> Usage:
    start = draw(st.none() | st.tuples(times, times).map(sorted))
    requests = draw(st.integers(0, usage_codec.INT_MAX))
    return usage.freeze(
        draw(st.dictionaries(keys, stats(), max_size=8)),
        requests=requests,
        unauthenticated=draw(st.integers(0, requests)),
        start=None if start is None else start[0],
        end=None if start is None else start[1],
        sources=draw(
            st.lists(
                st.builds(
                    SourceInfo,
                    names,
                    names,
                    *[st.integers(0, 9)] * 3,
                    names,
                    st.lists(names, max_size=2).map(tuple),
                    st.integers(0, 9),
                    names,
                ),
                max_size=2,
            )
        ),  # fmt: skip
        activity=draw(
            st.dictionaries(
                st.tuples(names, names, st.integers(usage_codec.DAY_MIN, usage_codec.DAY_MAX)),
                st.integers(1, usage_codec.INT_MAX),
                max_size=4,
            )
        ),
        client_ips=draw(
            st.dictionaries(st.tuples(names, names), st.frozensets(names, max_size=3), max_size=3)
        ),
        sessions=draw(
            st.lists(
                st.builds(Session, times, *[names] * 8, st.sampled_from(list(Decision))),
                max_size=3,
            )
        ),
        filtered=draw(st.integers(0, usage_codec.INT_MAX)),
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(models(), st.integers(1, 4))
def test_any_model_in_any_piece_size_is_the_one_piece_bytes(u: Usage, rows: int) -> None:
    expected = one_piece(u)
    assert "".join(usage_codec.dump_chunks(u, rows)) == expected
    assert usage_codec.loads(expected) == u


# ---- reading: a row-per-line model a piece at a time, any other layout whole ----------------


@pytest.mark.parametrize("name", MODELS)
def test_models_in_other_layouts_load_the_same(name: str) -> None:
    u = MODELS[name]()
    doc = reference_doc(u)
    assert (usage_codec._outline(one_piece(u).encode()) is None) == (name == "empty")
    for text in (compact(u), json.dumps(doc, indent=2), json.dumps(doc, indent=0)):
        assert usage_codec._outline(text.encode()) is None or name == "empty"
        assert usage_codec.loads(text) == u
        assert usage_codec.dumps(usage_codec.loads(text)) == one_piece(u)


def test_large_arrays_are_read_a_piece_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    u = many(200)
    text = one_piece(u)
    sizes: list[int] = []
    real = usage_codec._Lines.pieces

    def counted(self: Any) -> Any:
        for rows in real(self):
            sizes.append(len(rows))
            yield rows

    monkeypatch.setattr(usage_codec._Lines, "pieces", counted)
    monkeypatch.setattr(usage_codec, "PIECE", 1)
    assert usage_codec.loads(text) == u
    # Every row of every non-empty array on its own: 600 entries, 200 identities, ...
    assert set(sizes) == {1}
    assert len(sizes) == sum(len(v) for v in json.loads(text).values() if isinstance(v, list))
    sizes.clear()
    monkeypatch.setattr(usage_codec, "PIECE", 2000)
    assert usage_codec.loads(text) == u
    assert 600 > max(sizes) > 1


def _outcome(load: Any, text: bytes) -> Any:
    try:
        return load(text)
    except InputError as err:
        return str(err)


_SAMPLE = one_piece(varied()).encode()


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, len(_SAMPLE)),
            st.integers(0, 3),
            st.sampled_from([b"", b"\n", b",", b"[", b"]", b"{", b"}", b'"', b"\\", b"1", b" "]),
        ),
        max_size=3,
    ),
    st.sampled_from([1, 7, 1 << 20]),
)
def test_any_edit_of_a_saved_model_reads_as_one_document_would(edits: Any, piece: int) -> None:
    """Whatever the text, the piecewise reader gives the model or error one parse gives."""
    text = _SAMPLE
    for at, cut, put in edits:
        text = text[:at] + put + text[at + cut :]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(usage_codec, "PIECE", piece)
        got = _outcome(lambda t: usage_codec.loads(t, "m.json"), text)
    assert got == _outcome(lambda t: usage_codec._whole(t, "m.json"), text)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        # An array no model field reads is still read as JSON.
        (b'{"zzz":[\n1,\n2x\n],', "not a saved usage model: invalid JSON"),
        # A stand-in for a row-per-line array written in the file itself.
        (b'{"zzz":{"\\u0000":0},', None),
        # Two rows on one line, and a row over two lines: the same JSON values.
        (b'{"zzz":[\n1,2,\n[3,\n4]\n],', None),
    ],
)
def test_edited_layouts_read_as_one_document_would(edit: bytes, expected: str | None) -> None:
    u = varied()
    text = edit + one_piece(u).encode()[1:]
    got = _outcome(lambda t: usage_codec.loads(t, "m.json"), text)
    assert got == _outcome(lambda t: usage_codec._whole(t, "m.json"), text)
    if expected is None:
        assert got == u
    else:
        assert isinstance(got, str) and got.startswith(f"m.json: {expected}")


# ---- reading a model as it was written: no ranking and sorting again ------------------------


@pytest.mark.parametrize("name", [n for n in MODELS if n != "empty"])
def test_a_model_read_as_written_is_taken_as_it_is(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    u = MODELS[name]()

    def never(*args: Any) -> Any:
        raise AssertionError("the rows were ranked and sorted again")

    monkeypatch.setattr(usage_entries.Entries, "from_columns", classmethod(never))
    got = usage_codec.loads(one_piece(u))
    assert got == u and usage_codec.dumps(got) == one_piece(u)


def _entry_lines(text: str) -> tuple[str, list[str], str]:
    head, _, rest = text.partition('"entries":[\n')
    rows, _, tail = rest.partition("\n]")
    return head + '"entries":[\n', rows.split(",\n"), "\n]" + tail


def test_rows_or_tables_out_of_order_load_to_the_same_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    u = varied()
    text = one_piece(u)
    ranked: list[int] = []
    real = usage_entries.Entries.from_columns.__func__  # type: ignore[attr-defined]

    def counted(cls: Any, *args: Any) -> Any:
        ranked.append(1)
        return real(cls, *args)

    monkeypatch.setattr(usage_entries.Entries, "from_columns", classmethod(counted))
    head, rows, tail = _entry_lines(text)
    assert len(rows) > 3
    backwards = head + ",\n".join(reversed(rows)) + tail
    assert usage_codec.loads(backwards) == u and ranked == [1]
    # The identity table reversed, the entries naming the same identities.
    doc = json.loads(text)
    n = len(doc["identities"])
    doc["identities"].reverse()
    for e in doc["entries"]:
        e[0] = n - 1 - e[0]
    assert usage_codec.loads(row_per_line(doc)) == u and ranked == [1, 1]
    # A value no entry names: left out, as a model built from its entries holds none.
    doc = json.loads(text)
    doc["accesses"].append(["zzz-unused", "", "pods", "", "", "", "", True])
    assert usage_codec.loads(row_per_line(doc)) == u and ranked == [1, 1, 1]


def test_repeated_entries_are_named_whatever_their_order() -> None:
    head, rows, tail = _entry_lines(one_piece(varied()))
    for text in (
        head + ",\n".join([*rows, rows[1]]) + tail,
        head + ",\n".join([rows[1], *rows]) + tail,
    ):
        with pytest.raises(InputError, match=r"entries\[\d+\] repeats entries\[\d+\]"):
            usage_codec.loads(text, "m.json")
