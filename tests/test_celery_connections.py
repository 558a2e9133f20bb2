"""Around a task, the worker gives its database connections back to the pool and
keeps the pool open (helpdesk.celery._keep_the_connection_pool), where Celery's
Django fixup closed the pool of a prefork child before and after every task."""

from importlib import import_module
from types import SimpleNamespace
from typing import Any

import pytest
from django.db import connection as default_connection

from helpdesk.celery import app

pytestmark = pytest.mark.django_db(transaction=True)

# Untyped here: the stubs know neither the worker fixup nor Django's pool.
DjangoWorkerFixup: Any = import_module("celery.fixups.django").DjangoWorkerFixup
connection: Any = default_connection
_PREFORK = SimpleNamespace(pool_cls="celery.concurrency.prefork:TaskPool")


def _fixup() -> Any:
    fixup = DjangoWorkerFixup(app)
    fixup.worker = _PREFORK
    return fixup


def _task(*, eager: bool = False) -> Any:
    return SimpleNamespace(request=SimpleNamespace(is_eager=eager))


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid: int = cursor.fetchone()[0]
    return pid


@pytest.fixture
def pooled() -> Any:
    if connection.vendor != "postgresql" or not connection.pool:
        pytest.fail("these tests need PostgreSQL with Django's connection pool")
    connection.ensure_connection()
    return connection.pool


def test_tasks_give_the_connection_back_and_keep_the_pool(pooled: Any) -> None:
    fixup = _fixup()
    _backend_pid()
    opened = pooled.get_stats()["connections_num"]

    fixup.on_task_prerun(_task())
    assert connection.connection is None  # back in the pool
    _backend_pid()  # the task's statement, on a pooled session
    fixup.on_task_postrun(_task())

    assert connection.connection is None
    assert connection.pool is pooled
    assert not pooled.closed
    _backend_pid()
    assert pooled.get_stats()["connections_num"] == opened  # no new session


def test_an_unusable_connection_is_not_kept(
    pooled: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fixup = _fixup()
    broken = connection.connection
    connection.errors_occurred = True
    monkeypatch.setattr(connection, "is_usable", lambda: False)
    closed: list[object] = []
    monkeypatch.setattr(connection, "close", lambda: closed.append(broken))

    fixup.on_task_postrun(_task())

    assert closed == [broken]
    assert not pooled.closed


def test_an_eager_task_leaves_the_connection_alone(pooled: Any) -> None:
    fixup = _fixup()
    held = connection.connection

    fixup.on_task_prerun(_task(eager=True))
    fixup.on_task_postrun(_task(eager=True))

    assert connection.connection is held
    assert not pooled.closed
