"""Where the time of one reader goes, step by step, on one core.

    python bench/bench_floor.py [--file /tmp/bench-audit.log] [--lines 1000000] [--processes 2]

Reads the first --lines lines of the benchmark log (``bench/gen_audit.py``) and times, each
over the whole slice: reading it in 1 MB blocks; reading and splitting it into lines;
msgspec scanning every line (validation only); the typed decode of every line; a stripped
loop that does only the core of counting (typed decode, request key and deferral window,
deduplication, one lookup and the counters per final line); and the tool's own loop
(``parse_blocks`` with the aggregating sink, then the model normalised). The stripped
loop is a floor for any design that handles lines one by one in Python: the tool must do
more (a first-seen decision per combination, normalisation, the Event path).
``--processes N`` also runs the stripped loop over the whole file in N processes, one
range of lines each, with nothing reconciled or merged: a ceiling for such a design on
N CPUs.
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rbac_advisor.audit import SourceStats, native, parse_blocks  # noqa: E402
from rbac_advisor.cli import parallel  # noqa: E402
from rbac_advisor.usage import BuildOptions  # noqa: E402
from rbac_advisor.usage_builder import UsageBuilder  # noqa: E402
from rbac_advisor.usage_fast import RawAggregator  # noqa: E402

BLOCK = 1 << 20


class _Nothing(msgspec.Struct):
    pass


def _buffers(path: str, start: int = 0, end: int = -1) -> Iterator[bytes]:
    """Blocks of whole lines of bytes ``[start, end)`` (both line starts; -1: to the end)."""
    with open(path, "rb") as f:
        f.seek(start)
        left = end - start if end >= 0 else -1
        rest = b""
        while piece := f.read(BLOCK if left < 0 else min(BLOCK, left)):
            if left >= 0:
                left -= len(piece)
            piece = rest + piece
            cut = piece.rfind(b"\n") + 1
            yield piece[:cut]
            rest = piece[cut:]


def _lines(path: str, start: int = 0, end: int = -1) -> Iterator[list[bytes]]:
    for buf in _buffers(path, start, end):
        yield buf.split(b"\n")[:-1]


def read_only(path: str) -> int:
    return sum(1 for _ in _buffers(path))


def read_split(path: str) -> int:
    return sum(len(block) for block in _lines(path))


def _decode_all(path: str, decode: Callable[[bytes], object]) -> int:
    n = 0
    for block in _lines(path):
        for text in block:
            decode(text)
            n += 1
    return n


def scan(path: str) -> int:
    return _decode_all(path, msgspec.json.Decoder(_Nothing).decode)


def typed(path: str) -> int:
    return _decode_all(path, native.decoder().decode)


def stripped(path: str, start: int = 0, end: int = -1) -> int:
    """Typed decode, request key, deferral window, deduplication, one lookup, counters."""
    decode = native.decoder().decode
    light = msgspec.json.Decoder(native.Light).decode  # the early-stage key alone
    early = b'"stage":"RequestReceived"'
    started = b'"stage":"ResponseStarted"'
    waiting: dict[tuple[str, str, str, str], tuple[int, bytes]] = {}
    done: set[int] = set()
    old: set[int] = set()
    counts: dict[tuple[object, ...], list[object]] = {}
    no = 0
    for block in _lines(path, start, end):
        for text in block:
            no += 1
            head = text[:240]
            if early in head or started in head:
                e = light(text)
                assert e.user is not None
                key = (e.auditID, e.user.username, e.verb, e.requestURI)
                if key not in waiting:
                    waiting[key] = (no, text)
                continue
            s = decode(text)
            assert s.user is not None
            key = (s.auditID, s.user.username, s.verb, s.requestURI)
            h = hash(key)
            if h in done or h in old:
                continue
            done.add(h)
            if len(done) >= 250_000:
                old, done = done, set()
            waiting.pop(key, None)
            stamp = s.requestReceivedTimestamp
            rk = (s.user, s.verb, s.objectRef, s.annotations, s.userAgent)
            cur = counts.get(rk)
            if cur is None:
                counts[rk] = [1, stamp, stamp]
            else:
                cur[0] += 1  # type: ignore[operator]
                if stamp < cur[1]:  # type: ignore[operator]
                    cur[1] = stamp
                elif stamp > cur[2]:  # type: ignore[operator]
                    cur[2] = stamp
    return no


def _numbered(path: str) -> Iterator[tuple[str, int, list[bytes]]]:
    no = 1
    for block in _lines(path):
        yield path, no, block
        no += len(block)


def tool(path: str) -> int:
    options = BuildOptions()
    builder = UsageBuilder(options)
    fast = RawAggregator(builder, options)
    stats: dict[str, SourceStats] = {}
    for ev in parse_blocks(_numbered(path), stats=stats, sink=fast.sink):
        builder.add(ev)
    fast.flush()
    builder.flush()
    return builder.finish().requests


STEPS: list[tuple[str, Callable[[str], int]]] = [
    ("read in 1 MB blocks", read_only),
    ("read and split into lines", read_split),
    ("  + msgspec scan of every line (validation only)", scan),
    ("  + typed decode of every line", typed),
    ("stripped loop (the core of counting, nothing else)", stripped),
    ("the tool's loop (parse_blocks + sink, normalised)", tool),
]


def _stripped_range(job: tuple[str, int, int]) -> int:
    gc.disable()
    return stripped(*job)


def stripped_shared(path: str, processes: int) -> tuple[int, float]:
    """The stripped loop over the whole file in ``processes`` processes, one range each.

    Nothing is reconciled between the ranges and nothing is merged: a ceiling for any
    design that handles lines one by one in Python on this many CPUs.
    """
    size = os.path.getsize(path)
    starts = [size * k // processes for k in range(processes)]
    cuts = [*parallel._line_starts(path, starts, size), size]
    jobs = [(path, a, b) for a, b in zip(cuts, cuts[1:], strict=False)]
    t = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        n = sum(pool.map(_stripped_range, jobs))
    return n, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--file", default="/tmp/bench-audit.log")
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument(
        "--processes",
        type=int,
        default=0,
        help="also run the stripped loop over the whole --file in this many processes",
    )
    a = ap.parse_args()
    if not os.path.exists(a.file):
        sys.exit(f"{a.file}: missing; make it with bench/gen_audit.py or bench/bench_usage.py")
    part = f"{a.file}.head{a.lines}"
    if not os.path.exists(part):
        with open(a.file, "rb") as src, open(part, "wb") as dst:
            for i, text in enumerate(src):
                if i >= a.lines:
                    break
                dst.write(text)
    read_only(part)  # into the page cache
    gc.disable()
    print(f"{part}: {os.path.getsize(part) / 1e6:,.0f} MB, one core")
    for name, step in STEPS:
        t = time.perf_counter()
        n = step(part)
        print(f"{name:52s} {time.perf_counter() - t:6.2f} s  ({n:,})")
    if a.processes:
        read_only(a.file)
        n, took = stripped_shared(a.file, a.processes)
        print(
            f"stripped loop, all of {a.file}, {a.processes} processes: "
            f"{took:.2f} s, {n / took:,.0f} lines/s  ({n:,} lines)"
        )


if __name__ == "__main__":
    main()
