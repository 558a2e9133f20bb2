"""The access gate of spike alerts."""

from django.http import Http404

from spikes.models import SpikeAlert
from tenants.models import Membership


def access_alert(membership: Membership, alert_id: int) -> SpikeAlert:
    """A spike alert of the member's workspace, or 404. Any member passes."""
    alert = SpikeAlert.objects.select_related("brand").filter(pk=alert_id).first()
    if alert is None:
        raise Http404("No such alert")
    if alert.tenant_id != membership.tenant_id:
        raise Http404("No such alert")
    return alert
