"""Hypothesis strategies for hostile platform payloads (issue 13, hostile input).

Payloads start from the real captured ones in tests/social/fixtures/ and are
mutated: a leaf replaced by a wrong type or hostile text, a key deleted, a value
nested thousands of levels deep, a string of megabytes; or they are random JSON,
or random bytes. Bodies are encoded with `ensure_ascii`, so a lone surrogate or a
NUL travels as a JSON escape (`\\ud800`, `\\u0000`), as a platform would send it.
"""

import json
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

FIXTURES = Path(__file__).parent / "fixtures"

# Text a customer can send that has tripped software before.
HOSTILE_TEXT = [
    "",
    "\x00",
    "nul\x00inside",
    "\ud800",  # a lone high surrogate
    "lone \udfff low",
    "\u202eevil\u202c",  # right-to-left override
    "zero\u200bwidth\u200djoiner",
    "\U0001f469\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466",  # family ZWJ
    "\U0001f3f3\ufe0f\u200d\U0001f308",
    "<script>window.__pwned=1</script>",
    '<img src=x onerror="window.__pwned=1">',
    "[x](javascript:alert(1))",
    "<javascript:alert(1)>",
    "\ufeff\ufffe\uffff",
    "\r\n\t\x0b\x0c\x1b[31m",
    "a" * 300,
    "9" * 5000,  # longer than int() reads by default
    "javascript:window.__pwned=1",
    " JaVaScRiPt:alert(1)",
    "data:text/html,<script>alert(1)</script>",
]
# Strings of megabytes are built once; hypothesis only picks them.
HUGE_TEXT = ["x" * 65_536, "\u00e9" * 600_000]
DEEP = "__hostile_deep__"
DEPTHS = [200, 10_000, 100_000]

hostile_text = st.one_of(
    st.sampled_from(HOSTILE_TEXT), st.text(max_size=40), st.sampled_from(HUGE_TEXT)
)
wrong_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.just(1e308),
    hostile_text,
    st.just([]),
    st.just({}),
    st.just(DEEP),
)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), hostile_text),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


def fixture(platform: str, name: str) -> Any:
    return json.loads((FIXTURES / platform / name).read_text())


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


def _copy(value: Any) -> Any:
    return json.loads(json.dumps(value))


def _set(doc: Any, path: tuple[Any, ...], new: Any, *, delete: bool) -> Any:
    if not path:
        return new
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    if delete and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = new
    return doc


@st.composite
def mutated(draw: st.DrawFn, original: Any) -> Any:
    """`original` with one to three of its values replaced or deleted."""
    doc = _copy(original)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        path = draw(st.sampled_from(_paths(doc)))
        new = draw(st.one_of(wrong_leaf, json_values))
        doc = _set(doc, path, new, delete=draw(st.booleans()))
    return doc


def encode(doc: Any, depth: int = DEPTHS[0]) -> bytes:
    """`doc` as a body; each DEEP marker becomes an array nested `depth` deep."""
    body = json.dumps(doc, ensure_ascii=True)
    return body.replace(json.dumps(DEEP), "[" * depth + "]" * depth).encode()


@st.composite
def bodies(draw: st.DrawFn, originals: list[Any]) -> bytes:
    """A hostile delivery body built from one of `originals`, or from nothing."""
    choice = draw(st.integers(min_value=0, max_value=9))
    if choice == 0:
        return draw(st.binary(max_size=64))
    if choice == 1:
        return encode(draw(json_values))
    if choice == 2:
        depth = draw(st.sampled_from(DEPTHS))
        return ("[" * depth + "]" * depth).encode()
    doc = draw(mutated(draw(st.sampled_from(originals))))
    return encode(doc, draw(st.sampled_from(DEPTHS)))
