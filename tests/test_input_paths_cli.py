"""Input paths end to end: FIFOs, unreadable directories, stdin twice, byte-order marks."""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from audit_samples import event, line
from typer.testing import CliRunner

from rbac_advisor.cli import app, parallel
from rbac_advisor.cli.ingest import load_usage
from rbac_advisor.usage import Usage

runner = (
    CliRunner(mix_stderr=False)
    if "mix_stderr" in CliRunner.__init__.__code__.co_varnames
    else CliRunner()
)
KW: dict[str, Any] = {"since": None, "until": None, "kubectl_only": False, "progress": False}
BOM = b"\xef\xbb\xbf"


def jsonl(*dicts: dict[str, Any]) -> bytes:
    return b"".join(line(d) + b"\n" for d in dicts)


@contextlib.contextmanager
def watched(fifo: Path) -> Iterator[list[bool]]:
    """Notes whether anything opened ``fifo`` for reading, and lets such a reader go on."""
    opened: list[bool] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.02):
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # fails while no reader
            except OSError:
                continue
            opened.append(True)
            os.close(fd)  # the reader sees the end of the stream instead of blocking

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    try:
        yield opened
    finally:
        stop.set()
        t.join(timeout=5)


@contextlib.contextmanager
def feeding(fifo: Path, data: bytes) -> Iterator[None]:
    """Writes ``data`` into ``fifo`` once a reader opens it."""

    def write() -> None:
        with open(fifo, "wb") as f:
            f.write(data)

    t = threading.Thread(target=write, daemon=True)
    t.start()
    try:
        yield
    finally:
        if t.is_alive():  # nothing read it: let the writer's open return
            os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
        t.join(timeout=5)


def test_usage_of_a_directory_holding_a_fifo_ends_with_one_line(tmp_path: Path) -> None:
    d = tmp_path / "logs"
    d.mkdir()
    (d / "audit.log").write_bytes(jsonl(event()))
    os.mkfifo(d / "pipe.log")
    with watched(d / "pipe.log") as opened:
        r = runner.invoke(app, ["usage", str(d)])
    assert not opened
    assert r.exit_code == 3
    assert r.stderr == (
        f"error: {d}/pipe.log: not a regular file; name it on the command line to read it "
        "as a stream\n"
    )


@pytest.mark.parametrize("workers", [1, 2])
def test_a_fifo_named_on_the_command_line_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    monkeypatch.setattr(parallel, "MIN_SIZE", 0)
    fifo = tmp_path / "events"
    os.mkfifo(fifo)
    data = jsonl(event(audit_id="a"), event(audit_id="b", verb="list"))
    with feeding(fifo, data):
        got = load_usage([str(fifo)], workers=workers, skip_malformed=False, **KW)
    assert got.requests == 2 and got.sources[0].lines == 2
    with feeding(fifo, data):
        r = runner.invoke(app, ["usage", "--json", str(fifo)])
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["requests"] == 2


def test_an_unreadable_subdirectory_ends_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = tmp_path / "logs"
    (d / "b").mkdir(parents=True)
    (d / "a.log").write_bytes(jsonl(event()))
    (d / "b" / "a.log").write_bytes(jsonl(event(audit_id="2")))
    real_scandir = os.scandir

    def scandir(path: Any = ".") -> Any:
        if os.fspath(path) == str(d / "b"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    r = runner.invoke(app, ["usage", str(d)])
    assert r.exit_code == 3
    assert r.stderr == f"error: {d}/b: cannot read directory (Permission denied)\n"


def test_stdin_twice_is_refused(tmp_path: Path) -> None:
    r = runner.invoke(app, ["usage", "-", "-"], input=jsonl(event()))
    assert r.exit_code == 3
    assert r.stderr == ("error: -: standard input is given more than once; it can be read once\n")


def test_a_path_twice_is_read_once(tmp_path: Path) -> None:
    p = tmp_path / "audit.log"
    p.write_bytes(jsonl(event(audit_id="a"), event(audit_id="b", verb="list")))
    once = load_usage([str(p)], workers=1, skip_malformed=False, **KW)
    twice = load_usage([str(p), str(p)], workers=1, skip_malformed=False, **KW)
    assert twice == once and len(twice.sources) == 1


def _without_sources(u: Usage) -> Usage:
    return dataclasses.replace(u, sources=())


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("workers", [1, 2])
def test_a_byte_order_mark_gives_the_same_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gz: bool, workers: int
) -> None:
    monkeypatch.setattr(parallel, "MIN_SIZE", 0)
    split: list[int] = []
    read_files = parallel.read_files

    def spy(*args: Any, **kwargs: Any) -> Any:
        split.append(len(args[1]))
        return read_files(*args, **kwargs)

    monkeypatch.setattr(parallel, "read_files", spy)
    text = jsonl(
        event(audit_id="a"),
        event(audit_id="b", verb="list", uri="/api/v1/namespaces/ns/pods"),
        event(audit_id="c", user="bob"),
    )
    plain, marked = tmp_path / "plain.log", tmp_path / "marked.log"
    plain.write_bytes(gzip.compress(text) if gz else text)
    marked.write_bytes(gzip.compress(BOM + text) if gz else BOM + text)
    want = load_usage([str(plain)], workers=workers, skip_malformed=False, **KW)
    got = load_usage([str(marked)], workers=workers, skip_malformed=False, **KW)
    assert split == ([1, 1] if workers == 2 else [])  # both read by worker processes
    assert want.requests == 3
    assert _without_sources(got) == _without_sources(want)
    assert (got.sources[0].lines, got.sources[0].skipped) == (3, 0)
    r = runner.invoke(app, ["usage", "--json", "--skip-malformed", str(marked)])
    doc = json.loads(r.stdout)
    assert doc["requests"] == 3 and doc["sources"][0]["skipped"] == 0


def test_a_byte_order_mark_before_a_json_document(tmp_path: Path) -> None:
    p = tmp_path / "doc.json"
    p.write_bytes(BOM + json.dumps(event(), indent=2).encode() + b"\n")
    assert not parallel.splittable(str(p))  # a document is read whole, not in pieces
    got = load_usage([str(p)], workers=2, skip_malformed=False, **KW)
    assert got.requests == 1


def test_a_byte_order_mark_on_stdin() -> None:
    r = runner.invoke(app, ["usage", "--json", "-"], input=BOM + jsonl(event()))
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["requests"] == 1


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_log_given_twice_counts_once_or_is_refused(tmp_path: Path, jobs: str) -> None:
    # A log next to its own .gz (gunzip -k): near enough, every repeated record is matched
    # and counted once; too far apart to be matched, the run is refused before reading.
    text = b"".join(line(event(audit_id=f"r{i}")) + b"\n" for i in range(50))
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "audit.log").write_bytes(text)
    (logs / "audit.log.gz").write_bytes(gzip.compress(text))
    r = CliRunner().invoke(app, ["usage", str(logs), "--jobs", jobs, "--json"])
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["requests"] == 50
    big = text + b" " * (33 << 20) + b"\n"  # 33 MB of text between the two starts
    (logs / "audit.log").write_bytes(big)
    (logs / "audit.log.gz").write_bytes(gzip.compress(big, compresslevel=1))
    r = CliRunner().invoke(app, ["usage", str(logs), "--jobs", jobs])
    assert r.exit_code == 3 and r.stdout == ""
    assert r.stderr.strip() == (
        # in reading order: a rotated set reads its .gz files before audit.log
        f"error: {logs / 'audit.log.gz'} and {logs / 'audit.log'} begin with the same record: "
        "one is a copy of the other, or they overlap (a log next to its own .gz?); "
        "give only one of them"
    )


def test_batch_files_with_the_same_header_are_not_taken_for_copies(tmp_path: Path) -> None:
    logs = tmp_path / "batches"
    logs.mkdir()
    for i in range(2):
        items = [event(audit_id=f"b{i}-{j}") for j in range(3)]
        batch = {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "metadata": {}}
        (logs / f"batch-{i}.json").write_text(json.dumps({**batch, "items": items}, indent=2))
    r = CliRunner().invoke(app, ["usage", str(logs), "--json"])
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["requests"] == 6


def test_a_file_blank_at_its_start_is_read_by_one_reader(tmp_path: Path) -> None:
    # Past 4 KB of blank text a pretty-printed document may follow: not split into shares.
    p = tmp_path / "pretty.json"
    p.write_text("\n" * 5000 + json.dumps(event(), indent=2) + "\n")
    assert not parallel.splittable(str(p))
    empty = tmp_path / "empty.log"
    empty.write_text("")
    assert parallel.splittable(str(empty))
