"""The workspace's event-counter row as another connection sees it.

Tests of tenants.last_write and of the workers' transactions look at the row
while the code under test is still inside its transaction: free to lock at once
(its new value committed), or locked by that transaction.
"""

import psycopg
from psycopg import errors

from tests.perf.report import conninfo


def counter_seen_elsewhere(tenant_id: int) -> tuple[str, int | None]:
    """From another connection (the runtime role, the workspace's setting):
    ("free", committed value) when the counter row can be locked at once,
    ("locked", None) when a transaction holds it, ("none", None) when no
    committed row exists."""
    with psycopg.connect(conninfo(), autocommit=False) as other:
        other.execute(f"SET LOCAL app.tenant_id = {int(tenant_id)}")
        try:
            row = other.execute(
                "SELECT value FROM helpdesk_eventcounter WHERE tenant_id = %s"
                " FOR UPDATE NOWAIT",
                [tenant_id],
            ).fetchone()
        except errors.LockNotAvailable:
            return "locked", None
        finally:
            other.rollback()
    return ("free", int(row[0])) if row else ("none", None)
