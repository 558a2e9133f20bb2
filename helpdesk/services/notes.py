"""Internal notes and tags on conversations."""

from django.db import transaction

from helpdesk import events
from helpdesk.exceptions import HelpdeskError
from helpdesk.models import Conversation, ConversationTag, Note, Tag
from helpdesk.services import sla
from tenants.access import require_role
from tenants.models import Membership


def add_note(conversation: Conversation, *, membership: Membership, text: str) -> Note:
    """Add an internal note (never sent to the customer). Agents and above."""
    require_role(membership, Membership.Role.AGENT)
    body = text.strip()
    if not body:
        raise HelpdeskError("Write the note first.", field="text")
    with transaction.atomic():
        note = Note.objects.create(
            tenant_id=conversation.tenant_id,
            conversation=conversation,
            author=membership.user,
            text=body,
        )
        events.emit(
            conversation.tenant_id,
            "conversation.updated",
            conversation_id=conversation.pk,
            brand_id=conversation.brand_id,
            changed={"note_id": note.pk},
        )
    return note


def set_tags(
    conversation: Conversation, *, membership: Membership, names: list[str]
) -> list[str]:
    """Make the conversation's tags exactly `names` (created as needed).

    A tag among the SLA policy's urgent tags moves a running clock to the urgent
    lane (helpdesk.services.sla.tags_changed_clock), under the row lock. Emits
    conversation.updated with the tags and any clock fields that changed.
    """
    require_role(membership, Membership.Role.AGENT)
    wanted = sorted({name.strip().lower()[:60] for name in names if name.strip()})
    with transaction.atomic():
        tags = []
        for name in wanted:
            tag, _ = Tag.objects.get_or_create(
                tenant_id=conversation.tenant_id, name=name
            )
            tags.append(tag)
        ConversationTag.objects.filter(conversation=conversation).exclude(
            tag__in=tags
        ).delete()
        have = set(
            ConversationTag.objects.filter(conversation=conversation).values_list(
                "tag_id", flat=True
            )
        )
        ConversationTag.objects.bulk_create(
            ConversationTag(conversation=conversation, tag=tag)
            for tag in tags
            if tag.pk not in have
        )
        locked = (
            Conversation.objects.select_for_update(of=("self",))
            .select_related("brand")
            .get(pk=conversation.pk)
        )
        clock = sla.tags_changed_clock(locked)
        if clock:
            locked.save(update_fields=list(clock))
        events.emit(
            conversation.tenant_id,
            "conversation.updated",
            conversation_id=conversation.pk,
            brand_id=conversation.brand_id,
            changed={"tags": wanted, **sla.jsonable(clock)},
        )
    return wanted
