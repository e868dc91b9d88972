"""Opening sources: gzip by magic, directories, rotated sets, stdin, documents, damage."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import sys
import threading
from typing import Any

import pytest
from audit_samples import event, line
from hypothesis import given, settings
from hypothesis import strategies as st

from rbac_advisor import logfiles
from rbac_advisor.audit import SourceStats, parse_lines
from rbac_advisor.errors import AuditParseError, InputError


def read_all(
    path: str, skip: bool = False
) -> tuple[list[tuple[str, int, bytes]], logfiles.Source, SourceStats]:
    src = logfiles.Source(path)
    st = SourceStats(path)
    return list(logfiles.read(src, st, skip_malformed=skip)), src, st


def jsonl(*dicts) -> bytes:
    return b"".join(line(d) + b"\n" for d in dicts)


def test_gzip_detected_by_magic_not_name(tmp_path) -> None:
    data = jsonl(event(audit_id="a"), event(audit_id="b"))
    p = tmp_path / "audit.log"  # no .gz suffix
    p.write_bytes(gzip.compress(data))
    items, src, _ = read_all(str(p))
    assert [n for _, n, _ in items] == [1, 2] and src.compressed
    assert src.sha256 == hashlib.sha256(p.read_bytes()).hexdigest()


def test_blank_lines_and_crlf(tmp_path) -> None:
    p = tmp_path / "a.log"
    p.write_bytes(b"\n" + line(event()) + b"\r\n\n" + line(event(audit_id="z")))
    items, _, _ = read_all(str(p))
    assert [n for _, n, _ in items] == [2, 4]
    assert all(not t.endswith(b"\r") for _, _, t in items)


def test_pretty_printed_documents_with_line_numbers(tmp_path) -> None:
    docs = [
        event(audit_id="a"),
        {"kind": "EventList", "items": [event(audit_id="b"), event(audit_id="c")]},
    ]
    p = tmp_path / "pretty.json"
    p.write_text("\n".join(json.dumps(d, indent=2) for d in docs) + "\n")
    items, _, _ = read_all(str(p))
    assert [n for _, n, _ in items] == [1, 1 + json.dumps(docs[0], indent=2).count("\n") + 1]
    assert [e.audit_id for e in parse_lines(items)] == ["a", "b", "c"]
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "kind": "Event",\n  "verb": \n}\n')
    with pytest.raises(AuditParseError, match=r"bad.json:\d+: invalid JSON"):
        read_all(str(bad))


def test_truncated_gzip(tmp_path) -> None:
    data = gzip.compress(jsonl(*[event(audit_id=str(i)) for i in range(2000)]))
    p = tmp_path / "audit-2026-11-20T10-00-00.000.log.gz"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(AuditParseError, match="truncated or corrupt gzip"):
        read_all(str(p))
    items, _, st = read_all(str(p), skip=True)
    assert st.skipped == 1 and 0 < len(items) < 2000


def test_directory_walk_and_rotation_order(tmp_path) -> None:
    d = tmp_path / "logs"
    (d / "sub").mkdir(parents=True)
    for name in [
        "audit.log",
        "audit-2026-11-20T10-00-00.000.log.gz",
        "audit-2026-11-19T10-00-00.000.log",
        "sub/x.jsonl",
        ".hidden.log",
        "policy.yaml",
        "other.log.2.gz",
        "other.log.1",
        "other.log",
    ]:
        (d / name).write_bytes(b"")
    got = [p[len(str(d)) + 1 :] for p in logfiles.expand([str(d)])]
    assert got == [
        "audit-2026-11-19T10-00-00.000.log",
        "audit-2026-11-20T10-00-00.000.log.gz",
        "audit.log",
        "other.log.2.gz",
        "other.log.1",
        "other.log",
        "sub/x.jsonl",
    ]
    assert logfiles.expand([str(d / "audit.log"), str(d / "audit.log")]) == [str(d / "audit.log")]
    with pytest.raises(InputError, match="no such file"):
        logfiles.expand([str(d / "nope.log")])


def test_stdin(monkeypatch) -> None:
    raw = gzip.compress(jsonl(event(audit_id="a"), event(audit_id="b")))
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(raw)))
    items, src, _ = read_all("-")
    assert [p for p, _, _ in items] == ["-", "-"] and src.compressed


def test_malformed_line_names_file_and_line(tmp_path) -> None:
    p = tmp_path / "a.log"
    p.write_bytes(jsonl(event()) + b'{"kind":"Event", trunc\n')
    items, _, _ = read_all(str(p))
    with pytest.raises(AuditParseError, match=r"a.log:2: invalid JSON"):
        list(parse_lines(items))


@settings(max_examples=300, deadline=None)
@given(
    lines=st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=20),
    sizes=st.lists(st.integers(1, 9), min_size=1, max_size=60),
    final_newline=st.booleans(),
)
def test_split_lines_of_any_pieces_are_the_lines(
    lines: list[bytes], sizes: list[int], final_newline: bool
) -> None:
    data = b"\n".join(lines) + (b"\n" if final_newline and lines else b"")
    pieces, i = [], 0
    while i < len(data):
        n = sizes[len(pieces) % len(sizes)]
        pieces.append(data[i : i + n])
        i += n
    got = [x for parts in logfiles.split_lines(pieces) for x in parts]
    expected = data.split(b"\n")
    if expected and expected[-1] == b"":
        expected.pop()
    assert got == expected


def test_a_line_far_longer_than_a_piece_is_joined_once() -> None:
    big = [b"x" * 1000] * 2000  # a 2 MB line in 1 kB pieces, then a short one
    out = list(logfiles.split_lines([b"{", *big, b"}\nnext\n"]))
    assert out == [[b"{" + b"".join(big) + b"}", b"next"]]


@pytest.mark.parametrize("gz", [False, True])
def test_lines_and_blank_lead_longer_than_a_block(
    tmp_path, monkeypatch: pytest.MonkeyPatch, gz: bool
) -> None:
    monkeypatch.setattr(logfiles, "BLOCK", 64)
    a = line(event(audit_id="a", uri="/api/v1/namespaces/ns/pods/" + "p" * 500))
    data = b"\n \n" * 50 + a + b"\n" + jsonl(event(audit_id="b")) + a
    p = tmp_path / "audit.log"
    p.write_bytes(gzip.compress(data) if gz else data)
    items, src, _ = read_all(str(p))
    texts = [(n, t) for _, n, t in items if t.strip()]
    assert texts == [(101, a), (102, line(event(audit_id="b"))), (103, a)]


def test_a_fifo_inside_a_directory_is_refused_without_being_opened(tmp_path) -> None:
    d = tmp_path / "logs"
    d.mkdir()
    (d / "audit.log").write_bytes(jsonl(event()))
    os.mkfifo(d / "pipe.log")
    os.mkfifo(d / "notes.yaml")  # not a log name: skipped, as a regular file would be
    with pytest.raises(InputError) as err:
        logfiles.expand([str(d)])
    assert str(err.value) == (
        f"{d}/pipe.log: not a regular file; name it on the command line to read it as a stream"
    )
    (d / "pipe.log").unlink()
    assert logfiles.expand([str(d)]) == [str(d / "audit.log")]


def test_a_broken_link_inside_a_directory_is_named(tmp_path) -> None:
    d = tmp_path / "logs"
    d.mkdir()
    os.symlink(tmp_path / "gone.log", d / "audit.log")
    with pytest.raises(InputError, match=r"logs/audit.log: cannot open \(No such file"):
        logfiles.expand([str(d)])


def test_a_fifo_named_itself_is_read_as_a_stream(tmp_path) -> None:
    fifo = tmp_path / "events"
    os.mkfifo(fifo)
    data = jsonl(event(audit_id="a"), event(audit_id="b"))

    def write() -> None:
        with open(fifo, "wb") as f:  # blocks until the reader opens it
            f.write(data)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        assert logfiles.expand([str(fifo)]) == [str(fifo)]
        items, _, _ = read_all(str(fifo))
        assert [(n, t) for _, n, t in items] == [
            (1, line(event(audit_id="a"))),
            (2, line(event(audit_id="b"))),
        ]
    finally:
        if writer.is_alive():  # the reader never opened it: let the writer's open return
            os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
        writer.join(timeout=5)


def test_a_process_substitution_path_is_read(tmp_path) -> None:
    r, w = os.pipe()
    os.write(w, jsonl(event(audit_id="a")))  # fits in the pipe's buffer
    os.close(w)
    try:
        path = f"/dev/fd/{r}"  # what bash passes for <(zcat audit.log.gz)
        assert logfiles.expand([path]) == [path]
        items, _, _ = read_all(path)
        assert [n for _, n, _ in items] == [1]
    finally:
        os.close(r)


def test_links_to_directories_are_followed_once(tmp_path) -> None:
    """Logs kept elsewhere and linked in are read; a link back up the tree ends there."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "audit.log").write_bytes(line(event()) + b"\n")
    top = tmp_path / "logs"
    top.mkdir()
    (top / "audit.log").write_bytes(line(event(audit_id="2")) + b"\n")
    (top / "linked").symlink_to(elsewhere)
    (elsewhere / "up").symlink_to(top)  # a cycle
    assert logfiles.expand([str(top)]) == [
        str(top / "audit.log"),
        str(top / "linked" / "audit.log"),
    ]


def test_an_unreadable_subdirectory_is_an_error(tmp_path, monkeypatch) -> None:
    d = tmp_path / "logs"
    (d / "sub").mkdir(parents=True)
    (d / "audit.log").write_bytes(jsonl(event()))
    (d / "sub" / "audit.log").write_bytes(jsonl(event()))
    real_scandir = os.scandir

    def scandir(path: Any = ".") -> Any:
        if os.fspath(path) == str(d / "sub"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(InputError) as err:
        logfiles.expand([str(d)])
    assert str(err.value) == f"{d}/sub: cannot read directory (Permission denied)"


def test_stdin_twice_is_refused_and_a_path_twice_is_read_once(tmp_path) -> None:
    with pytest.raises(InputError, match="standard input is given more than once"):
        logfiles.expand(["-", "-"])
    p = tmp_path / "audit.log"
    p.write_bytes(b"")
    link = tmp_path / "link.log"
    link.symlink_to(p)
    got = logfiles.expand(["-", str(p), str(tmp_path), str(link), str(p)])
    assert got == ["-", str(p)]


BOM = b"\xef\xbb\xbf"


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("pretty", [False, True])
def test_a_byte_order_mark_is_dropped(tmp_path, gz: bool, pretty: bool) -> None:
    events = [event(audit_id=str(i)) for i in range(3)]
    if pretty:
        text = "\n".join(json.dumps(e, indent=2) for e in events).encode() + b"\n"
    else:
        text = jsonl(*events)
    plain, marked = tmp_path / "plain.log", tmp_path / "marked.log"
    plain.write_bytes(gzip.compress(text) if gz else text)
    marked.write_bytes(gzip.compress(BOM + text) if gz else BOM + text)
    want, _, _ = read_all(str(plain))
    got, src, _ = read_all(str(marked))
    assert [(n, t) for _, n, t in got] == [(n, t) for _, n, t in want]
    assert len(got) == 3
    assert src.sha256 == hashlib.sha256(marked.read_bytes()).hexdigest()  # as stored
    assert logfiles.head_text(str(marked)) == logfiles.head_text(str(plain))
    if gz:
        assert b"".join(logfiles.inflate_file(str(marked))) == text


def test_a_byte_order_mark_split_across_blocks_and_on_stdin(tmp_path, monkeypatch) -> None:
    text = jsonl(event(audit_id="a"), event(audit_id="b"))
    monkeypatch.setattr(logfiles, "BLOCK", 1)
    p = tmp_path / "audit.log"
    p.write_bytes(BOM + text)
    items, _, _ = read_all(str(p))
    assert [(n, t) for _, n, t in items] == [
        (1, line(event(audit_id="a"))),
        (2, line(event(audit_id="b"))),
    ]
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(BOM + text)))
    items, _, _ = read_all("-")
    assert [n for _, n, _ in items] == [1, 2]


@pytest.mark.parametrize(
    ("pieces", "want"),
    [
        ([b"\xef", b"\xbb", b"\xbf{}\n"], b"{}\n"),
        ([BOM], b""),
        ([b"\xef\xbb"], b"\xef\xbb"),  # not a whole mark: the text is left as it is
        ([b"\xef\xbb", b"x"], b"\xef\xbbx"),
        ([b"{}", BOM], b"{}" + BOM),  # only at the start
        ([], b""),
    ],
)
def test_without_bom_only_drops_a_whole_mark_at_the_start(pieces: list[bytes], want: bytes) -> None:
    assert b"".join(logfiles.without_bom(pieces)) == want
