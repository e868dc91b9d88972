"""Reading audit files with several processes, each over a share of them.

The files given together (oldest first) are read as one stream of text, cut into shares
of about equal size: a share is a run of whole files and pieces of files. A piece of a
plain file is a byte range; a piece of a gzip file a range of its decompressed stream
(the worker inflates from the start and skips what precedes its piece: ISA-L inflates
several times faster than a line is parsed).

Each worker parses and aggregates its share in order with its own deduplication window,
as one reader would. Requests whose stages straddle a share boundary are reconciled, so
the result equals a sequential read:

* a worker first reads the ``OVERLAP`` bytes of text before its share for the requests
  counted there (a stage repeated after its request was counted is then dropped), and
  starts from what the parent counted before the files;
* it hands back, uncounted, the requests still waiting for a later stage at the end of its
  share (its tail), the keys of the requests seen in its first ``HEAD_LINES`` lines (its
  head) and those of the requests ending past its head that may have begun in an earlier
  share: any request (a watch or a session as any other) received no later than the
  latest stage time in the text before its share, or than the latest request the parent
  waits for (lines are written in about that order). How many it reports depends on how
  many requests were open at the boundary, not on the length of the share;
* a tail request seen in a later worker's head, or ending past it, is dropped, as is a
  request the parent was still waiting for; the others go through the parent's
  deduplication window.

A worker past ``HAND_OVER`` distinct uses hands what it counted to the parent between two
blocks and starts afresh (its window stays): the counts add up, in any order.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import itertools
import multiprocessing
import os
import pickle
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing import connection
from multiprocessing.connection import Connection
from typing import Any

from rbac_advisor import logfiles
from rbac_advisor.audit import (
    Block,
    Deduper,
    Malformed,
    SourceStats,
    native,
    normalise,
    parse_blocks,
    request_key,
)
from rbac_advisor.audit.dedupe import rank
from rbac_advisor.audit.redact import redact_uri
from rbac_advisor.audit.stream import parse_text
from rbac_advisor.audit.timestamps import GO_STAMP, canonical_stamp, format_time, parse_time
from rbac_advisor.cli.memory import give_back_large_blocks
from rbac_advisor.cli.progress import Progress
from rbac_advisor.cli.spool import add_up, handing
from rbac_advisor.errors import AuditParseError, WorkerLost
from rbac_advisor.events import Event
from rbac_advisor.logfiles import BLOCK
from rbac_advisor.usage import BuildOptions
from rbac_advisor.usage_builder import UsageBuilder
from rbac_advisor.usage_fast import LONG_MAX, RawAggregator

# Bytes of text (decompressed) worth splitting: below, starting the workers and merging
# their results costs more than it saves (measured: 8 MB of text is even, 16 MB gains).
MIN_SIZE = 16 << 20
HEAD_LINES = 200_000
# Text before its share a worker reads for the requests counted there (about 55k lines).
OVERLAP = 64 << 20
_PIPE_BUFFER = 1 << 16  # results are pickled into and out of the pipe this much at a time
# Distinct uses a worker counts before it hands them to the parent and starts afresh: its
# memory is then bounded by its window and this, not by how many uses its share holds
# (3M lines of 150k subjects: 262 MB, against 360 MB). Shares with fewer distinct uses (the
# 2M-line benchmark's hold about 95k each) never reach it.
HAND_OVER = 150_000
TAKING = "adding up the counts a worker handed over (the workers read on)"


@dataclass(frozen=True)
class Part:
    """One file's piece of a worker's share.

    Bytes ``[start, end)`` of a plain file (both on line starts), or, for gzip, of the
    decompressed stream between the line starts at or after ``start`` and ``end`` (-1: to
    the end), found from these approximate offsets the same way by every worker.
    ``index`` is the file's position among the inputs (its source).
    """

    path: str
    gzip: bool
    start: int
    end: int
    index: int = 0


def can_fork(workers: int) -> bool:
    """True when ``workers`` processes can share the reading here."""
    return workers >= 2 and "fork" in multiprocessing.get_all_start_methods()


def splittable(path: str) -> bool:
    """True for a regular JSON-lines file (plain or gzip): workers can read it in pieces."""
    if path == logfiles.STDIN:
        return False
    try:
        if not os.path.isfile(path):
            return False
        head = logfiles.head_text(path)
    except OSError:
        return False
    if head and not head.strip():
        # Blank as far as we looked: what follows could be a pretty-printed document,
        # which only one reader reading from the start can take apart. (An empty file
        # adds nothing to a run.)
        return False
    first = head.lstrip().split(b"\n", 1)[0].strip()
    return first not in (b"{", b"[")


def text_size(path: str) -> int:
    """Bytes of text in a file: its size, or for gzip its decompressed size (estimated).

    Raises:
        OSError: the file cannot be read.
    """
    return logfiles.inflated_size(path) if logfiles.is_gzip(path) else os.path.getsize(path)


def worth_it(path: str, workers: int) -> bool:
    """True for a JSON-lines regular file (plain or gzip) big enough to split alone."""
    try:
        return can_fork(workers) and splittable(path) and text_size(path) >= MIN_SIZE
    except OSError:
        return False


def _line_starts(path: str, cuts: list[int], size: int) -> list[int]:
    """Plain-file cut points (ascending) moved to a line start, as seek + readline find it.

    A cut at 0 stays at 0.
    """
    out: list[int] = []
    with open(path, "rb") as f:
        for cut in cuts:
            if cut <= 0:
                out.append(0)
                continue
            f.seek(max(cut, out[-1] if out else 0))
            f.readline()
            out.append(min(f.tell(), size))
    return out


_Sized = tuple[int, str, bool, int]  # source index, path, gzip, bytes of text


def _positions(sized: list[_Sized], offsets: set[int]) -> dict[int, tuple[int, int]]:
    """Offsets in the stream of the files to (file number, offset in the file).

    In a plain file the offset moves to a line start; in a gzip file it stays as it is
    (the workers find the line start at or after it). The stream's end is (files, 0).
    """
    out: dict[int, tuple[int, int]] = {0: (0, 0)}  # the start, even of a file sized 0
    lo = 0
    for i, (_, path, gz, size) in enumerate(sized):
        hi = lo + size
        inside = sorted(b for b in offsets if lo <= b < hi and b not in out)
        rel = [b - lo for b in inside]
        at = rel if gz else _line_starts(path, rel, size)
        for b, o in zip(inside, at, strict=True):
            out[b] = (i, o)
        lo = hi
    for b in offsets:
        out.setdefault(b, (len(sized), 0))
    return out


def _range(sized: list[_Sized], first: tuple[int, int], last: tuple[int, int]) -> list[Part]:
    """The pieces of the files between two positions (see :func:`_positions`)."""
    parts = []
    for i in range(first[0], min(last[0], len(sized) - 1) + 1):
        index, path, gz, size = sized[i]
        start = first[1] if i == first[0] else 0
        end = last[1] if i == last[0] else (-1 if gz else size)
        if start != end:
            parts.append(Part(path, gz, start, end, index))
    return parts


def _shares(
    files: Sequence[tuple[int, str]],
    n: int,
    overlap: int = 0,
    sizes: Sequence[int] | None = None,
) -> tuple[list[tuple[list[Part], list[Part]]], list[Part], int]:
    """Cut the files, one stream in order, into up to ``n`` shares of about equal text.

    Each share comes with the pieces of the ``overlap`` bytes of text before it (none for
    the first). Returns the non-empty shares, the pieces of the last ``overlap`` bytes,
    and the bytes of text they all add up to (estimated for gzip). ``sizes``: the files'
    :func:`text_size`, when the caller has them.
    """
    sized: list[_Sized] = []
    for k, (index, path) in enumerate(files):
        size = sizes[k] if sizes is not None else text_size(path)
        sized.append((index, path, logfiles.is_gzip(path), size))
    total = sum(x[3] for x in sized)
    inner = [total * k // n for k in range(1, n)]
    starts = [max(b - overlap, 0) for b in inner]
    tail = max(total - overlap, 0)
    at = _positions(sized, {*inner, *starts, tail})
    # The stream's ends are the files' ends, whatever the estimates say.
    cuts = [(0, 0), *(at[b] for b in inner), (len(sized), 0)]
    out = []
    for k in range(n):
        share = _range(sized, cuts[k], cuts[k + 1])
        before = _range(sized, at[starts[k - 1]], cuts[k]) if k else []
        if share:
            out.append((share, before))
    return out, _range(sized, at[tail], cuts[-1]), total


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


def _between(
    pieces: Iterator[bytes],
    start: int,
    end: int,
    rest: list[tuple[bytes, int]] | None = None,
    base: int = 0,
) -> Iterator[bytes]:
    """The bytes between two line starts of a stream.

    From the line start at or after ``start`` (0: the beginning) to the line start at or
    after ``end`` (-1: the end), where seek + readline would find them. When it stops at
    ``end``, what is left of the last piece and its offset go to ``rest``. ``base``: the
    offset of the first piece, a line start, in the stream (``start`` 0 then reads from it).
    """
    if end == 0:
        return
    seen = base  # offset of the current piece in the stream
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
                if rest is not None:
                    rest.append((piece[nl + 1 :], seen + nl + 1))
                return
        if lo < n:
            yield piece[lo:] if lo else piece
        seen += n


class _OnePass:
    """A gzip file inflated once for two consecutive pieces of it.

    The text before a share, then the share's first piece: without it both would inflate
    the file from its start.
    """

    def __init__(self, path: str) -> None:
        self._stream = logfiles.inflate_file(path)
        self._rest: list[tuple[bytes, int]] = []
        self._started = False

    def pieces(self, part: Part) -> Iterator[bytes]:
        """The bytes of ``part``, which starts where the previous piece asked for ended."""
        if not self._started:
            self._started = True
            if part.end == 0:  # an empty first piece: the next one starts at the beginning
                self._rest.append((b"", 0))
                return
            yield from _between(self._stream, part.start, part.end, self._rest)
            return
        if not self._rest:
            return  # the stream ended before
        piece, offset = self._rest.pop()
        if 0 <= part.end < offset:
            return  # the line start at or after the end is where the piece begins
        pieces = itertools.chain([piece], self._stream)
        yield from _between(pieces, 0, part.end, self._rest, offset)

    def close(self) -> None:
        """Stop inflating."""
        self._stream.close()


def _part_pieces(part: Part, one_pass: _OnePass | None = None) -> Iterator[bytes]:
    """The bytes of one part (through ``one_pass`` when given)."""
    if one_pass is not None:
        yield from one_pass.pieces(part)
        return
    if not part.gzip:
        pieces = _file_range(part.path, part.start, part.end)
        yield from logfiles.without_bom(pieces) if part.start == 0 else pieces
        return
    stream = logfiles.inflate_file(part.path)
    try:
        yield from _between(stream, part.start, part.end)
    finally:
        stream.close()


def _range_blocks(
    pieces: Iterator[bytes],
    path: str,
    pos: list[int] | None = None,
    *,
    report: bool = True,
    too_long: Callable[[int], None] | None = None,
) -> Iterator[Block]:
    """Blocks of numbered lines; ``pos[0]`` is the first line of the last block.

    With ``report``, lines and bytes read are added to the progress counter as they go.
    A line longer than ``logfiles.MAX_RECORD`` goes to ``too_long`` (by line within the
    piece; see ``logfiles.split_lines``), else is dropped.
    """
    no = counted = 1
    done = 0  # bytes of the part read and not yet reported

    def tell() -> None:
        nonlocal counted, done
        if report and _COUNTER is not None:
            with _COUNTER.get_lock():
                _COUNTER[0] += no - counted
                _COUNTER[1] += done
        counted, done = no, 0

    def sized() -> Iterator[bytes]:
        nonlocal done
        for piece in pieces:
            done += len(piece)
            yield piece

    for parts in logfiles.split_lines(sized(), too_long or _ignore):
        if pos is not None:
            pos[0] = no
        yield path, no, parts
        no += len(parts)
        if no - counted >= 65536:
            tell()
    tell()


def _ignore(line: int) -> None:
    """A line too long to read, in text only looked back on: dropped."""


@dataclass
class _Result:
    state: Any
    tail: list[tuple[Event, int]]  # requests still waiting at the end, handed back uncounted
    head: set[int]  # requests seen in the first HEAD_LINES lines
    # Final stages past the head of requests that may have begun in an earlier share
    # (received before the last line before the share was written, watches and sessions
    # included): their early stage is in that share's tail.
    long: set[int] = field(default_factory=set)
    stats: dict[str, SourceStats] = field(default_factory=dict)
    # path, line within the piece, reason, whether --skip-malformed gets past it
    error: tuple[str, int, str, bool] | None = None
    damaged: bool = False  # gzip damage: the parent reads the files sequentially instead


_COUNTER: Any = None
_BEFORE: set[int] = set()
_WAITING = float("-inf")  # the latest receive time of a request the parent waits for


def _limits(text: str, time: float) -> tuple[str, float]:
    """The latest of a time as the apiserver wrote it and of epoch seconds, in both forms.

    The text is never earlier than either: the sink compares the apiserver's own strings.
    """
    try:
        parsed = parse_time(text) if text else float("-inf")
    except ValueError:
        parsed = float("-inf")
    if time > parsed:
        text = format_time(time + 1e-6)  # a microsecond later: the float may lose one
    return text, max(parsed, time)


def _seed(
    deduper: Deduper[int], parts: list[Part], one_pass: _OnePass | None = None
) -> tuple[str, float]:
    """Mark the requests whose final stage lies in ``parts`` (the text before a share).

    Returns when the latest line there was written: the latest stage time of apiserver
    lines as written, and the latest receive time of records of other shapes (which have
    no other) in epoch seconds. ``one_pass`` reads the last part, when given.
    """
    stamped = native.stamped_decoder().decode
    prefix = native.GO_PREFIX
    go_stamp = GO_STAMP.fullmatch
    canonical = canonical_stamp
    text_latest, latest = "", float("-inf")
    for part in parts:
        pieces = _part_pieces(part, one_pass if part is parts[-1] else None)
        for _, _, block in _range_blocks(pieces, part.path, report=False):
            for text in block:
                if text.startswith(prefix):
                    try:
                        e = stamped(text)
                    except native.DECODE_ERRORS:
                        continue
                    stamp = e.stageTimestamp or e.requestReceivedTimestamp
                    if go_stamp(stamp):
                        if stamp > text_latest:
                            text_latest = stamp
                    elif stamp:  # another form: its text does not sort like its time
                        with contextlib.suppress(ValueError):
                            latest = max(latest, parse_time(stamp))
                    if e.user is not None and e.auditID and rank(e.stage) >= 2:
                        uri = redact_uri(e.requestURI)
                        key = (
                            e.auditID,
                            e.user.username,
                            e.verb,
                            uri,
                            canonical(e.requestReceivedTimestamp),
                        )
                        deduper.mark(key)
                    continue
                try:
                    # Good items of a batch with a bad one count (the bad one is reported
                    # by the share that holds it, or skipped there).
                    events = parse_text(text, True).events
                except Malformed:
                    continue  # the share that holds it reports it
                for ev in events:
                    latest = max(latest, ev.time)
                    k = request_key(ev)
                    if k is not None and rank(ev.stage) >= 2:
                        deduper.mark(k)
    return text_latest, latest


_Args = tuple[list[Part], list[Part], BuildOptions, bool]


def _work(args: _Args, hand: Callable[[Any], None] | None = None) -> _Result:
    """Read one share; with ``hand``, counts are handed over past HAND_OVER uses on the way."""
    parts, before, options, skip = args
    gc.disable()
    stats: dict[str, SourceStats] = {}
    builder = UsageBuilder(options)
    deduper = builder.deduper
    assert deduper is not None
    # What the parent counted last (inherited by fork; copied, as one process may run two
    # shares).
    deduper.note_recent(set(_BEFORE))
    # A later stage repeated after its request was counted in the previous share, or an
    # early stage logged after its final one, is dropped as one reader would drop it.
    one_pass = None
    if before and before[-1].gzip and before[-1].path == parts[0].path:
        one_pass = _OnePass(parts[0].path)  # the text before, then the share, one inflate
    try:
        text_latest, latest = _seed(deduper, before, one_pass)
    except logfiles.INFLATE_ERRORS:
        if one_pass is not None:
            one_pass.close()
        return _Result((), [], set(), damaged=True)
    head: set[int] = set()
    long: set[int] = set()
    fast = RawAggregator(builder, options)
    # A request received no later than the last line before the share was written (or
    # waiting in the parent) may have begun there: its final stage past the head is
    # reported (``long``). Lines are written in about the order of their stage times.
    begun, limit = _limits(text_latest, max(latest, _WAITING))
    fast.track_long(long, begun)
    read = 0  # lines of the share read so far
    try:
        for part in parts:
            left = max(HEAD_LINES - read, 0)  # lines of this piece still in the head
            fast.track_head(head, left)
            fast.source = part.index
            # Line position by block (no per-line wrapper): the head may then hold the keys
            # of up to one block past HEAD_LINES, which only widens the window boundary
            # requests match in.
            pos = [0]
            pieces = _part_pieces(part, one_pass if part is parts[0] else None)
            part_stats = stats.setdefault(part.path, SourceStats(part.path))
            too_long = logfiles.too_long_handler(part.path, part_stats, skip_malformed=skip)
            blocks = _range_blocks(pieces, part.path, pos, too_long=too_long)
            if hand is not None:
                blocks = handing(blocks, builder, hand, HAND_OVER)
            for ev in parse_blocks(blocks, skip_malformed=skip, stats=stats, sink=fast.sink):
                final = rank(ev.stage) >= 2
                k = request_key(ev) if final or pos[0] <= left else None
                if k is not None:
                    if pos[0] <= left:
                        head.add(hash(k))
                    elif final and ev.time <= limit and len(long) < LONG_MAX:
                        long.add(hash(k))
                builder.add(ev, part.index)
            st = stats.get(part.path)
            read += st.lines if st is not None else 0
    except AuditParseError as err:
        return _Result((), [], set(), error=(err.path, err.line, err.reason, err.skippable))
    except logfiles.INFLATE_ERRORS:
        return _Result((), [], set(), damaged=True)
    finally:
        if one_pass is not None:
            one_pass.close()
    fast.flush()
    normalise.forget()  # the uses hold what they need
    tail = deduper.drain()
    for ev, _ in tail:
        k = request_key(ev)
        if k is not None:
            head.discard(hash(k))
    return _Result(builder.export(), tail, head, long, stats)


def _init(counter: Any) -> None:
    global _COUNTER
    _COUNTER = counter
    # Ctrl-C reaches the whole process group: the parent stops the pool and says so once.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _child(conn: Connection, counter: Any, args: _Args) -> None:
    """A worker process: read one share, send back its result (or the exception raised).

    Counts handed over on the way go first, each as ``(None, state)``; the result is
    ``(True, result)`` or ``(False, exception)``.
    """
    _init(counter)
    try:
        out: tuple[bool, Any] = (True, _work(args, lambda state: _deliver(conn, (None, state))))
    except BaseException as err:  # noqa: BLE001 - re-raised in the parent
        out = (False, err)
    _deliver(conn, out)
    conn.close()


def _deliver(conn: Connection, obj: object) -> None:
    """:func:`_send`, or end the process when memory runs out on the way.

    Part of ``obj`` may be written: the parent finds the pipe ending without a whole result
    and says so.
    """
    try:
        _send(conn, obj)
    except MemoryError:
        os._exit(1)


def _send(conn: Connection, obj: object) -> None:
    """Pickle ``obj`` into the pipe as it is made: no copy of the whole result in memory.

    A result holds hundreds of thousands of uses; ``Connection.send`` would pickle it into
    one buffer first (and the parent would read it into another).
    """
    with open(conn.fileno(), "wb", buffering=_PIPE_BUFFER, closefd=False) as f:
        pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)


class _Exact:
    """Reads of a pipe that return what was asked for, no more (short only at its end).

    A worker sends several pickles down one pipe: a buffered reader would take the start
    of the next one with the end of this one, and lose it. Pickles of protocol 4 and later
    come in frames of about 64 KB, which the unpickler reads whole.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def read(self, n: int) -> bytes:
        chunks: list[bytes] = []
        while n > 0 and (chunk := os.read(self._fd, n)):
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def readline(self) -> bytes:  # the unpickler asks for it; binary pickles never call it
        out = bytearray()
        while not out.endswith(b"\n") and (c := os.read(self._fd, 1)):
            out += c
        return bytes(out)


def _receive(conn: Connection) -> Any:
    """One pickle :func:`_send` wrote, read as it comes.

    Raises:
        EOFError: the pipe ended before a whole result (the worker ended without one).
    """
    try:
        return pickle.load(_Exact(conn.fileno()))
    except pickle.UnpicklingError as err:  # truncated
        raise EOFError(str(err)) from None


def _run_workers(
    ctx: Any,
    counter: Any,
    jobs: list[_Args],
    tick: Callable[[], None],
    take: Callable[[Any], None],
) -> list[_Result]:
    """Run one process per job and return their results in order, calling ``tick`` meanwhile.

    Counts a worker hands over before its result go to ``take`` as they come.

    Raises:
        WorkerLost: a process ended without a result (killed: out of memory, or a signal).
        BaseException: what a worker raised, raised again here.
    """
    procs: list[Any] = []
    conns: list[Connection] = []
    try:
        for job in jobs:
            receive, send = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_child, args=(send, counter, job), daemon=True)
            proc.start()
            send.close()  # the worker holds the only writer: its end is our EOF
            procs.append(proc)
            conns.append(receive)
        # The results taken in here, and their merges, are large blocks given back once
        # freed; forked already, the workers keep the allocator's rising threshold, which
        # suits their reading.
        give_back_large_blocks()
        results: list[Any] = [None] * len(jobs)
        waiting = set(range(len(jobs)))
        while waiting:
            connection.wait([conns[i] for i in waiting], timeout=0.5)
            for i in sorted(waiting):
                if not conns[i].poll():
                    continue
                try:
                    ok, value = _receive(conns[i])
                except EOFError:
                    procs[i].join()
                    raise WorkerLost(procs[i].exitcode) from None
                if ok is None:
                    take(value)
                    continue
                if not ok:
                    raise value
                results[i] = value
                waiting.discard(i)
            tick()
        return results
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
            proc.join()
        for conn in conns:
            conn.close()


def _sha256(paths: list[str], out: dict[str, str]) -> None:
    for path in paths:
        with open(path, "rb") as f:  # read into one buffer: no block allocated per read
            out[path] = hashlib.file_digest(f, "sha256").hexdigest()


def read_files(
    builder: UsageBuilder,
    files: Sequence[tuple[int, str]],
    stats: dict[str, SourceStats],
    options: BuildOptions,
    skip_malformed: bool,
    workers: int,
    meter: Progress,
    *,
    followed: bool = False,
    sizes: Sequence[int] | None = None,
) -> dict[str, str] | None:
    """Aggregate files, in order, into ``builder`` with ``workers`` processes.

    ``files`` are (source index, path) of JSON-lines files (see :func:`splittable`); what
    was read from each is added to ``stats[path]``. Returns the sha256 of each file. None
    (and nothing added) when a gzip file turns out damaged: the caller then reads the
    files sequentially, which reports the damage where it starts.

    ``followed``: more input comes after these files through ``builder``, which then
    learns which requests were counted near their end. ``sizes``: the files'
    :func:`text_size`, when the caller has them.

    Raises:
        AuditParseError: the first malformed line (line number within its file), unless
            skipping.
    """
    global _BEFORE, _WAITING
    shares, after, units = _shares(files, workers, OVERLAP, sizes)
    deduper = builder.deduper
    assert deduper is not None
    if not shares:  # empty files
        empty: dict[str, str] = {}
        _sha256([p for _, p in files], empty)
        return empty
    digests: dict[str, str] = {}
    hasher = threading.Thread(target=_sha256, args=([p for _, p in files], digests), daemon=True)
    hasher.start()
    ctx = multiprocessing.get_context("fork")
    counter = ctx.Array("q", 2)  # lines and bytes read by the workers, for progress
    reported = 0

    def tick() -> None:
        nonlocal reported
        lines = counter[0]
        meter.tick(lines - reported, counter[1] / units if units else None)
        reported = lines

    _BEFORE = deduper.recent()  # the workers inherit these when the pool forks them
    waiting = deduper.latest_waiting()
    _WAITING = float("-inf") if waiting is None else waiting
    # Counts handed over early, added up as they come (kept apart until every worker is
    # done: a damaged gzip means reading again from the start).
    early: UsageBuilder | None = None

    def take(state: Any) -> None:
        nonlocal early
        # Adding up can take seconds on a large model, while the bar stands still.
        meter.phase(TAKING)
        if early is None:
            early = UsageBuilder(options, dedupe=False)
        add_up(early, state)

    try:
        results = _run_workers(
            ctx,
            counter,
            [(share, before, options, skip_malformed) for share, before in shares],
            tick,
            take,
        )
    finally:
        _BEFORE, _WAITING = set(), float("-inf")
    tick()
    if any(r.damaged for r in results):
        hasher.join()
        return None
    # A piece's line numbers start at 1: add the lines of the same file in earlier shares,
    # blank ones too.
    offsets: list[dict[str, int]] = []
    before: dict[str, int] = {}
    for r in results:
        offsets.append(dict(before))
        for path, st in r.stats.items():
            before[path] = before.get(path, 0) + st.lines + st.blank
    for k, r in enumerate(results):  # shares in order: the first error is the first line
        if r.error is not None:
            path, line, reason, skippable = r.error
            raise AuditParseError(path, offsets[k].get(path, 0) + line, reason, skippable=skippable)
    meter.phase(f"merging what {len(results)} processes counted")
    heads = [r.head for r in results]
    longs = [r.long for r in results]
    deduper.discard_pending([*heads, *longs])  # earlier files' requests ending here
    if followed:  # what follows must know what was counted last, as one reader would
        _seed(deduper, after)
    # Each state is let go once absorbed, the largest first (the counts handed over early):
    # its activity and addresses are then taken rather than copied.
    if early is not None:
        builder.absorb_export(early.export(), own=True)
        early = None
    for k, r in enumerate(results):
        for path, got in r.stats.items():
            st = stats[path]
            st.lines += got.lines
            st.blank += got.blank
            st.events += got.events
            st.skipped += got.skipped
            st.ignored += got.ignored
            st.formats |= got.formats
            st.missing |= got.missing
            if got.first_skipped is not None and st.first_skipped is None:
                no, why = got.first_skipped  # numbered from the share's first line
                st.first_skipped = (offsets[k].get(path, 0) + no, why)
        builder.absorb_export(r.state, own=True)
        r.state = None
    for k, r in enumerate(results):
        later = [*heads[k + 1 :], *longs[k + 1 :]]
        for ev, source in r.tail:
            key = request_key(ev)
            if key is not None and any(hash(key) in h for h in later):
                continue  # a later stage was counted by a later worker
            builder.add(ev, source)
    hasher.join()
    return digests
