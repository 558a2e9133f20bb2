"""The seeded demo's spreading thread (R13): the open public conversation of the
customer with the widest reach gets two engagement reads a few minutes apart, the
second fast enough to flag it spreading, through the same service the scheduled
reads use (helpdesk.services.spreading). The live reads then carry on from there
(its platform's reads fail offline, which leaves the flag as it is)."""

from datetime import timedelta

from django.utils import timezone

from helpdesk.models import Conversation, Identity
from helpdesk.services.spreading import record_engagement
from tenants.models import Tenant


def seed_spreading_demo(tenant: Tenant) -> int | None:
    """Flag the widest-reaching open public conversation spreading; its id, or
    None when there is none. Call inside the tenant's context."""
    reach = (
        Identity.objects.filter(contact_id__in=Conversation.objects.values("contact"))
        .order_by("-followers")
        .values_list("contact_id", flat=True)
    )
    conversation = (
        Conversation.objects.filter(
            status=Conversation.Status.OPEN,
            channel_state=Conversation.ChannelState.PUBLIC,
            contact_id__in=list(reach[:1]),
        )
        .order_by("pk")
        .first()
    )
    if conversation is None:
        return None
    now = timezone.now()
    posted = {conversation.pk: conversation.first_customer_message_at or now}
    for minutes_ago, total in ((12, 35), (4, 420)):
        record_engagement(
            tenant,
            {conversation.pk: total},
            posted=posted,
            at=now - timedelta(minutes=minutes_ago),
        )
    return conversation.pk
