"""Reads of incidents: lists, the page's linked conversations, its timeline and
the progress of its updates. Call inside the member's tenant context."""

from typing import Any

from django.db.models import Count, Exists, OuterRef, Q, QuerySet

from helpdesk.models import Conversation, Message
from incidents.models import (
    Incident,
    IncidentEntry,
    IncidentLink,
    IncidentUpdate,
    UpdateRecipient,
)
from tenants.models import Membership


def _unanswered() -> Any:
    """A conversation whose last message is the customer's (no answer after it)."""
    answered_after = Message.objects.filter(
        conversation=OuterRef("pk"),
        direction=Message.Direction.OUT,
        created_at__gte=OuterRef("last_customer_message_at"),
    ).exclude(delivery_status__in=["cancelled", "failed"])
    return ~Exists(answered_after)


def workspace_incidents(
    membership: Membership, *, status: str | None = None
) -> QuerySet[Incident]:
    """The workspace's incidents, newest first, with `linked` counted."""
    incidents = Incident.objects.select_related("brand").annotate(
        linked=Count("links", distinct=True)
    )
    if status:
        incidents = incidents.filter(status=status)
    return incidents.order_by("-created_at", "-id")


def incident_conversations(
    membership: Membership, incident: Incident
) -> QuerySet[Conversation]:
    """The linked conversations, oldest link first, with `unanswered` (bool)."""
    linked = IncidentLink.objects.filter(incident=incident).values("conversation_id")
    return (
        Conversation.objects.filter(pk__in=linked)
        .select_related("contact", "brand", "social_account")
        .annotate(unanswered=_unanswered())
        .order_by("created_at", "id")
    )


def unanswered_count(conversations: list[Conversation]) -> int:
    return sum(
        1
        for c in conversations
        if getattr(c, "unanswered", False) and c.status != Conversation.Status.RESOLVED
    )


def incident_timeline(incident: Incident, *, limit: int = 200) -> list[IncidentEntry]:
    """The incident's timeline, newest first (notes included)."""
    return list(
        IncidentEntry.objects.filter(incident=incident)
        .select_related("actor")
        .order_by("-created_at", "-id")[:limit]
    )


def incident_updates(incident: Incident) -> list[IncidentUpdate]:
    """The incident's updates, newest first, with counts per recipient status."""
    return list(
        IncidentUpdate.objects.filter(incident=incident)
        .annotate(
            **{
                f"n_{status}": Count("recipients", filter=Q(recipients__status=status))
                for status in UpdateRecipient.Status.values
            },
            n_total=Count("recipients"),
        )
        .order_by("-created_at", "-id")
    )


def update_problems(update: IncidentUpdate) -> list[UpdateRecipient]:
    """The recipients an agent must look at: skipped and failed, with reasons."""
    return list(
        UpdateRecipient.objects.filter(
            update=update,
            status__in=[UpdateRecipient.Status.SKIPPED, UpdateRecipient.Status.FAILED],
        )
        .select_related("conversation__contact")
        .order_by("position", "id")
    )
