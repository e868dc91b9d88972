"""Memory given back while reading: large freed blocks, and the text of a saved model."""

from __future__ import annotations

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


# ---- a saved model: its text is mapped, and the pages parsed are let go --------------------


def _rss_file() -> int:
    """Bytes of file-backed pages this process has resident (a mapped file's among them)."""
    for row in Path("/proc/self/status").read_text().splitlines():
        if row.startswith("RssFile:"):
            return int(row.split()[1]) * 1024
    raise AssertionError("no RssFile in /proc/self/status")


def _saved_model(tmp_path: Path) -> tuple[Path, Any]:
    """A saved model after 16 MB of an array no field reads (still parsed, a piece at a time)."""
    from rbac_advisor import usage
    from rbac_advisor.audit import parse_record

    model = usage.build(
        e
        for n in range(50)
        for e in parse_record(
            event(audit_id=f"a{n}", user=f"u{n % 7}", uri=f"/api/v1/namespaces/n{n}/pods")
        ).events
    )
    filler = '"aaa":[\n' + ",\n".join(["[" + "1," * 1000 + "1]"] * 8000) + "\n],"
    path = tmp_path / "model.json"
    path.write_text("{" + filler + usage.dumps(model)[1:])
    assert path.stat().st_size > 16_000_000
    return path, model


def test_a_saved_model_is_mapped_and_let_go_as_it_is_parsed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rbac_advisor import usage_codec
    from rbac_advisor.cli import ingest

    path, model = _saved_model(tmp_path)
    size = path.stat().st_size
    ingest.load_saved(path, progress=False)  # whatever loading imports is mapped before
    resident: list[int] = []
    real = usage_codec._Lines.pieces

    def watched(self: Any) -> Any:
        for rows in real(self):
            yield rows
            resident.append(_rss_file())

    monkeypatch.setattr(usage_codec._Lines, "pieces", watched)
    texts: list[Any] = []
    real_loads = ingest.loads
    monkeypatch.setattr(
        ingest, "loads", lambda text, *a: texts.append(text) or real_loads(text, *a)
    )
    before = _rss_file()
    assert ingest.load_saved(path, progress=False) == model
    assert len(resident) > 16  # pieces of about 1 MB
    # Never more than a few pieces of the 16 MB resident at once.
    assert max(resident) - before < size // 4, (max(resident) - before, size)
    (text,) = texts
    assert text.closed  # the mapping is let go with the call


def test_without_letting_go_the_whole_text_would_stay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the test above measures: the text mapped whole, when nothing lets it go."""
    from rbac_advisor.cli import ingest

    path, model = _saved_model(tmp_path)
    monkeypatch.setattr(ingest, "_releaser", lambda text: None)
    seen: list[int] = []
    real_loads = ingest.loads

    def loads(text: Any, *a: Any) -> Any:
        out = real_loads(text, *a)
        seen.append(_rss_file())
        return out

    monkeypatch.setattr(ingest, "loads", loads)
    ingest.load_saved(path, progress=False)  # whatever loading imports is mapped before
    seen.clear()
    before = _rss_file()
    assert ingest.load_saved(path, progress=False) == model
    assert seen[0] - before > path.stat().st_size * 3 // 4


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 1 << 20])
def test_a_saved_model_is_checked_as_utf8_across_chunks(
    chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rbac_advisor.cli import ingest

    monkeypatch.setattr(ingest, "_UTF8_CHUNK", chunk)
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
