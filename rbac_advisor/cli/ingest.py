"""Reading audit logs into a Usage for the commands: files, progress, time flags.

``load_usage`` is shared by ``usage`` and ``analyze``. Large files, plain or gzip, are read
by worker processes, each over its part (see ``cli.parallel``); everything else streams here.
"""

from __future__ import annotations

import codecs
import functools
import gc
import os
import re
import stat
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from rbac_advisor import logfiles
from rbac_advisor.audit import SourceStats, normalise, parse_blocks
from rbac_advisor.audit.timestamps import parse_time
from rbac_advisor.cli import spool
from rbac_advisor.cli.memory import give_back_large_blocks
from rbac_advisor.cli.options import default_workers
from rbac_advisor.cli.progress import Progress
from rbac_advisor.errors import AuditParseError, InputError, UsageError
from rbac_advisor.usage import BuildOptions, SourceInfo, Usage, loads
from rbac_advisor.usage_builder import UsageBuilder
from rbac_advisor.usage_codec import Text, damaged
from rbac_advisor.usage_consistency import contradiction
from rbac_advisor.usage_fast import RawAggregator

_NOT_A_MODEL = "not a saved usage model: not UTF-8 text (compressed? decompress it first)"
_CHUNK = 1 << 20  # bytes of a saved model checked or searched at a time
_RELATIVE = re.compile(r"^(\d+)([smhdw])$")
_SUB_MICROSECOND = re.compile(r"\.(\d{6})(\d+)")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_YEAR_ONE = -62135596800.0  # 0001-01-01T00:00:00Z


def _check_utf8(text: Text) -> None:
    """Check that ``text`` is UTF-8 without a NUL, a megabyte at a time, keeping no copy.

    Raises:
        ValueError: it is not (UnicodeDecodeError, or a NUL byte: JSON text holds none).
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    for at in range(0, len(text), _CHUNK):
        _check_chunk(text[at : at + _CHUNK], decoder)
    decoder.decode(b"", final=True)


def _check_chunk(chunk: bytes, decoder: codecs.IncrementalDecoder) -> None:
    """One piece of :func:`_check_utf8`."""
    if b"\0" in chunk:
        raise ValueError("a NUL byte")
    if not chunk.isascii() or decoder.getstate()[0]:
        decoder.decode(chunk)


def _read_stream(f: BinaryIO) -> bytes:
    """All of a pipe or device, checked as it comes: ``/dev/zero`` is refused at once.

    Raises:
        ValueError: not UTF-8 text without NUL bytes.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    parts: list[bytes] = []
    while chunk := f.read(_CHUNK):
        _check_chunk(chunk, decoder)
        parts.append(chunk)
    return b"".join(parts)


class FileText:
    """An open regular file's bytes, read where they are sliced or searched (``os.pread``).

    Reading a saved model through it holds only the piece being parsed, not the file. A
    file cut short meanwhile reads short, and the model is then refused as damaged.
    """

    def __init__(self, fd: int) -> None:
        """Read ``fd`` (kept open by the caller) as its size is now."""
        self._fd = fd
        self._size = os.fstat(fd).st_size

    def __len__(self) -> int:
        """The file's size when opened."""
        return self._size

    def __getitem__(self, span: slice, /) -> bytes:
        """The bytes of ``span`` (a step of one), fewer if the file was cut short."""
        start, stop, _ = span.indices(self._size)
        parts: list[bytes] = []
        while start < stop:
            got = os.pread(self._fd, min(stop - start, 1 << 30), start)
            if not got:
                break
            parts.append(got)
            start += len(got)
        return b"".join(parts)

    def find(self, sub: bytes, start: int = 0, end: int | None = None, /) -> int:
        """As ``bytes.find`` with non-negative bounds, a megabyte at a time."""
        end = self._size if end is None else min(end, self._size)
        at = start
        while at < end:
            stop = min(at + _CHUNK + len(sub) - 1, end)  # a match across chunks is found
            chunk = self[at:stop]
            k = chunk.find(sub)
            if k >= 0:
                return at + k
            if stop >= end or len(chunk) < stop - at:
                break
            at += _CHUNK
        return -1


def _opened(f: BinaryIO) -> Text:
    """The bytes of an open file: read where sliced when it is a regular file, else all read.

    A regular file of size 0 is read as a stream too: files of /proc and /sys say 0 and
    hold text all the same.
    """
    st = os.fstat(f.fileno())
    if stat.S_ISREG(st.st_mode) and st.st_size:
        return FileText(f.fileno())
    return _read_stream(f)  # a pipe, a device, or a file that does not know its size


def load_saved(path: Path, *, progress: bool) -> Usage:
    """The model saved in ``path``, with a progress bar on a terminal when it takes a second.

    A regular file is read a piece at a time as the model is read (see :class:`FileText`),
    so the peak is the model's memory and not the model's plus the file's.

    Raises:
        InputError: unreadable, not UTF-8, not a saved model, or one whose parts
            disagree (see :mod:`rbac_advisor.usage_consistency`).
    """
    try:
        f = path.open("rb")
    except OSError as err:
        raise InputError(f"{path}: cannot read ({err.strerror})") from None
    with f:
        try:
            try:
                text = _opened(f)
                _check_utf8(text)
            except ValueError:  # not UTF-8, or a NUL byte
                raise InputError(f"{path}: {_NOT_A_MODEL}") from None
            size = len(text)
            meter = Progress(progress, size)
            meter.file(size, f"reading {path.name}")
            try:
                model = loads(text, str(path), lambda at: meter.tick(0, at / size))
                # Well formed, but its parts may still disagree (an edited file): what it
                # would report would contradict its own uses.
                meter.phase(f"checking {path.name}")
                # The tool saves what it read from at least one input; without one, the
                # requests could not be checked against their sources, nor after a merge.
                found = contradiction(model) if model.sources else "it names no source"
            finally:
                meter.done()
        except OSError as err:  # the file read where it is sliced: at any point
            raise InputError(f"{path}: cannot read ({err.strerror})") from None
    if found is not None:
        raise damaged(str(path), found)
    return model


def parse_when(text: str | None, now: float, flag: str) -> float | None:
    """``--since``/``--until`` values: RFC 3339 or relative to now (``30d``, ``12h``, ``90m``).

    Raises:
        InputError: neither form.
    """
    if text is None or text == "":
        return None
    m = _RELATIVE.match(text.strip())
    if m:
        # A longer span than back to year 1 means from the start.
        span = min(int(m.group(1)) * _UNITS[m.group(2)], 1 << 40)
        return max(now - span, _YEAR_ONE)
    try:
        t = parse_time(text.strip())
    except ValueError:
        raise UsageError(
            f"{flag} {text!r}: use RFC 3339 (2026-11-20T10:00:00Z) or a duration like 30d, 12h"
        ) from None
    return _next_microsecond(text.strip()) if _between_microseconds(text) else t


def _between_microseconds(text: str) -> bool:
    """A time with non-zero digits past the microsecond."""
    m = _SUB_MICROSECOND.search(text)
    return m is not None and bool(m.group(2).strip("0"))


def _next_microsecond(text: str) -> float:
    """The first whole microsecond after ``text``, computed as record times are.

    Records hold whole microseconds, so a bound between two of them acts as the next one:
    ``--since 09:59:59.9999999Z`` keeps a request at ``10:00:00.000000Z``.
    """
    m = _SUB_MICROSECOND.search(text)
    assert m is not None
    micro = int(m.group(1)) + 1
    if micro < 1_000_000:
        return parse_time(f"{text[: m.start()]}.{micro:06d}{text[m.end() :]}")
    return parse_time(text[: m.start()] + text[m.end() :]) + 1


def parse_window(
    since: str | None, until: str | None, now: float
) -> tuple[float | None, float | None]:
    """Both flags through ``parse_when``; the window they give must not be empty.

    Raises:
        InputError: a value of neither form, or ``--since`` not before ``--until``.
    """
    t0, t1 = parse_when(since, now, "--since"), parse_when(until, now, "--until")
    if t0 is not None and t1 is not None and t0 >= t1:
        raise InputError(f"--since {since} is not before --until {until}")
    return t0, t1


def cluster_progress() -> Callable[[str, int], None] | None:
    """A ``cluster.fetch`` progress callback for an interactive stderr (None otherwise)."""
    if not sys.stderr.isatty():
        return None

    def show(kind: str, count: int) -> None:
        sys.stderr.write(f"\rreading {kind}: {count:,} objects\033[K")
        sys.stderr.flush()

    return show


def source_info(path: str, st: SourceStats, requests: int, sha256: str) -> SourceInfo:
    """Freeze what was learnt about one source."""
    return SourceInfo(
        path=path,
        format="+".join(sorted(st.formats)) or "unknown",
        lines=st.lines,
        requests=requests,
        skipped=st.skipped,
        sha256=sha256,
        missing_fields=tuple(sorted(st.missing)),
        ignored=st.ignored,
        first_error=st.first_error,
    )


def _run(files: list[str], start: int, workers: int) -> tuple[int, bool, list[int]]:
    """The files to read next from ``start``: their end, whether workers share them, sizes.

    The sizes are the files' bytes of text (estimated for gzip). Workers take a run of
    JSON-lines files (plain or gzip) with enough text between them; anything else (stdin,
    JSON documents) is read alone.
    """
    from rbac_advisor.cli import parallel

    if not parallel.can_fork(workers):
        return start + 1, False, []
    end, sizes = start, []
    while end < len(files) and parallel.splittable(files[end]):
        try:
            sizes.append(parallel.text_size(files[end]))
        except OSError:
            break
        end += 1
    if end == start:
        return start + 1, False, []
    return end, sum(sizes) >= parallel.MIN_SIZE, sizes


class _Reader:
    """The inputs read in order into one builder, with each file's statistics and digest.

    Runs of large JSON-lines files go to worker processes; everything else is read here.
    """

    def __init__(
        self,
        files: list[str],
        sizes: list[int],
        builder: UsageBuilder,
        fast: RawAggregator,
        stats: dict[str, SourceStats],
        options: BuildOptions,
        skip_malformed: bool,
        meter: Progress,
    ) -> None:
        """Keep what every file is read with."""
        self.files, self.sizes, self.builder, self.fast = files, sizes, builder, fast
        self.stats, self.options, self.skip, self.meter = stats, options, skip_malformed, meter
        self.digests: dict[str, str] = {}
        self.named: set[str] = set()  # files given by name, not found in a directory
        # Counts of what this process reads itself, past SPILL_AT distinct uses.
        self.spool = spool.Spool()

    def add_spilled(self) -> None:
        """Add the counts kept on disk back into the builder, one export at a time."""
        if not self.spool.parts:
            return
        # The counts still held go too: adding up then starts from nothing held.
        self.spool.put(self.builder.hand_over())
        parts = self.spool.parts
        self.meter.phase(f"adding up the {parts} parts of the counts")
        for k, state in enumerate(self.spool.drain(), 1):
            if k < parts:
                spool.add_up(self.builder, state)
            else:  # building the model merges the last with the rest
                self.builder.absorb_export(state, own=True)

    def read_all(self, workers: int) -> dict[str, str]:
        """Read every file; return their sha256 digests.

        Raises:
            AuditParseError: a malformed record (unless skipping), with how to go on.
        """
        # The model holds millions of small objects and creates no reference cycles;
        # generational GC passes over them would cost more than the parsing itself.
        gc_was_enabled = gc.isenabled()
        gc.disable()
        files, index = self.files, 0
        try:
            while index < len(files):
                end, split, texts = _run(files, index, workers)
                if not (split and self._shared(index, end, workers, texts)):
                    # Alone, or a damaged gzip file: one reader reports the damage where
                    # it starts.
                    for i in range(index, end):
                        self._one(i)
                index = end
        except AuditParseError as err:
            if self.skip or not err.line or not err.skippable:
                raise
            # Say how to go on: the record's file and line stay first on the line.
            hint = "; --skip-malformed skips such records and counts them"
            if err.line == 1 and err.path not in self.named:
                where = os.path.dirname(err.path) or "."
                hint = (
                    f"; is it an audit log? It was found in {where}: name the log files to "
                    "read, or --skip-malformed skips such records and counts them"
                )
            raise AuditParseError(err.path, err.line, err.reason + hint) from None
        finally:
            if gc_was_enabled:
                gc.enable()
        self.fast.flush()
        self.builder.flush()
        normalise.forget()  # the uses hold what they need; the model is built anew
        return self.digests

    def _shared(self, index: int, end: int, workers: int, texts: list[int]) -> bool:
        """Read files ``[index, end)`` with worker processes; False when a gzip is damaged."""
        from rbac_advisor.cli import parallel

        run = self.files[index:end]
        for path in run:
            self.stats[path] = SourceStats(path)
        name = os.path.basename(run[0]) if len(run) == 1 else f"{len(run)} files"
        self.meter.file(sum(self.sizes[index:end]), name if len(self.files) > 1 else "")
        got = parallel.read_files(
            self.builder,
            list(enumerate(run, index)),
            self.stats,
            self.options,
            self.skip,
            workers,
            self.meter,
            followed=end < len(self.files),
            sizes=texts,
        )
        if got is None:
            return False
        self.digests.update(got)
        return True

    def _one(self, i: int) -> None:
        """Read file ``i`` in this process."""
        path = self.files[i]
        st = self.stats[path] = SourceStats(path)
        self.meter.file(self.sizes[i], os.path.basename(path) if len(self.files) > 1 else "")
        src = logfiles.Source(path)
        blocks = self.meter.count(
            logfiles.read_blocks(src, st, skip_malformed=self.skip),
            functools.partial(getattr, src, "consumed"),
        )
        blocks = spool.handing(blocks, self.builder, self.spool.put, spool.SPILL_AT)
        add = self.builder.add
        self.fast.source = i
        for ev in parse_blocks(
            blocks, skip_malformed=self.skip, stats=self.stats, sink=self.fast.sink
        ):
            add(ev, i)
        self.digests[path] = src.sha256


def _refuse_overlapping(files: list[str]) -> None:
    """Stop before reading when an input repeats another from too far back to be matched.

    A repeated record is counted once when its first copy lies within the text every
    reader looks back on (``parallel.OVERLAP``; the one-process window reaches further);
    two inputs beginning alike with more text than half of that between their starts
    would be counted twice, and differently for another number of processes.

    Raises:
        InputError: naming both files.
    """
    from rbac_advisor.cli import parallel

    try:
        for i, j in logfiles.same_starts(files):
            between = sum(parallel.text_size(files[k]) for k in range(i, j))
            if between >= parallel.OVERLAP // 2:
                raise InputError(
                    f"{files[i]} and {files[j]} begin with the same record: one is a copy "
                    "of the other, or they overlap (a log next to its own .gz?); give only "
                    "one of them"
                )
    except OSError as err:
        raise InputError(f"{err.filename}: cannot read ({err.strerror})") from None


def load_usage(
    paths: list[str],
    *,
    skip_malformed: bool,
    since: float | str | None,
    until: float | str | None,
    kubectl_only: bool,
    progress: bool,
    workers: int | None = None,
) -> Usage:
    """Read every audit source and build one Usage (stages deduplicated across files).

    Files are read in order (rotated sets oldest first) through one deduplication window,
    so a request whose stages straddle a rotation is counted once. ``since``/``until`` are
    epoch seconds or the flag syntax (RFC 3339, or ``30d``/``12h`` before now).

    Raises:
        InputError: missing paths, unreadable files, bad records (``AuditParseError``,
            unless ``skip_malformed``), or no audit event at all.
    """
    now = time.time()
    t0 = parse_when(since, now, "--since") if isinstance(since, str) else since
    t1 = parse_when(until, now, "--until") if isinstance(until, str) else until
    files = logfiles.expand(paths)
    _refuse_overlapping(files)
    options = BuildOptions(t0, t1, kubectl_only)
    builder = UsageBuilder(options)
    fast = RawAggregator(builder, options)
    stats: dict[str, SourceStats] = {}
    sizes = [logfiles.size_of(p) for p in files]
    meter = Progress(progress, 0 if logfiles.STDIN in files else sum(sizes))
    try:
        n_workers = workers if workers is not None else default_workers()
        if n_workers <= 1:
            # One process holds everything: about 20 MB less on a long log, for about 5 %
            # more time (workers of a shared read stay well under the bound without it).
            give_back_large_blocks()
        reader = _Reader(files, sizes, builder, fast, stats, options, skip_malformed, meter)
        reader.named.update(paths)
        try:
            digests = reader.read_all(n_workers)
            reader.add_spilled()
        finally:
            reader.spool.close()
        if not any(st.events for st in stats.values()):
            where = files[0] if len(files) == 1 else f"{len(files)} inputs"
            first = next((st.first_error for st in stats.values() if st.first_error), "")
            raise AuditParseError(
                where, 0, "no audit events found" + (f" (first: {first})" if first else "")
            )
        infos = [
            source_info(p, stats[p], builder.by_source.get(i, 0), digests.get(p, ""))
            for i, p in enumerate(files)
        ]
        meter.phase("building the usage model")
        return builder.finish(infos)
    finally:
        meter.done()
