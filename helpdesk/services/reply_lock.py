"""The conversation row a reply locks, in one compiled shape (helpdesk.compiled).

`post_reply` locks the conversation (FOR UPDATE OF the conversation only) with
its brand, account and the brand's holidays; building and compiling that
queryset cost about as much CPU as the rest of the reply's reads together. The
same statement says whether the workspace has an active outbound webhook
endpoint (`has_webhook_endpoints`), so a reply in a workspace without one skips
the endpoint cache's read (a Redis round trip, about 0.3 ms of CPU).
"""

from django.db.models import Exists, OuterRef

from helpdesk.compiled import CompiledQuery
from helpdesk.models import Conversation
from helpdesk.services import sla
from helpdesk.webhooks.models import WebhookEndpoint

_LOCKED = CompiledQuery(
    lambda pk: (
        Conversation.objects.select_for_update(of=("self",))
        .select_related("brand", "social_account")
        .annotate(**sla.brand_time_annotations("helpdesk_conversation", policy=False))
        .annotate(
            has_webhook_endpoints=Exists(
                WebhookEndpoint.objects.filter(
                    tenant_id=OuterRef("tenant_id"), is_active=True
                )
            )
        )
        .filter(pk=pk)
    ),
    [int],
)


def lock_conversation_for_reply(conversation_id: int) -> Conversation:
    """The conversation locked until the transaction ends, brand and account
    joined, the brand's holidays preloaded, and `has_webhook_endpoints` (read
    in this transaction); DoesNotExist when it is gone. Call it inside a
    transaction."""
    locked = _LOCKED.first(conversation_id)
    if locked is None:
        raise Conversation.DoesNotExist("No such conversation")
    sla.preload_annotated(locked, locked.brand)
    return locked
