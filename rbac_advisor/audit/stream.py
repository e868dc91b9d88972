"""Numbered lines of text to Events, with per-source statistics. Pure: never opens files.

Apiserver-written v1 lines take a typed fast path. A RequestReceived or ResponseStarted
line is checked as a final stage is (the typed decode of every field read, and what an
Event needs: a user name, a verb, a target, a time; a line that fails goes to the general
path, which says what is wrong) and set aside: when the final stage of the same request
follows within ``DEFER_MAX`` deferred lines, or a more complete early stage replaces it,
the record adds nothing (the deduplication would discard it) and no Event is built for
it; otherwise it is parsed in full and yielded late. Every request reaches the caller.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import orjson

from rbac_advisor.audit import jsonvalue, native
from rbac_advisor.audit.dedupe import Key, request_key
from rbac_advisor.audit.normalise import Malformed
from rbac_advisor.audit.records import Parsed, parse_record
from rbac_advisor.audit.redact import redact_uri
from rbac_advisor.audit.timestamps import canonical_stamp
from rbac_advisor.errors import AuditParseError, located
from rbac_advisor.events import Event

DEFER_MAX = 8192
Line = tuple[str, int, bytes | str]
Block = tuple[str, int, list[bytes]]


@dataclass(slots=True)
class SourceStats:
    """What reading one source found: records read, events, skipped and ignored records."""

    path: str
    lines: int = 0
    blank: int = 0  # blank lines (not records, but numbered: a share's first line follows them)
    events: int = 0
    skipped: int = 0
    ignored: int = 0
    formats: set[str] = field(default_factory=set)
    missing: set[str] = field(default_factory=set)
    first_skipped: tuple[int, str] | None = None  # line and reason of the first record skipped

    def skip(self, line: int, reason: str, n: int = 1) -> None:
        """Count ``n`` records of ``line`` as skipped for ``reason`` (the first one is named)."""
        self.skipped += n
        if self.first_skipped is None:
            self.first_skipped = (line, reason)

    @property
    def first_error(self) -> str:
        """The first record skipped as ``path:line: reason``; empty when none was."""
        return "" if self.first_skipped is None else located(self.path, *self.first_skipped)


def parse_text(text: bytes, skip_malformed: bool) -> Parsed:
    """One text that is not an apiserver-written line, read whatever its shape.

    Raises:
        Malformed: not JSON, or not an audit record of a known shape.
    """
    try:
        obj = jsonvalue.loads(text)
    except orjson.JSONDecodeError as err:
        if str(err).startswith("unexpected content after document"):
            return _back_to_back(text, skip_malformed, err)
        raise Malformed(f"invalid JSON ({err})") from None
    return parse_record(obj, skip_malformed=skip_malformed)


def _utf8(text: bytes) -> bool:
    """True when ``text`` is UTF-8 (without surrogates, as JSON parsers require)."""
    try:
        text.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _back_to_back(text: bytes, skip: bool, first: orjson.JSONDecodeError) -> Parsed:
    """JSON objects written one after the other without a newline, each a record.

    Kinesis Data Firehose delivers CloudWatch Logs batches (EKS audit exports) to S3 so.
    Every value must be an object. With ``skip`` a bad one is skipped and counted (and
    past invalid JSON, the rest of the text with it); the others still count.
    """
    try:
        s = text.decode("utf-8")
    except UnicodeDecodeError:
        raise Malformed(f"invalid JSON ({first})") from None
    decoder = json.JSONDecoder(parse_constant=jsonvalue.no_constant)
    out = Parsed()
    at, n, k = 0, len(s), 0
    while at < n:
        k += 1
        start = at
        try:
            _, at = decoder.raw_decode(s, at)
            # orjson reads each document as a line is read (no lone surrogates, no nesting
            # past its limit): the json module only finds where documents end.
            obj = jsonvalue.loads(s[start:at])
        except (json.JSONDecodeError, ValueError, RecursionError) as err:
            reason = f"invalid JSON in document {k} of several back to back ({err})"
            if not skip:
                raise Malformed(reason) from None
            # Where the next document starts is unknown: the rest of the text goes with it.
            out.skipped.append(f"{reason}; the rest of the line is skipped with it")
            return out
        try:
            if not isinstance(obj, dict):
                raise Malformed("not a JSON object")
            parse_record(obj, out, skip_malformed=skip)
        except Malformed as err:
            if not skip:
                raise Malformed(f"document {k} of several back to back: {err}") from None
            out.skipped.append(f"document {k} of several back to back: {err}")
        while at < n and s[at] in " \t\r\n":
            at += 1
    return out


Sink = Callable[[native.NativeStruct, str, int], "Key | None"]


def parse_lines(
    lines: Iterable[Line],
    *,
    skip_malformed: bool = False,
    stats: dict[str, SourceStats] | None = None,
    sink: Sink | None = None,
) -> Iterator[Event]:
    """Yield the Events of numbered texts ``(path, line_no, text)``; see :func:`parse_blocks`."""
    blocks = (
        (path, no, [raw if type(raw) is bytes else raw.encode()])  # type: ignore[union-attr]
        for path, no, raw in lines
    )
    return parse_blocks(blocks, skip_malformed=skip_malformed, stats=stats, sink=sink)


def parse_blocks(
    blocks: Iterable[Block],
    *,
    skip_malformed: bool = False,
    stats: dict[str, SourceStats] | None = None,
    sink: Sink | None = None,
) -> Iterator[Event]:
    """Yield the Events of blocks of numbered texts ``(path, first_line_no, [text, ...])``.

    Each text is one JSON value (a line, or a whole document); blank texts are skipped.
    Stages of one request may all be yielded; :class:`dedupe.Deduper` (used by
    ``usage.build``) collapses them. ``sink`` may consume apiserver-written lines without
    an Event being built: it gets the decoded struct and returns the request key when it
    took the record, else None.

    Raises:
        AuditParseError: a record is malformed and ``skip_malformed`` is False. With it
            True the record is counted in ``stats[path].skipped`` instead; in a batch
            (CloudWatch envelope, EventList, array, ``records``) only the malformed items
            are skipped and counted, one each.
    """
    stats = {} if stats is None else stats
    # Insertion-ordered: the oldest waiting line is the first key (a plain dict is cheaper
    # per line than an OrderedDict; evictions only happen past DEFER_MAX).
    deferred: dict[Key, tuple[str, int, bytes, int]] = {}
    st: SourceStats | None = None
    cur = None
    prefix = native.GO_PREFIX
    stage_tag = b'"stage":"'
    struct_event = native.struct_event
    usable = native.usable
    early_usable = native.early_usable
    early_rank = native.EARLY_RANK
    redact = redact_uri
    canonical = canonical_stamp
    decode = native.decoder().decode
    utf8 = _utf8

    def general(path: str, no: int, text: bytes, st: SourceStats) -> list[Event]:
        try:
            parsed = parse_text(text, skip_malformed)
        except Malformed as err:
            reason = str(err)
            if not skip_malformed:
                raise AuditParseError(path, no, reason) from None
            st.skip(no, reason)
            return []
        if parsed.skipped:  # malformed items of a batch; the others still count
            st.skip(no, parsed.skipped[0], len(parsed.skipped))
        st.events += len(parsed.events)
        st.ignored += parsed.ignored
        st.formats.update(parsed.formats)
        st.missing.update(parsed.missing)
        return parsed.events

    def late(item: tuple[str, int, bytes, int]) -> list[Event]:
        path, no, text, _ = item
        s = stats[path]
        s.events -= 1  # counted when deferred; general() counts it again
        return general(path, no, text, s)

    # Per-line counters stay local (attribute updates per line are measurable); they are
    # written to the source's stats when the path changes and at the end.
    n_lines = n_fast = n_blank = 0
    errors = native.DECODE_ERRORS
    no_sink = sink is None
    for path, first_no, block in blocks:
        if path is not cur:
            if st is not None:
                st.lines += n_lines - n_blank
                st.blank += n_blank
                st.events += n_fast
                if n_fast:
                    st.formats.add("native")
                n_lines = n_fast = n_blank = 0
            st = stats.get(path)
            if st is None:
                st = stats[path] = SourceStats(path)
            cur = path
        n_lines += len(block)
        no = first_no - 1
        for text in block:
            no += 1
            # The typed decoder skips the fields it does not read without checking that
            # their text is UTF-8: a line that is not ASCII is checked first.
            if text.startswith(prefix) and (text.isascii() or utf8(text)):
                at = text.find(stage_tag, 60, 240) + 9
                if at > 8 and (
                    text.startswith(b'RequestReceived"', at)
                    or text.startswith(b'ResponseStarted"', at)
                ):
                    # Checked as a final stage is, then keyed; see the module docstring.
                    try:
                        le: native.NativeStruct | None = decode(text)
                    except errors:
                        le = None
                    if le is not None and early_usable(le):
                        assert le.user is not None  # checked by early_usable
                        rank = early_rank.get(le.stage)
                        if rank is not None:
                            uri = le.requestURI
                            key = (
                                le.auditID,
                                le.user.username,
                                le.verb,
                                redact(uri) if "command=" in uri or "%" in uri else uri,
                                canonical(le.requestReceivedTimestamp),
                            )
                            n_fast += 1
                            old = deferred.get(key)
                            if old is None:
                                deferred[key] = (path, no, text, rank)
                                if len(deferred) > DEFER_MAX:
                                    yield from late(deferred.pop(next(iter(deferred))))
                            elif rank > old[3]:
                                # As Deduper.push: the first most complete record of a key
                                # wins, in the place of the first; the other adds nothing.
                                deferred[key] = (path, no, text, rank)
                            continue
                else:
                    try:
                        struct: native.NativeStruct | None = decode(text)
                    except errors:
                        struct = None
                    if struct is not None and not usable(struct):
                        struct = None
                    if struct is not None:
                        if not no_sink:
                            taken = sink(struct, path, no)  # type: ignore[misc]
                            if taken is not None:
                                n_fast += 1
                                if deferred:
                                    deferred.pop(taken, None)
                                continue
                        fast = struct_event(struct)
                        if fast is not None:
                            ev, lacking = fast
                            n_fast += 1
                            if lacking:
                                assert st is not None
                                st.missing.update(native.missing_fields(jsonvalue.loads(text)))
                            if deferred:
                                k = request_key(ev)
                                if k is not None:
                                    deferred.pop(k, None)
                            yield ev
                            continue
            elif not text or text.isspace():
                n_blank += 1
                continue
            assert st is not None
            if text.endswith(b"\r"):
                text = text[:-1]
            for ev in general(path, no, text, st):
                if deferred:
                    k = request_key(ev)
                    if k is not None:
                        deferred.pop(k, None)
                yield ev
    if st is not None:
        st.lines += n_lines - n_blank
        st.blank += n_blank
        st.events += n_fast
        if n_fast:
            st.formats.add("native")
    while deferred:
        yield from late(deferred.pop(next(iter(deferred))))
