"""Connecting accounts: OAuth 2.0 with state and PKCE, per platform.

The start view runs inside the workspace (admins only); the callback is one global
URL per platform, because platforms allow only registered redirect addresses. The
state in the session ties the callback to the workspace, brand and PKCE verifier.
"""

import base64
import hashlib
import secrets

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse

from social.config import app_secrets
from social.connectors import get_connector
from social.connectors.base import ConnectorError
from social.services import connect_account
from tenants.access import access_tenant, find_tenant, require_role
from tenants.context import tenant_context
from tenants.decorators import tenant_view
from tenants.exceptions import WorkspaceError
from tenants.http import TenantRequest
from tenants.models import Brand, Membership

STATE_KEY = "earshot_connect"


def _callback_url(platform: str) -> str:
    return settings.SITE_URL.rstrip("/") + reverse("social:callback", args=[platform])


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).decode().rstrip("=")


@tenant_view(role=Membership.Role.ADMIN)
def connect_start(request: TenantRequest, platform: str) -> HttpResponse:
    """Send the admin to the platform to authorize one of the brand's accounts."""
    brand_id = request.GET.get("brand", "")
    brand = Brand.objects.filter(pk=brand_id).first() if brand_id.isdigit() else None
    if brand is None:
        raise Http404("No such brand")
    try:
        connector = get_connector(platform)
    except ConnectorError:
        raise Http404("No such platform") from None
    verifier, challenge = _pkce()
    state = secrets.token_urlsafe(24)
    request.session[STATE_KEY] = {
        "state": state,
        "tenant": request.tenant.slug,
        "brand": brand.pk,
        "platform": platform,
        "verifier": verifier,
    }
    url = connector.authorize_url(
        app_secrets(platform),
        redirect_uri=_callback_url(platform),
        state=state,
        code_challenge=challenge,
    )
    return HttpResponseRedirect(url)


@login_required
def connect_callback(request: HttpRequest, platform: str) -> HttpResponse:
    """Finish the OAuth dance: check state, exchange the code, store the account."""
    pending = request.session.pop(STATE_KEY, None)
    state = request.GET.get("state", "")
    if not pending or not secrets.compare_digest(pending["state"], state):
        return _failed(
            request, "This connection attempt expired or was not started here."
        )
    if pending["platform"] != platform or not request.GET.get("code"):
        return _failed(
            request, request.GET.get("error_description", "Authorization was refused.")
        )
    tenant = find_tenant(pending["tenant"])
    try:
        tokens = get_connector(platform).exchange_code(
            app_secrets(platform),
            code=request.GET["code"],
            redirect_uri=_callback_url(platform),
            code_verifier=pending["verifier"],
        )
    except ConnectorError as exc:
        return _failed(request, f"The platform refused the connection: {exc.message}")
    with tenant_context(tenant):
        membership = access_tenant(request.user, tenant)
        require_role(membership, Membership.Role.ADMIN)
        brand = Brand.objects.filter(pk=pending["brand"]).first()
        if brand is None:
            raise Http404("No such brand")
        try:
            account = connect_account(
                membership,
                brand=brand,
                platform=platform,
                tokens=tokens,
                base_url=app_secrets(platform).base_url,
            )
        except WorkspaceError as exc:
            return _failed(request, exc.message)
    messages.success(request, f"Connected @{account.handle} to {brand.name}.")
    return redirect("frontend:accounts", tenant_slug=tenant.slug)


def _failed(request: HttpRequest, reason: str) -> HttpResponse:
    return render(
        request, "frontend/connect_failed.html", {"reason": reason}, status=400
    )
