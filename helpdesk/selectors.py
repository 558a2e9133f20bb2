"""Read-only queries of the care core, with their joins and prefetches applied."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Count, Max, Q, QuerySet
from django.utils import timezone

from helpdesk.compiled import CompiledQuery
from helpdesk.lookups import attach_columns, outer_join, tag_names
from helpdesk.models import (
    Contact,
    Conversation,
    ConversationTag,
    Event,
    Identity,
    Message,
    Note,
    SavedReply,
    Tag,
)
from helpdesk.presence import presence_store
from helpdesk.queue import QueueQuerySet, with_queue_order
from tenants.context import current_tenant_id
from tenants.models import Membership

Status = Conversation.Status


def inbox_conversations(
    membership: Membership,
    *,
    status: str | None = Status.OPEN,
    brand_id: int | None = None,
    account_id: int | None = None,
    platform: str | None = None,
    origin: str | None = None,
    assignee_id: int | None = None,
    unassigned: bool = False,
    sentiment: str | None = None,
    language: str | None = None,
    tag: str | None = None,
    spreading: bool = False,
    now: datetime | None = None,
) -> QueueQuerySet[Conversation]:
    """The inbox in queue order (R10) at `now` (default: the current time).

    Waiting conversations sort by due time; reach or sentiment moves one forward
    only within its brand's window, never past one that is breached or due first
    (the key is helpdesk.queue.queue_key_expression, annotated as `queue_key`;
    helpdesk.queue.queue_order is its pure twin). Conversations without an SLA
    clock (answered) come after those waiting, most recent first, on every database.
    Every filter is optional (None: any); `tag` is a tag name; `language` an
    ISO 639-1 code ("": not detected). One query for the
    page: brand, account and assignee are joined, the contact (its name loaded) and
    the tag names (`tag_names`, a sorted list) are subqueries per row; the tag
    filter is a subquery, not a join, so rows are never repeated. A slice [:n] (a
    page) sorts only the rows that can be among the first n
    (helpdesk.queue.QueueQuerySet): bounded index ranges, then primary-key lookups,
    whatever the table statistics say; same statement count, same order. Such a
    first slice of the queryset as returned (no tag filter) is read in a shape
    compiled once (`_InboxShape`): the same statement, without building it.
    """
    now = now or timezone.now()
    given = {
        "brand_id": brand_id,
        "account_id": account_id,
        "platform": platform,
        "origin": origin,
        "assignee_id": assignee_id,
        "sentiment": sentiment,
        "language": language,
    }
    filters = {name: value for name, value in given.items() if value is not None}
    ordered = _inbox_ordered(
        membership,
        status=status,
        unassigned=unassigned,
        spreading=spreading,
        tag=tag,
        now=now,
        **filters,
    )
    tenant_id = current_tenant_id()
    if (
        tag is None
        and tenant_id is not None
        and all(type(value) is _SHAPED[name] for name, value in filters.items())
        and type(now) is datetime
    ):
        names = tuple(sorted(filters))
        ordered._queue_shape = _InboxShape(
            (names, status, unassigned, spreading, membership.role),
            (*(filters[name] for name in names), now),
            tenant_id,
        )
    return ordered


def _inbox_ordered(
    membership: Membership,
    *,
    status: str | None,
    unassigned: bool,
    spreading: bool,
    tag: str | None,
    now: datetime,
    **filters: Any,
) -> QueueQuerySet[Conversation]:
    """inbox_conversations' queryset, built (no shape)."""
    queryset = conversation_rows(membership).select_related("assignee")
    queryset = _inbox_filters(
        queryset, membership, unassigned=unassigned, tag=tag, **filters
    )
    if status is not None:
        queryset = queryset.filter(status=status)
    if spreading:  # R13: only those flagged spreading
        queryset = queryset.filter(spreading_since__isnull=False)
    return with_queue_order(queryset, now)


# The filters whose values reach the SQL unchanged, and their types: a page of
# inbox_conversations given only these is read in a compiled shape (the tag's
# name is normalized first, so a tag page is built).
_SHAPED: dict[str, type] = {
    "brand_id": int,
    "account_id": int,
    "platform": str,
    "origin": str,
    "assignee_id": int,
    "sentiment": str,
    "language": str,
}
# (filter names, status, unassigned, spreading, role, n) -> its compiled page.
_PAGES: dict[tuple[Any, ...], CompiledQuery[Conversation] | None] = {}
_MAX_PAGES = 512


def _stand_in(role: str) -> Membership:
    """A membership that is no one's, for compiling a shape: if the selector ever
    reads a member's id into the SQL, the two builds of the compile differ and the
    shape is refused."""
    marker = current_tenant_id() or 0
    return Membership(id=marker + 7, tenant_id=marker, user_id=marker + 11, role=role)


def _compiled_page(key: tuple[Any, ...]) -> CompiledQuery[Conversation]:
    names, status, unassigned, spreading, role, n = key

    def build(*values: Any) -> QuerySet[Conversation]:
        filters = dict(zip(names, values[:-1], strict=True))
        ordered = _inbox_ordered(
            _stand_in(role),
            status=status,
            unassigned=unassigned,
            spreading=spreading,
            tag=None,
            now=values[-1],
            **filters,
        )
        page: QuerySet[Conversation] = ordered[:n]
        return page

    return CompiledQuery(build, [*(_SHAPED[name] for name in names), datetime])


@dataclass(frozen=True, slots=True)
class _InboxShape:
    """A helpdesk.queue.QueueShape: the first n rows of inbox_conversations with
    these filters, read by a statement compiled once per shape and connection
    (helpdesk.compiled), the same SQL the built slice sends, with the tenant,
    the filters' values and the time as its parameters. Building and compiling
    the slice (the queue's arms, bounds and subqueries) was about three quarters
    of the CPU of a page."""

    key: tuple[Any, ...]  # (filter names, status, unassigned, spreading, role)
    values: tuple[Any, ...]  # the filters' values, then the time
    tenant_id: int  # the tenant open when the queryset was made

    def first(self, n: int) -> list[Conversation] | None:
        if current_tenant_id() != self.tenant_id:
            return None  # another tenant open: the built slice's own answer
        key = (*self.key, n)
        compiled = _PAGES.get(key, _UNSEEN)
        if compiled is _UNSEEN:
            if len(_PAGES) >= _MAX_PAGES:
                return None
            compiled = _PAGES[key] = _compiled_page(key)
        if compiled is None:
            return None
        try:
            rows: list[Conversation] = compiled.rows(*self.values)
        except ValueError:
            # The selector's SQL depends on something besides these values (its
            # code changed): never compile this shape, build it.
            _PAGES[key] = None
            return None
        return rows


_UNSEEN: Any = object()


def _inbox_filters(
    queryset: QuerySet[Conversation],
    membership: Membership,
    *,
    brand_id: int | None = None,
    account_id: int | None = None,
    platform: str | None = None,
    origin: str | None = None,
    assignee_id: int | None = None,
    unassigned: bool,
    sentiment: str | None = None,
    language: str | None = None,
    tag: str | None,
) -> QuerySet[Conversation]:
    exact = {
        "brand_id": brand_id,
        "social_account_id": account_id,
        "platform": platform,
        "origin": origin,
        "assignee_id": assignee_id,
        "sentiment": sentiment,
        "language": language,  # "" is unknown
    }
    queryset = queryset.filter(**{k: v for k, v in exact.items() if v is not None})
    if unassigned:
        queryset = queryset.filter(assignee__isnull=True)
    if tag is not None:
        tagged = ConversationTag.objects.filter(tag__name=tag.strip().lower())
        queryset = queryset.filter(pk__in=tagged.values("conversation_id"))
    return queryset


def inbox_counts(
    membership: Membership,
    *,
    brand_id: int | None = None,
    account_id: int | None = None,
    platform: str | None = None,
    origin: str | None = None,
    assignee_id: int | None = None,
    unassigned: bool = False,
    sentiment: str | None = None,
    language: str | None = None,
    tag: str | None = None,
) -> dict[str, int]:
    """Conversations per status under the same filters, plus the open ones still
    waiting for an answer (`unanswered`), in one aggregate query."""
    queryset = _inbox_filters(
        Conversation.objects.all(),
        membership,
        brand_id=brand_id,
        account_id=account_id,
        platform=platform,
        origin=origin,
        assignee_id=assignee_id,
        unassigned=unassigned,
        sentiment=sentiment,
        language=language,
        tag=tag,
    )
    counts = queryset.aggregate(
        all=Count("id"),
        unanswered=Count("id", filter=Q(status=Status.OPEN, sla_due_at__isnull=False)),
        **{value: Count("id", filter=Q(status=value)) for value in Status.values},
    )
    return {key: int(value or 0) for key, value in counts.items()}


def conversation_rows(membership: Membership) -> QuerySet[Conversation]:
    """The workspace's conversations shaped for reading: brand and account joined
    (the brand as a left join), the contact with its name and the tag names
    (`tag_names`) as subqueries by primary key. No plan of it depends on table
    statistics (helpdesk.lookups); one statement for any number of rows."""
    rows = Conversation.objects.select_related("brand", "social_account")
    rows = attach_columns(rows, "contact", ["display_name"])
    rows = rows.annotate(tag_names=tag_names())
    return outer_join(rows, "brand")


def conversation_messages(conversation: Conversation) -> list[Message]:
    """The conversation's messages with their authors, oldest first (one query:
    the customer identity's contact, name and handle by primary key, the agent
    joined; compiled once, helpdesk.compiled)."""
    return _MESSAGES.rows(conversation.pk)


def _messages_of(conversation_id: int) -> QuerySet[Message]:
    messages = (
        Message.objects.filter(conversation_id=conversation_id)
        .select_related("author_agent")
        .order_by("created_at", "id")
    )
    return attach_columns(
        messages, "author_identity", ["contact_id", "display_name", "handle"]
    )


_MESSAGES = CompiledQuery(_messages_of, [int])


def conversation_notes(conversation: Conversation) -> list[Note]:
    """The conversation's internal notes with their authors, oldest first."""
    return list(
        Note.objects.filter(conversation_id=conversation.pk)
        .select_related("author")
        .order_by("created_at", "id")
    )


def conversation_thread(conversation: Conversation) -> dict[str, list[Any]]:
    """Messages (with authors) and notes of one conversation, oldest first."""
    return {
        "messages": conversation_messages(conversation),
        "notes": conversation_notes(conversation),
    }


def contact_history(conversation: Conversation) -> QuerySet[Conversation]:
    """The contact's other conversations across platforms, newest first (R11)."""
    return (
        Conversation.objects.filter(contact_id=conversation.contact_id)
        .exclude(pk=conversation.pk)
        .select_related("brand")
        .order_by("-last_activity_at")
    )


def conversation_tags(conversation_ids: list[int]) -> dict[int, list[str]]:
    """Tag names per conversation for a page of conversations, in one query."""
    tags: dict[int, list[str]] = {pk: [] for pk in conversation_ids}
    rows = (
        ConversationTag.objects.filter(conversation_id__in=conversation_ids)
        .order_by("tag__name")
        .values_list("conversation_id", "tag__name")
    )
    for conversation_id, name in rows:
        tags[conversation_id].append(name)
    return tags


def last_event_seq(membership: Membership) -> int:
    """The workspace's latest live-event sequence: a page rendered now resumes its
    websocket after it, so nothing that happens while it loads is missed."""
    latest = Event.objects.aggregate(latest=Max("seq"))["latest"]
    return int(latest or 0)


def online_member_ids(membership: Membership) -> set[int]:
    """User ids of the workspace's agents with a live connection (presence)."""
    return presence_store().online(membership.tenant_id)


def workspace_tags(membership: Membership) -> QuerySet[Tag]:
    """The workspace's tags by name (filter choices)."""
    return Tag.objects.order_by("name")


def contact_identities(contact: Contact) -> list[Identity]:
    """The contact's identities across platforms, the widest reach first (R11)."""
    return list(
        Identity.objects.filter(contact=contact).order_by("-followers", "platform")
    )


def merge_candidates(
    membership: Membership, contact: Contact, *, query: str = "", limit: int = 8
) -> list[Contact]:
    """Other live contacts that may be the same person: matched by name, handle,
    email or CRM id (`query`, or the contact's own name when empty)."""
    term = (query or contact.display_name).strip()
    if not term:
        return []
    found = contact_directory(membership, query=term).exclude(pk=contact.pk)
    return list(found.order_by("display_name", "id")[:limit])


def contact_directory(
    membership: Membership,
    *,
    query: str = "",
    include_merged: bool = False,
    before_id: int | None = None,
) -> QuerySet[Contact]:
    """The workspace's contacts, newest first (id descending), identities prefetched.

    `query` matches the name, email or CRM id, or any identity's handle or name
    (case-insensitive, a leading `@` ignored). Contacts merged into another are
    left out unless `include_merged`. `before_id` is a keyset cursor: only ids
    below it.
    """
    contacts = Contact.objects.prefetch_related("identities")
    if before_id is not None:
        contacts = contacts.filter(pk__lt=before_id)
    if not include_merged:
        contacts = contacts.filter(merged_into__isnull=True)
    term = query.strip()
    if term:
        handle = term.lstrip("@") or term
        matching = Identity.objects.filter(
            Q(handle__icontains=handle) | Q(display_name__icontains=term)
        ).values("contact_id")
        contacts = contacts.filter(
            Q(display_name__icontains=term)
            | Q(email__iexact=term)
            | Q(external_crm_id=term)
            | Q(pk__in=matching)
        )
    return contacts.order_by("-id")


def contact_conversations(contact: Contact, *, limit: int = 50) -> list[Conversation]:
    """The contact's latest conversations (with brands), most recent activity first."""
    return list(
        Conversation.objects.filter(contact_id=contact.pk)
        .select_related("brand")
        .order_by("-last_activity_at", "-id")[:limit]
    )


def workspace_saved_replies(
    membership: Membership, *, brand_id: int | None = None
) -> QuerySet[SavedReply]:
    """The workspace's saved replies by title, brands joined; with `brand_id`, that
    brand's and the shared ones (what an agent of that brand can use)."""
    replies = SavedReply.objects.select_related("brand")
    if brand_id is not None:
        replies = replies.filter(Q(brand_id=brand_id) | Q(brand__isnull=True))
    return replies.order_by("title", "id")
