"""post_reply and the care rules R2-R7; every refusal also proves nothing changed."""

from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from helpdesk.exceptions import (
    AnotherReplyPending,
    ConversationResolved,
    MessageNotEditable,
    PlatformRefuses,
    PrivateFirstRefused,
    PublicReplyLimitReached,
    ReplyInvalid,
    ReplyNeedsConfirmation,
)
from helpdesk.models import Conversation, Message
from helpdesk.services.inbound import InboundResult
from helpdesk.services.replies import (
    cancel_scheduled_reply,
    edit_scheduled_reply,
    move_to_private,
    post_reply,
)
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import AuditEvent, Brand, Tenant, User
from tests.helpdesk.conftest import (
    DeliveryQueue,
    item,
    make_account,
    member,
    receive,
    reload,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def thread(account: SocialAccount) -> InboundResult:
    return receive(account, item(text="My flight AA12 is delayed, any news?"))


def reply(
    tenant: Tenant, user: User, conversation: Conversation, text: str, **kw: Any
) -> Message:
    with tenant_context(tenant):
        return post_reply(
            conversation, membership=member(tenant, user), text=text, **kw
        ).message


def outbound(tenant: Tenant) -> list[tuple[str, str, str]]:
    with tenant_context(tenant):
        return list(
            Message.objects.filter(direction="out")
            .order_by("id")
            .values_list("visibility", "delivery_status", "text")
        )


def set_brand(tenant: Tenant, **fields: Any) -> None:
    with tenant_context(tenant):
        Brand.objects.update(**fields)


def test_reply_is_held_then_queued_and_stops_the_clock(
    tenant: Tenant,
    agent: User,
    thread: InboundResult,
    delivery_queue: DeliveryQueue,
    django_capture_on_commit_callbacks: Any,
) -> None:
    before = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        message = reply(
            tenant, agent, thread.conversation, "Sorry Jo, checking AA12 now."
        )
    assert (message.visibility, message.delivery_status, message.kind) == (
        "public",
        "scheduled",
        "reply",
    )
    assert message.send_after is not None
    assert timedelta(seconds=19) < message.send_after - before < timedelta(seconds=21)
    assert [args for args, _eta in delivery_queue.calls] == [(tenant.pk, message.pk)]
    assert delivery_queue.calls[0][1] == message.send_after
    conversation = reload(thread.conversation)
    assert conversation.public_reply_count == 1
    assert conversation.first_response_at is not None
    assert before <= conversation.first_response_at <= timezone.now()
    assert (conversation.sla_due_at, conversation.queue_at) == (None, None)
    assert conversation.last_answered_by_id == agent.pk


def test_visibility_follows_the_customers_channel(
    tenant: Tenant, agent: User, account: SocialAccount
) -> None:
    dm = receive(account, item(visibility="private", thread="dm-5"))
    message = reply(tenant, agent, dm.conversation, "Happy to help here.")
    assert message.visibility == "private"


def test_a_private_first_answer_to_a_public_post_is_refused(
    tenant: Tenant, agent: User, thread: InboundResult
) -> None:
    with pytest.raises(PrivateFirstRefused, match="Answer publicly first"):
        reply(tenant, agent, thread.conversation, "DM us", visibility="private")
    assert outbound(tenant) == []


def test_a_brand_may_allow_private_first(
    tenant: Tenant, agent: User, account: SocialAccount
) -> None:
    set_brand(tenant, private_first_allowed=True)
    conversation = receive(account, item(thread="t1", external_id="t1")).conversation
    with tenant_context(tenant):
        Conversation.objects.filter(pk=conversation.pk).update(
            private_thread_ref="dm-9"
        )
    message = reply(tenant, agent, conversation, "Sent you a DM", visibility="private")
    assert message.visibility == "private"


def sent_all(tenant: Tenant) -> None:
    with tenant_context(tenant):
        Message.objects.filter(direction="out").update(delivery_status="sent")


def test_the_third_public_reply_is_refused_with_move_to_private(
    tenant: Tenant, agent: User, thread: InboundResult
) -> None:
    reply(tenant, agent, thread.conversation, "First answer")
    sent_all(tenant)
    reply(tenant, agent, thread.conversation, "Second, different answer")
    sent_all(tenant)
    with pytest.raises(PublicReplyLimitReached) as refused:
        reply(tenant, agent, thread.conversation, "Third try")
    assert refused.value.details["suggestion"] == "move_to_private"
    assert "the limit is 2" in refused.value.message
    assert reload(thread.conversation).public_reply_count == 2
    assert len(outbound(tenant)) == 2


def test_an_admin_overrides_the_limit_with_a_reason_and_it_is_audited(
    tenant: Tenant, admin: User, agent: User, thread: InboundResult
) -> None:
    set_brand(tenant, public_reply_limit=1)
    reply(tenant, agent, thread.conversation, "First answer")
    sent_all(tenant)
    with pytest.raises(PublicReplyLimitReached):
        reply(tenant, agent, thread.conversation, "Again", override_reason="urgent")
    message = reply(
        tenant,
        admin,
        thread.conversation,
        "Update: AA12 boards 14:05",
        override_reason="outage",
    )
    assert reload(thread.conversation).public_reply_count == 2
    with tenant_context(tenant):
        audit = AuditEvent.objects.get(action="reply.limit_overridden")
    assert (audit.actor_id, audit.reason, audit.object_id) == (
        admin.pk,
        "outage",
        str(message.pk),
    )


def test_one_public_answer_may_be_in_its_hold(
    tenant: Tenant, agent: User, admin: User, thread: InboundResult
) -> None:
    first = reply(tenant, agent, thread.conversation, "On it")
    with pytest.raises(
        AnotherReplyPending, match="Andy's public reply is about to be sent"
    ):
        reply(tenant, admin, thread.conversation, "Also on it")
    with pytest.raises(AnotherReplyPending, match="Your previous public reply"):
        reply(tenant, agent, thread.conversation, "And more")
    assert len(outbound(tenant)) == 1
    sent_all(tenant)
    second = reply(tenant, admin, thread.conversation, "Boarding starts 14:05")
    assert second.pk != first.pk


def test_a_near_duplicate_public_reply_needs_confirming(
    tenant: Tenant, agent: User, account: SocialAccount
) -> None:
    one = receive(account, item(author="a", external_id="p1")).conversation
    two = receive(account, item(author="b", external_id="p2")).conversation
    reply(
        tenant, agent, one, "We're sorry for the delay, please DM us your booking ref!"
    )
    with pytest.raises(ReplyNeedsConfirmation) as warned:
        reply(
            tenant,
            agent,
            two,
            "We are sorry for the delay - please DM us your booking ref.",
        )
    assert list(warned.value.warnings) == ["near_duplicate"]
    assert len(outbound(tenant)) == 1
    confirmed = reply(
        tenant,
        agent,
        two,
        "We are sorry for the delay - please DM us your booking ref.",
        confirm=["near_duplicate"],
    )
    assert confirmed.delivery_status == "scheduled"


def test_a_reply_written_against_a_stale_view_needs_confirming(
    tenant: Tenant, agent: User, account: SocialAccount, thread: InboundResult
) -> None:
    seen = thread.message.seq
    receive(
        account, item(thread=thread.message.external_id or "", text="Hello?? anyone")
    )
    with pytest.raises(ReplyNeedsConfirmation) as warned:
        reply(tenant, agent, thread.conversation, "Checking", seen_seq=seen)
    assert warned.value.warnings == {
        "stale_view": "The customer wrote again since you opened this conversation. "
        "Read it first."
    }
    assert outbound(tenant) == []
    latest = reload(thread.conversation)
    with tenant_context(tenant):
        current = Message.objects.filter(conversation=latest).order_by("-seq")[0].seq
    message = reply(tenant, agent, latest, "Checking now", seen_seq=current)
    assert message.pk


def test_the_signature_rule_for_the_platform_is_appended(
    tenant: Tenant, agent: User, account: SocialAccount
) -> None:
    set_brand(
        tenant,
        signature_rules={"sandbox": " ^{initials}", "default": " - {first_name}"},
    )
    conversation = receive(account, item()).conversation
    message = reply(tenant, agent, conversation, "Rebooked you on AA14")
    assert message.text == "Rebooked you on AA14 ^A"
    dm = receive(account, item(visibility="private", thread="dm-1")).conversation
    private = reply(tenant, agent, dm, "Here privately")
    assert private.text == "Here privately"


def test_text_over_the_platform_limit_names_the_limit(
    tenant: Tenant, agent: User, thread: InboundResult
) -> None:
    with pytest.raises(ReplyInvalid, match="Sandbox allows 280 characters") as refused:
        reply(tenant, agent, thread.conversation, "x" * 281)
    assert refused.value.details["limit"] == 280
    assert outbound(tenant) == []


def test_empty_text_is_refused(
    tenant: Tenant, agent: User, thread: InboundResult
) -> None:
    with pytest.raises(ReplyInvalid, match="Write a reply first"):
        reply(tenant, agent, thread.conversation, "   ")
    assert outbound(tenant) == []


def test_x_refuses_a_public_reply_to_a_post_that_did_not_mention_the_brand(
    tenant: Tenant, agent: User
) -> None:
    x_account = make_account(tenant, platform="x")
    untagged = receive(x_account, item(platform="x", mentions=False)).conversation
    with pytest.raises(
        PlatformRefuses, match="only lets you reply publicly to posts that"
    ):
        reply(tenant, agent, untagged, "Hi from Acme")
    assert outbound(tenant) == []


def test_a_viewer_cannot_reply(
    tenant: Tenant, viewer: User, thread: InboundResult
) -> None:
    with pytest.raises(PermissionDenied):
        reply(tenant, viewer, thread.conversation, "Hello")
    assert outbound(tenant) == []
    assert reload(thread.conversation).public_reply_count == 0


def test_replying_on_a_resolved_conversation_needs_a_reopen(
    tenant: Tenant, agent: User, thread: InboundResult
) -> None:
    with tenant_context(tenant):
        Conversation.objects.filter(pk=thread.conversation.pk).update(status="resolved")
    with pytest.raises(ConversationResolved, match="Reopen it to reply"):
        reply(tenant, agent, thread.conversation, "Late answer")
    assert outbound(tenant) == []


def test_undo_during_the_hold_cancels_and_frees_the_slot(
    tenant: Tenant, agent: User, thread: InboundResult, delivery_queue: DeliveryQueue
) -> None:
    message = reply(tenant, agent, thread.conversation, "Oops, wrong customer")
    with tenant_context(tenant):
        cancelled = cancel_scheduled_reply(message, membership=member(tenant, agent))
    assert cancelled.delivery_status == "cancelled"
    assert reload(thread.conversation).public_reply_count == 0
    with tenant_context(tenant), pytest.raises(MessageNotEditable):
        cancel_scheduled_reply(message, membership=member(tenant, agent))


def test_edit_during_the_hold_changes_the_text_not_the_time(
    tenant: Tenant, agent: User, thread: InboundResult
) -> None:
    message = reply(tenant, agent, thread.conversation, "Chekcing AA12")
    with tenant_context(tenant):
        edited = edit_scheduled_reply(
            message, membership=member(tenant, agent), text="Checking AA12"
        )
    assert (edited.text, edited.send_after) == ("Checking AA12", message.send_after)
    sent_all(tenant)
    with (
        tenant_context(tenant),
        pytest.raises(MessageNotEditable, match="hold is over"),
    ):
        edit_scheduled_reply(message, membership=member(tenant, agent), text="Too late")


def test_move_to_private_invites_publicly_and_links_the_next_dm(
    tenant: Tenant, agent: User, account: SocialAccount, thread: InboundResult
) -> None:
    with tenant_context(tenant):
        queued = move_to_private(
            thread.conversation,
            membership=member(tenant, agent),
            public_text="Sorry Jo, please DM us your booking reference.",
        )
    assert [(m.kind, m.visibility) for m in queued] == [("private_invite", "public")]
    conversation = reload(thread.conversation)
    assert (conversation.channel_state, conversation.awaiting_private) == (
        "private",
        True,
    )
    assert conversation.public_reply_count == 1
    dm = receive(account, item(visibility="private", thread="dm-77", text="Ref ABC123"))
    assert dm.conversation.pk == thread.conversation.pk
    conversation = reload(thread.conversation)
    assert (conversation.awaiting_private, conversation.private_thread_ref) == (
        False,
        "dm-77",
    )
    sent_all(tenant)
    private = reply(tenant, agent, conversation, "Thanks, found it")
    assert private.visibility == "private"


def test_move_to_private_on_meta_also_opens_the_private_thread(
    tenant: Tenant, agent: User
) -> None:
    meta = make_account(tenant, platform="facebook")
    comment = receive(meta, item(platform="facebook", kind="comment")).conversation
    with tenant_context(tenant):
        queued = move_to_private(
            comment,
            membership=member(tenant, agent),
            public_text="We've sent you a private message.",
            private_text="Hi Jo, could you share your booking reference?",
        )
    assert [(m.kind, m.visibility) for m in queued] == [
        ("private_invite", "public"),
        ("reply", "private"),
    ]


def test_move_to_private_at_the_limit_uses_the_private_reply_only(
    tenant: Tenant, agent: User
) -> None:
    set_brand(tenant, public_reply_limit=1)
    meta = make_account(tenant, platform="facebook")
    comment = receive(meta, item(platform="facebook", kind="comment")).conversation
    reply(tenant, agent, comment, "Looking into it")
    sent_all(tenant)
    with tenant_context(tenant):
        queued = move_to_private(
            comment,
            membership=member(tenant, agent),
            public_text="DM us",
            private_text="Hi Jo, what's your booking reference?",
        )
    # Alone, the private reply is the move itself.
    assert [(m.kind, m.visibility) for m in queued] == [("private_invite", "private")]
    assert reload(comment).public_reply_count == 1


def test_move_to_private_at_the_limit_without_a_private_path_is_refused(
    tenant: Tenant, agent: User, thread: InboundResult
) -> None:
    set_brand(tenant, public_reply_limit=1)
    reply(tenant, agent, thread.conversation, "Looking into it")
    sent_all(tenant)
    with tenant_context(tenant), pytest.raises(PublicReplyLimitReached):
        move_to_private(
            thread.conversation, membership=member(tenant, agent), public_text="DM us"
        )
    conversation = reload(thread.conversation)
    assert (conversation.channel_state, conversation.awaiting_private) == (
        "public",
        False,
    )


def test_meta_private_replies_close_after_the_24_hour_window(
    tenant: Tenant, agent: User
) -> None:
    meta = make_account(tenant, platform="facebook")
    old = timezone.now() - timedelta(hours=25)
    dm = receive(meta, item(platform="facebook", visibility="private", created_at=old))
    with pytest.raises(PlatformRefuses, match="within 24 hours"):
        reply(tenant, agent, dm.conversation, "Sorry for the wait")
    assert outbound(tenant) == []


def test_saved_replies_fill_their_placeholders(
    tenant: Tenant, agent: User, thread: InboundResult
) -> None:
    from helpdesk.services.replies import render_saved_reply

    with tenant_context(tenant):
        conversation = Conversation.objects.select_related("contact", "brand").get(
            pk=thread.conversation.pk
        )
    text = render_saved_reply(
        "Hi {first_name}, {agent_name} from {brand_name} here. {unknown}",
        conversation=conversation,
        agent=agent,
    )
    assert text == "Hi Jo, Andy from Acme Air here. {unknown}"
