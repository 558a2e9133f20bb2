"""incidents.updates: one personalised update, each customer answered once (R13)."""

from typing import Any

import pytest

from helpdesk import events
from helpdesk.models import Conversation, Message
from helpdesk.services.replies import post_reply
from incidents import updates
from incidents.models import IncidentEntry, IncidentUpdate, UpdateRecipient
from incidents.services import IncidentInvalid
from tenants.context import tenant_context
from tenants.models import Tenant, User
from tests.incidents.conftest import CustomerFactory, link, member

pytestmark = pytest.mark.django_db

TEXT = (
    "{greeting} {first_name}, AA31 is cancelled; we are rebooking you now. {agent_name}"
)


def start(tenant: Tenant, agent: User, incident: Any, key: str = "") -> IncidentUpdate:
    with tenant_context(tenant):
        update, _created = updates.start_update(
            member(tenant, agent),
            incident,
            text=TEXT,
            idempotency_key=key or "00000000-0000-0000-0000-000000000001",
        )
    return update


def run_ticks(tenant: Tenant, update: IncidentUpdate) -> int:
    ticks = 0
    with tenant_context(tenant):
        while updates.send_update_tick(tenant, update.pk) is not None:
            ticks += 1
    return ticks + 1


def outbound(tenant: Tenant, conversation: Conversation) -> list[tuple[str, str]]:
    with tenant_context(tenant):
        return list(
            Message.objects.filter(conversation=conversation, direction="out")
            .order_by("id")
            .values_list("visibility", "text")
        )


def recipients(tenant: Tenant, update: IncidentUpdate) -> list[tuple[int, str, str]]:
    with tenant_context(tenant):
        return list(
            UpdateRecipient.objects.filter(update=update)
            .order_by("position")
            .values_list("conversation_id", "status", "reason")
        )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "Write the update first."),
        ("We are rebooking everyone.", "Add {first_name}, {name} or {handle}"),
        ("Hi {first_name} {seat}", "Unknown placeholder {seat}"),
        ("{first_name}" + "x" * 2000, "no more than 2000 characters"),
    ],
)
def test_an_update_needs_a_personal_placeholder_and_known_ones(
    text: str, message: str, tenant: Tenant, agent: User, incident: Any
) -> None:
    with tenant_context(tenant), pytest.raises(IncidentInvalid) as refused:
        updates.start_update(
            member(tenant, agent), incident, text=text, idempotency_key="k"
        )
    assert message in refused.value.message
    assert refused.value.field == "text"
    with tenant_context(tenant):
        assert IncidentUpdate.objects.count() == 0


def test_each_customer_gets_their_own_reply_through_post_reply(
    tenant: Tenant,
    agent: User,
    incident: Any,
    customer: CustomerFactory,
    scheduled: list[tuple[int, float]],
    delivery_queue: Any,
) -> None:
    anna, bob, cleo = customer("Anna Berg"), customer("Bob Li"), customer("Cleo")
    link(tenant, agent, incident, anna, bob, cleo)
    update = start(tenant, agent, incident)
    assert scheduled == [(update.pk, 0)]
    assert run_ticks(tenant, update) == 1
    assert outbound(tenant, anna) == [
        ("public", "Hi Anna, AA31 is cancelled; we are rebooking you now. Andy")
    ]
    assert outbound(tenant, bob) == [
        ("public", "Hello Bob, AA31 is cancelled; we are rebooking you now. Andy")
    ]
    assert outbound(tenant, cleo) == [
        ("public", "Hey Cleo, AA31 is cancelled; we are rebooking you now. Andy")
    ]
    # R5: each waits the brand's hold.
    with tenant_context(tenant):
        holds = {
            round((m.send_after - m.created_at).total_seconds())  # type: ignore[operator]
            for m in Message.objects.filter(direction="out")
        }
        assert holds == {anna.brand.send_hold_seconds}
        assert set(
            Message.objects.filter(direction="out").values_list(
                "delivery_status", flat=True
            )
        ) == {"scheduled"}
    assert [r[1] for r in recipients(tenant, update)] == ["sent"] * 3
    with tenant_context(tenant):
        fresh = IncidentUpdate.objects.get(pk=update.pk)
        entry = IncidentEntry.objects.filter(kind="update").get()
    assert fresh.status == "done"
    assert entry.text == "3 sent, 0 skipped, 0 failed"


def test_r3_a_customer_at_the_limit_gets_it_privately_or_is_skipped_with_why(
    tenant: Tenant,
    agent: User,
    incident: Any,
    customer: CustomerFactory,
    scheduled: list[tuple[int, float]],
) -> None:
    fresh, limited, reachable = customer("Ann"), customer("Ben"), customer("Cat")
    with tenant_context(tenant):
        for conversation in (limited, reachable):
            Conversation.objects.filter(pk=conversation.pk).update(
                public_reply_count=2, private_thread_ref=""
            )
        # Cat wrote privately before: the platform lets us answer there.
        Conversation.objects.filter(pk=reachable.pk).update(private_thread_ref="dm-7")
    link(tenant, agent, incident, fresh, limited, reachable)
    update = start(tenant, agent, incident)
    run_ticks(tenant, update)
    rows = recipients(tenant, update)
    assert [(r[0], r[1]) for r in rows] == [
        (fresh.pk, "sent"),
        (limited.pk, "skipped"),
        (reachable.pk, "sent"),
    ]
    assert rows[1][2].startswith(
        "R3: already answered publicly 2 times in this thread (limit 2); "
        "no private channel: Sandbox does not let you start a private conversation."
    )
    assert outbound(tenant, limited) == []
    assert [v for v, _t in outbound(tenant, reachable)] == ["private"]
    with tenant_context(tenant):
        assert Conversation.objects.get(pk=limited.pk).public_reply_count == 2
        assert Conversation.objects.get(pk=reachable.pk).public_reply_count == 2


def test_the_same_key_makes_one_update_however_often_it_is_sent(
    tenant: Tenant,
    agent: User,
    incident: Any,
    customer: CustomerFactory,
    scheduled: list[tuple[int, float]],
) -> None:
    anna = customer("Anna")
    link(tenant, agent, incident, anna)
    first = start(tenant, agent, incident, key="11111111-1111-1111-1111-111111111111")
    again = start(tenant, agent, incident, key="11111111-1111-1111-1111-111111111111")
    assert again.pk == first.pk
    assert scheduled == [(first.pk, 0)]
    run_ticks(tenant, first)
    run_ticks(tenant, first)  # a second run (the sweep, a redelivery) sends nothing
    with tenant_context(tenant):
        assert IncidentUpdate.objects.count() == 1
        assert UpdateRecipient.objects.count() == 1
    assert len(outbound(tenant, anna)) == 1


def test_sends_are_paced_per_account(
    tenant: Tenant,
    agent: User,
    incident: Any,
    customer: CustomerFactory,
    scheduled: list[tuple[int, float]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(updates, "DEFAULT_PACE", (2, 0.5))
    people = [customer(f"Person {n}") for n in range(5)]
    link(tenant, agent, incident, *people)
    update = start(tenant, agent, incident)
    with tenant_context(tenant):
        assert updates.send_update_tick(tenant, update.pk) == 0.5
        assert updates.update_counts(update)["sent"] == 2
        assert updates.send_update_tick(tenant, update.pk) == 0.5
        assert updates.update_counts(update)["sent"] == 4
        assert updates.send_update_tick(tenant, update.pk) is None
        assert updates.update_counts(update) == {
            "pending": 0,
            "sent": 5,
            "skipped": 0,
            "failed": 0,
            "total": 5,
        }


def test_a_near_duplicate_of_an_outside_reply_waits_for_the_agent(
    tenant: Tenant,
    agent: User,
    incident: Any,
    customer: CustomerFactory,
    scheduled: list[tuple[int, float]],
) -> None:
    earlier, anna = customer("Old Case"), customer("Anna")
    with tenant_context(tenant):
        post_reply(
            earlier,
            membership=member(tenant, agent),
            text="Hi Anna, AA31 is cancelled; we are rebooking you now. Andy",
        )
    link(tenant, agent, incident, anna)
    update = start(tenant, agent, incident)
    run_ticks(tenant, update)
    [(_conv, status, reason)] = recipients(tenant, update)
    assert (status, reason) == (
        "failed",
        "Near-duplicate of a recent public reply outside this update (R6): "
        "review it, then send anyway.",
    )
    assert outbound(tenant, anna) == []
    with tenant_context(tenant):
        row = UpdateRecipient.objects.get()
        queued = updates.retry_recipients(
            member(tenant, agent), update, recipients=[row], confirm_duplicate=True
        )
    assert queued == 1
    assert scheduled[-1] == (update.pk, 0)
    run_ticks(tenant, update)
    assert recipients(tenant, update)[0][1] == "sent"
    assert len(outbound(tenant, anna)) == 1


def test_a_failed_recipient_is_listed_and_a_retry_sends_it_once(
    tenant: Tenant,
    agent: User,
    incident: Any,
    customer: CustomerFactory,
    scheduled: list[tuple[int, float]],
    delivery_queue: Any,
) -> None:
    anna, bob = customer("Anna"), customer("Bob")
    with tenant_context(tenant):
        # Another agent's public reply is in its hold (R7): Bob's update fails.
        post_reply(bob, membership=member(tenant, agent), text="Looking into it")
    link(tenant, agent, incident, anna, bob)
    update = start(tenant, agent, incident)
    run_ticks(tenant, update)
    rows = recipients(tenant, update)
    assert [r[1] for r in rows] == ["sent", "failed"]
    assert (
        rows[1][2]
        == "Your previous public reply is still in its hold. Edit it instead."
    )
    with tenant_context(tenant):
        Message.objects.filter(conversation=bob).update(delivery_status="sent")
        everyone = list(UpdateRecipient.objects.all())
        assert (
            updates.retry_recipients(member(tenant, agent), update, recipients=everyone)
            == 1
        )
    run_ticks(tenant, update)
    assert [r[1] for r in recipients(tenant, update)] == ["sent", "sent"]
    assert len(outbound(tenant, anna)) == 1
    assert len(outbound(tenant, bob)) == 2


def test_preview_renders_samples_with_the_signature_and_writes_nothing(
    tenant: Tenant, agent: User, incident: Any, customer: CustomerFactory
) -> None:
    anna = customer("Anna Berg")
    with tenant_context(tenant):
        Conversation.objects.filter(pk=anna.pk).update()
        brand = anna.brand
        brand.signature_rules = {"default": "^{initials}"}
        brand.save(update_fields=["signature_rules"])
        anna.refresh_from_db()
        samples = updates.preview_update(
            member(tenant, agent),
            incident,
            text="{greeting} {first_name} ({handle}), about {incident}",
            conversations=[anna],
        )
        assert Message.objects.filter(direction="out").count() == 0
    assert samples == [
        {
            "conversation_id": anna.pk,
            "customer": "Anna Berg",
            "visibility": "public",
            "skip_reason": "",
            "text": "Hi Anna (@annaberg), about AA31 cancelled, 5 Dec ^A",
        }
    ]


def test_each_send_pushes_progress_to_the_workspace_after_commit(
    tenant: Tenant,
    agent: User,
    incident: Any,
    customer: CustomerFactory,
    scheduled: list[tuple[int, float]],
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    pushed: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(
        events,
        "send_to_group",
        lambda group, payload: pushed.append((group, payload)),
    )
    anna = customer("Anna")
    link(tenant, agent, incident, anna)
    update = start(tenant, agent, incident)
    with django_capture_on_commit_callbacks(execute=True):
        updates.send_update_tick(tenant, update.pk)
    counts = {"pending": 0, "sent": 1, "skipped": 0, "failed": 0, "total": 1}
    assert [group for group, _ in pushed] == [f"t{tenant.pk}"] * 2
    assert pushed[0][1] == {
        "type": "incident.progress",
        "incident_id": incident.pk,
        "update_id": update.pk,
        "status": "sending",
        "counts": counts,
        "recipient_id": pushed[0][1]["recipient_id"],
        "conversation_id": anna.pk,
        "recipient_status": "sent",
    }
    assert pushed[1][1] == {
        "type": "incident.progress",
        "incident_id": incident.pk,
        "update_id": update.pk,
        "status": "done",
        "counts": counts,
    }
