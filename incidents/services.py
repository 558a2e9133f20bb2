"""Incidents (R13): open, link, note, hold, close; and the rule that links new
conversations for the incident's lifetime.

Every write is atomic and records a timeline entry in the same transaction.
Updates to the linked customers are in incidents/updates.py.
"""

import re
from collections.abc import Iterable, Sequence
from datetime import timedelta

from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.utils import timezone

from helpdesk.exceptions import HelpdeskError
from helpdesk.models import Conversation, ConversationTag, Message, Tag
from helpdesk.publish import on_commit
from helpdesk.services.inbound import INCIDENT_RULES_KEY
from helpdesk.services.lifecycle import resolve_conversation
from incidents.models import Incident, IncidentEntry, IncidentLink
from social.listening import Post, Rule, compile_rules
from social.models import ListeningRule
from tenants.access import require_role
from tenants.models import Brand, Membership, User

AGENT = Membership.Role.AGENT
MAX_LINK = 500  # conversations linked by one request
# How far back incidents.sweep_updates looks for conversations the inbound hook
# missed (the rule flag lost with the cache, a lost task).
CATCH_UP = timedelta(minutes=10)


class IncidentInvalid(HelpdeskError):
    """A field of an incident request that cannot be used; says which and why."""

    code = "incident_invalid"


class IncidentClosed(HelpdeskError):
    code = "incident_closed"
    http_status = 409


def _entry(
    incident: Incident,
    kind: str,
    *,
    actor: User | None,
    text: str = "",
    data: dict[str, object] | None = None,
) -> IncidentEntry:
    return IncidentEntry.objects.create(
        tenant_id=incident.tenant_id,
        incident=incident,
        kind=kind,
        actor=actor,
        text=text,
        data=data or {},
    )


def _text(field: str, value: str, *, limit: int) -> str:
    text = value.strip()
    if not text:
        raise IncidentInvalid("This field may not be blank.", field=field)
    if len(text) > limit:
        raise IncidentInvalid(
            f"Ensure this field has no more than {limit} characters.", field=field
        )
    return text


def _terms(value: str) -> str:
    terms = [t.strip() for t in value.split(",") if t.strip()]
    if any(len(t) < 2 for t in terms):
        raise IncidentInvalid(
            "Each term needs at least 2 characters.", field="rule_terms"
        )
    joined = ", ".join(terms)
    if len(joined) > 300:
        raise IncidentInvalid(
            "Ensure the terms have no more than 300 characters.", field="rule_terms"
        )
    return joined


def create_incident(
    membership: Membership,
    *,
    title: str,
    brand: Brand | None = None,
    holding_statement: str = "",
    rule_terms: str = "",
    rule_tag: Tag | None = None,
    rule_listening_rule: ListeningRule | None = None,
) -> Incident:
    """Open an incident (agents and above); its timeline starts with "opened".

    `brand`, `rule_tag` and `rule_listening_rule` come from the member's workspace
    (composite keys refuse another tenant's). Raises IncidentInvalid for a blank
    title or unusable terms.
    """
    require_role(membership, AGENT)
    with transaction.atomic():
        incident = Incident.objects.create(
            tenant=membership.tenant,
            title=_text("title", title, limit=160),
            brand=brand,
            holding_statement=holding_statement.strip(),
            holding_statement_at=timezone.now() if holding_statement.strip() else None,
            rule_terms=_terms(rule_terms),
            rule_tag=rule_tag,
            rule_listening_rule=rule_listening_rule,
            created_by=membership.user,
        )
        _entry(incident, IncidentEntry.Kind.OPENED, actor=membership.user)
        flag_rule_incidents(incident.tenant_id)
    return incident


def update_incident_rule(
    membership: Membership,
    incident: Incident,
    *,
    title: str | None = None,
    rule_terms: str | None = None,
    rule_tag: Tag | object | None = ...,
    rule_listening_rule: ListeningRule | object | None = ...,
) -> Incident:
    """Rename the incident or change its linking rule; arguments left out stay."""
    require_role(membership, AGENT)
    _check_open(incident)
    changed: list[str] = []
    if title is not None:
        incident.title = _text("title", title, limit=160)
        changed.append("title")
    if rule_terms is not None:
        incident.rule_terms = _terms(rule_terms)
        changed.append("rule_terms")
    if rule_tag is not ...:
        incident.rule_tag = rule_tag if isinstance(rule_tag, Tag) else None
        changed.append("rule_tag")
    if rule_listening_rule is not ...:
        incident.rule_listening_rule = (
            rule_listening_rule
            if isinstance(rule_listening_rule, ListeningRule)
            else None
        )
        changed.append("rule_listening_rule")
    if changed:
        with transaction.atomic():
            incident.save(update_fields=changed)
            flag_rule_incidents(incident.tenant_id)
    return incident


def _check_open(incident: Incident) -> None:
    if incident.status != Incident.Status.OPEN:
        raise IncidentClosed("This incident is closed.", field="status")


def link_conversations(
    incident: Incident,
    conversations: Sequence[Conversation],
    *,
    membership: Membership | None,
    via: str = IncidentLink.Via.HAND,
) -> list[int]:
    """Link conversations to an open incident; already linked ones are kept as
    they are. Returns the ids newly linked; one "linked" timeline entry names them.

    `membership` None: the incident's rule links (a task). Raises IncidentClosed.
    """
    if membership is not None:
        require_role(membership, AGENT)
    _check_open(incident)
    if len(conversations) > MAX_LINK:
        raise IncidentInvalid(
            f"Link at most {MAX_LINK} conversations at once.", field="conversation_ids"
        )
    actor = membership.user if membership else None
    with transaction.atomic():
        linked = set(
            IncidentLink.objects.filter(
                incident=incident, conversation__in=[c.pk for c in conversations]
            ).values_list("conversation_id", flat=True)
        )
        new = [c for c in conversations if c.pk not in linked]
        IncidentLink.objects.bulk_create(
            [
                IncidentLink(
                    tenant_id=incident.tenant_id,
                    incident=incident,
                    conversation=c,
                    via=via,
                    linked_by=actor,
                )
                for c in new
            ],
            ignore_conflicts=True,
        )
        ids = [c.pk for c in new]
        if ids:
            _entry(
                incident,
                IncidentEntry.Kind.LINKED,
                actor=actor,
                text=f"{len(ids)} conversation{'s' if len(ids) != 1 else ''} linked"
                f" ({IncidentLink.Via(via).label.lower()})",
                data={"conversation_ids": ids, "via": via},
            )
    return ids


def unlink_conversation(
    membership: Membership, incident: Incident, conversation: Conversation
) -> bool:
    """Remove a conversation from the incident; False when it was not linked."""
    require_role(membership, AGENT)
    with transaction.atomic():
        deleted, _ = IncidentLink.objects.filter(
            incident=incident, conversation=conversation
        ).delete()
        if deleted:
            _entry(
                incident,
                IncidentEntry.Kind.UNLINKED,
                actor=membership.user,
                text=f"Conversation {conversation.pk} unlinked",
                data={"conversation_ids": [conversation.pk]},
            )
    return bool(deleted)


def add_incident_note(
    membership: Membership, incident: Incident, *, text: str
) -> IncidentEntry:
    """An internal note on the incident's timeline; never sent to a customer."""
    require_role(membership, AGENT)
    return _entry(
        incident,
        IncidentEntry.Kind.NOTE,
        actor=membership.user,
        text=_text("text", text, limit=5000),
    )


def set_holding_statement(
    membership: Membership, incident: Incident, *, text: str
) -> Incident:
    """Change the current holding statement; the timeline keeps each version.

    An empty text withdraws it.
    """
    require_role(membership, AGENT)
    _check_open(incident)
    statement = text.strip()
    if len(statement) > 2000:
        raise IncidentInvalid(
            "Ensure this field has no more than 2000 characters.", field="text"
        )
    with transaction.atomic():
        incident.holding_statement = statement
        incident.holding_statement_at = timezone.now()
        incident.save(update_fields=["holding_statement", "holding_statement_at"])
        _entry(
            incident,
            IncidentEntry.Kind.HOLDING,
            actor=membership.user,
            text=statement or "Holding statement withdrawn",
        )
    return incident


def close_incident(
    membership: Membership,
    incident: Incident,
    *,
    resolve: Iterable[Conversation],
) -> list[int]:
    """Close the incident and resolve exactly the linked conversations the agent
    chose (`resolve`, a subset of the linked ones; never the others). Returns the
    ids resolved; the "closed" entry names them and the ones left as they were.

    Raises IncidentInvalid when a chosen conversation is not linked, IncidentClosed
    when the incident is closed already.
    """
    require_role(membership, AGENT)
    chosen = list(resolve)
    with transaction.atomic():
        locked = Incident.objects.select_for_update().get(pk=incident.pk)
        _check_open(locked)
        linked = set(
            IncidentLink.objects.filter(incident=locked).values_list(
                "conversation_id", flat=True
            )
        )
        stray = sorted(c.pk for c in chosen if c.pk not in linked)
        if stray:
            raise IncidentInvalid(
                f"Not linked to this incident: {', '.join(map(str, stray))}.",
                field="resolve_ids",
            )
        resolved = []
        for conversation in chosen:
            if conversation.status != Conversation.Status.RESOLVED:
                resolve_conversation(conversation, membership=membership)
                resolved.append(conversation.pk)
        locked.status = Incident.Status.CLOSED
        locked.closed_at = timezone.now()
        locked.save(update_fields=["status", "closed_at"])
        kept = sorted(linked - {c.pk for c in chosen})
        _entry(
            locked,
            IncidentEntry.Kind.CLOSED,
            actor=membership.user,
            text=f"Closed; {len(resolved)} conversation"
            f"{'s' if len(resolved) != 1 else ''} resolved, {len(kept)} left as "
            "they were",
            data={"resolved_ids": resolved, "kept_ids": kept},
        )
        flag_rule_incidents(locked.tenant_id)
    incident.status = locked.status
    incident.closed_at = locked.closed_at
    return resolved


# --- The linking rule -------------------------------------------------------------


def _rule_incidents() -> list[Incident]:
    return [
        i
        for i in Incident.objects.filter(status=Incident.Status.OPEN).select_related(
            "rule_listening_rule"
        )
        if i.has_rule
    ]


def flag_rule_incidents(tenant_id: int) -> bool:
    """Tell inbound (a cache flag, set on commit) whether the tenant has an open
    incident with a linking rule; returns it. Call in the tenant's context."""
    wanted = bool(_rule_incidents())
    key = INCIDENT_RULES_KEY.format(tenant_id)
    on_commit(lambda: cache.set(key, 1 if wanted else 0, timeout=None))
    return wanted


def catch_up_rule_links(tenant_id: int) -> dict[int, list[int]]:
    """Link the conversations opened in the last CATCH_UP that the inbound hook
    may have missed; refreshes the flag (incidents.sweep_updates). Call in the
    tenant's context."""
    if not flag_rule_incidents(tenant_id):
        return {}
    since = timezone.now() - CATCH_UP
    recent = list(
        Conversation.objects.filter(created_at__gte=since).values_list("pk", flat=True)
    )
    return link_matching_conversations(recent)


def _rule_matches(
    incident: Incident,
    conversation: Conversation,
    text: str,
    tag_ids: set[int],
    listening: dict[int, ListeningRule],
) -> bool:
    if incident.brand_id is not None and incident.brand_id != conversation.brand_id:
        return False
    if conversation.created_at < incident.created_at:
        return False  # the rule links new conversations, for its lifetime
    terms = [t.strip() for t in incident.rule_terms.split(",") if t.strip()]
    # Whole words or phrases: "LIS" must not match "list".
    if any(
        re.search(rf"(?<!\w){re.escape(term)}(?!\w)", text, re.IGNORECASE)
        for term in terms
    ):
        return True
    if incident.rule_tag_id is not None and incident.rule_tag_id in tag_ids:
        return True
    rule = listening.get(incident.rule_listening_rule_id or 0)
    if rule is None:
        return False
    matcher = compile_rules(
        [
            Rule(
                id=rule.pk,
                brand_id=rule.brand_id,
                query=rule.query,
                platforms=frozenset(rule.platforms) if rule.platforms else None,
                action="inbox",
                variants=rule.variants or {},
            )
        ]
    )
    post = Post(
        text=text,
        author_handle="",
        language="",
        platform=conversation.platform,
        author_is_brand=False,
    )
    return bool(matcher.match(post))


def link_matching_conversations(
    conversation_ids: Sequence[int],
) -> dict[int, list[int]]:
    """Link new conversations to every open incident whose rule matches them
    (terms in the first customer message, a tag, a listening rule). Run inside
    the tenant's context, after the inbound commit (incidents.link_new_conversations).

    Set-based: one query for the open incidents with a rule (and nothing more
    when there are none), one for the conversations' first messages, one for
    their tags. Returns {incident_id: linked conversation ids}.
    """
    incidents = _rule_incidents()
    if not incidents or not conversation_ids:
        return {}
    # A conversation an agent unlinked stays unlinked.
    unlinked: dict[int, set[int]] = {}
    for incident_id, data in IncidentEntry.objects.filter(
        incident__in=[i.pk for i in incidents], kind=IncidentEntry.Kind.UNLINKED
    ).values_list("incident_id", "data"):
        ids = data.get("conversation_ids", []) if isinstance(data, dict) else []
        unlinked.setdefault(incident_id, set()).update(ids)
    conversations = list(
        Conversation.objects.filter(pk__in=conversation_ids).order_by("pk")
    )
    texts: dict[int, str] = {}
    for conversation_id, text in (
        Message.objects.filter(
            conversation__in=conversation_ids, direction=Message.Direction.IN
        )
        .order_by("created_at", "id")
        .values_list("conversation_id", "text")
    ):
        texts.setdefault(conversation_id, text)
    tags: dict[int, set[int]] = {}
    if any(i.rule_tag_id for i in incidents):
        for conversation_id, tag_id in ConversationTag.objects.filter(
            conversation__in=conversation_ids
        ).values_list("conversation_id", "tag_id"):
            tags.setdefault(conversation_id, set()).add(tag_id)
    listening = {
        i.rule_listening_rule.pk: i.rule_listening_rule
        for i in incidents
        if i.rule_listening_rule is not None and i.rule_listening_rule.enabled
    }
    linked: dict[int, list[int]] = {}
    for incident in incidents:
        matching = [
            c
            for c in conversations
            if c.pk not in unlinked.get(incident.pk, set())
            and _rule_matches(
                incident, c, texts.get(c.pk, ""), tags.get(c.pk, set()), listening
            )
        ]
        if matching:
            try:
                ids = link_conversations(
                    incident, matching, membership=None, via=IncidentLink.Via.RULE
                )
            except IntegrityError:  # pragma: no cover - a concurrent link won
                continue
            if ids:
                linked[incident.pk] = ids
    return linked
