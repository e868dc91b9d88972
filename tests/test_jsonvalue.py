"""JSON values as orjson reads them, with numbers past a double's range."""

from __future__ import annotations

import math

import orjson
import pytest

from rbac_advisor.audit import jsonvalue


def test_numbers_past_a_double_read_as_infinite_floats() -> None:
    v = jsonvalue.loads(
        b'{"a":1e400,"b":[-1e400],"c":100000000000000000000000,"d":18446744073709551615}'
    )
    assert v["a"] == math.inf and v["b"] == [-math.inf]
    # Integers as orjson reads them: exact within 64 bits, a float past them.
    assert v["c"] == 1e23 and isinstance(v["c"], float)
    assert v["d"] == 2**64 - 1 and isinstance(v["d"], int)


@pytest.mark.parametrize(
    "text",
    [
        b'{"a":1e400,"b":"\\ud800"}',  # a lone surrogate after the huge number
        b'{"a":1e400,"b":NaN}',
        b'{"a":1e400,"b":Infinity}',
        b'{"a":1e400,"b":"\x01"}',  # a control character in a string
        b'{"a":1e400} {"b":1}',
        b'{"a":1e400,',
    ],
)
def test_anything_else_orjson_refuses_stays_refused(text: bytes) -> None:
    with pytest.raises(orjson.JSONDecodeError):
        jsonvalue.loads(text)
