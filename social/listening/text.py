"""Folding and word-splitting shared by queries and posts, so both sides agree.

Folding is case-insensitive (`str.casefold`, so "STRASSE" matches "straße"), applies
Unicode compatibility decomposition (NFKD: full-width letters and ligatures become
plain letters) and removes accents: combining diacritical marks are stripped, so
"retard" matches "rétard" and "rétard" matches "retard" (emoji variation selectors
go too). Only the diacritic blocks are stripped; the vowel signs of Indic and other
scripts belong to their word and stay, so those scripts are not conflated.

A word starts with a letter, digit or `_` and runs on over those and combining
marks. Everything else separates words, so `acme-air` and `acme.air` are the
words `acme`, `air`. On top of the words:
- a hashtag is `#` right before a word, not right after one (`c#` is no tag);
- a handle is `@` right before a word, not right after one (`bob@acme.com` is no
  handle), and runs on over inner dots and hyphens: `@acme-air.bsky.social` is the
  handle "acme-air.bsky.social" over the four words acme, air, bsky, social.
"""

import functools
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass

# The combining diacritical blocks (base, extended, supplement, for symbols, half
# marks) and the variation selectors, which only choose how a character is drawn.
_DIACRITICS = re.compile(
    "[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f\ufe00-\ufe0f]"
)
# ASCII text splits fastest as bytes: every byte that is no word character becomes a
# space, then `split()` (a few microseconds for a post, against ~10 for a regex).
_WORD_BYTES = b"abcdefghijklmnopqrstuvwxyz0123456789_"
_ASCII_SPACES = bytes(byte if byte in _WORD_BYTES else 32 for byte in range(256))


@dataclass(frozen=True, slots=True)
class _Patterns:
    word: re.Pattern[str]
    tag: re.Pattern[str]
    handle: re.Pattern[str]


def _patterns(marks: str) -> _Patterns:
    # A word starts with a letter, digit or "_"; combining marks may follow.
    word = rf"\w[\w{marks}]*" if marks else r"\w+"
    before = rf"(?<![\w{marks}])" if marks else r"(?<!\w)"
    return _Patterns(
        word=re.compile(word),
        tag=re.compile(rf"{before}#({word})"),
        handle=re.compile(rf"{before}@({word}(?:[.\-]{word})*)"),
    )


_ASCII = _patterns("")


@functools.cache
def _unicode() -> _Patterns:
    """Patterns whose words also hold combining marks (built on first use).

    Python's `\\w` excludes combining marks, which would cut Devanagari or Thai
    words in pieces. Scanning the Basic Multilingual Plane for them takes about
    40 ms, once per process, when the first non-ASCII text is seen.
    """
    ranges: list[str] = []
    start = previous = -2
    for code in range(0x80, 0x10000):
        if unicodedata.category(chr(code))[0] != "M":
            continue
        if code != previous + 1:
            if start >= 0:
                ranges.append(f"{re.escape(chr(start))}-{re.escape(chr(previous))}")
            start = code
        previous = code
    ranges.append(f"{re.escape(chr(start))}-{re.escape(chr(previous))}")
    return _patterns("".join(ranges))


def _for(folded: str) -> _Patterns:
    return _ASCII if folded.isascii() else _unicode()


def _as_ascii(folded: str) -> bytes | None:
    """The folded text as ASCII bytes, each other character a "?" (offsets kept);
    None when one of those characters belongs to a word, so bytes would not do."""
    if folded.isascii():
        return folded.encode("ascii")
    encoded = folded.encode("ascii", "replace")
    at = encoded.find(b"?")
    while at >= 0:  # emoji, dashes and quotes are few: look at each
        if _is_word_char(folded[at]):
            return None
        at = encoded.find(b"?", at + 1)
    return encoded


def fold(text: str) -> str:
    """Lower-case, compatibility-decompose and strip accents (see module docstring)."""
    if text.isascii():
        return text.lower()
    return _DIACRITICS.sub("", unicodedata.normalize("NFKD", text.casefold()))


def split_words(folded: str) -> list[str]:
    """The words of an already folded text."""
    encoded = _as_ascii(folded)
    if encoded is None:
        return _unicode().word.findall(folded)
    return encoded.translate(_ASCII_SPACES).decode("ascii").split()


def words_of(text: str) -> tuple[str, ...]:
    """The folded words of `text` (how query terms and phrases read)."""
    return tuple(split_words(fold(text)))


def word_starts(folded: str) -> dict[int, int]:
    """Character offset of each word's first character -> the word's index."""
    encoded = _as_ascii(folded)
    if encoded is None:
        words = _unicode().word.finditer(folded)
    else:
        words = _ASCII.word.finditer(encoded.decode("ascii"))
    return {found.start(): index for index, found in enumerate(words)}


def tags_in(folded: str) -> list[tuple[int, str]]:
    """(offset of the word, tag name) of each hashtag in an already folded text."""
    if "#" not in folded:
        return []
    return [(found.start(1), found[1]) for found in _for(folded).tag.finditer(folded)]


def handles_in(folded: str) -> list[tuple[int, str]]:
    """(offset of the first word, handle) of each mention in an already folded text."""
    if "@" not in folded:
        return []
    pattern = _for(folded).handle
    return [(found.start(1), found[1]) for found in pattern.finditer(folded)]


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char == "_" or unicodedata.category(char)[0] == "M"


def _standalone(folded: str, marked: str) -> Iterator[int]:
    """End offsets of each occurrence of `marked` not preceded by a word character."""
    start = folded.find(marked)
    while start >= 0:
        if start == 0 or not _is_word_char(folded[start - 1]):
            yield start + len(marked)
        start = folded.find(marked, start + 1)


def has_tag(folded: str, marked: str) -> bool:
    """Whether the folded text holds the hashtag `marked` ("#name") as a whole tag.

    Same answer as looking the name up in `tags_in`, without running the pattern.
    """
    for end in _standalone(folded, marked):
        if end == len(folded) or not _is_word_char(folded[end]):
            return True
    return False


def has_handle(folded: str, mention: str) -> bool:
    """Whether the folded text holds the handle `mention` ("@name") as a whole
    handle: not followed by a word character, nor by a dot or hyphen and one."""
    for end in _standalone(folded, mention):
        after = folded[end : end + 1]
        if after and _is_word_char(after):
            continue
        if after in (".", "-") and _is_word_char(folded[end + 1 : end + 2] or " "):
            continue
        return True
    return False


def is_word(folded: str) -> bool:
    """Whether the folded text is exactly one word."""
    return bool(folded) and _for(folded).word.fullmatch(folded) is not None


def is_handle(folded: str) -> bool:
    """Whether the folded text is a whole handle (words joined by dots or hyphens)."""
    found = _for(folded).handle.fullmatch("@" + folded)
    return found is not None


def stream_of(words: list[str] | tuple[str, ...]) -> str:
    """The text the candidate automaton scans: the words between single spaces."""
    return " " + " ".join(words) + " "


def stream_key(words: tuple[str, ...], *, prefix: bool = False) -> str:
    """The automaton key that finds `words` as whole words (or as a word prefix)."""
    return " " + " ".join(words) + ("" if prefix else " ")
