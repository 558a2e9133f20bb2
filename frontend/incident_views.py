"""Incident pages (R13): the list, one incident's page, and the fragment its script
re-fetches when an update's progress changes (websocket `incident.progress`).

Writes do not happen here: `frontend/static/frontend/js/incidents.js` calls the
REST API (/api/v1/t/<slug>/incidents/...), as the inbox's scripts do.
"""

from typing import Any

from django.http import HttpResponse
from django.shortcuts import render

from helpdesk.selectors import last_event_seq, workspace_tags
from incidents.access import access_incident
from incidents.models import Incident, IncidentEntry, IncidentUpdate
from incidents.selectors import (
    incident_conversations,
    incident_timeline,
    incident_updates,
    unanswered_count,
    update_problems,
    workspace_incidents,
)
from incidents.updates import update_counts
from social.selectors import workspace_listening_rules
from tenants.decorators import tenant_view
from tenants.http import TenantRequest
from tenants.models import Membership
from tenants.selectors import workspace_brands


def _progress(update: IncidentUpdate | None) -> dict[str, Any]:
    if update is None:
        return {"update": None}
    counts = update_counts(update)
    done = counts["total"] - counts["pending"]
    return {
        "update": update,
        "counts": counts,
        "percent": round(100 * done / counts["total"]) if counts["total"] else 100,
        "problems": update_problems(update),
    }


def _can_act(membership: Membership) -> bool:
    return membership.has_role(Membership.Role.AGENT)


@tenant_view()
def incident_list(request: TenantRequest) -> HttpResponse:
    """Every member sees the workspace's incidents; agents open new ones."""
    membership = request.membership
    incidents = list(workspace_incidents(membership))
    context = {
        "open_incidents": [i for i in incidents if i.status == Incident.Status.OPEN],
        "closed_incidents": [
            i for i in incidents if i.status == Incident.Status.CLOSED
        ],
        "brands": list(workspace_brands(membership)),
        "tags": list(workspace_tags(membership)),
        "listening_rules": list(workspace_listening_rules(membership)),
        "can_act": _can_act(membership),
    }
    return render(request, "frontend/incidents/list.html", context)


@tenant_view()
def incident_page(request: TenantRequest, incident_id: int) -> HttpResponse:
    """The incident: linked conversations (unanswered counted), the current
    holding statement, the update composer and its progress, notes, timeline."""
    membership = request.membership
    incident = access_incident(membership, incident_id)
    conversations = list(incident_conversations(membership, incident))
    timeline = incident_timeline(incident)
    updates = incident_updates(incident)
    context = {
        "incident": incident,
        "conversations": conversations,
        "unanswered": unanswered_count(conversations),
        "timeline": timeline,
        "notes": [e for e in timeline if e.kind == IncidentEntry.Kind.NOTE],
        "updates": updates,
        "can_act": _can_act(membership),
        "last_seq": last_event_seq(membership),
        **_progress(updates[0] if updates else None),
    }
    return render(request, "frontend/incidents/detail.html", context)


@tenant_view()
def incident_progress(request: TenantRequest, incident_id: int) -> HttpResponse:
    """The progress panel of the incident's latest update (a live fragment)."""
    incident = access_incident(request.membership, incident_id)
    latest = IncidentUpdate.objects.filter(incident=incident).order_by("-id").first()
    context = {
        "incident": incident,
        "can_act": _can_act(request.membership),
        **_progress(latest),
    }
    return render(request, "frontend/incidents/detail.html#progress", context)
