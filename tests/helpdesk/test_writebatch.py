"""helpdesk.services.writebatch on PostgreSQL: deferred INSERTs of one table share
one INSERT in the trailing statement (a batch of items opens many conversations,
each with its care fact; one CTE per fact cost the server its planning), read
from one JSON document when every value is one JSON carries exactly."""

import math
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from helpdesk.models import Contact, Conversation, Event, Message
from helpdesk.services import writebatch
from tenants.context import tenant_context
from tenants.models import Brand, Tenant
from tests.factories import make_workspace
from tests.helpdesk.conftest import make_account
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


def _conversations(tenant: Tenant, contact: Contact, prefix: str) -> list[Any]:
    brand = Brand.objects.order_by("id")[0]
    return [
        Conversation(
            tenant=tenant,
            brand=brand,
            contact=contact,
            platform="sandbox",
            origin=Conversation.Origin.MENTION,
            public_thread_ref=f"{prefix}-{n}",
            preview="it's \\ 'quoted' \"twice\" %s \u2013 ünïcode 🚀",
            engagement_per_hour=0.1 + n,
            last_activity_at=AT + timedelta(microseconds=123456 + n),
            created_at=AT,
        )
        for n in range(3)
    ]


def _stored(prefix: str, *, leave: tuple[str, ...] = ()) -> list[tuple[Any, ...]]:
    columns = [
        f.attname
        for f in Conversation._meta.concrete_fields
        if f.attname not in ("id", "public_thread_ref", *leave)
    ]
    rows = Conversation.objects.filter(public_thread_ref__startswith=f"{prefix}-")
    return list(rows.order_by("pk").values_list("public_thread_ref", *columns))


def test_plain_rows_are_read_from_one_json_document_as_django_writes_them() -> None:
    tenant = make_workspace("Write Batch Json")
    with tenant_context(tenant):
        contact = Contact.objects.create(tenant=tenant, display_name="c")
        Conversation.objects.bulk_create(_conversations(tenant, contact, "django"))
        first, *rest = _conversations(tenant, contact, "batch")
        with count_statements() as seen, writebatch.write_batch() as batch:
            batch.insert([first])
            batch.add("SELECT 1", [])
            batch.insert(rest)
        django, batched = _stored("django"), _stored("batch")

    assert len(seen) == 1
    assert seen.sql[0].count("INSERT INTO") == 1
    assert "json_populate_recordset" in seen.sql[0]
    assert " VALUES " not in seen.sql[0]
    # The same columns as Django writes, ids in the rows' order.
    assert [row[0] for row in batched] == ["batch-0", "batch-1", "batch-2"]
    assert [row[1:] for row in batched] == [row[1:] for row in django]


def test_rows_with_sql_values_keep_the_values_list() -> None:
    tenant = make_workspace("Write Batch Sql")
    with tenant_context(tenant):
        with count_statements() as seen, writebatch.write_batch() as batch:
            batch.insert([Contact(tenant=tenant, display_name="a", created_at=AT)])
            batch.insert(
                [Contact(tenant=tenant, display_name="b", created_at=AT)],
                sql=[{"display_name": writebatch.Sql("upper(%s)", ["b"])}],
            )
        rows = list(
            Contact.objects.order_by("pk").values_list("display_name", "created_at")
        )

    assert len(seen) == 1
    assert "json_populate_recordset" not in seen.sql[0]
    assert seen.sql[0].count("INSERT INTO") == 1
    assert rows == [("a", AT), ("B", AT)]


def test_a_value_json_cannot_carry_keeps_the_values_list() -> None:
    tenant = make_workspace("Write Batch NaN")
    with tenant_context(tenant):
        contact = Contact.objects.create(tenant=tenant, display_name="c")
        Conversation.objects.bulk_create(_conversations(tenant, contact, "django"))
        first, *rest = _conversations(tenant, contact, "nan")
        rest[0].engagement_per_hour = math.nan  # mid-row, in the second call
        with count_statements() as seen, writebatch.write_batch() as batch:
            batch.insert([first])
            batch.insert(rest)
        stored = list(
            Conversation.objects.filter(public_thread_ref__startswith="nan-")
            .order_by("pk")
            .values_list("public_thread_ref", "engagement_per_hour")
        )
        others = _stored("nan", leave=("engagement_per_hour",))
        django = _stored("django", leave=("engagement_per_hour",))

    assert len(seen) == 1
    assert "json_populate_recordset" not in seen.sql[0]
    assert seen.sql[0].count("INSERT INTO") == 1
    assert [ref for ref, _ in stored] == ["nan-0", "nan-1", "nan-2"]
    assert stored[0][1] == 0.1
    assert math.isnan(stored[1][1])
    assert stored[2][1] == 2.1
    assert [row[1:] for row in others] == [row[1:] for row in django]


def test_a_field_json_does_not_carry_keeps_the_values_list() -> None:
    tenant = make_workspace("Write Batch Payload")
    with tenant_context(tenant):
        with count_statements() as seen, writebatch.write_batch() as batch:
            batch.insert(
                [
                    Event(tenant=tenant, seq=n, type="x", payload={"n": n, "s": "é"})
                    for n in (1, 2)
                ]
            )
        stored = list(Event.objects.order_by("pk").values_list("seq", "payload"))

    assert len(seen) == 1
    assert "json_populate_recordset" not in seen.sql[0]
    assert stored == [(1, {"n": 1, "s": "é"}), (2, {"n": 2, "s": "é"})]


def test_a_sequenced_insert_prepares_only_what_the_field_would_change() -> None:
    """insert_with_sequences passes plain values as they are and every other
    one through its field (an int for a float, a number for text): the row is
    the one Django's own save writes."""
    tenant = make_workspace("Write Batch Sequenced")
    account = make_account(tenant)
    with tenant_context(tenant):
        contact = Contact.objects.create(tenant=tenant, display_name="c")
        (conversation,) = _conversations(tenant, contact, "seq")[:1]
        conversation.save()

        def message(external_id: str) -> Message:
            return Message(
                tenant=tenant,
                conversation=conversation,
                account=account,
                platform="sandbox",
                direction=Message.Direction.IN,
                external_id=external_id,
                text=12345,  # type: ignore[misc]  # a TextField makes it "12345"
                sentiment_score=1,  # a FloatField makes it 1.0
                client_ref=UUID("12345678-1234-5678-1234-567812345678"),
                send_after=AT,
                created_at=AT,
            )

        saved = message("saved")
        saved.seq = 7
        saved.save(force_insert=True)
        inserted = message("inserted")
        with count_statements() as seen:
            assert writebatch.insert_with_sequences(inserted, events=2, dedupe=True)
            assert not writebatch.insert_with_sequences(
                message("inserted"), events=0, dedupe=True
            )
        columns = [
            f.attname
            for f in Message._meta.concrete_fields
            if f.attname not in ("id", "external_id", "seq")
        ]
        rows = {
            row[0]: row[1:]
            for row in Message.objects.values_list("external_id", *columns)
        }

    assert len(seen) == 2
    assert inserted.seq == 1
    assert rows["inserted"] == rows["saved"]
    assert rows["inserted"][columns.index("text")] == "12345"
    score = rows["inserted"][columns.index("sentiment_score")]
    assert (type(score), score) == (float, 1.0)


def test_an_update_prepares_only_what_the_field_would_change() -> None:
    """WriteBatch.update passes plain values as they are and every other one
    through its field: the row is the one Django's own save writes."""
    tenant = make_workspace("Write Batch Update")
    with tenant_context(tenant):
        contact = Contact.objects.create(tenant=tenant, display_name="c")
        batched, saved = _conversations(tenant, contact, "upd")[:2]
        Conversation.objects.bulk_create([batched, saved])
        names = ["engagement_per_hour", "preview", "snoozed_until", "sentiment"]
        for conversation in (batched, saved):
            conversation.engagement_per_hour = 3  # a FloatField makes it 3.0
            conversation.preview = 404  # a CharField makes it "404"
            conversation.snoozed_until = AT + timedelta(hours=1)
            conversation.sentiment = "negative"
        saved.save(update_fields=names)
        with count_statements() as seen, writebatch.write_batch() as batch:
            batch.update(batched, names)
        rows = {
            row[0]: row[1:]
            for row in Conversation.objects.values_list("public_thread_ref", *names)
        }

    assert len(seen) == 1
    assert rows["upd-0"] == rows["upd-1"]
    assert rows["upd-0"] == (3.0, "404", AT + timedelta(hours=1), "negative")
    assert type(rows["upd-0"][0]) is float


def test_an_update_statement_is_worked_out_once_per_model_and_names() -> None:
    """WriteBatch.update's text is kept per model, names and vendor: a second
    update of the same names carries its own row's values and key, a field
    named by name and attname is set once, other names make their own text."""
    names = ["last_answered_by", "last_answered_by_id", "public_reply_count"]
    first = Conversation(pk=11, tenant_id=5, last_answered_by_id=7)
    first.public_reply_count = 2
    second = Conversation(pk=12, tenant_id=6, last_answered_by_id=None)
    second.public_reply_count = 3
    batch = writebatch.WriteBatch()
    batch.update(first, names)
    batch.update(second, names)
    batch.update(second, ["public_reply_count"])

    head = 'UPDATE "helpdesk_conversation" SET '
    where = (
        ' WHERE "helpdesk_conversation"."id" = %s'
        ' AND "helpdesk_conversation"."tenant_id" = %s'
    )
    both = head + '"last_answered_by_id" = %s, "public_reply_count" = %s' + where
    assert batch.statements == [
        (both, [7, 2, 11, 5]),
        (both, [None, 3, 12, 6]),
        (head + '"public_reply_count" = %s' + where, [3, 12, 6]),
    ]
