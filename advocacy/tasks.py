"""Celery tasks of the advocacy app: the periodic advocate scan (R14)."""

from helpdesk.tasks import fan_out
from tenants.models import Tenant
from tenants.tasks import system_task, tenant_task


@tenant_task(name="advocacy.suggest_advocates")
def suggest_advocates(tenant: Tenant) -> int:
    """Scan the tenant's new inbound messages and refresh its advocate
    suggestions (idempotent); returns how many contacts were suggested."""
    from advocacy.services import scan_for_advocates

    return scan_for_advocates(tenant).suggested


@system_task(name="advocacy.suggest_all_advocates")
def suggest_all_advocates() -> int:
    """Beat entry: one advocacy.suggest_advocates per active tenant."""
    return fan_out("advocacy.suggest_advocates")
