"""Audit timestamps to epoch seconds. Pure: no I/O, no clock.

Accepts RFC 3339 (``2026-11-20T10:00:00.123456Z``, offsets, nanoseconds) and the
space-separated UTC form some exporters rewrite it to (``2022-11-29 00:09:04.38``).
Fractions are cut to whole microseconds (the apiserver's MicroTime): a float holds about
0.24 us at today's epoch, so nanoseconds would round ``09:59:59.999999999`` up to the next
second, across a ``--since`` or ``--until`` boundary.
"""

from __future__ import annotations

import calendar
import datetime
import math
import re

# The apiserver's own time form (UTC, microseconds), whose text sorts like the time.
GO_STAMP = re.compile(r"\d{4}-\d\d-\d\dT(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d\.\d{6}Z", re.ASCII)
_SECOND_CACHE: dict[str, int] = {}
# 0001-01-01T00:00:00Z and 10000-01-01T00:00:00Z: reports write four-digit years.
_FIRST, _AFTER_LAST = -62135596800, 253402300800
_LAST = math.nextafter(_AFTER_LAST, 0)  # a float this large has no microseconds left
_CACHE_MAX = 50_000
_EPOCH = datetime.datetime(1970, 1, 1)


def parse_time(text: str) -> float:
    """Epoch seconds for an audit timestamp.

    Raises:
        ValueError: the text is not a timestamp.

    >>> parse_time("1970-01-02T00:00:01.5Z")
    86401.5
    >>> parse_time("2022-11-29 00:09:04.38") == parse_time("2022-11-29T00:09:04.380Z")
    True
    >>> parse_time("2026-11-20T09:59:59.999999999Z") < parse_time("2026-11-20T10:00:00Z")
    True
    """
    head = text[:19]
    base = _SECOND_CACHE.get(head)
    if base is None:
        base = _parse_head(head)
        if len(_SECOND_CACHE) >= _CACHE_MAX:
            _SECOND_CACHE.clear()
        _SECOND_CACHE[head] = base
    rest = text[19:]
    if not rest or rest == "Z":
        return float(base)
    if rest[0] == "." and rest[-1] == "Z" and _digits(rest[1:-1]):  # the apiserver's form
        digits = rest[1:-1][:6]
        return min(base + int(digits) / float(10 ** len(digits)), _LAST)
    seconds, micros = _general(text, base, rest)
    return min(seconds + micros / 1e6, _LAST)


def canonical_stamp(text: str) -> str:
    """``text`` in the apiserver's fixed form when it is a timestamp, else ``text`` itself.

    Two forms of one instant (``...T10:00:00.5Z``, ``... 10:00:00.500000``,
    ``...T11:00:00.5+01:00``) give one text, so the stages of a request written in
    different forms share one key. Fractions are cut to microseconds, as :func:`parse_time`
    cuts them. A text that is not a timestamp is kept: it is refused where its time is read.

    >>> canonical_stamp("2026-11-20 11:00:00.5+01:00")
    '2026-11-20T10:00:00.500000Z'
    >>> canonical_stamp("2026-11-20T10:00:00.500000Z")
    '2026-11-20T10:00:00.500000Z'
    >>> canonical_stamp("yesterday")
    'yesterday'
    """
    if len(text) == 27 and text[10] == "T" and text[19::7] == ".Z":
        # The fixed form's shape: a time with it is already in the form (and one that is
        # not a time stays as it is either way).
        return text
    try:
        head = text[:19]
        seconds, micros = _general(text, _parse_head(head), text[19:])
    except ValueError:
        return text
    d = _EPOCH + datetime.timedelta(seconds=seconds)
    return (
        f"{d.year:04d}-{d.month:02d}-{d.day:02d}T"
        f"{d.hour:02d}:{d.minute:02d}:{d.second:02d}.{micros:06d}Z"
    )


def _general(text: str, base: int, rest: str) -> tuple[int, int]:
    """Whole UTC seconds and microseconds of ``text``, whose first 19 characters are ``base``.

    Raises:
        ValueError: a bad fraction or zone, or a time outside the years 1 to 9999.
    """
    micros = 0
    i = 0
    if rest[:1] == ".":
        i = 1
        while i < len(rest) and _digits(rest[i]):
            i += 1
        digits = rest[1:i]
        if not digits:
            raise ValueError(f"bad fraction in timestamp {text!r}")
        micros = int(digits[:6].ljust(6, "0"))
    zone = rest[i:]
    offset = 0
    if zone in ("", "Z", "z", " UTC"):
        pass
    elif (
        len(zone) == 6
        and zone[0] in "+-"
        and zone[3] == ":"
        and _digits(zone[1:3] + zone[4:6])
        and int(zone[1:3]) < 24
        and int(zone[4:6]) < 60
    ):
        offset = int(zone[1:3]) * 3600 + int(zone[4:6]) * 60
        if zone[0] == "+":
            offset = -offset
    else:
        raise ValueError(f"bad zone in timestamp {text!r}")
    if not _FIRST <= base + offset < _AFTER_LAST:  # an offset can cross the ends
        raise ValueError(f"timestamp {text!r} is not within the years 1 to 9999")
    return base + offset, micros


def format_time(t: float) -> str:
    """The apiserver's fixed-width form of epoch seconds (microseconds, UTC).

    Years always have four digits (``strftime("%Y")`` does not pad years before 1000).

    >>> format_time(86401.5)
    '1970-01-02T00:00:01.500000Z'
    >>> format_time(-62135596800)
    '0001-01-01T00:00:00.000000Z'
    """
    d = datetime.datetime.fromtimestamp(t, datetime.UTC)
    return (
        f"{d.year:04d}-{d.month:02d}-{d.day:02d}T"
        f"{d.hour:02d}:{d.minute:02d}:{d.second:02d}.{d.microsecond:06d}Z"
    )


_MINUTES: dict[int, str] = {}  # minute since the epoch: "YYYY-MM-DDTHH:MM:"
_SECONDS = [f"{n:02d}Z" for n in range(60)]


def format_second(t: float) -> str:
    """``format_time(t)`` to the second, without the fraction: ``1970-01-02T00:00:01Z``.

    Reports write one for every use they list, so the text of each minute is kept. The
    second is the one :func:`format_time` shows: microseconds are rounded half to even
    first, as ``datetime.fromtimestamp`` rounds them, so ``1.9999996`` is second 2.

    >>> format_second(86401.5)
    '1970-01-02T00:00:01Z'
    """
    frac, whole = math.modf(t)
    second = int(whole)
    micros = round(frac * 1e6)
    if micros >= 1_000_000:
        second += 1
    elif micros < 0:
        second -= 1
    minute, s = divmod(second, 60)
    head = _MINUTES.get(minute)
    if head is None:
        if len(_MINUTES) >= _CACHE_MAX:
            _MINUTES.clear()
        head = _MINUTES[minute] = format_time(minute * 60)[:17]
    return head + _SECONDS[s]


def _parse_head(head: str) -> int:
    if (
        len(head) != 19
        or head[4] != "-"
        or head[7] != "-"
        or head[10] not in "T t"
        or head[13] != ":"
        or head[16] != ":"
    ):
        raise ValueError(f"not a timestamp: {head!r}")
    parts = (head[0:4], head[5:7], head[8:10], head[11:13], head[14:16], head[17:19])
    if not _digits("".join(parts)):
        raise ValueError(f"not a timestamp: {head!r}")
    y, mo, d, h, mi, s = map(int, parts)
    # As Go's time.Parse: each field in range, the day within its month, no second 60.
    if not (
        1 <= mo <= 12
        and 1 <= d <= calendar.monthrange(y or 2000, mo)[1]
        and h < 24
        and mi < 60
        and s < 60
    ):
        raise ValueError(f"not a timestamp: {head!r}")
    return calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0))


def _digits(text: str) -> bool:
    """ASCII digits only (``int`` also takes signs, spaces, underscores, other scripts)."""
    return text.isascii() and text.isdigit()
