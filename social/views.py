"""Connecting accounts: OAuth 2.0 with state and PKCE, per platform.

The start view runs inside the workspace (admins only); the callback is one global
URL per platform, because platforms allow only registered redirect addresses. The
state in the session ties the callback to the workspace, brand, PKCE verifier and,
for Mastodon, the instance whose app was registered (frontend's Mastodon form
registers it, then sends the admin here with `?instance=`). The callback calls the
platform before opening the tenant, so no transaction waits on the network.
"""

import base64
import hashlib
import secrets

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render

from social.config import app_secrets, callback_url, connectable_platforms
from social.connectors import get_connector
from social.connectors.base import AppSecrets, ConnectorError
from social.instance_apps import registered_app
from social.services import connect_account
from tenants.access import access_tenant, find_tenant, require_role
from tenants.context import tenant_context
from tenants.decorators import tenant_view
from tenants.exceptions import WorkspaceError
from tenants.http import TenantRequest
from tenants.models import Brand, Membership

STATE_KEY = "earshot_connect"


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _oauth_app(platform: str, instance: str) -> AppSecrets | None:
    """The app to authorize with: the instance's for Mastodon, else the
    deployment's, when it is configured here (None otherwise)."""
    if platform == "mastodon" and "mastodon" in settings.SOCIAL_PLATFORMS:
        return registered_app(instance) if instance else None
    if platform in dict(connectable_platforms()):
        return app_secrets(platform)
    return None


@tenant_view(role=Membership.Role.ADMIN)
def connect_start(request: TenantRequest, platform: str) -> HttpResponse:
    """Send the admin to the platform to authorize one of the brand's accounts."""
    brand_id = request.GET.get("brand", "")
    brand = Brand.objects.filter(pk=brand_id).first() if brand_id.isdigit() else None
    if brand is None:
        raise Http404("No such brand")
    instance = request.GET.get("instance", "")
    app = _oauth_app(platform, instance)
    if app is None:
        raise Http404("No such platform")
    verifier, challenge = _pkce()
    state = secrets.token_urlsafe(24)
    request.session[STATE_KEY] = {
        "state": state,
        "tenant": request.tenant.slug,
        "brand": brand.pk,
        "platform": platform,
        "verifier": verifier,
        "instance": app.base_url if platform == "mastodon" else "",
    }
    url = get_connector(platform).authorize_url(
        app, redirect_uri=callback_url(platform), state=state, code_challenge=challenge
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
    app = _oauth_app(platform, pending.get("instance", ""))
    if app is None:
        return _failed(request, "This platform is no longer set up here.")
    tenant = find_tenant(pending["tenant"])
    try:
        tokens = get_connector(platform).exchange_code(
            app,
            code=request.GET["code"],
            redirect_uri=callback_url(platform),
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
                base_url=app.base_url,
            )
        except WorkspaceError as exc:
            return _failed(request, exc.message)
    messages.success(request, f"Connected @{account.handle} to {brand.name}.")
    return redirect("frontend:accounts", tenant_slug=tenant.slug)


def _failed(request: HttpRequest, reason: str) -> HttpResponse:
    return render(
        request, "frontend/connect_failed.html", {"reason": reason}, status=400
    )
