"""Large blocks freed while reading go back to the system (glibc's allocator)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from audit_samples import event, line

from rbac_advisor.cli import memory

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
