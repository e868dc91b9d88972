"""Reading files with several processes: shares tile the files, results equal one reader."""

from __future__ import annotations

import gzip
import heapq
import json
import multiprocessing
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from audit_samples import event, line
from hypothesis import example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from rbac_advisor.cli import app, parallel
from rbac_advisor.cli.ingest import load_usage
from rbac_advisor.errors import AuditParseError, WorkerLost

KW = {"since": None, "until": None, "kubectl_only": False, "progress": False}


def _pieces(data: bytes, sizes: list[int]) -> list[bytes]:
    out, i = [], 0
    for n in sizes:
        if i >= len(data):
            break
        out.append(data[i : i + n])
        i += n
    if i < len(data):
        out.append(data[i:])
    return out


def _readline_cut(data: bytes, at: int) -> int:
    """Where seek(at) + readline() leaves a file holding ``data``."""
    if at <= 0:
        return 0
    nl = data.find(b"\n", at)
    return len(data) if nl < 0 else nl + 1


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(st.binary(max_size=12).map(lambda b: b.replace(b"\n", b"")), max_size=30),
    sizes=st.lists(st.integers(1, 17), max_size=40),
    cuts=st.lists(st.integers(0, 400), max_size=4),
)
def test_between_tiles_the_stream_at_line_starts(
    lines: list[bytes], sizes: list[int], cuts: list[int]
) -> None:
    data = b"".join(x + b"\n" for x in lines)
    bounds = [0, *sorted(cuts), -1]
    parts = [
        b"".join(parallel._between(iter(_pieces(data, sizes)), a, b))
        for a, b in zip(bounds, bounds[1:], strict=False)
    ]
    assert b"".join(parts) == data  # nothing lost, nothing twice
    for a, part in zip(bounds, parts, strict=False):
        start = _readline_cut(data, a)
        assert data[start : start + len(part)] == part  # begins where readline would


@settings(max_examples=300, deadline=None)
@given(
    lines=st.lists(st.binary(max_size=12).map(lambda b: b.replace(b"\n", b"")), max_size=30),
    sizes=st.lists(st.integers(1, 17), max_size=40),
    cuts=st.lists(st.integers(0, 120), min_size=2, max_size=2),
    gap=st.one_of(st.none(), st.integers(0, 30)),  # None: the second piece runs to the end
)
# The second piece ends where the first one's end, read on to a line start, lands.
@example(lines=[b"aaaa", b"bbbb", b"cccc"], sizes=[8], cuts=[0, 2], gap=3)
def test_one_pass_reads_two_pieces_as_two_passes_would(
    lines: list[bytes], sizes: list[int], cuts: list[int], gap: int | None
) -> None:
    data = b"".join(x + b"\n" for x in lines)
    a, c = sorted(cuts)
    e = -1 if gap is None else c + gap
    one = parallel._OnePass.__new__(parallel._OnePass)
    one._stream, one._rest, one._started = iter(_pieces(data, sizes)), [], False  # type: ignore[assignment]
    first = b"".join(one.pieces(parallel.Part("x", True, a, c)))
    second = b"".join(one.pieces(parallel.Part("x", True, c, e)))
    assert first == b"".join(parallel._between(iter(_pieces(data, sizes)), a, c))
    assert second == b"".join(parallel._between(iter(_pieces(data, sizes)), c, e))


def _log(tmp_path: Path, gz: bool) -> tuple[str, int]:
    dicts = []
    for i in range(3000):
        imp = {"username": "bob"} if i % 50 == 0 else None
        dicts.append(event(audit_id=f"id{i}", stage="RequestReceived", user=f"u{i % 13}"))
        if i % 9:
            dicts.append(event(audit_id=f"id{i}", user=f"u{i % 13}", imp=imp))
    for i in range(0, len(dicts) - 1, 7):  # interleave stages across the part boundary
        dicts[i], dicts[i + 1] = dicts[i + 1], dicts[i]
    data = b"".join(line(d) + b"\n" for d in dicts)
    p = tmp_path / ("big.log.gz" if gz else "big.log")
    p.write_bytes(gzip.compress(data) if gz else data)
    return str(p), len(dicts)


def _count_hand_overs(monkeypatch: pytest.MonkeyPatch, threshold: int) -> list[int]:
    """Workers hand their counts over past ``threshold`` uses; the parent's takes, counted."""
    monkeypatch.setattr(parallel, "HAND_OVER", threshold)  # the workers inherit it
    taken = [0]
    absorb = parallel.UsageBuilder.absorb_export

    def counted(self: Any, state: Any, *, own: bool = False) -> None:
        taken[0] += 1
        absorb(self, state, own=own)

    monkeypatch.setattr(parallel.UsageBuilder, "absorb_export", counted)
    return taken


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("hand_over", [None, 1, 4])
def test_two_processes_equal_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gz: bool, hand_over: int | None
) -> None:
    p, n = _log(tmp_path, gz)
    monkeypatch.setattr(parallel, "MIN_SIZE", 0)
    monkeypatch.setattr(parallel, "BLOCK", 1 << 14)  # many blocks: many chances to hand over
    assert parallel.worth_it(p, 2)
    seq = load_usage([p], workers=1, skip_malformed=False, **KW)  # type: ignore[arg-type]
    taken = _count_hand_overs(monkeypatch, hand_over) if hand_over else [0]
    par = load_usage([p], workers=2, skip_malformed=False, **KW)  # type: ignore[arg-type]
    assert par == seq
    assert seq.requests == 3000 and seq.sources[0].lines == n
    # Two results, plus the counts handed over early (added up apart, then taken at once).
    assert taken[0] > 3 if hand_over else taken[0] == 0


@pytest.mark.parametrize("blank", [b"\n", b"   \n", b"\t\r\n"])
def test_blank_lines_in_an_earlier_share_count_in_line_numbers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, blank: bytes
) -> None:
    """Blank lines are no records, but numbered: a later share's lines come after them."""
    p, n = _log(tmp_path, False)
    data = Path(p).read_bytes().splitlines(keepends=True)
    data[1:1] = [blank] * 100  # early in the first share
    data.append(b"garbage\n")
    Path(p).write_bytes(b"".join(data))
    bad = n + 100 + 1
    monkeypatch.setattr(parallel, "MIN_SIZE", 0)
    for workers in (1, 2, 3):
        with pytest.raises(AuditParseError, match=rf"big.log:{bad}: invalid JSON"):
            load_usage([p], workers=workers, skip_malformed=False, **KW)  # type: ignore[arg-type]
    seq = load_usage([p], workers=1, skip_malformed=True, **KW)  # type: ignore[arg-type]
    par = load_usage([p], workers=2, skip_malformed=True, **KW)  # type: ignore[arg-type]
    assert par == seq and seq.skipped == 1 and seq.sources[0].lines == n + 1
    assert par.sources[0].first_error.startswith(f"{p}:{bad}: invalid JSON")


def test_malformed_line_is_reported_at_its_absolute_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p, n = _log(tmp_path, False)
    with open(p, "ab") as f:
        f.write(b"garbage\n")
    monkeypatch.setattr(parallel, "MIN_SIZE", 0)
    with pytest.raises(AuditParseError, match=rf"big.log:{n + 1}: invalid JSON"):
        load_usage([p], workers=2, skip_malformed=False, **KW)  # type: ignore[arg-type]
    seq = load_usage([p], workers=1, skip_malformed=True, **KW)  # type: ignore[arg-type]
    par = load_usage([p], workers=2, skip_malformed=True, **KW)  # type: ignore[arg-type]
    assert par == seq and seq.skipped == 1
    assert seq.sources[0].first_error.startswith(f"{p}:{n + 1}: invalid JSON")


def test_gzip_split_point_estimate_does_not_change_the_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p, _ = _log(tmp_path, True)
    monkeypatch.setattr(parallel, "MIN_SIZE", 0)
    seq = load_usage([p], workers=1, skip_malformed=False, **KW)  # type: ignore[arg-type]
    for size in (0, 1, 50_000, 10**9):  # far too small, tiny, mid-file, beyond the end
        monkeypatch.setattr(parallel.logfiles, "inflated_size", lambda _p, s=size: s)
        assert load_usage([p], workers=2, skip_malformed=False, **KW) == seq  # type: ignore[arg-type]


def test_damaged_gzip_is_reported_as_one_reader_would(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p, _ = _log(tmp_path, True)
    data = Path(p).read_bytes()
    Path(p).write_bytes(data[: len(data) * 2 // 3])  # truncated inside the second part
    monkeypatch.setattr(parallel, "MIN_SIZE", 0)
    errors = []
    # Counts handed over before the damage is found are not kept: the files are read again.
    taken = _count_hand_overs(monkeypatch, 1)
    for workers in (1, 2):
        with pytest.raises(AuditParseError, match="truncated or corrupt gzip") as err:
            load_usage([p], workers=workers, skip_malformed=False, **KW)  # type: ignore[arg-type]
        errors.append(str(err.value))
    assert errors[0] == errors[1]
    seq = load_usage([p], workers=1, skip_malformed=True, **KW)  # type: ignore[arg-type]
    par = load_usage([p], workers=2, skip_malformed=True, **KW)  # type: ignore[arg-type]
    assert par == seq and seq.skipped == 1 and seq.requests > 0
    assert taken[0] > 0


def test_concatenated_gzip_members_split_like_one_stream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain, _ = _log(tmp_path, False)
    data = Path(plain).read_bytes()
    cut = data.index(b"\n", len(data) // 3) + 1  # rotated pieces joined with cat
    p = tmp_path / "joined.log.gz"
    p.write_bytes(gzip.compress(data[:cut]) + gzip.compress(data[cut:]))
    monkeypatch.setattr(parallel, "MIN_SIZE", 0)
    seq = load_usage([str(p)], workers=1, skip_malformed=False, **KW)  # type: ignore[arg-type]
    par = load_usage([str(p)], workers=2, skip_malformed=False, **KW)  # type: ignore[arg-type]
    plain_model = load_usage([plain], workers=1, skip_malformed=False, **KW)  # type: ignore[arg-type]
    assert par == seq and seq.entries == plain_model.entries and seq.requests == 3000


def _unexpected(state: Any) -> None:
    raise AssertionError(f"no counts are handed over here: {state!r}")


def _sigint_handler(_args: Any, _hand: Any = None) -> Any:
    return signal.getsignal(signal.SIGINT)


def test_workers_leave_ctrl_c_to_the_parent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel, "_work", _sigint_handler)
    ctx = multiprocessing.get_context("fork")
    got = parallel._run_workers(ctx, None, [None, None], lambda: None, _unexpected)  # type: ignore[list-item]
    assert got == [signal.SIG_IGN, signal.SIG_IGN]


def _killed(_args: Any, _hand: Any = None) -> Any:
    os.kill(os.getpid(), signal.SIGKILL)  # as the kernel's out-of-memory killer does


def _exhausted(_args: Any, _hand: Any = None) -> Any:
    raise MemoryError


class _KilledWhilePickled:
    def __reduce__(self) -> Any:
        os.kill(os.getpid(), signal.SIGKILL)


def _killed_while_sending(_args: Any, _hand: Any = None) -> Any:
    # Part of the result reaches the pipe (more than its buffer) before the process dies.
    return [b"x" * (4 * parallel._PIPE_BUFFER), _KilledWhilePickled()]


class _ExhaustedWhilePickled:
    def __reduce__(self) -> Any:
        raise MemoryError


def _exhausted_while_sending(_args: Any, _hand: Any = None) -> Any:
    return [b"x" * (4 * parallel._PIPE_BUFFER), _ExhaustedWhilePickled()]


def test_a_result_cut_short_is_a_lost_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """A result is pickled into the pipe as it is made: a part of one is never taken."""
    ctx = multiprocessing.get_context("fork")
    monkeypatch.setattr(parallel, "_work", _killed_while_sending)
    with pytest.raises(WorkerLost, match="killed by signal 9"):
        parallel._run_workers(ctx, None, [None], lambda: None, _unexpected)  # type: ignore[list-item]
    monkeypatch.setattr(parallel, "_work", _exhausted_while_sending)
    with pytest.raises(WorkerLost, match="exited with status 1"):
        parallel._run_workers(ctx, None, [None], lambda: None, _unexpected)  # type: ignore[list-item]


def test_results_are_streamed_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    big = [bytes([k]) * (3 * parallel._PIPE_BUFFER + k) for k in range(3)]
    monkeypatch.setattr(parallel, "_work", lambda args, _hand=None: big[args])
    ctx = multiprocessing.get_context("fork")
    assert parallel._run_workers(ctx, None, [0, 1, 2], lambda: None, _unexpected) == big  # type: ignore[list-item]


def _shared_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    dicts = []
    for i in range(300):
        dicts += [event(audit_id=str(i), stage="RequestReceived"), event(audit_id=str(i))]
    p = tmp_path / "a.log"
    p.write_bytes(b"".join(line(d) + b"\n" for d in dicts))
    monkeypatch.setattr(parallel, "MIN_SIZE", 0)
    return str(p)


def test_a_worker_killed_ends_the_run_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No hang and no traceback: the run stops, says how, and exits 6."""
    p = _shared_log(tmp_path, monkeypatch)
    monkeypatch.setattr(parallel, "_work", _killed)
    with pytest.raises(WorkerLost, match="killed by signal 9") as err:
        load_usage([p], workers=2, skip_malformed=False, **KW)  # type: ignore[arg-type]
    assert err.value.exitcode == -signal.SIGKILL
    r = CliRunner().invoke(app, ["usage", "--jobs", "2", p])
    lines = r.output.strip().splitlines()
    assert r.exit_code == 6 and len(lines) == 1, r.output
    assert lines[0].startswith("error: a process reading the audit logs was killed by signal 9")
    assert "--jobs 1" in lines[0]


def test_a_worker_out_of_memory_ends_the_run_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = _shared_log(tmp_path, monkeypatch)
    monkeypatch.setattr(parallel, "_work", _exhausted)
    r = CliRunner().invoke(app, ["usage", "--jobs", "2", p])
    assert r.exit_code == 6, r.output
    assert r.output.strip().splitlines() == [
        "error: out of memory: read fewer or smaller inputs at once (--since/--until narrow "
        "the window), or run on a machine with more memory"
    ]
    monkeypatch.undo()
    r = CliRunner().invoke(app, ["usage", "--jobs", "2", p])
    assert r.exit_code == 0 and "300 requests" in r.output, r.output


# ---- several files, any split point, stages in any order ------------------------------------

_REQ = st.tuples(
    st.integers(0, 40),  # auditID (reused on purpose)
    st.sampled_from(["alice", "bob"]),
    st.sampled_from(["get", "watch", "delete"]),
    st.sets(
        st.sampled_from(["RequestReceived", "ResponseStarted", "ResponseComplete"]), min_size=1
    ),
    st.booleans(),  # impersonated
)


def _texts(reqs, rnd) -> list[bytes]:
    per = []
    for aid, user, verb, stages, imp in reqs:
        stages_in_order = [
            s for s in ("RequestReceived", "ResponseStarted", "ResponseComplete") if s in stages
        ]
        lines_ = []
        for stage in stages_in_order:
            kw = {"audit_id": f"a{aid}", "stage": stage, "verb": verb, "user": user}
            if imp and stage != "RequestReceived":
                kw["imp"] = {"username": "carol", "groups": ["ops"]}
            lines_.append(line(event(**kw)))
        per.append(lines_)
    out = []
    while per:  # concurrent requests interleaved; sometimes a later stage first, or twice
        q = rnd.choice(per)
        out.append(q.pop(rnd.randrange(len(q)) if rnd.random() < 0.2 else 0))
        if rnd.random() < 0.05:
            out.append(out[-1])
        if not q:
            per.remove(q)
    return out


@settings(max_examples=150, deadline=None)
@given(
    reqs=st.lists(_REQ, min_size=1, max_size=40),
    rnd=st.randoms(use_true_random=False),
    files=st.integers(1, 3),
    workers=st.sampled_from([2, 3]),
    hand_over=st.sampled_from([parallel.HAND_OVER, 1, 2]),
)
def test_any_split_of_any_files_equals_one_reader(
    tmp_path_factory: pytest.TempPathFactory, reqs, rnd, files: int, workers: int, hand_over: int
) -> None:
    texts = _texts(reqs, rnd)
    d = tmp_path_factory.mktemp("split")
    cuts = sorted(rnd.randrange(len(texts) + 1) for _ in range(files - 1))
    paths, estimates = [], {}
    for k, (a, b) in enumerate(zip([0, *cuts], [*cuts, len(texts)], strict=True)):
        data = b"".join(t + b"\n" for t in texts[a:b])
        shape = rnd.choice(["plain", "gzip", "document"])
        p = d / (f"audit-{k}.log.gz" if shape == "gzip" else f"audit-{k}.log")
        if shape == "document":  # an EventList: read alone, between runs of line files
            items = [json.loads(t) for t in texts[a:b]]
            data = json.dumps({"kind": "EventList", "items": items}, indent=1).encode()
        p.write_bytes(gzip.compress(data) if shape == "gzip" else data)
        paths.append(str(p))
        estimates[str(p)] = rnd.randrange(2 * len(data) + 2)  # a gzip size guess, any
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(parallel, "MIN_SIZE", 0)
        mp.setattr(parallel, "HAND_OVER", hand_over)  # workers may hand counts over early
        mp.setattr(parallel.logfiles, "inflated_size", lambda p: estimates[p])
        try:
            seq = load_usage(paths, workers=1, skip_malformed=False, **KW)  # type: ignore[arg-type]
        except AuditParseError:
            return  # every file empty
        par = load_usage(paths, workers=workers, skip_malformed=False, **KW)  # type: ignore[arg-type]
    assert par == seq


def test_errors_in_a_run_of_files_name_the_file_and_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain, n = _log(tmp_path, False)
    data = Path(plain).read_bytes().splitlines(keepends=True)
    a, b = tmp_path / "audit-1.log", tmp_path / "audit-2.log.gz"
    a.write_bytes(b"".join(data[: n // 2]))
    broken = data[n // 2 :]
    broken.insert(100, b"garbage\n")
    b.write_bytes(gzip.compress(b"".join(broken)))
    monkeypatch.setattr(parallel, "MIN_SIZE", 0)
    paths = [str(a), str(b)]
    with pytest.raises(AuditParseError, match=r"audit-2.log.gz:101: invalid JSON"):
        load_usage(paths, workers=2, skip_malformed=False, **KW)  # type: ignore[arg-type]
    seq = load_usage(paths, workers=1, skip_malformed=True, **KW)  # type: ignore[arg-type]
    par = load_usage(paths, workers=2, skip_malformed=True, **KW)  # type: ignore[arg-type]
    assert par == seq and [s.skipped for s in seq.sources] == [0, 1]
    assert seq.sources[1].first_error.startswith(f"{b}:101: invalid JSON")
    # A damaged gzip file in the run: the files are read again by one reader, which says
    # where the damage starts.
    whole = gzip.compress(b"".join(data[n // 2 :]))
    b.write_bytes(whole[: len(whole) // 2])
    errors = []
    # Counts handed over before the damage is found are not kept: the files are read again.
    _count_hand_overs(monkeypatch, 1)
    for workers in (1, 2):
        with pytest.raises(AuditParseError, match="truncated or corrupt gzip") as err:
            load_usage(paths, workers=workers, skip_malformed=False, **KW)  # type: ignore[arg-type]
        errors.append(str(err.value))
    assert errors[0] == errors[1]


def test_rotated_files_are_shared_between_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain, n = _log(tmp_path, False)
    data = Path(plain).read_bytes().splitlines(keepends=True)
    d = tmp_path / "logs"
    d.mkdir()
    for k in range(4):
        chunk = b"".join(data[k * n // 4 : (k + 1) * n // 4])
        (d / f"audit-2026-11-2{k}T00-00-00.000.log.gz").write_bytes(gzip.compress(chunk))
    shares, after, total = parallel._shares(
        [(i, str(p)) for i, p in enumerate(sorted(d.iterdir()))], 2, parallel.OVERLAP
    )
    assert len(shares) == 2 and total == len(b"".join(data))
    assert [p.index for p in shares[0][0]][0] == 0 and shares[1][0][-1].index == 3
    assert shares[1][1] and after  # the text before the second share, and at the end
    monkeypatch.setattr(parallel, "MIN_SIZE", 0)
    seq = load_usage([str(d)], workers=1, skip_malformed=False, **KW)  # type: ignore[arg-type]
    par = load_usage([str(d)], workers=2, skip_malformed=False, **KW)  # type: ignore[arg-type]
    assert par == seq and seq.requests == 3000


def _tiny_windows(
    mp: pytest.MonkeyPatch, pending: int, head: int, overlap: int, block: int | None = None
) -> None:
    """Windows of a few requests, a head of a few lines: requests outlast them.

    ``block``: bytes read at a time, so that the head ends near its line.
    """
    from rbac_advisor.audit import dedupe
    from rbac_advisor.audit import stream as stream_mod

    values = [
        (dedupe, "PENDING_MAX", pending),
        (dedupe, "DONE_MAX", 2 * pending),
        (stream_mod, "DEFER_MAX", 2),
        (parallel, "MIN_SIZE", 0),
        (parallel, "HEAD_LINES", head),
        (parallel, "OVERLAP", overlap),
    ]
    if block is not None:
        values += [(parallel, "BLOCK", block), (parallel.logfiles, "BLOCK", block)]
    for module, name, value in values:
        mp.setattr(module, name, value)


_WATCH = {
    "audit_id": "w",
    "verb": "watch",
    "uri": "/api/v1/namespaces/ns/pods?watch=true",
    "ref": {"resource": "pods", "namespace": "ns"},
}
# `kubectl logs -f`: an ordinary get that streams for as long as the user watches.
_FOLLOW = {
    "audit_id": "f",
    "uri": "/api/v1/namespaces/ns/pods/p/log?follow=true",
    "ref": {"resource": "pods", "namespace": "ns", "name": "p", "subresource": "log"},
}
# Impersonated, it is read through an Event rather than counted on the decoded line.
_IMPERSONATED = {**_FOLLOW, "imp": {"username": "carol", "groups": ["ops"]}}


@pytest.mark.parametrize(
    ("long", "gz"),
    [(_WATCH, False), (_WATCH, True), (_FOLLOW, False), (_FOLLOW, True), (_IMPERSONATED, False)],
)
# The final stage in the apiserver's time form, or the same instant written another way.
@pytest.mark.parametrize("ended", ["2026-11-20T10:00:00.000000Z", "2026-11-20 11:00:00+01:00"])
def test_a_long_request_across_the_split_point_counted_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, long: dict[str, Any], gz: bool, ended: str
) -> None:
    began = "2026-11-20T10:00:00.000000Z"
    texts = [
        line(event(stage=s, time=began, **long)) for s in ("RequestReceived", "ResponseStarted")
    ]
    for block in range(6):  # requests open 20 at a time: the long one leaves every window
        ids = [f"r{block}-{i}" for i in range(20)]
        at = f"2026-11-20T10:0{block}:01.000000Z"
        texts += [line(event(audit_id=i, stage="RequestReceived", time=at)) for i in ids]
        texts += [line(event(audit_id=i, time=at)) for i in ids]
    texts.append(line(event(stage="ResponseComplete", time=ended, **long)))
    data = b"".join(t + b"\n" for t in texts)
    p = tmp_path / ("a.log.gz" if gz else "a.log")
    p.write_bytes(gzip.compress(data) if gz else data)
    # It ends far past the next share's head and began far before the text a worker
    # reads first.
    _tiny_windows(monkeypatch, pending=4, head=50, overlap=1000, block=2048)
    models = [
        load_usage([str(p)], workers=w, skip_malformed=False, **KW)  # type: ignore[arg-type]
        for w in (1, 2, 3)
    ]

    assert models[0].requests == 121
    assert models[1] == models[0] and models[2] == models[0]
    access = (long.get("verb", "get"), long["ref"].get("subresource", ""))  # unique here
    counts = models[0].entries.items()
    assert [s.count for k, s in counts if (k.access.verb, k.access.subresource) == access] == [1]


def _timed_texts(reqs, rnd) -> list[bytes]:
    """Requests in arrival order, each ending ``lag`` lines after it began.

    Request n arrives at second n; a final stage is written when it is due, stamped with
    the time of the latest arrival (as an apiserver writes lines in order of stage time).
    """
    out: list[bytes] = []
    due: list[tuple[int, int, dict]] = []

    def at(n: int, micro: int = 0) -> str:
        return f"2026-11-20T10:{n // 60:02d}:{n % 60:02d}.{micro:06d}Z"

    def final(d: dict, n: int) -> None:
        out.append(line({**d, "stageTimestamp": at(n, 500000)}))
        if rnd.random() < 0.05:
            out.append(out[-1])  # a stage logged twice

    n = -1
    for n, (user, verb, stages, imp, lag) in enumerate(reqs):
        kw = {"audit_id": f"a{n}", "verb": verb, "user": user, "time": at(n)}
        if imp:
            kw["imp"] = {"username": "carol", "groups": ["ops"]}
        early = [s for s in ("RequestReceived", "ResponseStarted") if s in stages]
        out += [line(event(stage=s, **kw)) for s in early]
        if "ResponseComplete" in stages:
            heapq.heappush(due, (len(out) + lag, n, event(**kw)))
        while due and due[0][0] <= len(out):
            final(heapq.heappop(due)[2], n)
    while due:
        final(heapq.heappop(due)[2], n)
    return out


@settings(max_examples=150, deadline=None)
@given(
    reqs=st.lists(
        st.tuples(
            st.sampled_from(["alice", "bob"]),
            st.sampled_from(["get", "list", "watch"]),
            st.sets(
                st.sampled_from(["RequestReceived", "ResponseStarted", "ResponseComplete"]),
                min_size=1,
            ),
            st.booleans(),
            st.one_of(st.integers(0, 3), st.integers(20, 120)),  # lines until the final stage
        ),
        min_size=1,
        max_size=80,
    ),
    rnd=st.randoms(use_true_random=False),
    workers=st.sampled_from([2, 3, 4]),
    gz=st.booleans(),
)
def test_long_requests_at_any_split_equal_one_reader(
    tmp_path_factory: pytest.TempPathFactory, reqs, rnd, workers: int, gz: bool
) -> None:
    # Windows of a few requests and a head of a few lines: most requests outlast them.
    # Nothing overflows the held requests (one reader would then count the oldest from its
    # early stage, a share reader from its final stage). IDs are not reused: past the
    # head, a request still waiting in an earlier share is matched by when it began.
    data = b"".join(t + b"\n" for t in _timed_texts(reqs, rnd))
    p = tmp_path_factory.mktemp("long") / ("a.log.gz" if gz else "a.log")
    p.write_bytes(gzip.compress(data) if gz else data)
    with pytest.MonkeyPatch.context() as mp:
        _tiny_windows(mp, pending=4, head=6, overlap=3000, block=1024)
        seq = load_usage([str(p)], workers=1, skip_malformed=False, **KW)  # type: ignore[arg-type]
        par = load_usage([str(p)], workers=workers, skip_malformed=False, **KW)  # type: ignore[arg-type]
    assert par == seq


@pytest.mark.parametrize("workers", [2, 3, 4])
def test_a_real_apiserver_log_at_tiny_windows_equals_one_reader(
    monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    # Lines recorded from a real kube-apiserver (scripts/record-demo.py), shared out in
    # pieces of a few lines, with windows of two requests and a head of three lines.
    log = str(Path(__file__).parent.parent / "fixtures" / "demo" / "audit.jsonl")
    _tiny_windows(monkeypatch, pending=2, head=3, overlap=2000, block=2048)
    seq = load_usage([log], workers=1, skip_malformed=False, **KW)  # type: ignore[arg-type]
    par = load_usage([log], workers=workers, skip_malformed=False, **KW)  # type: ignore[arg-type]
    ids = {json.loads(t)["auditID"] for t in Path(log).read_text().splitlines()}
    assert par == seq and seq.requests == len(ids) > 100


def test_what_a_worker_reports_past_its_head_grows_with_open_requests_not_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Three watches and an exec session open across the middle of the log, and 300 watches
    # and sessions that begin and end past it: only the four may have begun in the first
    # share, so only they are reported past the second share's head.
    def at(n: int) -> str:
        return f"2026-11-20T10:{n // 60:02d}:{n % 60:02d}.000000Z"

    exec_ = {
        "uri": "/api/v1/namespaces/ns/pods/p/exec?command=sh",
        "ref": {"resource": "pods", "namespace": "ns", "name": "p", "subresource": "exec"},
        "verb": "create",
    }
    opened = [{**_WATCH, "audit_id": f"open-{i}"} for i in range(3)]
    opened.append({**exec_, "audit_id": "open-exec"})
    texts = [line(event(stage="RequestReceived", time=at(0), **o)) for o in opened]
    texts += [line(event(audit_id=f"a{n}", time=at(n))) for n in range(1, 200)]
    for n in range(200, 500):
        short = {**(_WATCH if n % 2 else exec_), "audit_id": f"s{n}"}
        texts.append(line(event(stage="RequestReceived", time=at(n), **short)))
        texts.append(line(event(audit_id=f"a{n}", time=at(n))))
        texts.append(line(event(time=at(n), **short)))
    texts += [line({**event(time=at(0), **o), "stageTimestamp": at(600)}) for o in opened]
    p = tmp_path / "a.log"
    p.write_bytes(b"".join(t + b"\n" for t in texts))
    _tiny_windows(monkeypatch, pending=4, head=20, overlap=4000, block=1024)
    results: list[list[Any]] = []
    run = parallel._run_workers

    def kept(*args: Any) -> list[Any]:
        results.append(run(*args))
        return results[-1]

    monkeypatch.setattr(parallel, "_run_workers", kept)
    par = load_usage([str(p)], workers=2, skip_malformed=False, **KW)  # type: ignore[arg-type]
    seq = load_usage([str(p)], workers=1, skip_malformed=False, **KW)  # type: ignore[arg-type]

    assert par == seq and seq.requests == len(opened) + 199 + 300 * 2
    first, second = results[0]
    assert len(first.tail) >= len(opened)  # and a short request the cut fell in, maybe
    assert len(second.long) == len(opened) and not first.long
