"""Opening sources: gzip by magic, directories, rotated sets, stdin, documents, damage."""

from __future__ import annotations

import gzip
import io
import json
import sys

import pytest
from audit_samples import event, line

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
    import hashlib

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
