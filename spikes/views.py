"""Pages of spike alerts: the list with each brand's watch, one alert with its
top terms and sample posts, acknowledging, and the fragments that keep the banner
and the list live."""

from typing import Any

from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from helpdesk.models import EventCounter
from spikes import selectors
from spikes.access import access_alert
from spikes.services import acknowledge_alert
from tenants.decorators import tenant_view
from tenants.http import TenantRequest


def _panels(request: TenantRequest) -> dict[str, Any]:
    return {
        "watches": selectors.brand_watches(request.membership, now=timezone.now()),
        "alerts": selectors.workspace_alerts(request.membership)[:50],
    }


@tenant_view()
def alerts(request: TenantRequest) -> HttpResponse:
    return render(request, "spikes/alerts.html", _panels(request))


@tenant_view()
def panels(request: TenantRequest) -> HttpResponse:
    """The alerts page's brands and alerts, which its script fetches again when a
    spike opens, ends or is acknowledged (spike_banner.js)."""
    return render(request, "spikes/alerts.html#panels", _panels(request))


@tenant_view()
def alert(request: TenantRequest, alert_id: int) -> HttpResponse:
    found = access_alert(request.membership, alert_id)
    context = {"alert": found, "samples": selectors.alert_samples(found)}
    return render(request, "spikes/alert.html", context)


@require_POST
@tenant_view()
def acknowledge(request: TenantRequest, alert_id: int) -> HttpResponse:
    found = access_alert(request.membership, alert_id)
    acknowledge_alert(found, membership=request.membership)
    slug = request.membership.tenant.slug
    return HttpResponseRedirect(reverse("spikes:alert", args=[slug, found.pk]))


@tenant_view()
def banner(request: TenantRequest) -> HttpResponse:
    seq = (
        EventCounter.objects.filter(tenant_id=request.membership.tenant_id)
        .values_list("value", flat=True)
        .first()
    )
    context = {
        "open_alerts": selectors.open_alerts(request.membership),
        "seq": seq or 0,
    }
    return render(request, "spikes/alerts.html#banner", context)
