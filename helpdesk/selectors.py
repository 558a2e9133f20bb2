"""Read-only queries of the care core, with their joins and prefetches applied."""

from typing import Any

from django.db.models import QuerySet

from helpdesk.models import Conversation, Message, Note
from tenants.models import Membership

Status = Conversation.Status


def inbox_conversations(
    membership: Membership,
    *,
    status: str | None = Status.OPEN,
    brand_id: int | None = None,
    assignee_id: int | None = None,
    unassigned: bool = False,
) -> QuerySet[Conversation]:
    """The inbox in queue order (R10): overdue first, then by bounded queue time.

    One query for the page: brand, contact and account are joined.
    """
    queryset = Conversation.objects.select_related("brand", "contact", "social_account")
    if status is not None:
        queryset = queryset.filter(status=status)
    if brand_id is not None:
        queryset = queryset.filter(brand_id=brand_id)
    if assignee_id is not None:
        queryset = queryset.filter(assignee_id=assignee_id)
    if unassigned:
        queryset = queryset.filter(assignee__isnull=True)
    return queryset.order_by("queue_at", "-last_activity_at", "id")


def conversation_thread(conversation: Conversation) -> dict[str, list[Any]]:
    """Messages (with authors) and notes of one conversation, oldest first."""
    messages = list(
        Message.objects.filter(conversation=conversation)
        .select_related("author_identity", "author_agent")
        .order_by("created_at", "id")
    )
    notes = list(
        Note.objects.filter(conversation=conversation)
        .select_related("author")
        .order_by("created_at")
    )
    return {"messages": messages, "notes": notes}


def contact_history(conversation: Conversation) -> QuerySet[Conversation]:
    """The contact's other conversations across platforms, newest first (R11)."""
    return (
        Conversation.objects.filter(contact_id=conversation.contact_id)
        .exclude(pk=conversation.pk)
        .select_related("brand")
        .order_by("-last_activity_at")
    )
