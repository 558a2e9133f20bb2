"""The one way to open a tenant: `tenant_context()`.

It sets a ContextVar (read by the fail-closed managers) and opens a transaction whose
first statement on PostgreSQL is `SET LOCAL app.tenant_id = <int>`, which the RLS
policies read. `SET LOCAL` dies with the transaction, so nothing leaks to the next
request or task that reuses the connection (reference/tenancy.md P4, P5).

Only the edges call it: `TenantMiddleware`, `@tenant_task`, `tenant_db()` for
websocket consumers, and the few global views that act for one tenant (invitation
accept, operator actions). Code below the edges receives `tenant` explicitly.

`open_tenant_context(opener)` is the request's variant: the workspace is not known
before the transaction starts, and the opener's one statement both finds it and
applies the setting (a SQL function that runs `SET LOCAL` inside;
tenants/opening.py). The ContextVar, the atomic block and the exit rules are those
of `tenant_context`. What a read riding in that statement gave (the opener's
`along`, tenants.opening.Lateral) is `opened_along()` for the block.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol

from channels.db import database_sync_to_async
from django.db import connections, transaction

from tenants.exceptions import TenantContextConflict

if TYPE_CHECKING:
    from tenants.models import Tenant

_current_tenant_id: ContextVar[int | None] = ContextVar(
    "earshot_tenant_id", default=None
)
_current_user_id: ContextVar[int | None] = ContextVar("earshot_user_id", default=None)
_opened_along: ContextVar[Any] = ContextVar("earshot_opened_along", default=None)


def current_tenant_id() -> int | None:
    """The open tenant's id, for the managers and RLS plumbing only."""
    return _current_tenant_id.get()


def opened_along() -> Any:
    """What a read that rode in the opening statement of the open request gave
    (None outside `open_tenant_context`, or when none rode or it did not run)."""
    return _opened_along.get()


def current_user_scope() -> int | None:
    """The user whose own memberships may be listed across tenants, if any."""
    return _current_user_id.get()


def _set_local(setting: str, value: int | None, using: str) -> None:
    connection = connections[using]
    if connection.vendor != "postgresql":
        return
    if not connection.in_atomic_block:
        raise RuntimeError("SET LOCAL outside a transaction is a silent no-op")
    literal = "''" if value is None else str(int(value))
    with connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL {setting} = {literal}")


def _rolling_back(using: str) -> bool:
    return bool(connections[using].needs_rollback)


@contextmanager
def tenant_context(tenant: "Tenant | int", *, using: str = "default") -> Iterator[None]:
    """Open `tenant` for the enclosed block: ContextVar, transaction, SET LOCAL.

    Re-entering the same tenant opens a savepoint. Opening a different tenant inside
    an open one raises `TenantContextConflict`. When the block runs inside an outer
    transaction that is not a tenant's (tests, management commands), the setting is
    cleared again on exit so the outer transaction does not keep the tenant.
    """
    tenant_id = int(tenant if isinstance(tenant, int) else tenant.pk)
    current = _current_tenant_id.get()
    if current is not None and current != tenant_id:
        raise TenantContextConflict(
            f"tenant {tenant_id} opened inside tenant {current}"
        )
    token = _current_tenant_id.set(tenant_id)
    outer_atomic = connections[using].in_atomic_block
    try:
        with transaction.atomic(using=using):
            _set_local("app.tenant_id", tenant_id, using)
            yield
            # A block marked for rollback returns to its savepoint, which undoes
            # the SET LOCAL as well; no statement may run before that.
            if outer_atomic and current is None and not _rolling_back(using):
                _set_local("app.tenant_id", None, using)
    finally:
        _current_tenant_id.reset(token)


class Opened(Protocol):
    """What an opener returns: at least the workspace it opened."""

    @property
    def tenant(self) -> "Tenant": ...


@contextmanager
def open_tenant_context[O: Opened](
    opener: Callable[[], O], *, using: str = "default"
) -> Iterator[O]:
    """Open the workspace `opener` finds, with the setting applied by its statement.

    `opener` runs first inside the block's transaction. On PostgreSQL its first
    statement must apply `app.tenant_id` of the workspace it returns, for this
    transaction only (`SET LOCAL` inside a function, or `set_config(..., true)`),
    so BEGIN, that statement and COMMIT are the whole cost of opening. When it
    raises (unknown workspace, bad credentials: 404), the transaction is rolled
    back, undoing whatever it applied, and no tenant is open.
    Then, as in `tenant_context`: the ContextVar holds the workspace for the
    block, a different workspace inside an open one raises `TenantContextConflict`,
    and inside an outer transaction that is not a tenant's the setting is cleared
    on exit.
    """
    current = _current_tenant_id.get()
    outer_atomic = connections[using].in_atomic_block
    with transaction.atomic(using=using):
        opened = opener()
        tenant_id = int(opened.tenant.pk)
        if current is not None and current != tenant_id:
            raise TenantContextConflict(
                f"tenant {tenant_id} opened inside tenant {current}"
            )
        token = _current_tenant_id.set(tenant_id)
        along = _opened_along.set(getattr(opened, "along", None))
        try:
            yield opened
            if outer_atomic and current is None and not _rolling_back(using):
                _set_local("app.tenant_id", None, using)
        finally:
            _opened_along.reset(along)
            _current_tenant_id.reset(token)


@contextmanager
def user_scope(user_id: int, *, using: str = "default") -> Iterator[None]:
    """Let the block list `user_id`'s own memberships across tenants (read only).

    The workspace picker needs this before any tenant is chosen; the Membership
    table carries a second, SELECT-only RLS policy keyed on `app.user_id`.
    """
    token = _current_user_id.set(int(user_id))
    outer_atomic = connections[using].in_atomic_block
    try:
        with transaction.atomic(using=using):
            _set_local("app.user_id", user_id, using)
            yield
            if outer_atomic and not _rolling_back(using):
                _set_local("app.user_id", None, using)
    finally:
        _current_user_id.reset(token)


def tenant_db[**P, R](tenant_id: int, fn: Callable[P, R]) -> Callable[P, Any]:
    """Wrap `fn` for async callers: one thread hop, `tenant_context`, then `fn`.

    The tenant setting is applied inside the same sync call that runs the queries,
    which is the only arrangement that works with Django's async bridge.
    """

    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        with tenant_context(tenant_id):
            return fn(*args, **kwargs)

    wrapped: Callable[P, Any] = database_sync_to_async(run)
    return wrapped
