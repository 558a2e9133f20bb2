"""The reports page (R9, R10): a shell whose script draws the report from the API.

The page renders the filter controls (pre-set from the query string, so a link
reproduces a view) and the last simulated day of each brand; every figure and
chart comes from `/api/v1/t/<slug>/reports/...`, fetched by
`frontend/static/frontend/js/reports.js` without reloading the page.
"""

from datetime import timedelta
from typing import Any

from django.db.models import OuterRef, QuerySet, Subquery
from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone

from helpdesk.models import SimulationRun
from social.models import Platform
from social.selectors import workspace_accounts
from tenants.decorators import tenant_view
from tenants.http import TenantRequest
from tenants.models import Membership
from tenants.selectors import workspace_brands, workspace_members

# The default period: the last 30 days, today included.
DEFAULT_DAYS = 30
FILTERS = ("start", "end", "brand", "account", "platform", "agent")
ANSWERING = (Membership.Role.AGENT, Membership.Role.ADMIN, Membership.Role.OWNER)
# The simulation's figures, in the order the page's table shows them.
SIMULATION_FIGURES = (
    "response_rate",
    "first_response_p50",
    "first_response_p90",
    "next_response_p90",
    "breaches",
    "fairness_ratio",
)


def latest_simulation_runs(membership: Membership) -> QuerySet[SimulationRun]:
    """The newest `simulate_day` run of each brand of the member's workspace.

    Read-only; runs inside the request's tenant context (RLS narrows the rows to
    the workspace). Brands without a run are absent; newest run first, brand
    joined.
    """
    newest = (
        SimulationRun.objects.filter(brand_id=OuterRef("brand_id"))
        .order_by("-created_at", "-id")
        .values("pk")[:1]
    )
    return (
        SimulationRun.objects.filter(pk=Subquery(newest))
        .select_related("brand")
        .order_by("-created_at", "-id")
    )


def _simulation(run: SimulationRun) -> dict[str, Any]:
    results = run.results if isinstance(run.results, dict) else {}
    policies = {
        str(policy): {
            name: figures.get(name)
            for name in SIMULATION_FIGURES
            if isinstance(figures.get(name), int | float)
        }
        for policy, figures in results.items()
        if isinstance(figures, dict)
    }
    return {
        "brand": run.brand_id,
        "brand_name": run.brand.name,
        "created_at": run.created_at.isoformat(),
        "parameters": run.parameters if isinstance(run.parameters, dict) else {},
        "policies": policies,
    }


def _initial(request: TenantRequest) -> dict[str, str]:
    """The filters the page opens with: the query string's, else the default
    period. The API validates them; the script shows its field messages."""
    today = timezone.localdate()
    initial = {
        "start": (today - timedelta(days=DEFAULT_DAYS - 1)).isoformat(),
        "end": today.isoformat(),
    }
    for name in FILTERS:
        value = request.GET.get(name, "").strip()
        if value:
            initial[name] = value[:40]
    initial["compare"] = "" if request.GET.get("compare") == "0" else "1"
    return initial


@tenant_view()
def reports(request: TenantRequest) -> HttpResponse:
    """Every member (viewers too) sees the workspace's reports."""
    membership = request.membership
    members = [m for m in workspace_members(membership) if m.role in ANSWERING]
    context = {
        "initial": _initial(request),
        "brands": list(workspace_brands(membership)),
        "accounts": list(workspace_accounts(membership)),
        "platforms": Platform.choices,
        "agents": members,
        "simulations": [_simulation(r) for r in latest_simulation_runs(membership)],
    }
    return render(request, "frontend/reports.html", context)
