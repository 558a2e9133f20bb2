"""The listening query parser: text to a `social.listening.nodes` tree.

The grammar and the meaning of each construct are documented in
`social/listening/__init__.py`. `parse_query` is the only entry point; it returns an
immutable tree, or raises `QuerySyntaxError`.
"""

import re
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from social.listening.nodes import (
    FIELDS,
    And,
    Field,
    Handle,
    Near,
    Node,
    Not,
    Or,
    Phrase,
    Prefix,
    Proximity,
    QuerySyntaxError,
    RuleError,
    Tag,
    is_positional,
    needs_words,
)
from social.listening.text import fold, is_handle, is_word, words_of

MIN_PREFIX = 3  # letters before a `*`: shorter stems match too much to be useful
MAX_ALTERNATIVES = 64  # spellings one term or phrase may expand to through variants
OPERAND = "a term, \"phrase\", #tag, @handle, field filter or '('"

_DIGITS = re.compile(r"[0-9]+")
# Every character starts one of these, so the matches tile the whole query.
_LEXEME = re.compile(
    r"""
      \s+
    | (?P<paren>[()])
    | "(?P<phrase>[^"]*)"(?:~(?P<slop>[0-9]+)|(?P<no_slop>~))?
    | (?P<quote>")
    | (?P<minus>-)(?=[^\s)])
    | (?P<dash>-)
    | (?P<word>[^\s()"]+)
    """,
    re.VERBOSE,
)
_LANG = re.compile(r"[a-z]{2,3}(?:-[a-z0-9]{1,8})*")
_PLATFORM = re.compile(r"[a-z][a-z0-9_]*")


def _too_broad_part(node: Node) -> Node:
    if isinstance(node, Or):
        for child in node.children:
            if not needs_words(child):
                return _too_broad_part(child)
    return node


def parse_query(
    query: str, variants: Mapping[str, Sequence[str]] | None = None
) -> Node:
    """Parse one rule's query into its syntax tree.

    `variants` maps a canonical term or phrase to misspellings that every occurrence
    of it in a term, phrase or proximity phrase also matches.

    Raises QuerySyntaxError (with `.position`) for malformed queries and for queries
    that can match without any positive term, phrase, #tag or @handle; RuleError for
    variants without words.
    """
    parser = _Parser(query, _variant_table(variants or {}))
    node = parser.parse()
    if not needs_words(node):
        part = _too_broad_part(node)
        raise QuerySyntaxError(
            "too broad: this part can match posts without any term, phrase, #tag or "
            "@handle (NOT, exclusions and field filters only narrow a search); "
            "add a term every match must contain",
            part.position,
        )
    return node


def _variant_table(
    variants: Mapping[str, Sequence[str]],
) -> dict[tuple[str, ...], tuple[tuple[str, ...], ...]]:
    table: dict[tuple[str, ...], tuple[tuple[str, ...], ...]] = {}
    for canonical, spellings in variants.items():
        key = words_of(canonical)
        if not key:
            raise RuleError(f"the variant entry {canonical!r} has no words")
        if isinstance(spellings, str):
            raise RuleError(
                f"the variants of {canonical!r} must be a list of spellings"
            )
        forms: list[tuple[str, ...]] = []
        for spelling in spellings:
            words = words_of(spelling)
            if not words:
                raise RuleError(
                    f"the variant {spelling!r} of {canonical!r} has no words"
                )
            forms.append(words)
        table[key] = tuple(dict.fromkeys([key, *forms]))
    return table


class _Lexeme(NamedTuple):
    kind: str  # ( ) phrase word AND OR NOT NEAR - end
    text: str
    position: int
    number: int | None = None

    def describe(self) -> str:
        if self.kind == "end":
            return "end of query"
        if self.kind == "phrase":
            return f'"{self.text}"'
        return f"'{self.text}'"


def _lex(query: str) -> list[_Lexeme]:
    out: list[_Lexeme] = []
    for found in _LEXEME.finditer(query):
        kind, start = found.lastgroup, found.start()
        if kind in ("phrase", "slop"):
            slop = found["slop"]
            number = None if slop is None else int(slop)
            out.append(_Lexeme("phrase", found["phrase"], start, number))
        elif kind == "word":
            out.append(_lex_word(found[0], start))
        elif kind == "paren":
            out.append(_Lexeme(found[0], found[0], start))
        elif kind == "minus":
            out.append(_Lexeme("-", "-", start))
        elif kind == "no_slop":
            raise QuerySyntaxError("expected a number after '~'", found.end())
        elif kind == "dash":
            raise QuerySyntaxError(f"expected {OPERAND} right after '-'", start + 1)
        elif kind == "quote":
            raise QuerySyntaxError(
                f"expected '\"' to close the phrase opened at character {start}",
                len(query),
            )
    out.append(_Lexeme("end", "", len(query)))
    return out


def _lex_word(word: str, position: int) -> _Lexeme:
    if word in ("AND", "OR", "NOT"):
        return _Lexeme(word, word, position)
    if word == "NEAR" or word.startswith("NEAR/"):
        if word == "NEAR":
            raise QuerySyntaxError(
                "expected '/' and a number after 'NEAR' (as in NEAR/3)", position + 4
            )
        if not _DIGITS.fullmatch(word, 5):
            raise QuerySyntaxError("expected a number after 'NEAR/'", position + 5)
        return _Lexeme("NEAR", word, position)
    return _Lexeme("word", word, position)


class _Parser:
    """Recursive descent over the lexemes; precedence NEAR > NOT > AND > OR."""

    def __init__(
        self, query: str, variants: dict[tuple[str, ...], tuple[tuple[str, ...], ...]]
    ) -> None:
        self.lexemes = _lex(query)
        self.index = 0
        self.variants = variants
        self.longest_variant = max((len(key) for key in variants), default=0)
        self.variant_starts = frozenset(key[0] for key in variants)

    def peek(self) -> _Lexeme:
        return self.lexemes[self.index]

    def take(self) -> _Lexeme:
        lexeme = self.lexemes[self.index]
        self.index += 1
        return lexeme

    def parse(self) -> Node:
        node = self.disjunction(None)
        extra = self.peek()
        if extra.kind != "end":
            # Every other lexeme continues an operand or an operator above.
            raise QuerySyntaxError(
                f"unexpected {extra.describe()} without a matching '('", extra.position
            )
        return node

    def disjunction(self, after: str | None) -> Node:
        children = [self.conjunction(after)]
        while self.peek().kind == "OR":
            self.take()
            children.append(self.conjunction("'OR'"))
        return _flat(Or, children)

    def conjunction(self, after: str | None) -> Node:
        children = [self.unary(after)]
        while True:
            kind = self.peek().kind
            if kind == "AND":
                self.take()
                children.append(self.unary("'AND'"))
            elif kind in ("(", "phrase", "word", "NOT", "-"):
                children.append(self.unary(None))
            else:
                return _flat(And, children)

    def unary(self, after: str | None) -> Node:
        lexeme = self.peek()
        if lexeme.kind in ("NOT", "-"):
            self.take()
            return Not(self.unary(f"'{lexeme.text}'"), lexeme.position)
        return self.proximity(after)

    def proximity(self, after: str | None) -> Node:
        start = self.peek().position
        left = self.primary(after)
        while self.peek().kind == "NEAR":
            operator = self.take()
            right_start = self.peek().position
            right = self.primary(f"'{operator.text}'")
            for side, position in ((left, start), (right, right_start)):
                if not is_positional(side):
                    raise QuerySyntaxError(
                        f"expected a term, phrase, #tag, @handle, wildcard or an OR "
                        f"group of them beside '{operator.text}'",
                        position,
                    )
            left = Near(left, right, int(operator.text[5:]), start)
        return left

    def primary(self, after: str | None) -> Node:
        lexeme = self.take()
        if lexeme.kind == "(":
            inner = self.disjunction("'('")
            close = self.peek()
            if close.kind != ")":
                raise QuerySyntaxError(
                    f"expected ')' to close the '(' at character {lexeme.position}, "
                    f"found {close.describe()}",
                    close.position,
                )
            self.take()
            return inner
        if lexeme.kind == "phrase":
            return self.phrase(lexeme)
        if lexeme.kind == "word":
            return self.word(lexeme.text, lexeme.position)
        where = f" after {after}" if after else ""
        raise QuerySyntaxError(
            f"expected {OPERAND}{where}, found {lexeme.describe()}", lexeme.position
        )

    def phrase(self, lexeme: _Lexeme) -> Node:
        words = words_of(lexeme.text)
        if not words:
            raise QuerySyntaxError(
                "expected words inside the quotes, found an empty phrase",
                lexeme.position,
            )
        alternatives = self.expand(words, lexeme.position)
        if lexeme.number is None or all(len(a) == 1 for a in alternatives):
            return Phrase(alternatives, lexeme.position)
        return Proximity(alternatives, lexeme.number, lexeme.position)

    def word(self, text: str, position: int) -> Node:
        if "~" in text:
            raise QuerySyntaxError(
                "expected '~' only right after a quoted phrase (as in \"a b\"~5)",
                position + text.index("~"),
            )
        if text[0] in "#@":
            return _sigil_word(text, position)
        name, colon, value = text.partition(":")
        if colon and name.isalpha():
            return _field(name, value, position)
        if "*" in text:
            return _prefix(text, position)
        words = words_of(text)
        if not words:
            raise QuerySyntaxError(
                f"expected a term with letters or digits, found '{text}'", position
            )
        return Phrase(self.expand(words, position), position)

    def expand(
        self, words: tuple[str, ...], position: int
    ) -> tuple[tuple[str, ...], ...]:
        """The written words, then every spelling their variant entries allow."""
        if self.variant_starts.isdisjoint(words):
            return (words,)
        results: list[tuple[str, ...]] = [()]
        i = 0
        while i < len(words):
            options: tuple[tuple[str, ...], ...] = ((words[i],),)
            step = 1
            for size in range(min(self.longest_variant, len(words) - i), 0, -1):
                forms = self.variants.get(words[i : i + size])
                if forms is not None:
                    options, step = forms, size
                    break
            results = [done + option for done in results for option in options]
            if len(results) > MAX_ALTERNATIVES:
                raise QuerySyntaxError(
                    f"the variants expand this to more than {MAX_ALTERNATIVES} "
                    "spellings",
                    position,
                )
            i += step
        return tuple(dict.fromkeys(results))


def _flat(kind: type[And] | type[Or], children: list[Node]) -> Node:
    if len(children) == 1:
        return children[0]
    flat: list[Node] = []
    for child in children:
        flat.extend(child.children if isinstance(child, kind) else (child,))
    return kind(tuple(flat), children[0].position)


def _sigil_word(text: str, position: int) -> Node:
    name = fold(text[1:])
    if text[0] == "#":
        if not is_word(name):
            raise QuerySyntaxError(
                "expected a tag name (letters, digits or '_') after '#'", position + 1
            )
        return Tag(name, position)
    if not is_handle(name):
        raise QuerySyntaxError("expected a handle after '@'", position + 1)
    return Handle(name, position)


def _field(name: str, value: str, position: int) -> Field:
    field = name.lower()
    at = position + len(name) + 1
    if field not in FIELDS:
        raise QuerySyntaxError(
            f"expected a field author:, lang: or platform:, found '{name}:' "
            "(quote text that contains ':')",
            position,
        )
    if not value:
        raise QuerySyntaxError(f"expected a value after '{name}:'", at)
    if field == "author":
        handle = fold(value).removeprefix("@")
        if not is_handle(handle):
            raise QuerySyntaxError("expected a handle after 'author:'", at)
        return Field("author", handle, position)
    folded = value.lower().replace("_", "-")
    if field == "lang":
        if not _LANG.fullmatch(folded):
            raise QuerySyntaxError(
                "expected a language code like 'en' or 'pt-br' after 'lang:'", at
            )
        return Field("lang", folded, position)
    if not _PLATFORM.fullmatch(value.lower()):
        raise QuerySyntaxError(
            "expected a platform name like 'x' after 'platform:'", at
        )
    return Field("platform", value.lower(), position)


def _prefix(text: str, position: int) -> Prefix:
    star = text.index("*")
    if star != len(text) - 1:
        raise QuerySyntaxError(
            "expected '*' only at the end of a word", position + star
        )
    stem = fold(text[:-1])
    if not is_word(stem):
        raise QuerySyntaxError("expected letters or digits before '*'", position)
    if len(stem) < MIN_PREFIX:
        raise QuerySyntaxError(
            f"expected at least {MIN_PREFIX} letters before '*'", position
        )
    return Prefix(stem, position)
