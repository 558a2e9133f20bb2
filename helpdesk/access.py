"""The gates to single care objects: the only way interface code gets one."""

from django.db.models import QuerySet
from django.http import Http404

from helpdesk.compiled import CompiledQuery
from helpdesk.models import (
    Contact,
    Conversation,
    Message,
    SavedReply,
    WebhookEndpoint,
)
from helpdesk.services.reply_lock import (
    lock_conversation_for_reply,
    lock_lateral,
    taken_in_opening,
)
from tenants.models import Membership
from tenants.opening import Lateral, add_lateral_route

# The default shape of access_conversation, compiled once (helpdesk.compiled).
_CONVERSATION = CompiledQuery(
    lambda pk: (
        Conversation.objects.select_related("brand", "contact", "social_account")
        .filter(pk=pk)
        .order_by("pk")[:1]
    ),
    [int],
)


def access_conversation(
    membership: Membership,
    conversation_id: int,
    *,
    rows: QuerySet[Conversation] | None = None,
) -> Conversation:
    """The conversation with this id in the member's workspace, or 404.

    `rows`: the shape to read it in (a selector's queryset, such as
    helpdesk.selectors.conversation_rows); by default brand, contact and account
    are joined.
    """
    if rows is None:
        conversation = _CONVERSATION.first(int(conversation_id))
    else:
        conversation = rows.filter(pk=conversation_id).first()
    if conversation is None:
        raise Http404("No such conversation")
    if conversation.tenant_id != membership.tenant_id:
        raise Http404("No such conversation")
    return conversation


def access_conversation_for_reply(
    membership: Membership, conversation_id: int
) -> Conversation:
    """`access_conversation` for a reply: the conversation locked for the reply
    (helpdesk.services.reply_lock) in the member's workspace, or 404. The gate's
    read is the reply's row lock, so `post_reply` in the same transaction does not
    read the row again. Call it inside a transaction; RLS hides other workspaces'
    rows, so their conversations are never locked. A token request's opening
    statement may have taken the lock already (`_reply_lateral`): its row, or
    its finding none, is used here instead of a statement of its own."""
    taken = taken_in_opening(int(conversation_id))
    if taken is not None:
        found = taken.conversation
    else:
        try:
            found = lock_conversation_for_reply(int(conversation_id))
        except Conversation.DoesNotExist:
            found = None
    if found is None:
        raise Http404("No such conversation")
    if found.tenant_id != membership.tenant_id:
        raise Http404("No such conversation")
    return found


def _reply_lateral(kwargs: dict[str, str], role: str, scope: str) -> Lateral:
    return lock_lateral(int(kwargs["conversation_id"]), role, scope)


# A token reply (MessageListApi.post) takes its row lock in the request's opening
# statement (tenants.opening.Lateral). The pattern is the route's in
# helpdesk/api_urls.py (`<int:conversation_id>` matches [0-9]+).
add_lateral_route(
    "POST",
    r"conversations/(?P<conversation_id>[0-9]+)/messages/",
    "api:message-list",
    _reply_lateral,
)


def _read_shape(pk: int) -> QuerySet[Conversation]:
    from helpdesk.selectors import conversation_rows  # selectors import the models

    stand_in = Membership(id=0, tenant_id=0, user_id=0)  # the rows are no one's
    return conversation_rows(stand_in).filter(pk=pk).order_by("pk")[:1]


_CONVERSATION_READ = CompiledQuery(_read_shape, [int])


def access_conversation_read(
    membership: Membership, conversation_id: int
) -> Conversation:
    """`access_conversation` in helpdesk.selectors.conversation_rows' shape (the
    contact's name and the tag names attached, the brand a left join), compiled
    once (helpdesk.compiled); 404 as there."""
    conversation = _CONVERSATION_READ.first(int(conversation_id))
    if conversation is None or conversation.tenant_id != membership.tenant_id:
        raise Http404("No such conversation")
    return conversation


def access_message(membership: Membership, message_id: int) -> Message:
    """The message with this id in the member's workspace, or 404."""
    message = (
        Message.objects.select_related("conversation").filter(pk=message_id).first()
    )
    if message is None:
        raise Http404("No such message")
    if message.tenant_id != membership.tenant_id:
        raise Http404("No such message")
    return message


def access_contact(membership: Membership, contact_id: int) -> Contact:
    """The contact with this id in the member's workspace, or 404."""
    contact = Contact.objects.filter(pk=contact_id).first()
    if contact is None:
        raise Http404("No such contact")
    if contact.tenant_id != membership.tenant_id:
        raise Http404("No such contact")
    return contact


def access_webhook_endpoint(
    membership: Membership, endpoint_id: int
) -> WebhookEndpoint:
    """The webhook endpoint with this id in the member's workspace, or 404.

    Any member passes the gate; the webhook services require the admin role.
    """
    endpoint = WebhookEndpoint.objects.filter(pk=endpoint_id).first()
    if endpoint is None:
        raise Http404("No such webhook endpoint")
    if endpoint.tenant_id != membership.tenant_id:
        raise Http404("No such webhook endpoint")
    return endpoint


def access_saved_reply(membership: Membership, reply_id: int) -> SavedReply:
    """The saved reply with this id in the member's workspace (brand joined), or 404.

    Any member passes: agents use saved replies; the services check who manages them.
    """
    reply = SavedReply.objects.select_related("brand").filter(pk=reply_id).first()
    if reply is None:
        raise Http404("No such saved reply")
    if reply.tenant_id != membership.tenant_id:
        raise Http404("No such saved reply")
    return reply
