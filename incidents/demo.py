"""The demo's incident (manage.py seed_demo): the Lisbon delays, with the seeded
conversations that mention Lisbon linked, a holding statement and a note."""

from helpdesk.models import Conversation
from incidents.models import Incident
from incidents.services import (
    add_incident_note,
    create_incident,
    link_conversations,
)
from tenants.models import Membership


def seed_incident_demo(membership: Membership) -> Incident | None:
    """Open "Lisbon delays" and link the seeded Lisbon conversations; nothing
    when the workspace has an incident already. Call in the tenant's context."""
    if Incident.objects.exists():
        return None
    incident = create_incident(
        membership,
        title="Lisbon delays, 6 Dec",
        holding_statement=(
            "Flights to and from Lisbon are delayed by an aircraft swap. We are "
            "rebooking missed connections and will update here within the hour."
        ),
        rule_terms="Lisbon",
    )
    lisbon = list(
        Conversation.objects.filter(preview__icontains="lisbon").order_by("id")
    )
    link_conversations(incident, lisbon, membership=membership)
    add_incident_note(
        membership,
        incident,
        text="Ops: the swap is done; boarding for the delayed flights starts ~20 min.",
    )
    return incident
