"""Spike detection tasks: the five-minute beat entry and its per-tenant run."""

from django.utils import timezone

from helpdesk.tasks import fan_out
from spikes.services import detect_spikes as run_detection
from tenants.models import Tenant
from tenants.tasks import system_task, tenant_task


@tenant_task(name="spikes.detect_spikes")
def detect_spikes(tenant: Tenant) -> int:
    """Count the tenant's new inbound and open or close its brands' spike alerts
    (spikes.services.detect_spikes); returns how many alerts opened. Idempotent."""
    return len(run_detection(tenant, now=timezone.now()).opened)


@system_task(name="spikes.detect_all_spikes")
def detect_all_spikes() -> int:
    """Beat entry: one spikes.detect_spikes per active tenant."""
    return fan_out("spikes.detect_spikes")
