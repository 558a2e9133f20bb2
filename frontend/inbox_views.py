"""The agent inbox: the page, and the fragments its scripts re-fetch on live events.

Every fragment is a template partial of the page that shows it
(`frontend/inbox.html#conversation-row`, `frontend/conversation.html#message-row`),
so the first render and each live update come from one template. Writes do not
happen here: the page's scripts call the REST API.
"""

from typing import Any

from django.http import Http404, HttpResponse
from django.shortcuts import render

from frontend.forms import InboxFilterForm
from frontend.presenters import (
    NO_REPLY_CHOICES,
    composer_for,
    offers_no_reply,
    signature_for,
    timeline,
)
from helpdesk.access import access_contact, access_conversation, access_message
from helpdesk.models import Conversation
from helpdesk.selectors import (
    contact_history,
    contact_identities,
    conversation_tags,
    conversation_thread,
    inbox_conversations,
    inbox_counts,
    last_event_seq,
    merge_candidates,
    online_member_ids,
    workspace_saved_replies,
    workspace_tags,
)
from social.selectors import workspace_accounts
from tenants.decorators import tenant_view
from tenants.http import TenantRequest
from tenants.models import Membership
from tenants.selectors import workspace_brands, workspace_members

PAGE_SIZE = 100
ANSWERING = (Membership.Role.AGENT, Membership.Role.ADMIN, Membership.Role.OWNER)


def _filters(request: TenantRequest, members: list[Membership]) -> InboxFilterForm:
    return InboxFilterForm(
        request.GET,
        membership=request.membership,
        brands=list(workspace_brands(request.membership)),
        accounts=list(workspace_accounts(request.membership)),
        members=[m for m in members if m.role in ANSWERING],
        tags=list(workspace_tags(request.membership)),
    )


def _members(request: TenantRequest) -> list[Membership]:
    return list(workspace_members(request.membership))


def _page(request: TenantRequest, conversation: Conversation | None) -> dict[str, Any]:
    members = _members(request)
    filters = _filters(request, members)
    rows = list(
        inbox_conversations(
            request.membership,
            status=filters.chosen_status(),
            **filters.selector_filters(),
        )[: PAGE_SIZE + 1]
    )
    online = online_member_ids(request.membership)
    context = {
        "filters": filters,
        "filters_query": filters.query(),
        "status": filters.value("status") or "open",
        "status_tabs": filters.status_tabs(
            inbox_counts(request.membership, **filters.selector_filters())
        ),
        "rows": rows[:PAGE_SIZE],
        "more": len(rows) > PAGE_SIZE,
        "row_tags": conversation_tags([row.pk for row in rows]),
        "last_seq": last_event_seq(request.membership),
        "members": members,
        "member_names": {m.user_id: m.user.public_name for m in members},
        "online_members": [m for m in members if m.user_id in online],
    }
    if conversation is not None:
        context.update(_conversation_context(request, conversation, members))
    return context


@tenant_view()
def inbox(request: TenantRequest) -> HttpResponse:
    """The three-pane inbox with no conversation open."""
    return render(request, "frontend/inbox.html", _page(request, None))


@tenant_view()
def inbox_conversation(request: TenantRequest, conversation_id: int) -> HttpResponse:
    """The inbox with one conversation open (a link an agent can share)."""
    conversation = access_conversation(request.membership, conversation_id)
    return render(request, "frontend/inbox.html", _page(request, conversation))


@tenant_view()
def conversation_row(request: TenantRequest, conversation_id: int) -> HttpResponse:
    """One row of the list under the page's filters; 204 when it no longer matches."""
    access_conversation(request.membership, conversation_id)
    filters = _filters(request, _members(request))
    row = (
        inbox_conversations(
            request.membership,
            status=filters.chosen_status(),
            **filters.selector_filters(),
        )
        .filter(pk=conversation_id)
        .first()
    )
    if row is None:
        return HttpResponse(status=204)
    context = {
        "row": row,
        "row_tags": conversation_tags([row.pk]),
        "filters_query": filters.query(),
    }
    return render(request, "frontend/inbox.html#conversation-row", context)


@tenant_view()
def inbox_counters(request: TenantRequest) -> HttpResponse:
    """The status tabs with their counts, under the page's filters."""
    filters = _filters(request, _members(request))
    counts = inbox_counts(request.membership, **filters.selector_filters())
    context = {"status_tabs": filters.status_tabs(counts)}
    return render(request, "frontend/inbox.html#status-tabs", context)


@tenant_view()
def presence(request: TenantRequest) -> HttpResponse:
    """The agents online now."""
    online = online_member_ids(request.membership)
    members = [m for m in _members(request) if m.user_id in online]
    return render(request, "frontend/inbox.html#presence", {"online_members": members})


def _conversation_context(
    request: TenantRequest,
    conversation: Conversation,
    members: list[Membership] | None = None,
) -> dict[str, Any]:
    thread = conversation_thread(conversation)
    members = members if members is not None else _members(request)
    composer = composer_for(
        conversation,
        request.membership,
        thread["messages"],
        list(
            workspace_saved_replies(request.membership, brand_id=conversation.brand_id)
        ),
    )
    return {
        "conversation": conversation,
        "entries": timeline(thread["messages"], thread["notes"]),
        "composer": composer,
        "signature": composer.signature,
        "tags": conversation_tags([conversation.pk])[conversation.pk],
        "assignees": [m for m in members if m.role in ANSWERING],
        "can_act": request.membership.has_role(Membership.Role.AGENT),
        "is_admin": request.membership.has_role(Membership.Role.ADMIN),
        "offer_no_reply": offers_no_reply(conversation, request.membership),
        "no_reply_choices": NO_REPLY_CHOICES,
        "identities": contact_identities(conversation.contact),
        "history": list(contact_history(conversation)[:10]),
    }


def _conversation_partial(
    request: TenantRequest, conversation_id: int, partial: str
) -> HttpResponse:
    conversation = access_conversation(request.membership, conversation_id)
    context = _conversation_context(request, conversation)
    context["filters_query"] = request.GET.urlencode()
    return render(request, f"frontend/conversation.html#{partial}", context)


@tenant_view()
def conversation(request: TenantRequest, conversation_id: int) -> HttpResponse:
    """The middle pane: header, timeline and composer."""
    return _conversation_partial(request, conversation_id, "thread")


@tenant_view()
def conversation_header(request: TenantRequest, conversation_id: int) -> HttpResponse:
    """Status, channel, assignee and tags (re-fetched on conversation.updated)."""
    return _conversation_partial(request, conversation_id, "thread-header")


@tenant_view()
def composer(request: TenantRequest, conversation_id: int) -> HttpResponse:
    """The composer, re-fetched when the limit, channel or a pending reply changes."""
    return _conversation_partial(request, conversation_id, "composer")


@tenant_view()
def conversation_timeline(request: TenantRequest, conversation_id: int) -> HttpResponse:
    """Every message and note of the conversation (re-fetched when a note is added)."""
    return _conversation_partial(request, conversation_id, "timeline")


@tenant_view()
def contact_panel(request: TenantRequest, conversation_id: int) -> HttpResponse:
    """The customer beside the conversation: identities, history, details, merge."""
    return _conversation_partial(request, conversation_id, "contact-panel")


@tenant_view()
def message_row(
    request: TenantRequest, conversation_id: int, message_id: int
) -> HttpResponse:
    """One message of the timeline, with its delivery state."""
    message = access_message(request.membership, message_id)
    if message.conversation_id != conversation_id:
        raise Http404("No such message")
    conversation = access_conversation(request.membership, conversation_id)
    context = {
        "conversation": conversation,
        "m": message,
        "signature": signature_for(conversation, request.membership),
        "can_act": request.membership.has_role(Membership.Role.AGENT),
    }
    return render(request, "frontend/conversation.html#message-row", context)


@tenant_view()
def contact_merge_candidates(request: TenantRequest, contact_id: int) -> HttpResponse:
    """Contacts that may be the same person as this one (search by name/handle)."""
    contact = access_contact(request.membership, contact_id)
    context = {
        "contact": contact,
        "candidates": merge_candidates(
            request.membership, contact, query=request.GET.get("q", "")[:100]
        ),
        "searched": bool(request.GET.get("q")),
    }
    return render(request, "frontend/conversation.html#merge-candidates", context)
