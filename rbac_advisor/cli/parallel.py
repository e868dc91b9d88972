"""Reading one large audit file with several processes, each over a part of it.

A plain file is split into byte ranges; a gzip file into ranges of its decompressed
stream (each worker inflates from the start and skips what precedes its part: ISA-L
inflates several times faster than a line is parsed).

Each worker parses and aggregates its range with its own deduplication window. Requests
whose stages straddle a range boundary are reconciled here, so the result equals a
sequential read: a worker hands back, uncounted, the requests still waiting for a later
stage at the end of its range (its tail), and the keys of the requests it counted in its
first ``HEAD_LINES`` lines (its head). A tail request counted in a later worker's head is
dropped; the others go through the parent's deduplication window like any event.
"""

from __future__ import annotations

import gc
import hashlib
import multiprocessing
import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from rbac_advisor import logfiles
from rbac_advisor.audit import Block, SourceStats, parse_blocks, request_key
from rbac_advisor.cli.progress import Progress
from rbac_advisor.errors import AuditParseError
from rbac_advisor.events import Event
from rbac_advisor.logfiles import BLOCK, GZIP_MAGIC
from rbac_advisor.usage import BuildOptions
from rbac_advisor.usage_builder import UsageBuilder
from rbac_advisor.usage_fast import RawAggregator

MIN_SIZE = 64 << 20
MIN_GZIP_SIZE = 8 << 20
HEAD_LINES = 200_000


@dataclass(frozen=True)
class Part:
    """One worker's share of a file.

    Bytes ``[start, end)`` of a plain file (both on line starts), or, for gzip, of the
    decompressed stream between the line starts at or after ``start`` and ``end`` (-1: to
    the end), found from these approximate offsets the same way by every worker.
    """

    path: str
    gzip: bool
    start: int
    end: int


def worth_it(path: str, workers: int) -> bool:
    """True for a JSON-lines regular file (plain or gzip) big enough to split."""
    if workers < 2 or path == "-" or "fork" not in multiprocessing.get_all_start_methods():
        return False
    try:
        if not os.path.isfile(path):
            return False
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(4096)
        compressed = head.startswith(GZIP_MAGIC)
        if size < (MIN_GZIP_SIZE if compressed else MIN_SIZE):
            return False
        if compressed:
            pieces = logfiles.inflate_file(path)
            head = next(pieces, b"")[:4096]
            pieces.close()
    except OSError:
        return False
    except logfiles.INFLATE_ERRORS:
        return False
    first = head.lstrip().split(b"\n", 1)[0].strip()
    return first not in (b"{", b"[")


def _parts(path: str, n: int, compressed: bool) -> tuple[list[Part], int]:
    """The parts of a file, and the bytes they add up to (estimated for gzip)."""
    if compressed:
        total = logfiles.inflated_size(path)
        parts = [
            Part(path, True, total * k // n, total * (k + 1) // n if k < n - 1 else -1)
            for k in range(n)
        ]
        return parts, total
    size = os.path.getsize(path)
    cuts = [0]
    with open(path, "rb") as f:
        for k in range(1, n):
            f.seek(max(size * k // n, cuts[-1]))
            f.readline()  # move to the start of the next line
            cuts.append(min(f.tell(), size))
    cuts.append(size)
    parts = [Part(path, False, cuts[k], cuts[k + 1]) for k in range(n) if cuts[k] < cuts[k + 1]]
    return parts, size


def _file_range(path: str, start: int, end: int) -> Iterator[bytes]:
    with open(path, "rb") as f:
        f.seek(start)
        left = end - start
        while left > 0:
            piece = f.read(min(BLOCK, left))
            if not piece:
                return
            left -= len(piece)
            yield piece


def _between(pieces: Iterator[bytes], start: int, end: int) -> Iterator[bytes]:
    """The bytes between two line starts of a stream.

    From the line start at or after ``start`` (0: the beginning) to the line start at or
    after ``end`` (-1: the end), where seek + readline would find them.
    """
    if end == 0:
        return
    seen = 0  # offset of the current piece in the stream
    emitting = start <= 0
    for piece in pieces:
        n = len(piece)
        lo = 0
        if not emitting:
            if seen + n <= start:
                seen += n
                continue
            nl = piece.find(b"\n", max(start - seen, 0))
            if nl < 0:
                seen += n
                continue
            lo = nl + 1
            emitting = True
        if 0 <= end < seen + n:
            nl = piece.find(b"\n", max(end - seen, 0))
            if nl >= 0:
                if nl + 1 > lo:
                    yield piece[lo : nl + 1]
                return
        if lo < n:
            yield piece[lo:] if lo else piece
        seen += n


def _part_pieces(part: Part) -> Iterator[bytes]:
    """The bytes of one part."""
    if not part.gzip:
        yield from _file_range(part.path, part.start, part.end)
        return
    stream = logfiles.inflate_file(part.path)
    try:
        yield from _between(stream, part.start, part.end)
    finally:
        stream.close()


def _range_blocks(
    pieces: Iterator[bytes], path: str, pos: list[int] | None = None
) -> Iterator[Block]:
    """Blocks of numbered lines; ``pos[0]`` is the first line of the last block."""
    no = counted = 1
    carry = b""
    done = 0  # bytes of the part read and not yet reported
    for piece in pieces:
        parts = piece.split(b"\n")
        parts[0] = carry + parts[0]
        carry = parts.pop()
        done += len(piece)
        if pos is not None:
            pos[0] = no
        if parts:
            yield path, no, parts
            no += len(parts)
            if no - counted >= 65536 and _COUNTER is not None:
                with _COUNTER.get_lock():
                    _COUNTER[0] += no - counted
                    _COUNTER[1] += done
                counted, done = no, 0
    if carry:
        if pos is not None:
            pos[0] = no
        yield path, no, [carry]


@dataclass
class _Result:
    state: Any
    tail: list[Event]
    head: set[int]
    stats: SourceStats
    first_error: tuple[int, str] | None
    error: tuple[int, str] | None
    damaged: bool = False  # gzip damage: the parent reads the file sequentially instead


_COUNTER: Any = None


def _work(args: tuple[Part, BuildOptions, bool]) -> _Result:
    part, options, skip = args
    path = part.path
    gc.disable()
    stats: dict[str, SourceStats] = {}
    builder = UsageBuilder(options)
    deduper = builder.deduper
    assert deduper is not None
    head: set[int] = set()
    fast = RawAggregator(builder, options)
    fast.track_head(head, HEAD_LINES)
    first_error: tuple[int, str] | None = None
    # Line position by block (no per-line wrapper): the head may then hold the keys of up to
    # one block past HEAD_LINES, which only widens the window boundary requests match in.
    pos = [0]
    blocks = _range_blocks(_part_pieces(part), path, pos)
    try:
        for ev in parse_blocks(blocks, skip_malformed=skip, stats=stats, sink=fast.sink):
            if pos[0] <= HEAD_LINES:
                k = request_key(ev)
                if k is not None:
                    head.add(hash(k))
            builder.add(ev)
    except AuditParseError as err:
        return _Result((), [], set(), SourceStats(path), None, (err.line, err.reason))
    except logfiles.INFLATE_ERRORS:
        return _Result((), [], set(), SourceStats(path), None, None, damaged=True)
    fast.flush()
    tail = [ev for ev, _ in deduper.drain()]
    for ev in tail:
        k = request_key(ev)
        if k is not None:
            head.discard(hash(k))
    st = stats.get(path) or SourceStats(path)
    if st.first_error:
        line, _, reason = st.first_error[len(path) + 1 :].partition(": ")
        first_error = (int(line), reason)
    return _Result(builder.export(), tail, head, st, first_error, None)


def _init(counter: Any) -> None:
    global _COUNTER
    _COUNTER = counter
    # Ctrl-C reaches the whole process group: the parent stops the pool and says so once.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _sha256(path: str, out: list[str]) -> None:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(BLOCK):
            h.update(b)
    out.append(h.hexdigest())


def read_file(
    builder: UsageBuilder,
    index: int,
    path: str,
    st: SourceStats,
    options: BuildOptions,
    skip_malformed: bool,
    workers: int,
    meter: Progress,
) -> str | None:
    """Aggregate one file into ``builder`` with ``workers`` processes; return its sha256.

    None (and nothing added) when a gzip file turns out damaged: the caller reads it
    sequentially, which reports the damage where it starts.

    Raises:
        AuditParseError: the first malformed line (absolute line number), unless skipping.
    """
    with open(path, "rb") as f:
        compressed = f.read(2) == GZIP_MAGIC
    parts, units = _parts(path, workers, compressed)
    digest: list[str] = []
    hasher = threading.Thread(target=_sha256, args=(path, digest), daemon=True)
    hasher.start()
    ctx = multiprocessing.get_context("fork")
    counter = ctx.Array("q", 2)  # lines and bytes read by the workers, for progress
    reported = 0
    with ctx.Pool(len(parts), initializer=_init, initargs=(counter,)) as pool:
        pending = pool.map_async(_work, [(p, options, skip_malformed) for p in parts])
        while not pending.ready():
            pending.wait(0.5)
            lines, done = counter[0], counter[1]
            meter.tick(lines - reported, done / units if units else None)
            reported = lines
        results: list[_Result] = pending.get()
    if any(r.damaged for r in results):
        hasher.join()
        return None
    offsets = [0]
    for r in results:
        offsets.append(offsets[-1] + r.stats.lines)
    for k, r in enumerate(results):
        if r.error is not None:
            raise AuditParseError(path, offsets[k] + r.error[0], r.error[1])
    for k, r in enumerate(results):
        st.lines += r.stats.lines
        st.events += r.stats.events
        st.skipped += r.stats.skipped
        st.ignored += r.stats.ignored
        st.formats |= r.stats.formats
        st.missing |= r.stats.missing
        if r.first_error and not st.first_error:
            st.first_error = f"{path}:{offsets[k] + r.first_error[0]}: {r.first_error[1]}"
        builder.absorb_export(r.state, index)
    for k, r in enumerate(results):
        later = [x.head for x in results[k + 1 :]]
        for ev in r.tail:
            key = request_key(ev)
            if key is not None and any(hash(key) in h for h in later):
                continue  # a later stage was counted by the next worker
            builder.add(ev, index)
    hasher.join()
    return digest[0]
