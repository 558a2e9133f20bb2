"""The gates of incidents: the only way interface code gets one (404 otherwise)."""

from django.http import Http404

from incidents.models import Incident, IncidentUpdate, UpdateRecipient
from tenants.models import Membership


def access_incident(membership: Membership, incident_id: int) -> Incident:
    """The incident with this id in the member's workspace (brand joined), or 404.

    Any member passes; the services check the role for writes.
    """
    incident = Incident.objects.select_related("brand").filter(pk=incident_id).first()
    if incident is None:
        raise Http404("No such incident")
    if incident.tenant_id != membership.tenant_id:
        raise Http404("No such incident")
    return incident


def access_incident_update(
    membership: Membership, incident: Incident, update_id: int
) -> IncidentUpdate:
    """An update of `incident` (already gated), or 404."""
    update = IncidentUpdate.objects.filter(pk=update_id, incident=incident).first()
    if update is None:
        raise Http404("No such update")
    if update.tenant_id != membership.tenant_id:
        raise Http404("No such update")
    return update


def access_recipients(
    membership: Membership, update: IncidentUpdate, recipient_ids: list[int]
) -> list[UpdateRecipient]:
    """The recipients of `update` (already gated) with these ids; unknown ids are
    left out."""
    return [
        r
        for r in UpdateRecipient.objects.filter(update=update, pk__in=recipient_ids)
        if r.tenant_id == membership.tenant_id
    ]
