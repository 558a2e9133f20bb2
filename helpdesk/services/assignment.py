"""Who answers: manual assignment and claim, round-robin auto-assign, follow-ups."""

from datetime import UTC, datetime

from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from helpdesk import events
from helpdesk.exceptions import HelpdeskError, InvalidTransition
from helpdesk.language import LANGUAGES
from helpdesk.models import Conversation
from helpdesk.presence import presence_store
from helpdesk.services import writebatch
from tenants.access import require_role
from tenants.models import Membership, User

Role = Membership.Role
ANSWERING_ROLES = (Role.AGENT, Role.ADMIN, Role.OWNER)
OPEN_STATES = (Conversation.Status.OPEN, Conversation.Status.PENDING)


def assign_conversation(
    conversation: Conversation, *, membership: Membership, assignee: User | None
) -> Conversation:
    """Assign the conversation to a member who can answer, or unassign it (None).

    Agents and above. Raises InvalidTransition when the assignee is not an answering
    member of this workspace. Emits conversation.updated.
    """
    require_role(membership, Role.AGENT)
    if assignee is not None:
        target = Membership.objects.filter(
            user=assignee, role__in=ANSWERING_ROLES
        ).first()
        if target is None:
            raise InvalidTransition(
                "Assign the conversation to an agent of this workspace."
            )
    with transaction.atomic():
        locked = Conversation.objects.select_for_update(of=("self",)).get(
            pk=conversation.pk
        )
        _set_assignee(locked, assignee.pk if assignee else None)
    return locked


def claim_conversation(
    conversation: Conversation, *, membership: Membership
) -> Conversation:
    """Take an unassigned conversation (or keep one already yours).

    Raises InvalidTransition naming the agent when someone else has it.
    """
    require_role(membership, Role.AGENT)
    with transaction.atomic():
        locked = Conversation.objects.select_for_update(of=("self",)).get(
            pk=conversation.pk
        )
        if locked.assignee_id not in (None, membership.user_id):
            holder = locked.assignee
            name = holder.public_name if holder else "Another agent"
            raise InvalidTransition(f"{name} is already on this conversation.")
        _set_assignee(locked, membership.user_id)
    return locked


def _set_assignee(conversation: Conversation, user_id: int | None) -> None:
    if conversation.assignee_id == user_id:
        return
    conversation.assignee_id = user_id
    conversation.save(update_fields=["assignee"])
    events.emit(
        conversation.tenant_id,
        "conversation.updated",
        conversation_id=conversation.pk,
        brand_id=conversation.brand_id,
        changed={"assignee_id": user_id},
    )


def set_member_languages(
    membership: Membership, *, target: Membership, languages: list[str]
) -> Membership:
    """Set the languages `target` answers in (ISO 639-1 codes of LANGUAGES).

    A member sets their own; admins set anyone's. Raises InvalidTransition
    (HelpdeskError, 400, field `languages`) on an unknown code; repeats are
    dropped, the order kept.
    """
    if target.pk != membership.pk:
        require_role(membership, Role.ADMIN)
    unknown = [code for code in languages if code not in LANGUAGES]
    if unknown:
        raise HelpdeskError(
            f"Unknown language code: {unknown[0]!r}. Choose from "
            f"{', '.join(LANGUAGES)}.",
            field="languages",
        )
    chosen = list(dict.fromkeys(languages))
    if target.languages != chosen:
        target.languages = chosen
        target.save(update_fields=["languages"])
    return target


def route_inbound(conversation: Conversation, *, opened: bool) -> dict[str, object]:
    """Pick the agent for a conversation that just received a customer message.

    Call inside the inbound transaction with the conversation row locked. A
    follow-up goes back to the agent who last answered while that agent is online;
    otherwise an unassigned conversation of a brand with auto-assign goes
    round-robin to the online agent with the most spare capacity, preferring
    those who answer in the conversation's language. Returns the changed fields
    (the caller emits the event).
    """
    online = presence_store().online(conversation.tenant_id)
    last = conversation.last_answered_by_id
    if last is not None and last in online and conversation.assignee_id != last:
        return _assign_quietly(conversation, last)
    if conversation.assignee_id is not None or not conversation.brand.auto_assign:
        return {}
    pick = next_agent(online, language=conversation.language)
    if pick is None:
        return {}
    return _assign_quietly(conversation, pick)


def _assign_quietly(conversation: Conversation, user_id: int) -> dict[str, object]:
    conversation.assignee_id = user_id
    batch = writebatch.current()
    if batch is None:
        conversation.save(update_fields=["assignee"])
        Membership.objects.filter(user_id=user_id).update(
            last_assigned_at=timezone.now()
        )
    else:
        # The caller writes the conversation's changed fields with its batch.
        batch.add(
            "UPDATE tenants_membership SET last_assigned_at = %s"
            ' WHERE tenants_membership."tenant_id" = %s AND user_id = %s',
            [timezone.now(), conversation.tenant_id, user_id],
        )
    return {"assignee_id": user_id}


def next_agent(online: set[int], *, language: str = "") -> int | None:
    """The online answering member with the least load under capacity.

    Members who list `language` among theirs go first; when none of them has
    spare capacity (or the language is unknown), everyone eligible does. Ties go
    to whoever was assigned least recently (round-robin).
    """
    if not online:
        return None
    members = list(
        Membership.objects.filter(user_id__in=online, role__in=ANSWERING_ROLES).only(
            "user_id", "capacity", "last_assigned_at", "languages"
        )
    )
    if not members:
        return None
    load = dict(
        Conversation.objects.filter(
            assignee_id__in=[m.user_id for m in members], status__in=OPEN_STATES
        )
        .values_list("assignee_id")
        .annotate(n=Count("id"))
        .values_list("assignee_id", "n")
    )
    eligible = [m for m in members if load.get(m.user_id, 0) < m.capacity]
    if not eligible:
        return None
    speakers = [m for m in eligible if language and language in (m.languages or [])]
    eligible = speakers or eligible
    epoch = datetime.min.replace(tzinfo=UTC)
    best = min(
        eligible,
        key=lambda m: (load.get(m.user_id, 0), m.last_assigned_at or epoch, m.user_id),
    )
    return best.user_id
