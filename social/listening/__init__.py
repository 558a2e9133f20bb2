"""Listening rules (DESIGN R1): a boolean query language per brand rule, and one
compiled matcher over many rules.

Grammar (EBNF; keywords are upper-case, lower-case `and`/`or`/`not`/`near` are words):

    query     = disjunct , { "OR" , disjunct } ;
    disjunct  = unary , { [ "AND" ] , unary } ;          (adjacent = implicit AND)
    unary     = ( "NOT" | "-" ) , unary | proximity ;     ("-" touches its operand)
    proximity = primary , { "NEAR/" , number , primary } ;
    primary   = "(" , query , ")" | atom ;
    atom      = '"' , text , '"' , [ "~" , number ]      (phrase, proximity phrase)
              | "#" , word | "@" , handle                 (hashtag, mention)
              | ( "author" | "lang" | "platform" ) , ":" , value
              | word , "*"                                (prefix, 3+ letters)
              | word ;                                    (term)

Precedence, tightest first: NEAR, NOT/-, AND, OR. NEAR takes terms, phrases,
#tags, @handles, wildcards, other NEARs, or parenthesised OR groups of them.

Meaning:
- Text is folded before matching, on both sides: case-insensitive, NFKD and accents
  removed, so "retard" and "rétard" match each other (`text.py` has the details).
- Words are runs of letters, digits and `_`; any other character separates them.
  A term or phrase matches whole words, in order, ignoring `#` and `@` (`acme`
  matches "Acme", "#acme" and "@acme"); `#acme` matches only the hashtag and
  `@acme` only the mention. A bare term with punctuation is a phrase (`acme-air`
  is "acme air"). Inside quotes `*`, `#` and `@` are punctuation.
- `refund*` matches words that start with "refund" (3 or more letters before `*`).
- `"a b"~n`: the words in any order with at most n other words among them;
  `a NEAR/n b`: an occurrence of each, not overlapping, with at most n words
  between them. So `"late flight"~5` and `late NEAR/5 flight` agree.
- `author:acme` compares the author's handle (folded, `@` optional); `lang:en`
  matches "en" and "en-GB"; `platform:x` the post's platform.
- Variants: with `{"acme air": ["acmeair", "akme air"]}` every term, phrase or
  proximity phrase whose words contain "acme air" also matches those spellings.
  Adjacent bare terms (`acme air`) are two terms, not a phrase, and are not
  expanded; tags, handles and wildcards are never expanded.
- A query that can match with no term, phrase, #tag or @handle (`NOT spam`,
  `lang:en`, `acme OR -spam`) is refused as too broad.

API: `parse_query` validates one query (for forms) and returns its tree;
`compile_rules(rules)` returns a `Matcher` whose `match(post)` lists the
`RuleMatch`es. Errors are `RuleError` and its `QuerySyntaxError` (`.position`).
"""

from social.listening.matcher import (
    Action,
    Matcher,
    Post,
    Rule,
    RuleMatch,
    compile_rules,
)
from social.listening.nodes import (
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
)
from social.listening.query import parse_query
from social.listening.text import fold, words_of

__all__ = [
    "Action",
    "And",
    "Field",
    "Handle",
    "Matcher",
    "Near",
    "Node",
    "Not",
    "Or",
    "Phrase",
    "Post",
    "Prefix",
    "Proximity",
    "QuerySyntaxError",
    "Rule",
    "RuleError",
    "RuleMatch",
    "Tag",
    "compile_rules",
    "fold",
    "parse_query",
    "words_of",
]
