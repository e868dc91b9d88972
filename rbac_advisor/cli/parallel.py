"""Reading one large plain audit file with several processes over byte ranges.

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
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from rbac_advisor.audit import SourceStats, parse_lines, request_key
from rbac_advisor.errors import AuditParseError
from rbac_advisor.events import Event
from rbac_advisor.logfiles import BLOCK, GZIP_MAGIC
from rbac_advisor.usage import BuildOptions
from rbac_advisor.usage_builder import UsageBuilder
from rbac_advisor.usage_fast import RawAggregator

MIN_SIZE = 64 << 20
HEAD_LINES = 200_000


def worth_it(path: str, workers: int) -> bool:
    """True for a plain (not gzip), JSON-lines regular file big enough to split."""
    if workers < 2 or path == "-" or "fork" not in multiprocessing.get_all_start_methods():
        return False
    try:
        if not os.path.isfile(path) or os.path.getsize(path) < MIN_SIZE:
            return False
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    first = head.lstrip().split(b"\n", 1)[0].strip()
    return not head.startswith(GZIP_MAGIC) and first not in (b"{", b"[")


def _ranges(path: str, n: int) -> list[tuple[int, int]]:
    size = os.path.getsize(path)
    cuts = [0]
    with open(path, "rb") as f:
        for k in range(1, n):
            f.seek(max(size * k // n, cuts[-1]))
            f.readline()  # move to the start of the next line
            cuts.append(min(f.tell(), size))
    cuts.append(size)
    return [(cuts[k], cuts[k + 1]) for k in range(n) if cuts[k] < cuts[k + 1]]


def _range_lines(
    path: str, start: int, end: int, pos: list[int] | None = None
) -> Iterator[tuple[str, int, bytes]]:
    """Numbered lines of a byte range; ``pos[0]`` is the first line number of the block read."""
    no = 0
    carry = b""
    with open(path, "rb") as f:
        f.seek(start)
        left = end - start
        while left > 0:
            block = f.read(min(BLOCK, left))
            if not block:
                break
            left -= len(block)
            parts = block.split(b"\n")
            parts[0] = carry + parts[0]
            carry = parts.pop()
            if pos is not None:
                pos[0] = no + 1
            for line in parts:
                no += 1
                if line and not line.isspace():
                    yield path, no, line[:-1] if line.endswith(b"\r") else line
    if carry and not carry.isspace():
        yield path, no + 1, carry.rstrip(b"\r")


@dataclass
class _Result:
    state: tuple[Any, ...]
    tail: list[Event]
    head: set[int]
    stats: SourceStats
    first_error: tuple[int, str] | None
    error: tuple[int, str] | None


_COUNTER: Any = None


def _work(args: tuple[str, int, int, BuildOptions, bool]) -> _Result:
    path, start, end, options, skip = args
    gc.disable()
    stats: dict[str, SourceStats] = {}
    builder = UsageBuilder(options)
    deduper = builder.deduper
    assert deduper is not None
    head: set[int] = set()
    fast = RawAggregator(builder, options)
    fast.track_head(head, HEAD_LINES)
    first_error: tuple[int, str] | None = None
    counted = 0
    # Line position by block (no per-line wrapper): the head may then hold the keys of up to
    # one block past HEAD_LINES, which only widens the window boundary requests match in.
    pos = [0]
    lines = _range_lines(path, start, end, pos)
    try:
        for ev in parse_lines(lines, skip_malformed=skip, stats=stats, sink=fast.sink):
            if pos[0] <= HEAD_LINES:
                k = request_key(ev)
                if k is not None:
                    head.add(hash(k))
            if pos[0] - counted >= 65536 and _COUNTER is not None:
                with _COUNTER.get_lock():
                    _COUNTER.value += pos[0] - counted
                counted = pos[0]
            builder.add(ev)
    except AuditParseError as err:
        return _Result((), [], set(), SourceStats(path), None, (err.line, err.reason))
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
    meter: Any,
) -> str:
    """Aggregate one file into ``builder`` with ``workers`` processes; return its sha256.

    Raises:
        AuditParseError: the first malformed line (absolute line number), unless skipping.
    """
    ranges = _ranges(path, workers)
    digest: list[str] = []
    hasher = threading.Thread(target=_sha256, args=(path, digest), daemon=True)
    hasher.start()
    ctx = multiprocessing.get_context("fork")
    counter = ctx.Value("q", 0)
    with ctx.Pool(len(ranges), initializer=_init, initargs=(counter,)) as pool:
        pending = pool.map_async(_work, [(path, a, b, options, skip_malformed) for a, b in ranges])
        while not pending.ready():
            pending.wait(0.5)
            meter.tick(counter.value - meter.lines)
        results: list[_Result] = pending.get()
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
