"""Settings → brand settings, listening rules and saved replies.

Pages and the fragments their scripts re-fetch after a write; the writes go
through the REST API (`PATCH brands/<id>/`, `listening-rules/`, `saved-replies/`),
so the browser and integrations share one write path and one set of errors.

Every member may open these pages: agents and viewers see the settings read-only
(agents need the hours, signatures and saved replies they work with) and may try
a listening query; only admins get the editing forms, and the API refuses the
others' writes anyway.
"""

from django.http import HttpResponse
from django.shortcuts import render
from django.utils.timezone import now

from frontend.settings_presenters import (
    LISTENED_PLATFORMS,
    SAMPLE_CUSTOMER,
    brand_page,
    brand_state,
    replies_by_brand,
    rules_by_brand,
)
from helpdesk.selectors import workspace_saved_replies
from social.models import ListeningRule
from social.selectors import workspace_listening_rules
from tenants.access import access_brand
from tenants.decorators import tenant_view
from tenants.http import TenantRequest
from tenants.models import Membership
from tenants.selectors import workspace_brands

ADMIN = Membership.Role.ADMIN
BRAND_PAGE = "frontend/settings/brand.html"
LISTENING_PAGE = "frontend/settings/listening.html"
SAVED_REPLIES_PAGE = "frontend/settings/saved_replies.html"


@tenant_view()
def brand_settings(request: TenantRequest, brand_id: int) -> HttpResponse:
    """A brand's hours, time zone, reply rules and signatures (admins edit)."""
    brand = access_brand(request.membership, brand_id)
    context = brand_page(
        brand,
        request.user,
        can_manage=request.membership.has_role(ADMIN),
        at=now(),
    )
    return render(request, BRAND_PAGE, context)


@tenant_view()
def brand_status(request: TenantRequest, brand_id: int) -> HttpResponse:
    """Online or offline now (re-fetched after the hours or time zone change)."""
    brand = access_brand(request.membership, brand_id)
    context = {"brand": brand, "state": brand_state(brand, now())}
    return render(request, f"{BRAND_PAGE}#brand-status", context)


def _listening(request: TenantRequest) -> dict[str, object]:
    brands = list(workspace_brands(request.membership))
    rules = list(workspace_listening_rules(request.membership))
    return {
        "groups": rules_by_brand(brands, rules),
        "brands": brands,
        "platforms": LISTENED_PLATFORMS,
        "actions": ListeningRule.Action.choices,
        "can_manage": request.membership.has_role(ADMIN),
    }


@tenant_view()
def listening_rules(request: TenantRequest) -> HttpResponse:
    """Listening rules per brand, their editor, the query tester and the syntax."""
    return render(request, LISTENING_PAGE, _listening(request))


@tenant_view()
def listening_rule_list(request: TenantRequest) -> HttpResponse:
    """The rules per brand (re-fetched after a rule is added, changed or deleted)."""
    return render(request, f"{LISTENING_PAGE}#rule-list", _listening(request))


def _saved_replies(request: TenantRequest) -> dict[str, object]:
    brands = list(workspace_brands(request.membership))
    replies = list(workspace_saved_replies(request.membership))
    return {
        "groups": replies_by_brand(brands, replies),
        "brands": brands,
        "sample_customer": SAMPLE_CUSTOMER,
        "can_manage": request.membership.has_role(ADMIN),
    }


@tenant_view()
def saved_replies(request: TenantRequest) -> HttpResponse:
    """Saved replies, shared and per brand, with their editor and a preview."""
    return render(request, SAVED_REPLIES_PAGE, _saved_replies(request))


@tenant_view()
def saved_reply_list(request: TenantRequest) -> HttpResponse:
    """The saved replies (re-fetched after one is added, changed or deleted)."""
    return render(request, f"{SAVED_REPLIES_PAGE}#reply-list", _saved_replies(request))
