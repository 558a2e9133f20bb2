"""Recording delivery: claim, outcome, failure. helpdesk/tasks.py calls these
between its own transactions and does the network call outside any transaction.

At most once per Message (invariant 3): a delivery attempt first claims the row with
a conditional update (scheduled → sending, or a stale `sending` claim taken over by
the same task after a crash). A claim taken over after a crash reconciles first:
the connector is asked whether the reply reached the platform before sending again.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import F, Q
from django.utils import timezone

from helpdesk import events
from helpdesk.models import Conversation, Message
from helpdesk.services.replies import release_public_slot, schedule_delivery
from social.connectors.base import (
    AccountRef,
    ConnectorError,
    DeliveryResult,
    OutboundReply,
)
from social.models import connector_ref

Delivery = Message.DeliveryStatus
# A `sending` claim older than this belongs to an attempt that is gone.
CLAIM_LEASE = timedelta(minutes=2)


@dataclass(frozen=True)
class DeliveryPlan:
    message_id: int
    platform: str
    account: AccountRef
    reply: OutboundReply
    reconcile: bool  # a previous attempt may have reached the platform


def claim_for_delivery(message_id: int, *, token: str) -> DeliveryPlan | None:
    """Claim a due message for this attempt; None when there is nothing to send.

    Call inside the tenant's context. Scheduled and due: claimed (scheduled →
    sending). Already `sending` under the same token (the task was redelivered after
    a crash or retried) or under an expired lease: taken over, with reconcile=True.
    Not yet due (edited hold, early task): re-enqueued for its time. Cancelled,
    sent or failed: None.
    """
    now = timezone.now()
    claimed = Message.objects.filter(
        pk=message_id, delivery_status=Delivery.SCHEDULED, send_after__lte=now
    ).update(
        delivery_status=Delivery.SENDING,
        claim_token=token,
        claimed_at=now,
        attempts=F("attempts") + 1,
    )
    reconcile = False
    if not claimed:
        reconcile = bool(
            Message.objects.filter(pk=message_id, delivery_status=Delivery.SENDING)
            .filter(Q(claim_token=token) | Q(claimed_at__lt=now - CLAIM_LEASE))
            .update(claim_token=token, claimed_at=now, attempts=F("attempts") + 1)
        )
        if not reconcile:
            _reschedule_if_early(message_id, now)
            return None
    message = Message.objects.select_related("conversation", "account").get(
        pk=message_id
    )
    if message.account is None:
        record_failure(
            message.pk,
            ConnectorError(
                "The conversation has no connected account.", permanent=True
            ),
            final=True,
        )
        return None
    events.emit(
        message.tenant_id,
        "message.updated",
        conversation_id=message.conversation_id,
        brand_id=message.conversation.brand_id,
        message_id=message.pk,
        changed={"delivery_status": Delivery.SENDING},
    )
    return DeliveryPlan(
        message_id=message.pk,
        platform=message.platform,
        account=connector_ref(message.account),
        reply=_outbound(message),
        reconcile=reconcile,
    )


def _reschedule_if_early(message_id: int, now: datetime) -> None:
    early = Message.objects.filter(
        pk=message_id, delivery_status=Delivery.SCHEDULED, send_after__gt=now
    ).first()
    if early is not None:
        schedule_delivery(early)


def _outbound(message: Message) -> OutboundReply:
    conversation: Conversation = message.conversation
    public = message.visibility == Message.Visibility.PUBLIC
    answered = (
        Message.objects.filter(
            conversation=conversation, direction=Message.Direction.IN
        )
        .filter(
            visibility=message.visibility if not public else Message.Visibility.PUBLIC
        )
        .order_by("-created_at")
        .values_list("external_id", flat=True)
        .first()
    )
    recipient = ""
    if conversation.contact_id:
        recipient = (
            conversation.contact.identities.filter(platform=message.platform)
            .values_list("external_id", flat=True)
            .first()
            or ""
        )
    private_reply = not public and not conversation.private_thread_ref
    in_reply_to = (
        (answered or conversation.public_thread_ref)
        if public or private_reply
        else conversation.private_thread_ref
    )
    return OutboundReply(
        client_ref=str(message.client_ref),
        text=message.text,
        visibility=message.visibility,
        in_reply_to=in_reply_to or "",
        recipient_id=recipient,
        private_reply_to_public=private_reply,
    )


def record_delivery(message_id: int, result: DeliveryResult) -> Message | None:
    """Mark a claimed message sent with the platform's id. Idempotent."""
    message = (
        Message.objects.select_for_update(of=("self",))
        .select_related("conversation")
        .get(pk=message_id)
    )
    if message.delivery_status != Delivery.SENDING:
        return None
    message.delivery_status = Delivery.SENT
    message.external_id = result.external_id
    message.external_url = result.url
    message.sent_at = result.sent_at or timezone.now()
    message.last_error = ""
    message.save(
        update_fields=[
            "delivery_status",
            "external_id",
            "external_url",
            "sent_at",
            "last_error",
        ]
    )
    events.emit(
        message.tenant_id,
        "message.updated",
        conversation_id=message.conversation_id,
        brand_id=message.conversation.brand_id,
        message_id=message.pk,
        changed={"delivery_status": Delivery.SENT, "external_url": result.url},
    )
    return message


def record_failure(
    message_id: int, error: ConnectorError, *, final: bool
) -> Message | None:
    """Record a failed attempt.

    A permanent error, or the last retry, marks the message failed with the
    platform's message and frees its public slot; the agent sees it and can retry.
    A transient error keeps the claim (`sending`) so the retry reconciles first.
    """
    message = (
        Message.objects.select_for_update(of=("self",))
        .select_related("conversation")
        .get(pk=message_id)
    )
    if message.delivery_status != Delivery.SENDING:
        return None
    message.last_error = error.message[:2000]
    fields = ["last_error"]
    if error.permanent or final:
        message.delivery_status = Delivery.FAILED
        fields.append("delivery_status")
    message.save(update_fields=fields)
    if message.delivery_status == Delivery.FAILED:
        release_public_slot(message)
    events.emit(
        message.tenant_id,
        "message.updated",
        conversation_id=message.conversation_id,
        brand_id=message.conversation.brand_id,
        message_id=message.pk,
        changed={
            "delivery_status": message.delivery_status,
            "last_error": message.last_error,
        },
    )
    return message


def stale_deliveries(*, now: datetime | None = None) -> list[int]:
    """Outbound messages a sweeper should hand to the task again.

    Scheduled ones well past their time (an enqueue was lost) and `sending` claims
    whose lease expired (the attempt died).
    """
    moment = now or timezone.now()
    return list(
        Message.objects.filter(direction=Message.Direction.OUT)
        .filter(
            Q(
                delivery_status=Delivery.SCHEDULED,
                send_after__lt=moment - timedelta(minutes=1),
            )
            | Q(delivery_status=Delivery.SENDING, claimed_at__lt=moment - CLAIM_LEASE)
        )
        .values_list("pk", flat=True)[:500]
    )
