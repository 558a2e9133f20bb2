"""What of a platform's text Earshot stores, and how a malformed payload is told.

Customer text is kept as written, with one rule applied once, where an item is
made (`InboundItem` and `Author` run it on every text field they are given, so no
connector can skip it):

- NUL (U+0000) is removed: PostgreSQL text cannot hold it, and it is never
  meant as text.
- A lone surrogate (U+D800 to U+DFFF outside a pair; JSON can carry one as a
  `\\ud800` escape, UTF-8 cannot) becomes U+FFFD, the replacement character.
- Everything else stays exactly as written: bidi controls (U+202E), zero-width
  characters (U+200B, U+200D), emoji sequences, HTML and markdown. The pages
  escape text on output, and an agent must see what the customer sent.

Fields stored in bounded columns are fitted to them here: a name or handle is
cut at its column's length, a link too long to store or not a web link
(`javascript:`, `data:`; pages put links in an href) is left out, a follower
count is kept within the column's range; an id too long to store makes the item
malformed (cutting it could merge two messages).

A parser says a payload is malformed with ValueError only: `malformed_as_value_error`
turns the errors that reading a wrongly shaped payload raises (a missing key, a
wrong type, an overflow, nesting too deep) into it, and `load_json` reads JSON
that way.
"""

import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import orjson

logger = logging.getLogger(__name__)

# The lengths of the columns these fields are stored in (helpdesk.models:
# Identity, Message, Conversation; tests/social/test_hostile_parsers.py checks).
ID_LENGTH = 128
HANDLE_LENGTH = 128
NAME_LENGTH = 200
URL_LENGTH = 200
LANGUAGE_LENGTH = 16
# Identity.followers is a PostgreSQL integer.
MAX_FOLLOWERS = 2**31 - 1

_SURROGATE = re.compile("[\ud800-\udfff]")

# What reading a wrongly shaped payload raises, besides ValueError (OSError:
# datetime.fromtimestamp of a time past the platform's time_t).
SHAPE_ERRORS = (
    LookupError,
    TypeError,
    AttributeError,
    OverflowError,
    RecursionError,
    OSError,
)


def is_web_link(url: str) -> bool:
    """True for "", an http(s) URL or a path on this site: the links a page may
    put in an href (never `javascript:`, `data:` or `vbscript:`)."""
    lowered = url[:8].lower()
    return not url or lowered.startswith(("http://", "https://", "/"))


def storable(text: str) -> str:
    """`text` under the rule above: NUL removed, lone surrogates replaced."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text


@contextmanager
def malformed_as_value_error(what: str) -> Iterator[None]:
    """Inside, a payload read as the wrong shape raises ValueError naming `what`."""
    try:
        yield
    except KeyError as exc:
        raise ValueError(f"{what} has no {exc}"[:500]) from exc
    except SHAPE_ERRORS as exc:
        raise ValueError(f"{what}: {exc}"[:500]) from exc


# orjson reads an integer literal outside 64 bits (19 digits or more) as a float
# where json keeps it exact; a body with 19 digits in a row goes to json.
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_NUMBER = b"0" * 19


def load_json(body: bytes | str) -> Any:
    """`body` as JSON; ValueError when it is not JSON, or nested too deep to read.

    json.loads decides. Bytes are read by orjson first, about eight times faster
    and the same values wherever it reads them (tests/social/test_load_json.py);
    what orjson refuses (NaN, a lone surrogate escape, a byte order mark, UTF-16,
    nesting past 1,024) and a body that may hold a long integer go to json, which
    accepts or refuses it with its own message."""
    if isinstance(body, bytes) and _LONG_NUMBER not in body.translate(_DIGITS_AS_ZERO):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
    try:
        return json.loads(body)
    except RecursionError as exc:
        raise ValueError("Not JSON: nested too deeply") from exc


def parsed_each[T, R](
    what: str, parse: Callable[[T], R | None], values: Iterable[T]
) -> list[R]:
    """`parse` of each value, leaving out None and the malformed ones (logged), so
    one bad item of a delivery or a poll page does not lose its neighbours."""
    parsed: list[R] = []
    for value in values:
        try:
            with malformed_as_value_error(what):
                result = parse(value)
        except ValueError as exc:
            logger.warning("skipped a malformed %s: %s", what, exc)
            continue
        if result is not None:
            parsed.append(result)
    return parsed
