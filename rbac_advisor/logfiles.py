"""Opening audit sources: files, gzip (by magic bytes), directories, rotated sets, stdin.

Yields blocks of numbered texts ``(path, first_line_no, [bytes, ...])`` for
``audit.parse_blocks`` and the sha256 of what was read. JSON-lines files give one text per
line; a file whose first line is a bare ``{`` or ``[`` (pretty-printed JSON, ``jq .``
output) gives one text per JSON document. A UTF-8 byte-order mark at the start of a file's
text is dropped (the sha256 still covers it).

A record (a line, or a document) longer than ``MAX_RECORD`` is malformed: it is refused, or
with ``skip_malformed`` discarded as it streams and counted as skipped (for a document, with
the rest of its file: where the next one begins is unknown). Blank text between records is
dropped as it streams: memory stays within about one record and a block.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import queue
import re
import stat
import sys
import threading
import types
import zlib
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, TypeVar, cast

from rbac_advisor.audit import SourceStats
from rbac_advisor.errors import AuditParseError, InputError

_zlib: types.ModuleType = zlib
INFLATE_ERRORS: tuple[type[Exception], ...] = (EOFError, gzip.BadGzipFile, zlib.error)
try:  # ISA-L inflates gzip about five times faster than zlib, with the same interface
    from isal import isal_zlib

    _zlib = isal_zlib
    INFLATE_ERRORS += (cast("type[Exception]", isal_zlib.error),)
except ImportError:  # pragma: no cover - isal is a dependency; zlib is the fallback
    pass

STDIN = "-"
BLOCK = 1 << 20
# The longest record read. An audit event holds at most its request and response bodies
# (the apiserver caps a request at 3 MB by default); a longer line is damage or an attack
# (a small gzip file inflates to gigabytes). At least BLOCK: the length is checked when a
# line spans blocks.
MAX_RECORD = 256 << 20
_BLANK_RUN = 1 << 16  # blank text at the start of a partial line kept, at most
_SAME_START = 4096  # text compared at the start of each file (see same_start)
Block = tuple[str, int, list[bytes]]
GZIP_MAGIC = b"\x1f\x8b"
BOM = b"\xef\xbb\xbf"  # UTF-8 byte-order mark, written by some Windows editors and tools
LOG_EXTENSIONS = frozenset({".log", ".json", ".jsonl", ".ndjson", ".txt", ".gz", ".audit"})
# lumberjack (the apiserver's rotation): audit-2026-11-20T10-00-00.000.log[.gz]
_STAMPED = re.compile(
    r"^(?P<base>.+)-(?P<ts>\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d(?:\.\d+)?)(?P<ext>\.[^.]+)(?:\.gz)?$"
)
# logrotate: audit.log.1, audit.log.2.gz (higher is older)
_NUMBERED = re.compile(r"^(?P<name>.+?)\.(?P<n>\d+)(?:\.gz)?$")


def _is_log(name: str) -> bool:
    if name.startswith("."):
        return False
    if _NUMBERED.match(name):
        return True
    ext = os.path.splitext(name)[1].lower()
    return ext in LOG_EXTENSIONS or ext == ""


def rotation_key(path: str) -> tuple[str, str, int, str, int]:
    """Sort key putting a rotated set in write order: oldest backup first, live file last."""
    d, name = os.path.split(path)
    m = _STAMPED.match(name)
    if m:
        return (d, m.group("base") + m.group("ext"), 0, m.group("ts"), 0)
    m = _NUMBERED.match(name)
    if m and not name.endswith((".json", ".jsonl")):
        return (d, m.group("name"), 0, "", -int(m.group("n")))
    stem = name[:-3] if name.endswith(".gz") else name
    return (d, stem, 1, "", 0)


def _unreadable_dir(err: OSError) -> None:
    raise InputError(f"{err.filename}: cannot read directory ({err.strerror or err})")


def _walk(top: str) -> list[str]:
    """The log files under a directory (hidden entries skipped), each a regular file.

    Raises:
        InputError: a directory cannot be listed, or a log file is not a regular file
            (a FIFO would block the read; a socket or device is no log).
    """
    found = []
    visited: set[tuple[int, int]] = set()
    # Links to directories are followed (a rotated set may live elsewhere); each directory
    # is walked once, so a link back up the tree ends the walk there.
    for root, dirs, files in os.walk(top, onerror=_unreadable_dir, followlinks=True):
        try:
            st = os.stat(root)
        except OSError as err:
            raise InputError(f"{root}: cannot read directory ({err.strerror or err})") from None
        if (st.st_dev, st.st_ino) in visited:
            dirs[:] = []
            continue
        visited.add((st.st_dev, st.st_ino))
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if not _is_log(name):
                continue
            path = os.path.join(root, name)
            try:
                mode = os.stat(path).st_mode
            except OSError as err:
                raise InputError(f"{path}: cannot open ({err.strerror or err})") from None
            if not stat.S_ISREG(mode):
                raise InputError(
                    f"{path}: not a regular file; name it on the command line to read it "
                    "as a stream"
                )
            found.append(path)
    return found


def expand(paths: Sequence[str]) -> list[str]:
    """Files to read, in order, each once.

    Directories are walked recursively (hidden entries and non-log extensions skipped);
    rotated sets come oldest first. A path named itself may be a FIFO (``<(zcat x.gz)``),
    read as a stream; inside a directory only regular files are read.

    Raises:
        InputError: a path does not exist, a directory holds no log files or cannot be
            listed, a log file inside a directory is not a regular file, or stdin (``-``)
            is given more than once (it can be read only once).
    """
    out: list[str] = []
    for p in paths:
        if p == STDIN:
            if STDIN in out:
                raise InputError("-: standard input is given more than once; it can be read once")
            out.append(p)
            continue
        if os.path.isdir(p):
            found = _walk(p)
            if not found:
                raise InputError(f"{p}: directory holds no audit log files")
            files_in = sorted(found, key=rotation_key)
        elif os.path.exists(p):
            files_in = [p]
        else:
            raise InputError(f"{p}: no such file or directory")
        out.extend(files_in)
    return distinct(out)


P = TypeVar("P", str, Path)


def distinct(paths: Iterable[P]) -> list[P]:
    """``paths`` in order, each file once (by its resolved path; ``-`` stays as given)."""
    out: list[P] = []
    seen: set[str] = set()
    for p in paths:
        real = str(p) if str(p) == STDIN else os.path.realpath(p)
        if real not in seen:
            seen.add(real)
            out.append(p)
    return out


def size_of(path: str) -> int:
    """Bytes of a file as stored; 0 for stdin or when it cannot be known now.

    Reading the file later reports the problem.
    """
    if path == STDIN:
        return 0
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


@dataclass(slots=True)
class Source:
    """One opened input; ``sha256`` is final once its lines have been read."""

    path: str
    compressed: bool = False
    sha256: str = ""
    consumed: int = 0  # bytes read so far (as stored: compressed for gzip)
    _hash: hashlib._Hash = field(default_factory=hashlib.sha256)


class _Reader:
    """File-like: replays a prefix already read, then the rest; hashes every raw byte."""

    def __init__(
        self, raw: BinaryIO, prefix: bytes, h: hashlib._Hash | None, src: Source | None = None
    ) -> None:
        self.raw = raw
        self.prefix = prefix
        self.h = h
        self.src = src
        if h is not None:
            h.update(prefix)
        if src is not None:
            src.consumed += len(prefix)

    def read(self, n: int = -1) -> bytes:
        if self.prefix:
            if n < 0 or n >= len(self.prefix):
                b, self.prefix = self.prefix, b""
            else:
                b, self.prefix = self.prefix[:n], self.prefix[n:]
            return b
        b = self.raw.read(n)
        if self.h is not None:
            self.h.update(b)
        if self.src is not None:
            self.src.consumed += len(b)
        return b

    def readable(self) -> bool:
        return True


def without_bom(pieces: Iterable[bytes]) -> Iterator[bytes]:
    """The pieces of a stream of text without a UTF-8 byte-order mark at its start."""
    it = iter(pieces)
    head = b""
    for piece in it:
        head += piece
        if len(head) >= len(BOM) or not BOM.startswith(head):
            break
    if head.startswith(BOM):
        head = head[len(BOM) :]
    if head:
        yield head
    yield from it


def _inflate(reader: _Reader) -> Iterator[bytes]:
    # gzip by hand: what precedes damage is still yielded, and members may be concatenated
    # (as gzip and rotated logs allow). Output is bounded per call to keep memory flat.
    d = _zlib.decompressobj(wbits=31)
    while chunk := reader.read(BLOCK):
        while chunk:
            out = d.decompress(chunk, BLOCK)
            if out:
                yield out
            if d.unconsumed_tail:
                chunk = d.unconsumed_tail
                continue
            if not d.eof:
                break
            chunk = d.unused_data
            if chunk and chunk[:2] != GZIP_MAGIC:
                if chunk.strip(b"\0"):
                    raise gzip.BadGzipFile("garbage after the last gzip member")
                chunk = b""
            if chunk:
                d = _zlib.decompressobj(wbits=31)
    if not d.eof:
        raise EOFError("compressed file ended before the end-of-stream marker was reached")


def inflate_file(path: str) -> Generator[bytes, None, None]:
    """The decompressed bytes of a gzip file, in pieces (not hashed; no leading BOM).

    Raises:
        EOFError, gzip.BadGzipFile or an inflate error (see ``INFLATE_ERRORS``) on damage;
        OSError when the file cannot be read.
    """
    with open(path, "rb") as f:
        yield from without_bom(_inflate(_Reader(f, b"", None)))


def is_gzip(path: str) -> bool:
    """True when the file starts with the gzip magic bytes.

    Raises:
        OSError: the file cannot be read.
    """
    with open(path, "rb") as f:
        return f.read(2) == GZIP_MAGIC


def head_text(path: str, n: int = 4096) -> bytes:
    """The first ``n`` bytes of text of a file, inflated if it is gzip (b"" if damaged).

    A byte-order mark at the start is not part of the text.

    Raises:
        OSError: the file cannot be read.
    """
    with open(path, "rb") as f:
        data = f.read(max(n, 1 << 16))
    if data.startswith(GZIP_MAGIC):
        try:
            data = bytes(_zlib.decompressobj(wbits=31).decompress(data, n + len(BOM)))
        except INFLATE_ERRORS:
            return b""
    return data.removeprefix(BOM)[:n]


def same_starts(paths: Sequence[str]) -> list[tuple[int, int]]:
    """Pairs (earlier, later) of regular files whose text begins with the same record.

    Records hold their audit ID and times, so two logs begin alike only when one repeats
    the other: a copy, a file next to its own .gz (``gunzip -k``), a batch delivered twice.

    Raises:
        OSError: a file cannot be read.
    """
    seen: dict[bytes, int] = {}
    pairs: list[tuple[int, int]] = []
    for i, path in enumerate(paths):
        if path == STDIN or not stat.S_ISREG(os.stat(path).st_mode):
            continue
        # The first 4 KB: a batch file's header alone ({"kind":"EventList",...) is no record.
        first = head_text(path, _SAME_START).strip()
        if len(first) < 64:
            continue  # no record at all
        earlier = seen.setdefault(first, i)
        if earlier != i:
            pairs.append((earlier, i))
    return pairs


def inflated_size(path: str, sample: int = 1 << 18) -> int:
    """The decompressed size of a gzip file, estimated (good enough to split work by).

    The trailer's ISIZE is the size modulo 2**32 of the last member; below about 4 MB
    (deflate expands at most 1032 times) that is the size; above, the compression ratio
    of the first ``sample`` bytes picks the multiple of 2**32 to add.

    Raises:
        OSError: the file cannot be read.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        f.seek(max(size - 4, 0))
        isize = int.from_bytes(f.read(4), "little")
        if size * 1032 < 2**32:
            return isize
        f.seek(0)
        head = f.read(sample)
    d = _zlib.decompressobj(wbits=31)
    try:
        out = len(d.decompress(head, 64 * sample))
    except INFLATE_ERRORS:
        return isize
    if len(head) >= size and d.eof:
        return out
    guess = out * size / max(len(head) - len(d.unconsumed_tail), 1)
    return isize + max(round((guess - isize) / 2**32), 0) * 2**32


def _threaded(blocks: Iterator[bytes]) -> Iterator[bytes]:
    """Run a block producer in a thread (inflate and hashlib release the GIL), a few ahead."""
    q: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=8)
    stop = threading.Event()

    def put(item: bytes | BaseException | None) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for b in blocks:
                if not put(b):
                    return
            put(None)
        except BaseException as err:  # handed to the consumer, raised there
            put(err)

    t = threading.Thread(target=produce, name="inflate", daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        t.join(timeout=5)


def _blocks(src: Source, f: BinaryIO) -> Generator[bytes, None, None]:
    reader = _Reader(f, f.read(BLOCK), src._hash, src)
    if reader.prefix[:2] != GZIP_MAGIC:
        plain = iter(lambda: reader.read(BLOCK), b"")
        yield from _threaded(without_bom(plain))  # hashing overlaps parsing
        return
    src.compressed = True
    yield from _threaded(without_bom(_inflate(reader)))


def _size(n: int) -> str:
    """A byte count as the limit is stated: whole megabytes, else bytes."""
    return f"{n >> 20} MB" if n >= 1 << 20 and not n % (1 << 20) else f"{n} bytes"


def too_long_reason() -> str:
    """Why a record past ``MAX_RECORD`` is refused."""
    return f"record longer than {_size(MAX_RECORD)}"


class RecordTooLong(ValueError):
    """A line grew past ``MAX_RECORD`` bytes; ``line`` is its number among the lines split."""

    def __init__(self, line: int) -> None:
        """Name the line (1 for the first line split)."""
        super().__init__(f"line {line}: {too_long_reason()}")
        self.line = line


def _refuse(line: int) -> None:
    raise RecordTooLong(line)


def _malformed(stats: SourceStats, path: str, no: int, reason: str, *, skip: bool) -> None:
    """Refuse a malformed record, or with ``skip`` count it in ``stats`` as skipped.

    Raises:
        AuditParseError: naming the file and line, unless ``skip``.
    """
    if not skip:
        raise AuditParseError(path, no, reason)
    stats.skip(no, reason)


def too_long_handler(
    path: str, stats: SourceStats, *, skip_malformed: bool, first: int = 1
) -> Callable[[int], None]:
    """A ``too_long`` for :func:`split_lines` of a file whose lines are numbered from ``first``.

    It raises :class:`AuditParseError` naming the line, or with ``skip_malformed`` counts
    it as skipped in ``stats`` (the line is then discarded).
    """

    def too_long(n: int) -> None:
        _malformed(stats, path, first - 1 + n, too_long_reason(), skip=skip_malformed)

    return too_long


_SPACE = re.compile(r"[ \t\r\n]*")  # JSON's whitespace
_BLANK = re.compile(rb"[ \t\r\n]*")
# A string (closed, or running to the end: '"' alone), or a bracket.
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|"|[\[\]{}]', re.S)


def _end_of_nesting(s: str, i: int) -> int:
    """Where the array or object at ``s[i]`` ends, by its brackets; -1 when ``s`` ends first."""
    depth = 0
    for m in _TOKEN.finditer(s, i):
        tok = m.group()
        if tok[0] == '"':
            if len(tok) == 1:
                return -1  # a string still open
            continue
        depth += 1 if tok in "[{" else -1
        if depth <= 0:
            return m.end()
    return -1


def _take_documents(
    path: str, data: bytes, line: int, stats: SourceStats, *, skip: bool, final: bool
) -> Generator[tuple[str, int, bytes], None, tuple[bytes, int]]:
    """Yield the whole documents at the start of ``data`` (line ``line`` is its first).

    Unless ``final``, only text up to the last newline is decoded (no value and no
    character spans one) and a document it cuts short is left. Returns the text left (a
    document begun; blank text is dropped) and the line it begins on.

    Raises:
        AuditParseError: text that is not UTF-8, invalid JSON, or nesting too deep for
            the decoder (with ``skip`` that document is counted as skipped instead).
    """
    cut = len(data) if final else data.rfind(b"\n") + 1
    try:
        s = str(memoryview(data)[:cut], "utf-8")
    except UnicodeDecodeError as err:
        where = line + data.count(b"\n", 0, err.start)
        raise AuditParseError(
            path, where, f"not UTF-8 text ({err.reason})", skippable=False
        ) from None
    dec = json.JSONDecoder()
    i, n = 0, len(s)
    while True:
        j = _SPACE.match(s, i).end()  # type: ignore[union-attr]  # matches the empty string
        line += s.count("\n", i, j)
        i = j
        if i >= n:
            break
        try:
            end = dec.raw_decode(s, i)[1]
        except json.JSONDecodeError as err:
            if err.pos >= n and not final:
                break  # cut short: the rest of it is yet to be read
            where = line + s.count("\n", i, err.pos)
            raise AuditParseError(
                path, where, f"invalid JSON ({err.msg})", skippable=False
            ) from None
        except RecursionError:
            end = _end_of_nesting(s, i)
            if end < 0 and not final:
                break
            _malformed(stats, path, line, "nesting too deep", skip=skip)
            end = n if end < 0 else end
        else:
            yield path, line, s[i:end].encode()
        line += s.count("\n", i, end)
        i = end
    # The byte offset of s[i] (decoding then encoding valid UTF-8 gives the same bytes).
    off = i if s.isascii() else cut - len(s[i:].encode())
    del s
    rest = data[off:]  # the same object when nothing was taken
    if _BLANK.fullmatch(rest):
        rest = b""  # no newline in it: the line count stands
    return rest, line


def _container(first: bytes) -> bool:
    """True when a record begins as a batch of events rather than one.

    A JSON array, or an object holding ``items`` (EventList), ``records`` (Azure) or
    ``logEvents`` (CloudWatch). ``MAX_RECORD`` bounds one event; a batch may hold any
    number (a whole export in one array), so it is read whole, as before the bound.
    """
    head = first.lstrip()[:4096]
    return head[:1] == b"[" or (
        head[:1] == b"{" and any(k in head for k in (b'"items"', b'"records"', b'"logEvents"'))
    )


def _head(chunks: Iterable[bytes], n: int = 4096) -> bytes:
    """The first ``n`` bytes of text after leading blanks, from the chunks of a record."""
    out = b""
    for c in chunks:
        out = (out + c).lstrip()
        if len(out) >= n:
            break
    return out[:n]


def _too_long_document(
    rest: Iterator[bytes], path: str, line: int, stats: SourceStats, *, skip: bool
) -> None:
    """Refuse a document past ``MAX_RECORD``, or with ``skip`` count it and read the rest.

    Raises:
        AuditParseError: naming the line it begins on, unless ``skip``.
    """
    _malformed(stats, path, line, too_long_reason(), skip=skip)
    for _ in rest:  # read to the end for the file's sha256; nothing more is decoded
        pass


def _documents(
    path: str, pieces: Iterator[bytes], line: int, stats: SourceStats, *, skip: bool
) -> Iterator[tuple[str, int, bytes]]:
    """The JSON documents of a pretty-printed text, each with the line it begins on.

    Text is decoded when a block arrives, then again once what is held has doubled (a
    large document is not decoded a block at a time) or passes ``MAX_RECORD``; an array
    or object begun is decoded again only once a closing bracket has arrived.

    Raises:
        AuditParseError: as :func:`_take_documents`, or a document longer than
            ``MAX_RECORD``: its end, and so the next document, is unknown (with ``skip``
            the rest of the text is read, and counted as one skipped record).
    """
    held: list[bytes] = []
    size = need = 0
    begun = False  # held starts with an array or object cut short
    closed = False  # a closing bracket arrived since held was last decoded
    for piece in pieces:
        held.append(piece)
        size += len(piece)
        if begun and not closed:
            closed = b"}" in piece or b"]" in piece
        if size < need and size <= MAX_RECORD:
            continue
        if begun and not closed:  # it cannot have ended
            if size > MAX_RECORD and not _container(_head(held)):
                del held[:]
                _too_long_document(pieces, path, line, stats, skip=skip)
                return
            continue
        data = b"".join(held)
        del held[:]
        rest, line = yield from _take_documents(path, data, line, stats, skip=skip, final=False)
        del data
        if len(rest) > MAX_RECORD and not _container(rest):
            del rest
            _too_long_document(pieces, path, line, stats, skip=skip)
            return
        if rest:
            held.append(rest)
        size = len(rest)
        need = 2 * size
        begun = rest[:1] in (b"{", b"[")
        # Text after the last newline was not decoded: a bracket there may close it.
        after = rest.rfind(b"\n") + 1
        closed = rest.find(b"}", after) >= 0 or rest.find(b"]", after) >= 0
    if held:
        yield from _take_documents(path, b"".join(held), line, stats, skip=skip, final=True)


def split_lines(
    pieces: Iterable[bytes], too_long: Callable[[int], None] | None = None
) -> Iterator[list[bytes]]:
    """The lines of a stream of pieces, a list per piece that ends at least one line.

    A line longer than a piece (a large request body at the RequestResponse level) is
    joined once, when its end arrives: linear in its size. A line that grows past
    ``MAX_RECORD`` bytes is handed by number (1 for the first) to ``too_long``: it raises
    to stop (by default :class:`RecordTooLong`), or returns and the line's bytes are
    dropped as they arrive, the line coming out empty. Blank text at the start of a
    line is kept up to 64 KB, then dropped as it arrives (the line's text is the same
    JSON). A line shorter than a piece is not measured: ``MAX_RECORD`` is at least that.
    """
    limit = MAX_RECORD
    refuse = _refuse if too_long is None else too_long
    carry: list[bytes] = []
    size = 0  # bytes in carry
    blank = False  # carry holds only whitespace
    dropping = False  # the rest of a line past the limit is being dropped
    batch = False  # the line under way is a batch of events past the limit, read whole
    done = 0  # lines yielded
    for piece in pieces:
        parts = piece.split(b"\n")
        if len(parts) == 1:
            if dropping:
                continue
            if not carry or blank:
                blank = piece.isspace()
            carry.append(piece)
            size += len(piece)
            if blank:
                if size > _BLANK_RUN:
                    carry, size = [b""], 0  # the line has begun; its text so far is blank
            elif size > limit and not batch:
                if _container(_head(carry)):
                    batch = True  # a batch of events on one line: read whole
                else:
                    refuse(done + 1)
                    carry, size, dropping = [], 0, True
            continue
        if dropping:
            parts[0] = b""
            dropping = False
        elif carry:
            size += len(parts[0])
            if size > limit and not batch and not _container(_head((*carry, parts[0]))):
                refuse(done + 1)
                parts[0] = b""
            else:
                carry.append(parts[0])
                parts[0] = b"".join(carry)
            carry = []
        batch = False
        last = parts.pop()
        size = len(last)
        if last:
            carry = [last]
            blank = last.isspace()
        done += len(parts)
        yield parts
    if carry or dropping:
        yield [b"".join(carry)]


def _blank_lines(path: str, count: int) -> Iterator[Block]:
    """``count`` empty lines from line 1, in blocks of at most a million."""
    for no in range(1, count + 1, 1 << 20):
        yield path, no, [b""] * min(1 << 20, count + 1 - no)


def _line_blocks(
    path: str, blocks: Iterator[bytes], head: bytes, no: int, too_long: Callable[[int], None]
) -> Iterator[Block]:
    """Numbered lines: ``no - 1`` blank ones, then those of ``head`` and ``blocks``."""
    yield from _blank_lines(path, no - 1)
    for parts in split_lines(_chain(head, blocks), too_long):
        yield path, no, parts
        no += len(parts)


def _chain(head: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if head:
        yield head
    yield from rest


_INLINE_SPACE = re.compile(rb"[ \t\r\x0b\x0c]*")  # what bytes.strip() drops, but newlines


def _start(blocks: Iterator[bytes]) -> tuple[int, bytes, bool]:
    """Where a text's first record begins: its line, the text from there, pretty-printed?

    Blank text before it is read and dropped a block at a time (its newlines counted);
    so is blank text after a first ``{`` or ``[`` until its line shows whether that
    bracket stands alone (pretty-printed JSON) or begins a JSON line.
    """
    no = 1
    text = b""
    for block in blocks:
        text = block.lstrip()
        no += block.count(b"\n", 0, len(block) - len(text))
        if text:
            break
    if text[:1] not in (b"{", b"["):
        return no, text, False
    while True:
        end = _INLINE_SPACE.match(text, 1).end()  # type: ignore[union-attr]  # matches b""
        if end < len(text):
            return no, text, text[end] == ord("\n")
        block = next(blocks, b"")
        if not block:
            return no, text, True  # the bracket alone, then nothing: a document cut short
        if not _INLINE_SPACE.fullmatch(block):
            text = text[:1] + block


def read_blocks(src: Source, stats: SourceStats, *, skip_malformed: bool) -> Iterator[Block]:
    """Yield the numbered texts of one source as blocks; fills ``src.sha256`` when done.

    A block is ``(path, n, texts)``: ``texts[i]`` is line ``n + i`` (blank lines and a
    trailing carriage return included; ``audit.parse_blocks`` skips and strips them), or one whole
    JSON document of a pretty-printed file.

    Raises:
        AuditParseError: truncated or corrupt gzip data (with ``skip_malformed`` the rest
            of the file is counted as one skipped record instead), a line longer than
            ``MAX_RECORD`` (with ``skip_malformed`` counted as skipped), invalid JSON in a
            pretty-printed file, a document there longer than ``MAX_RECORD`` (with
            ``skip_malformed`` the rest of the file is counted as one skipped record), or
            one nested too deeply to decode (with ``skip_malformed`` counted as skipped).
        InputError: the file cannot be opened or read.
    """
    path = src.path
    last = 0
    try:
        f: BinaryIO = sys.stdin.buffer if path == STDIN else open(path, "rb")  # noqa: SIM115
    except OSError as err:
        raise InputError(f"{path}: cannot open ({err.strerror})") from None
    blocks = _blocks(src, f)
    try:
        try:
            no, head, pretty = _start(blocks)
            if pretty:
                docs = _documents(path, _chain(head, blocks), no, stats, skip=skip_malformed)
                for p, n, text in docs:
                    yield p, n, [text]
            else:
                too_long = too_long_handler(path, stats, skip_malformed=skip_malformed, first=no)
                for item in _line_blocks(path, blocks, head, no, too_long):
                    last = item[1] + len(item[2]) - 1
                    yield item
        except INFLATE_ERRORS as err:
            reason = f"truncated or corrupt gzip data ({str(err)[:80]})"
            _malformed(stats, path, last + 1, reason, skip=skip_malformed)
        src.sha256 = src._hash.hexdigest()
    except OSError as err:
        raise InputError(f"{path}: read failed ({err.strerror or err})") from None
    finally:
        blocks.close()  # stops the reader thread before the file is closed
        if f is not sys.stdin.buffer:
            f.close()


def read(
    src: Source, stats: SourceStats, *, skip_malformed: bool
) -> Iterator[tuple[str, int, bytes]]:
    """The non-blank texts of :func:`read_blocks` one by one, without a trailing carriage return."""
    for path, no, texts in read_blocks(src, stats, skip_malformed=skip_malformed):
        for i, line in enumerate(texts):
            if line and not line.isspace():
                yield path, no + i, line[:-1] if line.endswith(b"\r") else line
