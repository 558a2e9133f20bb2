"""Delivery's written-out statements (PostgreSQL) read and write what its
querysets (kept for SQLite) do: the plans' rows, the claim of a batch's other
replies, and the record of a batch's outcomes."""

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from helpdesk import publish
from helpdesk.models import Conversation, Event, Message
from helpdesk.services import delivery
from social.connectors.base import DeliveryResult
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import Tenant, User
from tests.helpdesk.conftest import make_account
from tests.helpdesk.test_delivery_batches import due_replies

pytestmark = pytest.mark.django_db


def comparable(row: delivery._PlanRow) -> tuple[Any, ...]:
    account = row.account
    fields = (
        None
        if account is None
        else (
            account.pk,
            account.tenant_id,
            account.platform,
            account.external_id,
            account.handle,
            account.credentials,
            account.base_url,
        )
    )
    return (*row._replace(account=None), fields)


def test_the_plans_statement_reads_what_the_querysets_read(
    tenant: Tenant, agent: User, account: SocialAccount
) -> None:
    other = make_account(tenant, handle="acmeair_help")
    messages = due_replies(tenant, agent, [account, other], 5)
    ids = [m.pk for m in messages]
    with tenant_context(tenant):
        # A private reply in a private thread, a private reply to a public
        # post, a reply without an account, one whose contact has no identity
        # on its platform.
        Message.objects.filter(pk=ids[1]).update(visibility="private")
        Conversation.objects.filter(pk=messages[1].conversation_id).update(
            private_thread_ref="dm-thread-1", channel_state="private"
        )
        Message.objects.filter(pk=ids[2]).update(visibility="private")
        Message.objects.filter(pk=ids[3]).update(account_id=None)
        Message.objects.filter(pk=ids[4]).update(platform="x")

        written = delivery._plan_rows(tenant.pk, ids)
        built = delivery._plan_rows_orm(ids)

    assert sorted(written) == sorted(built) == sorted(ids)
    assert [comparable(written[pk]) for pk in ids] == [
        comparable(built[pk]) for pk in ids
    ]
    assert [delivery._outbound(written[pk]) for pk in ids] == [
        delivery._outbound(built[pk]) for pk in ids
    ]
    # What the cases are: answered and recipient found, the private thread,
    # no account, no identity on that platform.
    assert written[ids[0]].answered
    assert written[ids[0]].recipient
    assert delivery._outbound(written[ids[1]]).in_reply_to == "dm-thread-1"
    assert delivery._outbound(written[ids[2]]).private_reply_to_public
    assert written[ids[3]].account is None
    assert written[ids[4]].recipient is None


def test_the_claim_takes_due_and_expired_replies_oldest_first_once(
    tenant: Tenant, agent: User, account: SocialAccount
) -> None:
    messages = due_replies(tenant, agent, [account], 6)
    ids = [m.pk for m in messages]
    now = timezone.now()
    with tenant_context(tenant):
        # 1: sending under an expired lease (taken over); 2: sending under a
        # live one; 3: not yet due; 4: failed.
        Message.objects.filter(pk=ids[1]).update(
            delivery_status="sending",
            attempts=1,
            claimed_at=now - delivery.CLAIM_LEASE - timedelta(seconds=1),
        )
        Message.objects.filter(pk=ids[2]).update(
            delivery_status="sending", attempts=1, claimed_at=now
        )
        Message.objects.filter(pk=ids[3]).update(send_after=now + timedelta(hours=1))
        Message.objects.filter(pk=ids[4]).update(delivery_status="failed")

        claimed = delivery._claim_others(tenant.pk, ids[0], token="tok", room=10)
        again = delivery._claim_others(tenant.pk, ids[0], token="tok2", room=10)
        found = {
            m.pk: (m.delivery_status, m.claim_token, m.attempts)
            for m in Message.objects.filter(pk__in=ids)
        }

    assert claimed == [ids[1], ids[5]]
    assert again == []
    assert [found[pk] for pk in ids] == [
        ("scheduled", "", 0),
        ("sending", "tok", 2),
        ("sending", "", 1),
        ("scheduled", "", 0),
        ("failed", "", 0),
        ("sending", "tok", 1),
    ]


def test_the_claim_takes_no_more_than_its_room(
    tenant: Tenant, agent: User, account: SocialAccount
) -> None:
    messages = due_replies(tenant, agent, [account], 4)
    ids = [m.pk for m in messages]
    with tenant_context(tenant):
        claimed = delivery._claim_others(tenant.pk, ids[3], token="tok", room=2)
    assert claimed == ids[:2]


def test_the_record_marks_sent_and_adds_the_events_in_id_order(
    tenant: Tenant, agent: User, account: SocialAccount
) -> None:
    messages = due_replies(tenant, agent, [account], 3)
    ids = [m.pk for m in messages]
    moment = timezone.now() - timedelta(minutes=1)
    with tenant_context(tenant):
        delivery.claim_batch(ids[0], token="tok", limit=10)
        before = Event.objects.count()
        sent = delivery.record_deliveries(
            {
                ids[2]: DeliveryResult("p-2", url="https://x/2"),
                ids[0]: DeliveryResult("p-0", sent_at=moment),
                ids[1]: DeliveryResult("p-1", url="https://x/1"),
            }
        )
        rows = {
            m.pk: (m.delivery_status, m.external_id, m.external_url, m.last_error)
            for m in Message.objects.filter(pk__in=ids)
        }
        first_sent_at = Message.objects.get(pk=ids[0]).sent_at
        payloads = [
            e.payload
            for e in Event.objects.order_by("seq")[before:]
            if e.payload["changed"]["delivery_status"] == "sent"
        ]
        brand_id = Conversation.objects.get(pk=messages[0].conversation_id).brand_id
    assert sent == ids
    assert [rows[pk] for pk in ids] == [
        ("sent", "p-0", "", ""),
        ("sent", "p-1", "https://x/1", ""),
        ("sent", "p-2", "https://x/2", ""),
    ]
    assert first_sent_at == moment
    assert [
        (p["message_id"], p["conversation_id"], p["brand_id"], p["changed"])
        for p in payloads
    ] == [
        (
            m.pk,
            m.conversation_id,
            brand_id,
            {"delivery_status": "sent", "external_url": url},
        )
        for m, url in zip(messages, ["", "https://x/1", "https://x/2"], strict=True)
    ]
    # Recorded already: nothing changes, no event.
    with tenant_context(tenant):
        count = Event.objects.count()
        assert delivery.record_deliveries({ids[0]: DeliveryResult("p-9")}) == []
        assert Event.objects.count() == count
        assert Message.objects.get(pk=ids[0]).external_id == "p-0"


def _own_claim_cases(
    tenant: Tenant, agent: User, account: SocialAccount, text: str = "reply"
) -> tuple[list[int], Any]:
    """Six replies: due, sending under an expired lease, sending under a live
    one, not yet due, failed, sent; and the not-yet-due one's time."""
    ids = [m.pk for m in due_replies(tenant, agent, [account], 6, text=text)]
    now = timezone.now()
    later = now + timedelta(hours=1)
    with tenant_context(tenant):
        Message.objects.filter(pk=ids[1]).update(
            delivery_status="sending",
            attempts=1,
            claimed_at=now - delivery.CLAIM_LEASE - timedelta(seconds=1),
        )
        Message.objects.filter(pk=ids[2]).update(
            delivery_status="sending", attempts=1, claimed_at=now
        )
        Message.objects.filter(pk=ids[3]).update(send_after=later)
        Message.objects.filter(pk=ids[4]).update(delivery_status="failed")
        Message.objects.filter(pk=ids[5]).update(delivery_status="sent")
    return ids, later


def test_the_own_claim_takes_the_transitions_the_querysets_take(
    tenant: Tenant,
    agent: User,
    account: SocialAccount,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    def run(ids: list[int]) -> tuple[list[Any], int]:
        with (
            tenant_context(tenant),
            django_capture_on_commit_callbacks() as callbacks,
        ):
            claims = [delivery._claim(pk, token="tok", task_id="t") for pk in ids]
            after = {
                m.pk: (m.delivery_status, m.claim_token, m.attempts)
                for m in Message.objects.filter(pk__in=ids)
            }
        return [(claim, after[pk]) for claim, pk in zip(claims, ids, strict=True)], (
            len(callbacks)
        )

    written_ids, _ = _own_claim_cases(tenant, agent, account)
    written = run(written_ids)
    other = make_account(tenant, handle="acmeair_help")
    built_ids, _ = _own_claim_cases(tenant, agent, other, text="another")
    # Without a tenant id in hand, _claim takes its querysets (SQLite's path).
    monkeypatch.setattr(delivery, "current_tenant_id", lambda: None)
    built = run(built_ids)

    assert written == built
    assert written == (
        [
            (True, ("sending", "tok", 1)),
            (True, ("sending", "tok", 2)),
            (False, ("sending", "", 1)),
            (False, ("scheduled", "", 0)),
            (False, ("failed", "", 0)),
            (False, ("sent", "", 0)),
        ],
        1,  # the early reply's task, queued again for its time after commit
    )


def test_the_early_own_reply_is_queued_again_for_its_time_under_the_task_id(
    tenant: Tenant,
    agent: User,
    account: SocialAccount,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    ids, later = _own_claim_cases(tenant, agent, account)
    queued: list[tuple[Any, ...]] = []

    class Task:
        def apply_async(self, args: Any, *, eta: Any, task_id: str) -> None:
            queued.append((args, eta, task_id))

    monkeypatch.setattr(publish, "task", lambda name: Task())
    with (
        tenant_context(tenant),
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert delivery._claim(ids[3], token="tok", task_id="the-task") is False
    assert queued == [((tenant.pk, ids[3]), later, "the-task")]


def test_a_claim_batch_whose_own_reply_is_known_sent_leaves_it_alone(
    tenant: Tenant, agent: User, account: SocialAccount
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    ids = [m.pk for m in due_replies(tenant, agent, [account], 3)]
    with tenant_context(tenant):
        # Not drained: nothing is claimed, and no statement runs.
        with CaptureQueriesContext(connection) as statements:
            assert (
                delivery.claim_batch(ids[0], token="a", limit=10, own_sent=True) == []
            )
        assert len(statements) == 0
        # Drained (a slot's task): the others are claimed; its own reply (due
        # here, to show it is not even tried) is not.
        plans = delivery.claim_batch(
            ids[0], token="b", limit=10, drain=True, own_sent=True
        )
        found = {
            m.pk: (m.delivery_status, m.claim_token)
            for m in Message.objects.filter(pk__in=ids)
        }
    assert [plan.message_id for plan in plans] == ids[1:]
    assert [found[pk] for pk in ids] == [
        ("scheduled", ""),
        ("sending", "b"),
        ("sending", "b"),
    ]
