"""JSON text to Python values as orjson reads it, with numbers past a double's range. Pure.

JSON sets no limit on numbers, and the typed decoder of apiserver lines skips the fields it
does not read without one. orjson refuses a number too large for a double (``1e400``): a
record holding one in a request body would be accepted or refused by which path read it.
Here it reads as an infinite float, and everything else orjson refuses stays refused.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

_INFINITE = "number is infinity when parsed as double"
_INT_MIN, _INT_END = -(2**63), 2**64  # orjson's integers; past them it gives a float


def no_constant(name: str) -> None:
    """A ``parse_constant`` for the json module: NaN and Infinity are not JSON."""
    raise ValueError(f"{name} is not JSON")


def _int(text: str) -> int | float:
    n = int(text)
    return n if _INT_MIN <= n < _INT_END else float(text)


def loads(text: bytes | str) -> Any:
    """``orjson.loads``, but a number too large for a double reads as an infinite float.

    Raises:
        orjson.JSONDecodeError: what ``orjson.loads`` raises for any other problem (a
            lone surrogate, invalid UTF-8, nesting too deep) or, past a huge number, the
            error about that number.
    """
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as err:
        if not str(err).startswith(_INFINITE):
            raise
        first = err
    try:
        # orjson checked the UTF-8 of the whole text before it read any value.
        s = text.decode("utf-8") if isinstance(text, bytes) else text
        value = json.loads(s, parse_int=_int, parse_constant=no_constant)
        orjson.dumps(value)  # refuses what orjson refuses to read: lone surrogates
    except (ValueError, RecursionError, TypeError, orjson.JSONEncodeError):
        raise first from None
    return value
