"""Thin views of goodwill gestures: the pools page (settings), the composer's
pools and the reports section, both fetched by goodwill/goodwill.js."""

from datetime import timedelta

from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone

from goodwill.selectors import gesture_report, goodwill_pools
from helpdesk.access import access_conversation
from tenants.decorators import tenant_view
from tenants.http import TenantRequest
from tenants.models import Membership
from tenants.selectors import workspace_brands


@tenant_view()
def pools_page(request: TenantRequest) -> HttpResponse:
    """Every brand's pools with their counts; admins add pools and import codes."""
    context = {
        "pools": goodwill_pools(request.membership),
        "brands": list(workspace_brands(request.membership)),
        "can_manage": request.membership.has_role(Membership.Role.ADMIN),
    }
    return render(request, "goodwill/pools.html", context)


@tenant_view()
def composer_pools(request: TenantRequest, conversation_id: int) -> HttpResponse:
    """The composer's goodwill row: the brand's pools, counts and low warnings."""
    conversation = access_conversation(request.membership, conversation_id)
    pools = goodwill_pools(request.membership, brand=conversation.brand)
    context = {"pools": pools, "conversation": conversation}
    return render(request, "goodwill/composer.html", context)


@tenant_view()
def report_section(request: TenantRequest) -> HttpResponse:
    """Gestures of the last 30 days per agent, brand and follower band."""
    until = timezone.now()
    report = gesture_report(
        request.membership, since=until - timedelta(days=30), until=until
    )
    return render(request, "goodwill/report.html", {"report": report})
