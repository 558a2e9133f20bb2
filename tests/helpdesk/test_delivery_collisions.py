"""A platform id that collides (the unique helpdesk_message_platform_ext_uniq)
fails only its own reply; the rest of the batch is recorded. Before, one
collision rolled the batch's single UPDATE back: every reply stayed `sending` and
each sweep took them over, reconciled and failed again, forever."""

import pytest

from helpdesk.models import Message
from helpdesk.services import delivery
from social.connectors.base import AccountRef, DeliveryResult, OutboundReply
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import Tenant, User
from tests.helpdesk.conftest import reload
from tests.helpdesk.fakes import FakeConnector
from tests.helpdesk.test_delivery_batches import due_replies, rows, run

pytestmark = pytest.mark.django_db


@pytest.fixture
def ids(
    fake_platforms: type[FakeConnector], monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """The platform id the fake answers with, per reply text (else its own)."""
    answers: dict[str, str] = {}
    send = FakeConnector.send

    def answering(
        self: FakeConnector, account: AccountRef, reply: OutboundReply
    ) -> DeliveryResult:
        result = send(self, account, reply)
        if reply.text in answers:
            return DeliveryResult(external_id=answers[reply.text], url=result.url)
        return result

    monkeypatch.setattr(FakeConnector, "send", answering)
    return answers


def test_an_id_another_message_holds_fails_only_that_reply(
    tenant: Tenant, agent: User, account: SocialAccount, ids: dict[str, str]
) -> None:
    earlier, *messages = due_replies(tenant, agent, [account], 4)
    with tenant_context(tenant):
        Message.objects.filter(pk=earlier.pk).update(
            delivery_status=Message.DeliveryStatus.SENT, external_id="dup-1"
        )
    ids["reply 2"] = "dup-1"  # the platform answers with the earlier reply's id

    assert run(messages[0]) == "sent"

    recorded = rows(messages)
    assert [row[0] for row in recorded] == ["sent", "failed", "sent"]
    assert recorded[1] == (
        "failed",
        None,
        1,
        f"The platform answered with id dup-1, which message {earlier.pk} already"
        " has: not recorded as sent.",
    )
    assert recorded[0][1] is not None
    assert recorded[2][1] is not None
    assert (recorded[0][3], recorded[2][3]) == ("", "")
    assert rows([earlier]) == [("sent", "dup-1", 0, "")]
    # The failed reply freed its public slot; the sent ones hold theirs.
    assert reload(messages[1].conversation).public_reply_count == 0
    assert reload(messages[0].conversation).public_reply_count == 1
    # Nothing is left for the sweep, and no reply was sent twice.
    with tenant_context(tenant):
        assert delivery.stale_deliveries() == []
    assert sorted(r.text for r in FakeConnector.sent) == [
        "reply 1",
        "reply 2",
        "reply 3",
    ]


def test_two_replies_of_a_batch_given_one_id_the_second_fails(
    tenant: Tenant, agent: User, account: SocialAccount, ids: dict[str, str]
) -> None:
    messages = due_replies(tenant, agent, [account], 3)
    ids["reply 0"] = ids["reply 2"] = "same-id"

    assert run(messages[0]) == "sent"

    assert rows(messages)[0] == ("sent", "same-id", 1, "")
    assert rows(messages)[2] == (
        "failed",
        None,
        1,
        f"The platform answered with id same-id, which message {messages[0].pk}"
        " already has: not recorded as sent.",
    )
    assert rows(messages)[1][0] == "sent"
    with tenant_context(tenant):
        assert delivery.stale_deliveries() == []


def test_record_deliveries_returns_only_the_replies_it_recorded(
    tenant: Tenant, agent: User, account: SocialAccount, ids: dict[str, str]
) -> None:
    held, *messages = due_replies(tenant, agent, [account], 3)
    with tenant_context(tenant):
        Message.objects.filter(pk=held.pk).update(
            delivery_status=Message.DeliveryStatus.SENT, external_id="taken"
        )
        plans = delivery.claim_batch(messages[0].pk, token="t", limit=10)
        assert [p.message_id for p in plans] == [m.pk for m in messages]
        sent = delivery.record_deliveries(
            {
                messages[0].pk: DeliveryResult(external_id="taken"),
                messages[1].pk: DeliveryResult(external_id="fresh"),
            }
        )
    assert sent == [messages[1].pk]
    assert [row[:2] for row in rows(messages)] == [
        ("failed", None),
        ("sent", "fresh"),
    ]


def claim_and_record(message: Message, external_id: str) -> Message | None:
    """The simulation's delivery path: claim one reply, record the platform's id."""
    with tenant_context(message.tenant_id):
        plan = delivery.claim_for_delivery(message.pk, token="sim")
        assert plan is not None
        recorded = delivery.record_delivery(
            message.pk, DeliveryResult(external_id=external_id)
        )
        # The claim's transaction is still usable: the collision undid only its
        # savepoint (PostgreSQL refuses every statement of an aborted transaction).
        assert Message.objects.filter(pk=message.pk).exists()
    return recorded


def test_record_delivery_fails_a_reply_given_an_id_another_message_holds(
    tenant: Tenant, agent: User, account: SocialAccount
) -> None:
    held, message = due_replies(tenant, agent, [account], 2)
    with tenant_context(tenant):
        Message.objects.filter(pk=held.pk).update(
            delivery_status=Message.DeliveryStatus.SENT, external_id="dup-1"
        )

    assert claim_and_record(message, "dup-1") is None

    assert rows([message]) == [
        (
            "failed",
            None,
            1,
            f"The platform answered with id dup-1, which message {held.pk} already"
            " has: not recorded as sent.",
        )
    ]
    assert rows([held]) == [("sent", "dup-1", 0, "")]
    # The failed reply freed its public slot, and nothing is left for the sweep.
    assert reload(message.conversation).public_reply_count == 0
    with tenant_context(tenant):
        assert delivery.stale_deliveries() == []


def test_record_delivery_records_an_id_of_its_own(
    tenant: Tenant, agent: User, account: SocialAccount
) -> None:
    (message,) = due_replies(tenant, agent, [account], 1)

    recorded = claim_and_record(message, "fresh-1")

    assert recorded is not None
    assert recorded.pk == message.pk
    assert rows([message]) == [("sent", "fresh-1", 1, "")]
    assert reload(message.conversation).public_reply_count == 1
