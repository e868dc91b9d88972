"""Records past the size limit, blank runs and nesting too deep: bounded memory, one error."""

from __future__ import annotations

import gzip
import hashlib
import json
import tracemalloc
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from audit_samples import event, line
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from rbac_advisor import logfiles
from rbac_advisor.audit import SourceStats
from rbac_advisor.cli import app
from rbac_advisor.errors import AuditParseError

runner = (
    CliRunner(mix_stderr=False)
    if "mix_stderr" in CliRunner.__init__.__code__.co_varnames
    else CliRunner()
)

MB = 1 << 20


@pytest.fixture
def small_limit(monkeypatch: pytest.MonkeyPatch) -> int:
    """A 1 MB record limit (one block), so that bombs of a few MB show the behaviour."""
    monkeypatch.setattr(logfiles, "MAX_RECORD", MB)
    return MB


def read_all(path: str, skip: bool = False) -> tuple[list[tuple[str, int, bytes]], SourceStats]:
    src = logfiles.Source(path)
    stats = SourceStats(path)
    return list(logfiles.read(src, stats, skip_malformed=skip)), stats


def bomb(*parts: tuple[bytes, int]) -> bytes:
    """A gzip stream of each ``(piece, times)`` repeated, compressed as it is made."""
    z = zlib.compressobj(1, zlib.DEFLATED, 31)
    out = [z.compress(piece * times) for piece, times in parts]
    return b"".join([*out, z.flush()])


def long_line(size: int) -> bytes:
    """An audit event longer than ``size`` bytes (its request URI is long)."""
    return line(event(audit_id="long", uri="/api/v1/namespaces/ns/pods/" + "p" * size))


A, B = line(event(audit_id="a")), line(event(audit_id="b"))


def test_the_limit_is_stated_in_megabytes() -> None:
    assert logfiles.MAX_RECORD >= logfiles.BLOCK
    assert logfiles.too_long_reason() == "record longer than 256 MB"


@pytest.mark.parametrize("gz", [False, True])
def test_a_line_past_the_limit_is_named_or_skipped(
    tmp_path: Path, small_limit: int, gz: bool
) -> None:
    data = A + b"\n" + long_line(3 * small_limit) + b"\n" + B + b"\n"
    p = tmp_path / "a.log"
    p.write_bytes(gzip.compress(data, 1) if gz else data)
    with pytest.raises(AuditParseError) as err:
        read_all(str(p))
    assert str(err.value) == f"{p}:2: record longer than 1 MB"
    items, stats = read_all(str(p), skip=True)
    assert [(n, t) for _, n, t in items] == [(1, A), (3, B)]
    assert stats.skipped == 1 and stats.first_error == f"{p}:2: record longer than 1 MB"


def test_a_line_past_the_limit_at_the_end_without_a_newline(
    tmp_path: Path, small_limit: int
) -> None:
    p = tmp_path / "a.log"
    p.write_bytes(gzip.compress(A + b"\n" + B + b"\n" + b"x" * (5 * small_limit), 1))
    with pytest.raises(AuditParseError, match=r"a.log:3: record longer than 1 MB$"):
        read_all(str(p))
    items, stats = read_all(str(p), skip=True)
    assert [n for _, n, _ in items] == [1, 2] and stats.skipped == 1


def test_the_cli_refuses_a_line_past_the_limit_and_skips_it_when_asked(
    tmp_path: Path, small_limit: int
) -> None:
    p = tmp_path / "audit.log.gz"
    p.write_bytes(gzip.compress(A + b"\n" + long_line(2 * small_limit) + b"\n" + B + b"\n", 1))
    r = runner.invoke(app, ["usage", str(p)])
    assert r.exit_code == 3
    assert r.stderr.splitlines()[0].startswith(f"error: {p}:2: record longer than 1 MB")
    assert len(r.stderr.strip().splitlines()) == 1
    r = runner.invoke(app, ["usage", "--json", "--skip-malformed", str(p)])
    assert r.exit_code == 0, r.output
    assert "warning: skipped 1 malformed record" in r.stderr
    doc = json.loads(r.stdout)
    assert (doc["requests"], doc["sources"][0]["skipped"]) == (2, 1)


def test_split_lines_hands_over_long_lines_and_drops_them(small_limit: int) -> None:
    piece = b"y" * (small_limit // 2)
    pieces = [b"a\nb", piece, piece, piece, piece, b"tail\nc\n", piece, piece, piece]
    with pytest.raises(logfiles.RecordTooLong) as err:
        list(logfiles.split_lines(pieces))
    assert err.value.line == 2
    long: list[int] = []
    out = [x for parts in logfiles.split_lines(pieces, long.append) for x in parts]
    assert out == [b"a", b"", b"c", b""]  # the long lines' numbers stand
    assert long == [2, 4]


def test_split_lines_does_not_keep_a_run_of_blanks() -> None:
    pieces = [b"a\n  ", *[b" \t " * 100_000] * 5, b' {"b":1}\n', b" " * 10, b"c"]
    out = [x for parts in logfiles.split_lines(pieces) for x in parts]
    assert out == [b"a", b' {"b":1}', b" " * 10 + b"c"]


def blank_then_records(gz: bool, lead: list[tuple[bytes, int]]) -> bytes:
    if gz:
        return bomb(*lead, (A + b"\n" + B + b"\n", 1))
    return b"".join(p * n for p, n in lead) + A + b"\n" + B + b"\n"


@pytest.mark.parametrize(
    ("lead", "first"),
    [
        ([(b" " * MB, 64)], 1),  # 64 MB of spaces, then the first record on its line
        ([(b"\n", 3), (b" " * MB, 64)], 4),
        ([(b" \t\r\n" * (MB // 4), 4)], MB + 1),  # a million blank lines
    ],
    ids=["spaces", "lines-then-spaces", "blank-lines"],
)
def test_blank_text_before_the_first_record_is_not_kept(
    tmp_path: Path, small_limit: int, lead: list[tuple[bytes, int]], first: int
) -> None:
    p = tmp_path / "audit.log"
    p.write_bytes(blank_then_records(True, lead))
    tracemalloc.start()
    try:
        items, _ = read_all(str(p))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [(n, t) for _, n, t in items] == [(first, A), (first + 1, B)]
    assert peak < 24 * MB  # a few blocks in flight, not the 64 MB run


def test_blank_text_between_records_is_not_kept(tmp_path: Path, small_limit: int) -> None:
    p = tmp_path / "audit.log"
    p.write_bytes(bomb((A + b"\n", 1), (b" " * MB, 48), (b"\n" + B + b"\n  ", 1), (b" " * MB, 48)))
    tracemalloc.start()
    try:
        items, stats = read_all(str(p))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [(n, t) for _, n, t in items] == [(1, A), (3, B)]
    assert stats.skipped == 0 and peak < 24 * MB


def pretty(*docs: object) -> bytes:
    return b"".join(json.dumps(d, indent=2).encode() + b"\n" for d in docs)


def test_a_pretty_printed_document_past_the_limit_is_refused(
    tmp_path: Path, small_limit: int
) -> None:
    p = tmp_path / "events.json.gz"
    p.write_bytes(bomb((pretty(event(audit_id="a")), 1), (b"{\n", 1), (b" " * MB, 64)))
    n = pretty(event(audit_id="a")).count(b"\n") + 1
    tracemalloc.start()
    try:
        with pytest.raises(AuditParseError) as err:
            read_all(str(p))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(err.value) == f"{p}:{n}: record longer than 1 MB"
    assert peak < 24 * MB
    # Where the next document begins is unknown: the rest of the file is the one skipped.
    src, stats = logfiles.Source(str(p)), SourceStats(str(p))
    items = list(logfiles.read(src, stats, skip_malformed=True))
    assert [json.loads(t)["auditID"] for _, _, t in items] == ["a"]
    assert stats.skipped == 1 and stats.first_error == f"{p}:{n}: record longer than 1 MB"
    assert src.sha256 == hashlib.sha256(p.read_bytes()).hexdigest()  # all of it was read
    big = event(audit_id="big", uri="/api/v1/namespaces/ns/pods/" + "p" * (MB // 2))
    p.write_bytes(gzip.compress(pretty(event(audit_id="a"), big, {"k": [1] * (MB // 16)}), 1))
    items, _ = read_all(str(p))  # under the limit: read, though longer than a block
    assert [json.loads(t).get("auditID") for _, _, t in items] == ["a", "big", None]


def deep_document(depth: int) -> bytes:
    head = json.dumps({**event(audit_id="deep"), "level": "Request"}, indent=2)
    nest = "[" * depth + "]" * depth
    return (head[:-2] + ',\n  "requestObject": ' + nest + "\n}\n").encode()


def test_a_pretty_printed_document_nested_too_deeply_is_one_error(tmp_path: Path) -> None:
    before = pretty(event(audit_id="a"))
    p = tmp_path / "pretty.json"
    p.write_bytes(before + deep_document(100_000) + pretty(event(audit_id="b")))
    n = before.count(b"\n") + 1
    with pytest.raises(AuditParseError) as err:
        read_all(str(p))
    assert str(err.value) == f"{p}:{n}: nesting too deep"
    items, stats = read_all(str(p), skip=True)
    assert [json.loads(t)["auditID"] for _, _, t in items] == ["a", "b"]
    assert stats.skipped == 1 and stats.first_error == f"{p}:{n}: nesting too deep"
    r = runner.invoke(app, ["usage", str(p)])
    assert r.exit_code == 3
    assert r.stderr.strip().splitlines() == [
        f"error: {p}:{n}: nesting too deep; --skip-malformed skips such records and counts them"
    ]


def test_nesting_too_deep_across_blocks_and_at_the_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logfiles, "BLOCK", 4096)
    p = tmp_path / "pretty.json"
    p.write_bytes(pretty(event(audit_id="a")) + deep_document(50_000)[:-3])  # never closed
    items, stats = read_all(str(p), skip=True)
    assert [json.loads(t)["auditID"] for _, _, t in items] == ["a"] and stats.skipped == 1


def chunks(data: bytes, sizes: list[int]) -> Iterator[bytes]:
    i = k = 0
    while i < len(data):
        n = sizes[k % len(sizes)]
        yield data[i : i + n]
        i, k = i + n, k + 1


value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=100, deadline=None)
@given(
    docs=st.lists(st.dictionaries(st.text(max_size=5), value, max_size=5), min_size=1, max_size=6),
    indents=st.lists(st.sampled_from([None, 0, 1, 2]), min_size=1, max_size=6),
    gaps=st.lists(st.sampled_from(["\n", " ", "\n\n  ", "\t\n"]), min_size=1, max_size=6),
    sizes=st.lists(st.integers(1, 40), min_size=1, max_size=20),
)
def test_documents_in_any_pieces_are_the_documents(
    docs: list[dict[str, object]], indents: list[int | None], gaps: list[str], sizes: list[int]
) -> None:
    texts = [
        json.dumps(d, indent=indents[i % len(indents)], ensure_ascii=False)
        for i, d in enumerate(docs)
    ]
    body = texts[0] + "".join(gaps[i % len(gaps)] + t for i, t in enumerate(texts[1:])) + "\n"
    data = body.encode()
    want, i, dec = [], 0, json.JSONDecoder()
    while (i := len(body) - len(body[i:].lstrip())) < len(body):
        _, end = dec.raw_decode(body, i)
        want.append((1 + body.count("\n", 0, i), body[i:end].encode()))
        i = end
    stats = SourceStats("x")
    got = logfiles._documents("x", chunks(data, sizes), 1, stats, skip=False)
    assert [(n, t) for _, n, t in got] == want


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(st.binary(max_size=60).map(lambda b: b.replace(b"\n", b"")), max_size=12),
    sizes=st.lists(st.integers(1, 9), min_size=1, max_size=30),
    limit=st.integers(9, 40),
    final_newline=st.booleans(),
)
def test_split_lines_with_a_limit_drops_exactly_the_long_lines(
    lines: list[bytes], sizes: list[int], limit: int, final_newline: bool
) -> None:
    data = b"\n".join(lines) + (b"\n" if final_newline and lines else b"")
    expected = data.split(b"\n")
    if expected[-1] == b"":
        expected.pop()
    saved, logfiles.MAX_RECORD = logfiles.MAX_RECORD, limit  # at least every piece's size
    try:
        long: list[int] = []
        got = [x for parts in logfiles.split_lines(chunks(data, sizes), long.append) for x in parts]
    finally:
        logfiles.MAX_RECORD = saved
    # a batch of events (an array, an EventList...) is read whole: the limit bounds one event
    dropped = [len(x) > limit and not logfiles._container(x) for x in expected]
    assert got == [b"" if d else x for d, x in zip(dropped, expected, strict=True)]
    assert long == [i + 1 for i, d in enumerate(dropped) if d]


def test_a_line_past_the_limit_in_a_share_is_read_as_one_reader_reads_it(
    tmp_path: Path, small_limit: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rbac_advisor.cli import parallel
    from rbac_advisor.cli.ingest import load_usage

    kw = {"since": None, "until": None, "kubectl_only": False, "progress": False}
    head = [line(event(audit_id=f"h{i}", user=f"u{i % 7}")) for i in range(1500)]
    tail = [line(event(audit_id=f"t{i}", user=f"u{i % 5}")) for i in range(1500)]
    p = tmp_path / "big.log"
    p.write_bytes(b"\n".join([*head, long_line(2 * small_limit), *tail]) + b"\n")
    monkeypatch.setattr(parallel, "MIN_SIZE", 0)
    assert parallel.worth_it(str(p), 2)
    errors = []
    for workers in (1, 2):
        with pytest.raises(AuditParseError) as err:
            load_usage([str(p)], workers=workers, skip_malformed=False, **kw)  # type: ignore[arg-type]
        errors.append(str(err.value))
    assert errors[0] == errors[1]
    assert errors[0].startswith(f"{p}:1501: record longer than 1 MB;")
    seq = load_usage([str(p)], workers=1, skip_malformed=True, **kw)  # type: ignore[arg-type]
    par = load_usage([str(p)], workers=2, skip_malformed=True, **kw)  # type: ignore[arg-type]
    assert par == seq and seq.skipped == 1 and seq.requests == 3000
    assert seq.sources[0].first_error == f"{p}:1501: record longer than 1 MB"


@pytest.mark.parametrize(
    "shape", ["array-pretty", "eventlist-pretty", "array-line", "eventlist-line"]
)
def test_a_batch_of_events_larger_than_the_limit_is_read_whole(
    tmp_path: Path, small_limit: int, shape: str
) -> None:
    # The limit bounds one event: an export holding many (an array, an EventList) counts.
    events = [event(audit_id=f"b{i}") for i in range(3 * small_limit // 900)]
    if shape.startswith("array"):
        doc: object = events
    else:
        doc = {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": events}
    text = json.dumps(doc, indent=2 if shape.endswith("pretty") else None)
    assert len(text) > small_limit
    p = tmp_path / "batch.json"
    p.write_text(text + "\n")
    r = runner.invoke(app, ["usage", "--json", str(p)])
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["requests"] == len(events)


def _within(batches: int, record: object, shape: str) -> object:
    """``record`` inside ``batches`` nested arrays or AKS ``records`` batches."""
    for _ in range(batches):
        record = [record] if shape == "array" else {"records": [record]}
    return record


@pytest.mark.parametrize("shape", ["array", "records"])
def test_batches_are_read_eight_deep_and_refused_deeper(shape: str) -> None:
    from rbac_advisor.audit import Malformed, parse_record
    from rbac_advisor.audit.records import MAX_BATCH_DEPTH

    assert MAX_BATCH_DEPTH == 8
    ev = event(audit_id="deep")
    assert [e.audit_id for e in parse_record(_within(8, ev, shape)).events] == ["deep"]
    where = "item 0" if shape == "array" else "records[0]"
    with pytest.raises(Malformed) as err:
        parse_record(_within(9, ev, shape))
    assert str(err.value) == f"{where}: " * 8 + "batches nested more than 8 deep"
    # Skipped, the deep item alone: the others of the batch still count.
    parsed = parse_record([_within(9, ev, shape), event(audit_id="flat")], skip_malformed=True)
    assert [e.audit_id for e in parsed.events] == ["flat"]
    assert parsed.skipped == ["item 0: " + f"{where}: " * 7 + "batches nested more than 8 deep"]


@pytest.mark.parametrize("pretty_printed", [False, True])
def test_arrays_nested_hundreds_deep_are_one_error(tmp_path: Path, pretty_printed: bool) -> None:
    """Arrays 600 deep decode (orjson reads about 1000 levels, less the stack in use): a
    process of its own, as the command runs, with a stack as shallow as the command's."""
    import subprocess
    import sys

    p = tmp_path / "deep.log"
    if pretty_printed:
        first = json.dumps(event(audit_id="a"), indent=2) + "\n"
        deep = "[\n" * 600 + json.dumps(event(audit_id="deep"), indent=2) + "\n]" * 600
    else:
        first = line(event(audit_id="a")).decode() + "\n"
        deep = "[" * 600 + json.dumps(event(audit_id="deep")) + "]" * 600
    p.write_text(first + deep + "\n")
    at = first.count("\n") + 1

    def run(*flags: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "rbac_advisor", "usage", str(p), *flags]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)

    r = run()
    assert r.returncode == 3, r.stderr
    assert r.stderr.strip().splitlines() == [
        f"error: {p}:{at}: "
        + "item 0: " * 8
        + "batches nested more than 8 deep; --skip-malformed skips such records and counts them"
    ]
    r = run("--skip-malformed", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["requests"] == 1 and doc["skipped"] == 1
