"""Commit a transaction together with its last statement (PostgreSQL).

The workspace's event-counter row (helpdesk.events) stays locked from the
statement that allocates event sequences to COMMIT, and every write of the
workspace waits for it. Sent one after the other, that statement and COMMIT
keep the row locked for a round trip and for all the Python in between: the
service returning, the view building its answer, the middleware and, in a busy
process, the wait for the GIL. On the bench machine the holder was idle in
transaction for about half of the time it held the row (tests/perf/RESULTS.md,
ninth session).

A caller whose block ends its transaction's writes opens
`commit_with_last_write()` around it (an API view around its service call,
for instance). Its service marks its last statement (a write batch's
`last_write`), and `execute_last` sends that statement and COMMIT in one
pipeline, in one write: PostgreSQL releases the row when COMMIT completes,
before anything returns to Python. The counter statement, the COMMIT and the number of
statements are the same; one round trip less.

It commits only when the block's transaction is the outermost atomic block of
the connection, with no savepoint open and nothing marked for rollback.
Anywhere else (inside a test's transaction, a caller's savepoint, SQLite), the
statement runs as usual and Django commits when the atomic block ends.

After such a commit nothing more may be sent inside the block: a statement
would start a second transaction without the workspace's setting. Until the
block ends, the connection refuses one with `StatementAfterCommit`. When
Django's atomic block ends, its COMMIT finds nothing to commit and it runs the
on-commit callbacks as usual (events are published after the commit, as
before). A failure after the commit cannot undo it: then the block itself runs
the callbacks, so that nothing committed is left unpublished or undelivered.
"""

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from contextvars import ContextVar
from typing import Any

from django.db import connections
from psycopg import Pipeline, generators
from psycopg.abc import PQGen

logger = logging.getLogger(__name__)

__all__ = ["StatementAfterCommit", "commit_with_last_write", "execute_last"]


class StatementAfterCommit(RuntimeError):
    """A statement sent after `execute_last` committed the block's transaction."""


class _Scope:
    __slots__ = ("committed", "stack", "using")

    def __init__(self, using: str, stack: ExitStack) -> None:
        self.using, self.stack, self.committed = using, stack, False


_scope: ContextVar[_Scope | None] = ContextVar("last_write", default=None)


@contextmanager
def commit_with_last_write(using: str = "default") -> Iterator[None]:
    """Let the block's last statement commit its transaction (see the module).

    Open it only around code after which the transaction writes nothing more.
    When the block fails after its statement committed (the answer could not be
    built, the connection dropped), what was committed stays: the on-commit
    callbacks registered so far (publishing its events, queueing its tasks) run
    before the error goes on, instead of being dropped with a rollback that no
    longer undoes anything.
    """
    scope = _Scope(using, ExitStack())
    token = _scope.set(scope)
    try:
        with scope.stack:
            yield
    except BaseException:
        if scope.committed:
            _run_commit_hooks(using)
        raise
    finally:
        _scope.reset(token)


def _run_commit_hooks(using: str) -> None:
    """Run and clear the connection's on-commit callbacks, each one whatever the
    others do (an error is already on its way out)."""
    connection = connections[using]
    hooks, connection.run_on_commit = connection.run_on_commit, []
    for hook in hooks:  # (savepoint ids, callback, robust)
        callback = hook[1]
        try:
            callback()
        except Exception:
            logger.exception("on-commit callback %r failed", callback)


def _may_commit(scope: _Scope | None, using: str) -> bool:
    if scope is None or scope.using != using or scope.committed:
        return False
    connection = connections[using]
    return (
        connection.vendor == "postgresql"
        and connection.in_atomic_block
        # The outermost block commits on exit (not a transaction Django found
        # open), and no savepoint of a nested block is open.
        and connection.commit_on_exit
        and not any(connection.savepoint_ids)
        and not connection.needs_rollback
    )


def execute_last(
    sql: str, params: Sequence[Any], *, commit: bool = True, using: str = "default"
) -> tuple[Any, ...] | None:
    """Run a statement and return its first row.

    `commit`: the caller writes nothing after it. Then, inside
    `commit_with_last_write()` where allowed, the statement, COMMIT and the
    pipeline's Sync leave in one write (`_send_with_commit`); a failing
    statement raises as usual and leaves the transaction to be rolled back (the
    COMMIT is skipped with it). Otherwise it is an ordinary statement.
    """
    connection = connections[using]
    scope = _scope.get()
    with connection.cursor() as cursor:
        if not commit or scope is None or not _may_commit(scope, using):
            cursor.execute(sql, params)
            first: tuple[Any, ...] | None = cursor.fetchone()
            return first
        # Both through Django's cursor, so its wrappers and query log see the
        # statement, then COMMIT; its innermost step (`_execute`, which would
        # send each) holds the statement until COMMIT comes, then sends both.
        wrapper: Any = cursor
        held: list[tuple[str, Any]] = []

        def send(*_: Any) -> None:
            _send_with_commit(connection, wrapper.cursor, *held[0])
            # The query log reads COMMIT's text from here under client-side
            # binding: not the statement's.
            wrapper.cursor._query = None

        wrapper._execute = lambda sql, params, *_: held.append((sql, params))
        try:
            cursor.execute(sql, params)
            wrapper._execute = send
            cursor.execute("COMMIT", None)
        finally:
            del wrapper._execute
        row: tuple[Any, ...] | None = cursor.fetchone()
    scope.committed = True
    scope.stack.enter_context(connection.execute_wrapper(_refuse))
    return row


def _send_with_commit(connection: Any, cur: Any, sql: str, params: Any) -> None:
    """Send the statement, COMMIT and a pipeline Sync in one write, then read
    their results, the statement's into psycopg's cursor `cur` (psycopg's
    pipeline flushes after each command and waits for the socket each time:
    about 135k instructions more per call, callgrind).

    It drives psycopg's own steps (the query's conversion, its prepared-statement
    cache, the pipeline's result queue), so preparing, errors and the cursor's
    result are as with `cursor.execute` inside `connection.pipeline()`: a failing
    statement raises its error and the COMMIT is skipped (the transaction stays
    aborted, to be rolled back).
    """
    connection.validate_no_broken_transaction()
    raw = connection.connection
    with connection.wrap_database_errors, raw.lock:
        if raw._pipeline is not None:
            raise RuntimeError("execute_last inside a psycopg pipeline")
        pipeline = raw._pipeline = Pipeline(raw, _no_lock=True)
        try:
            raw.wait(pipeline._enter_gen())
            try:
                raw.wait(_pipelined(raw, pipeline, cur, sql, params))
            except BaseException as exc:
                _drain(raw, pipeline, exc)
                raise
            pipeline._exit(None)
        finally:
            raw._pipeline = None


def _pipelined(
    raw: Any, pipeline: Pipeline, cur: Any, sql: str, params: Any
) -> PQGen[None]:
    # What Cursor.execute does in a pipeline, without its flush per command.
    yield from cur._start_query(sql)
    pgq = cur._convert_query(sql, params)
    yield from cur._maybe_prepare_gen(pgq)
    cur._last_query = sql
    yield from raw._prepared.maintain_gen(raw)
    yield from raw._exec_command(b"COMMIT")
    pipeline._enqueue_sync()
    commands = pipeline.command_queue
    while commands:
        commands.popleft()()
    yield from generators.send(raw.pgconn)
    yield from pipeline._fetch_gen(flush=False)


def _drain(raw: Any, pipeline: Pipeline, exc: BaseException) -> None:
    """Leave pipeline mode after a failure, as psycopg's Pipeline does."""
    if pipeline.command_queue or pipeline.result_queue:
        try:
            raw.wait(pipeline._exit_gen())
        except Exception as exc2:
            logger.warning("error ignored terminating %r: %s", pipeline, exc2)
    pipeline._exit(exc)


def _refuse(
    execute: Callable[..., Any],
    sql: str,
    params: Any,
    many: bool,
    context: dict[str, Any],
) -> Any:
    raise StatementAfterCommit(
        "this transaction was committed with its last write; "
        f"nothing more may run in it: {sql[:120]}"
    )
