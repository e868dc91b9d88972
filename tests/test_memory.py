"""Memory given back or never taken while reading: large freed blocks, a saved model's text."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from audit_samples import event, line

from rbac_advisor.cli import memory
from rbac_advisor.errors import InputError

# After a 1 MB block is freed, is the next 1 MB block mapped on its own (given back when
# freed) or carved from the heap? glibc's mallinfo2 counts the bytes in mapped blocks.
_MAPPED = r"""
import ctypes, sys
from rbac_advisor.cli import app, memory

class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
        "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Info
if sys.argv[1] == "tuned":
    assert memory.give_back_large_blocks()
x = bytes(1 << 20)
del x
before = libc.mallinfo2().hblkhd
y = bytes(1 << 20)
print(libc.mallinfo2().hblkhd - before >= 1 << 20)
"""


def _mapped(mode: str) -> bool:
    out = subprocess.run(
        [sys.executable, "-c", _MAPPED, mode], check=True, capture_output=True, text=True
    )
    return {"True": True, "False": False}[out.stdout.strip()]


def test_large_blocks_stay_out_of_the_heap() -> None:
    assert memory.give_back_large_blocks() is True
    assert _mapped("tuned") is True
    assert _mapped("default") is False  # what the setting changes


def test_one_process_reading_gives_blocks_back(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Tuned when one process reads everything, left alone when workers share the read."""
    from rbac_advisor.cli import ingest

    calls: list[int] = []
    monkeypatch.setattr(ingest, "give_back_large_blocks", lambda: calls.append(1) or True)
    log = tmp_path / "a.log"
    log.write_bytes(line(event()) + b"\n")
    kw: dict[str, Any] = {
        "skip_malformed": False,
        "since": None,
        "until": None,
        "kubectl_only": False,
    }
    ingest.load_usage([str(log)], progress=False, workers=2, **kw)
    assert calls == []
    ingest.load_usage([str(log)], progress=False, workers=1, **kw)
    assert calls == [1]


# ---- a saved model: read a piece at a time, not held whole -----------------------------------


def _saved_model(tmp_path: Path) -> tuple[Path, Any]:
    """A saved model after 16 MB of an array no field reads (still parsed, a piece at a time)."""
    from rbac_advisor import usage
    from rbac_advisor.audit import parse_record

    built = usage.build(
        e
        for n in range(50)
        for e in parse_record(
            event(audit_id=f"a{n}", user=f"u{n % 7}", uri=f"/api/v1/namespaces/n{n}/pods")
        ).events
    )
    source = usage.SourceInfo("a.log", "native", 50, built.requests, 0, "0" * 64, ())
    model = dataclasses.replace(built, sources=(source,))  # as read from a file
    filler = '"aaa":[\n' + ",\n".join([f'"{n:04d}' + "a" * 2000 + '"' for n in range(8000)])
    filler += "\n],"
    path = tmp_path / "model.json"
    path.write_text("{" + filler + usage.dumps(model)[1:])
    assert path.stat().st_size > 16_000_000
    return path, model


def _rss() -> int:
    """Bytes this process has resident now."""
    for row in Path("/proc/self/status").read_text().splitlines():
        if row.startswith("VmRSS:"):
            return int(row.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def test_a_saved_model_is_read_a_piece_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rbac_advisor import usage_codec
    from rbac_advisor.cli import ingest

    path, model = _saved_model(tmp_path)
    size = path.stat().st_size
    ingest.load_saved(path, progress=False)  # whatever loading imports and allocates once
    resident: list[int] = []
    real = usage_codec._Lines.pieces

    def watched(self: Any) -> Any:
        for rows in real(self):
            yield rows
            resident.append(_rss())

    monkeypatch.setattr(usage_codec._Lines, "pieces", watched)
    before = _rss()
    assert ingest.load_saved(path, progress=False) == model
    assert len(resident) > 16  # pieces of about 1 MB
    # Holding the text (as reading it whole did) would add all of it.
    assert max(resident) - before < size // 4, (max(resident) - before, size)


def test_a_saved_model_cut_short_while_read_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another program rewriting the file in place: the model read short is damaged."""
    from rbac_advisor import usage_codec
    from rbac_advisor.cli import ingest

    path, model = _saved_model(tmp_path)
    assert ingest.load_saved(path, progress=False) == model
    real = usage_codec._Lines.pieces

    def cut(self: Any) -> Any:
        for k, rows in enumerate(real(self)):
            if k == 2:
                with path.open("r+b") as f:
                    f.truncate(path.stat().st_size // 2)
            yield rows

    monkeypatch.setattr(usage_codec._Lines, "pieces", cut)
    with pytest.raises(InputError, match=r"model\.json: .*(invalid JSON|damaged)"):
        ingest.load_saved(path, progress=False)


def test_a_read_failing_while_a_model_is_read_is_one_error_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno
    import os

    from rbac_advisor import usage_codec
    from rbac_advisor.cli import ingest

    path, _ = _saved_model(tmp_path)
    real = usage_codec._Lines.pieces

    def failing(self: Any) -> Any:
        for k, rows in enumerate(real(self)):
            if k == 2:
                monkeypatch.setattr(
                    os, "pread", lambda *a: (_ for _ in ()).throw(OSError(errno.EIO, "I/O error"))
                )
            yield rows

    monkeypatch.setattr(usage_codec._Lines, "pieces", failing)
    with pytest.raises(InputError, match=r"model\.json: cannot read \(I/O error\)"):
        ingest.load_saved(path, progress=False)


def test_a_file_read_where_sliced_finds_and_slices_as_bytes(tmp_path: Path) -> None:
    from rbac_advisor.cli import ingest

    data = b"ab,\ncd[\n" * 300 + b"\n]" + b"x" * 5
    path = tmp_path / "t"
    path.write_bytes(data)
    with path.open("rb") as f:
        text = ingest.FileText(f.fileno())
        with pytest.MonkeyPatch.context() as mp:
            for chunk in (1, 2, 3, 7, 1 << 20):
                mp.setattr(ingest, "_CHUNK", chunk)
                for sub in (b",\n", b"[\n", b"\n]", b"x", b"zz", b"cd[\nab"):
                    for start, end in ((0, None), (5, None), (7, 900), (2000, None), (3, 3)):
                        want = data.find(sub, start) if end is None else data.find(sub, start, end)
                        args = (sub, start) if end is None else (sub, start, end)
                        assert text.find(*args) == want, (chunk, sub, start, end)
        assert len(text) == len(data) and text[:] == data
        assert text[5:17] == data[5:17] and text[len(data) - 3 :] == data[-3:]
        assert text[10:5] == b"" and text[0 : 10**9] == data


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 1 << 20])
def test_a_saved_model_is_checked_as_utf8_across_chunks(
    chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rbac_advisor.cli import ingest

    monkeypatch.setattr(ingest, "_CHUNK", chunk)
    for good in ("", "plain", "aé€😀b", "😀" * 7, "x€"):
        ingest._check_utf8(good.encode())
    for bad in (b"a\xc3", b"\xc3a", b"ab\xff", b"\xe2\x82", b"\xe2\x82a\xac", b"\xed\xa0\x80"):
        with pytest.raises(UnicodeDecodeError):
            ingest._check_utf8(bad)


def test_a_saved_model_from_a_pipe_is_read(tmp_path: Path) -> None:
    import os
    import threading

    from rbac_advisor.cli import ingest

    path, model = _saved_model(tmp_path)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(path.read_bytes()))
    writer.start()
    try:
        assert ingest.load_saved(fifo, progress=False) == model
    finally:
        writer.join()
    empty = tmp_path / "empty.json"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="empty.json: not a saved usage model"):
        ingest.load_saved(empty, progress=False)
