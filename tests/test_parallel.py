"""Reading one file with several processes: parts tile the file, results equal one reader."""

from __future__ import annotations

import gzip
import multiprocessing
import signal
from pathlib import Path

import pytest
from audit_samples import event, line
from hypothesis import given, settings
from hypothesis import strategies as st

from rbac_advisor.cli import parallel
from rbac_advisor.cli.ingest import load_usage
from rbac_advisor.errors import AuditParseError

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


@pytest.mark.parametrize("gz", [False, True])
def test_two_processes_equal_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gz: bool) -> None:
    p, n = _log(tmp_path, gz)
    monkeypatch.setattr(parallel, "MIN_SIZE", 0)
    monkeypatch.setattr(parallel, "MIN_GZIP_SIZE", 0)
    assert parallel.worth_it(p, 2)
    seq = load_usage([p], workers=1, skip_malformed=False, **KW)  # type: ignore[arg-type]
    par = load_usage([p], workers=2, skip_malformed=False, **KW)  # type: ignore[arg-type]
    assert par == seq
    assert seq.requests == 3000 and seq.sources[0].lines == n


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
    monkeypatch.setattr(parallel, "MIN_GZIP_SIZE", 0)
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
    monkeypatch.setattr(parallel, "MIN_GZIP_SIZE", 0)
    errors = []
    for workers in (1, 2):
        with pytest.raises(AuditParseError, match="truncated or corrupt gzip") as err:
            load_usage([p], workers=workers, skip_malformed=False, **KW)  # type: ignore[arg-type]
        errors.append(str(err.value))
    assert errors[0] == errors[1]
    seq = load_usage([p], workers=1, skip_malformed=True, **KW)  # type: ignore[arg-type]
    par = load_usage([p], workers=2, skip_malformed=True, **KW)  # type: ignore[arg-type]
    assert par == seq and seq.skipped == 1 and seq.requests > 0


def test_concatenated_gzip_members_split_like_one_stream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain, _ = _log(tmp_path, False)
    data = Path(plain).read_bytes()
    cut = data.index(b"\n", len(data) // 3) + 1  # rotated pieces joined with cat
    p = tmp_path / "joined.log.gz"
    p.write_bytes(gzip.compress(data[:cut]) + gzip.compress(data[cut:]))
    monkeypatch.setattr(parallel, "MIN_GZIP_SIZE", 0)
    seq = load_usage([str(p)], workers=1, skip_malformed=False, **KW)  # type: ignore[arg-type]
    par = load_usage([str(p)], workers=2, skip_malformed=False, **KW)  # type: ignore[arg-type]
    plain_model = load_usage([plain], workers=1, skip_malformed=False, **KW)  # type: ignore[arg-type]
    assert par == seq and seq.entries == plain_model.entries and seq.requests == 3000


def test_workers_leave_ctrl_c_to_the_parent() -> None:
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1, initializer=parallel._init, initargs=(None,)) as pool:
        assert pool.apply(signal.getsignal, (signal.SIGINT,)) == signal.SIG_IGN
