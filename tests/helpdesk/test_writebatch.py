"""helpdesk.services.writebatch on PostgreSQL: deferred INSERTs of one table share
one INSERT in the trailing statement (a batch of items opens many conversations,
each with its care fact; one CTE per fact cost the server its planning)."""

from datetime import UTC, datetime

import pytest

from helpdesk.models import Contact
from helpdesk.services import writebatch
from tenants.context import tenant_context
from tests.factories import make_workspace
from tests.statements import count_statements

pytestmark = pytest.mark.django_db(transaction=True)

AT = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)


def test_inserts_of_one_table_are_one_insert_in_the_trailing_statement() -> None:
    tenant = make_workspace("Write Batch")
    with tenant_context(tenant):
        with count_statements() as seen, writebatch.write_batch() as batch:
            batch.insert([Contact(tenant=tenant, display_name="a")])
            batch.add("SELECT 1", [])
            batch.insert(
                [
                    Contact(tenant=tenant, display_name="b"),
                    Contact(tenant=tenant, display_name="c", created_at=AT),
                ]
            )
        rows = list(
            Contact.objects.order_by("pk").values_list("display_name", "created_at")
        )

    assert len(seen) == 1
    assert seen.sql[0].count("INSERT INTO") == 1
    assert seen.sql[0].endswith("SELECT 1")
    assert [name for name, _at in rows] == ["a", "b", "c"]
    assert rows[2][1] == AT


def test_a_batch_without_inserts_runs_its_statements_as_before() -> None:
    tenant = make_workspace("Write Batch Plain")
    with (
        tenant_context(tenant),
        count_statements() as seen,
        writebatch.write_batch() as batch,
    ):
        batch.add("SELECT 1", [])
        batch.add("SELECT 2", [])

    assert seen.sql == ["WITH w0 AS (SELECT 1) SELECT 2"]
