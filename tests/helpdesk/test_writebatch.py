"""helpdesk.services.writebatch on PostgreSQL: deferred INSERTs of one table share
one statement, and `insert_rows` writes what `bulk_create` writes (issue 12)."""

from datetime import UTC, datetime
from typing import Any

import pytest

from helpdesk.models import Contact, Conversation, Identity, Message
from helpdesk.services import writebatch
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.exceptions import TenantMismatch
from tenants.models import Brand
from tests.factories import make_workspace
from tests.statements import count_statements

pytestmark = pytest.mark.django_db(transaction=True)

AT = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)


def test_inserts_of_one_table_are_one_insert_in_the_trailing_statement() -> None:
    tenant = make_workspace("Write Batch")
    with tenant_context(tenant):
        with count_statements() as seen, writebatch.write_batch() as batch:
            batch.insert([Contact(tenant=tenant, display_name="a")])
            batch.insert(
                [
                    Contact(tenant=tenant, display_name="b"),
                    Contact(tenant=tenant, display_name="c"),
                ]
            )
        names = list(
            Contact.objects.order_by("pk").values_list("display_name", flat=True)
        )

    assert len(seen) == 1
    assert seen.sql[0].count("INSERT INTO") == 1
    assert names == ["a", "b", "c"]


def _rows(model: type[Any], pks: list[int]) -> list[dict[str, Any]]:
    """The rows as stored, without what differs by construction (pk, uuid)."""
    rows = list(model.objects.filter(pk__in=pks).order_by("pk").values())
    for row in rows:
        row.pop("id")
        row.pop("client_ref", None)
    return rows


def test_insert_rows_writes_what_bulk_create_writes_and_sets_the_pks() -> None:
    tenant = make_workspace("Insert Rows")
    with tenant_context(tenant):
        account = SocialAccount.objects.first()  # none: a nullable key
        brand = Brand.objects.get()
        contact = Contact.objects.create(tenant=tenant, display_name="Ann")
        identity = Identity.objects.create(
            tenant=tenant, contact=contact, platform="sandbox", external_id="ann"
        )

        def conversation() -> Conversation:
            return Conversation(
                tenant=tenant,
                brand=brand,
                social_account=account,
                contact=contact,
                platform="sandbox",
                origin=Conversation.Origin.MENTION,
                public_thread_ref="t-1",
                channel_state="public",
                mentions_account=True,
                last_activity_at=AT,
                created_at=AT,
            )

        def message(conversation: Conversation, n: int) -> Message:
            return Message(
                tenant=tenant,
                conversation=conversation,
                account=account,
                platform="sandbox",
                direction=Message.Direction.IN,
                visibility="public",
                kind=Message.Kind.CUSTOMER,
                external_id=f"m-{n}",
                external_url="https://example.test/m",
                in_reply_to_external_id="",
                author_identity=identity,
                text="my flight is delayed",
                language="en",
                sentiment_score=-0.4,
                angry=False,
                seq=n,
                created_at=AT,
            )

        lean, django = [conversation()], [conversation()]
        writebatch.insert_rows(lean)
        Conversation.objects.bulk_create(django)
        lean_messages = [message(lean[0], 1), message(lean[0], 2)]
        django_messages = [message(django[0], 3), message(django[0], 4)]
        writebatch.insert_rows(lean_messages)
        Message.objects.bulk_create(django_messages)

        assert all(row.pk and not row._state.adding for row in lean + lean_messages)
        assert [m.pk for m in lean_messages] == sorted(m.pk for m in lean_messages)
        lean_rows = _rows(Conversation, [lean[0].pk])
        django_rows = _rows(Conversation, [django[0].pk])
        assert lean_rows == django_rows
        stored = _rows(Message, [m.pk for m in [*lean_messages, *django_messages]])
        for row in stored:
            row.pop("conversation_id")
            row.pop("external_id")
            row.pop("seq")
        assert stored[0] == stored[1] == stored[2] == stored[3]
        assert Message.objects.get(pk=lean_messages[1].pk).external_id == "m-2"


def test_insert_rows_refuses_a_row_of_another_tenant() -> None:
    ours, theirs = make_workspace("Ours"), make_workspace("Theirs")
    with tenant_context(ours):
        before = Contact.objects.count()
        with pytest.raises(TenantMismatch):
            writebatch.insert_rows([Contact(tenant=theirs, display_name="x")])
        assert Contact.objects.count() == before
