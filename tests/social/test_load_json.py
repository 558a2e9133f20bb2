"""load_json (social/connectors/text.py) reads bytes with orjson first: every
body gives what json.loads gives, the same value of the same types, or the same
refusal."""

import json
import math
from typing import Any

import pytest

from social.connectors.text import load_json

BODIES = [
    b'{"event_id": "e1", "n": 1, "f": 1.5, "t": true, "z": null, "l": [1, "a"]}',
    b'{"a": 1, "a": 2}',
    b"-0",
    b"-0.0",
    b"[5e-324, 2.5e-310, 1.7976931348623157e308, 0.30000000000000004, 1E+2]",
    b"[9223372036854775807, -9223372036854775808, 999999999999999999]",
    b'"\\u00e9\\ud83d\\ude00 \\u0000 \\/"',
    '"\u00e9\U0001f600"'.encode(),
    b'{"a": "\x7f"}',
    b" [] \n",
]
# What orjson reads differently or refuses: json decides.
JSON_DECIDES = [
    b"18446744073709551616",  # past 64 bits: orjson would read a float
    b"-9223372036854775809",
    b'{"id": 123456789012345678901234567890}',
    b"1e400",  # json: inf
    b"[NaN, Infinity, -Infinity]",
    b'"\\ud800"',  # a lone surrogate escape
    b"\xef\xbb\xbf{}",  # a byte order mark
    '{"a": 1}'.encode("utf-16"),
]
REFUSED = [b"", b"{", b'{"a": "\x01"}', b"01", b"[1,]", b'"\xff"', b"{} x"]


def same(a: Any, b: Any) -> bool:
    """Equal values of the same types all the way down (NaN equals NaN, -0.0 is
    not 0.0, dict keys in the same order)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        if math.isnan(a):
            return math.isnan(b)
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[key], b[key]) for key in a)
    return bool(a == b)


@pytest.mark.parametrize("body", BODIES + JSON_DECIDES)
def test_a_body_reads_as_json_reads_it(body: bytes) -> None:
    assert same(load_json(body), json.loads(body))


@pytest.mark.parametrize("body", BODIES)
def test_text_reads_as_json_reads_it(body: bytes) -> None:
    text = body.decode()

    assert same(load_json(text), json.loads(text))


def test_nesting_deeper_than_orjson_reads_is_read_by_json() -> None:
    value = load_json(b"[" * 1030 + b"]" * 1030)

    depth = 1
    while value:
        [value] = value
        depth += 1
    assert (depth, value) == (1030, [])


def test_integers_past_64_bits_stay_exact() -> None:
    assert load_json(b'{"id": 18446744073709551616}') == {"id": 2**64}
    assert type(load_json(b"[-9223372036854775809]")[0]) is int
    assert load_json(b'{"event_id": 123456789012345678901234567890}') == {
        "event_id": 123456789012345678901234567890
    }


@pytest.mark.parametrize("body", REFUSED)
def test_what_json_refuses_is_refused_with_its_message(body: bytes) -> None:
    try:
        json.loads(body)
    except ValueError as exc:
        expected = exc
    else:
        pytest.fail(f"json reads {body!r}")

    with pytest.raises(type(expected)) as refused:
        load_json(body)

    assert str(refused.value) == str(expected)
