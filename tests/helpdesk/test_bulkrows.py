"""helpdesk.services.bulkrows on PostgreSQL: rows read from one JSON document
write what Django's bulk_create and field preparation write, and any value JSON
cannot carry exactly takes Django's path."""

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from helpdesk.models import Contact, Conversation
from helpdesk.services.bulkrows import insert_rows, update_rows
from tenants.context import tenant_context
from tenants.exceptions import TenantMismatch
from tenants.models import Brand, Tenant
from tests.factories import make_workspace
from tests.statements import count_statements

pytestmark = pytest.mark.django_db(transaction=True)

AT = datetime(2026, 12, 6, 8, 0, 0, 123456, tzinfo=UTC)
COLUMNS = [
    f.attname
    for f in Conversation._meta.concrete_fields
    if f.attname not in ("id", "contact_id")
]


def _conversations(tenant: Tenant, contact: Contact, **fields: Any) -> list[Any]:
    brand = Brand.objects.order_by("id")[0]
    return [
        Conversation(
            tenant=tenant,
            brand=brand,
            contact=contact,
            platform="sandbox",
            origin=Conversation.Origin.MENTION,
            public_thread_ref=f"t-{n}",
            preview="it's \\ 'quoted' \"twice\" \u2013 ünïcode 🚀",
            engagement_per_hour=0.1 + n,
            last_activity_at=AT + timedelta(seconds=n),
            created_at=AT,
            **fields,
        )
        for n in range(3)
    ]


def _stored(ids: list[int]) -> list[tuple[Any, ...]]:
    return list(
        Conversation.objects.filter(pk__in=ids)
        .order_by("public_thread_ref")
        .values_list(*COLUMNS)
    )


def test_insert_rows_writes_what_bulk_create_writes_in_one_statement() -> None:
    tenant = make_workspace("Bulk Rows")
    with tenant_context(tenant):
        first = Contact.objects.create(tenant=tenant, display_name="first")
        second = Contact.objects.create(tenant=tenant, display_name="second")
        theirs = Conversation.objects.bulk_create(_conversations(tenant, first))
        mine = _conversations(tenant, second)
        with count_statements() as seen:
            returned = insert_rows(mine)

        assert returned == mine
        assert len(seen) == 1
        assert "json_populate_recordset" in seen.sql[0]
        assert all(row.pk is not None and not row._state.adding for row in mine)
        assert [row.contact_id for row in mine] == [second.pk] * 3
        assert _stored([row.pk for row in mine]) == _stored([row.pk for row in theirs])
        # Ids in the rows' order.
        assert [row.public_thread_ref for row in mine] == [
            Conversation.objects.get(pk=row.pk).public_thread_ref for row in mine
        ]


def test_insert_rows_stamps_the_open_tenant_and_refuses_another() -> None:
    tenant = make_workspace("Bulk Rows Stamp")
    other = make_workspace("Bulk Rows Other")
    with tenant_context(tenant):
        unstamped = insert_rows([Contact(display_name="no tenant set")])
        assert unstamped[0].tenant_id == tenant.pk
        assert Contact.objects.filter(pk=unstamped[0].pk).exists()
        before = Contact.objects.count()
        with pytest.raises(TenantMismatch):
            insert_rows([Contact(tenant=other, display_name="theirs")])
        assert Contact.objects.count() == before
    with tenant_context(other):
        assert not Contact.objects.filter(display_name="theirs").exists()


def test_a_value_json_cannot_carry_takes_bulk_create() -> None:
    tenant = make_workspace("Bulk Rows NaN")
    with tenant_context(tenant):
        contact = Contact.objects.create(tenant=tenant, display_name="c")
        rows = _conversations(tenant, contact)
        rows[1].engagement_per_hour = math.nan
        with count_statements() as seen:
            insert_rows(rows)
        stored = Conversation.objects.get(pk=rows[1].pk)

    assert len(seen) == 1
    assert "json_populate_recordset" not in seen.sql[0]
    assert math.isnan(stored.engagement_per_hour)


def test_an_unsaved_related_row_is_refused_as_bulk_create_refuses_it() -> None:
    tenant = make_workspace("Bulk Rows Unsaved")
    with tenant_context(tenant):
        rows = _conversations(tenant, Contact(tenant=tenant, display_name="new"))
        with pytest.raises(ValueError, match="unsaved related object"):
            insert_rows(rows)
        assert Conversation.objects.count() == 0


def test_update_rows_writes_the_named_fields_only() -> None:
    tenant = make_workspace("Bulk Rows Update")
    with tenant_context(tenant):
        contact = Contact.objects.create(tenant=tenant, display_name="c")
        rows = insert_rows(_conversations(tenant, contact))
        untouched = _stored([rows[2].pk])
        for n, row in enumerate(rows[:2]):
            row.status = Conversation.Status.PENDING
            row.sla_due_at = AT + timedelta(hours=n)
            row.snoozed_until = None
            row.customer_message_count = 7 + n
            row.preview = "changed"  # not named: not written
        with count_statements() as seen:
            update_rows(
                rows[:2],
                ["status", "sla_due_at", "snoozed_until", "customer_message_count"],
            )
        stored = list(
            Conversation.objects.filter(pk__in=[rows[0].pk, rows[1].pk])
            .order_by("pk")
            .values_list("status", "sla_due_at", "customer_message_count", "preview")
        )

        assert len(seen) == 1
        assert "json_populate_recordset" in seen.sql[0]
        assert stored == [
            ("pending", AT, 7, _conversations(tenant, contact)[0].preview),
            ("pending", AT + timedelta(hours=1), 8, rows[2].preview),
        ]
        assert _stored([rows[2].pk]) == untouched


def test_update_rows_with_a_value_json_cannot_carry_uses_the_arrays() -> None:
    tenant = make_workspace("Bulk Rows Update NaN")
    with tenant_context(tenant):
        contact = Contact.objects.create(tenant=tenant, display_name="c")
        rows = insert_rows(_conversations(tenant, contact))
        rows[0].engagement_per_hour = math.inf
        rows[1].engagement_per_hour = 2.5
        with count_statements() as seen:
            update_rows(rows[:2], ["engagement_per_hour"])
        stored = list(
            Conversation.objects.order_by("pk").values_list(
                "engagement_per_hour", flat=True
            )
        )

    assert len(seen) == 1
    assert "unnest(" in seen.sql[0]
    assert stored == [math.inf, 2.5, 2.1]
