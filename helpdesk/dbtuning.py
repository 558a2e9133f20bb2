"""psycopg's cache of parsed statements, sized for the write path's statements.

With client-side binding (Django's default), psycopg splits each statement at its
placeholders before it binds the values, and keeps the result in an LRU cache, but
only for statements up to 4,096 characters and 50 parameters. The write path's
combined statements (helpdesk.services.writebatch: the conversation, its facts,
rollups and events in one statement) are longer, so they were split again on every
call: about 1.3 ms of CPU per create on the 2-core machine, 14% of its in-process
time. Their shapes repeat, so they belong in the cache too.

The limits are module constants of psycopg (`psycopg._queries`); when a psycopg
release renames them this does nothing, and a test says so.
"""

from psycopg import _queries

STATEMENT_CHARACTERS = 65_536
STATEMENT_PARAMETERS = 2_000


def widen_statement_cache() -> bool:
    """Raise psycopg's limits for cached statements; False when they are gone."""
    if not hasattr(_queries, "MAX_CACHED_STATEMENT_LENGTH") or not hasattr(
        _queries, "MAX_CACHED_STATEMENT_PARAMS"
    ):
        return False
    _queries.MAX_CACHED_STATEMENT_LENGTH = max(
        _queries.MAX_CACHED_STATEMENT_LENGTH, STATEMENT_CHARACTERS
    )
    _queries.MAX_CACHED_STATEMENT_PARAMS = max(
        _queries.MAX_CACHED_STATEMENT_PARAMS, STATEMENT_PARAMETERS
    )
    return True
