"""Celery tasks of incidents: thin, named, idempotent; the logic is in the services."""

from helpdesk.tasks import fan_out
from incidents import updates
from incidents.models import IncidentUpdate
from incidents.services import catch_up_rule_links, link_matching_conversations
from tenants.context import tenant_context
from tenants.models import Tenant
from tenants.tasks import system_task, tenant_task


@tenant_task(name="incidents.send_update", atomic=False, acks_late=True)
def send_update(tenant: Tenant, update_id: int) -> str:
    """Send one tick of an update, then enqueue the next tick (the pace per
    account) until nothing is pending. Each recipient is its own transaction, so a
    killed worker loses at most the one in flight (rolled back, still pending)."""
    wait = updates.send_update_tick(tenant, update_id)
    if wait is not None:
        with tenant_context(tenant):
            update = IncidentUpdate.objects.get(pk=update_id)
            updates._schedule(update, countdown=wait)
    return "done" if wait is None else f"next in {wait:.1f}s"


@tenant_task(name="incidents.sweep_updates")
def sweep_updates(tenant: Tenant) -> int:
    """Re-enqueue updates still sending whose task was lost (a dead worker), and
    link recent conversations the incidents' rules missed (a lost flag or task)."""
    catch_up_rule_links(tenant.pk)
    stalled = updates.stalled_updates()
    for update_id in stalled:
        update = IncidentUpdate.objects.get(pk=update_id)
        updates._schedule(update, countdown=0)
    return len(stalled)


@system_task(name="incidents.sweep_all_updates")
def sweep_all_updates() -> int:
    """Beat entry: one incidents.sweep_updates per active tenant."""
    return fan_out("incidents.sweep_updates")


@tenant_task(name="incidents.link_new_conversations")
def link_new_conversations(tenant: Tenant, conversation_ids: list[int]) -> int:
    """Link newly opened conversations to the open incidents whose rule matches
    (enqueued by inbound after commit); returns how many links were made."""
    linked = link_matching_conversations(conversation_ids)
    return sum(len(ids) for ids in linked.values())
