"""The connected-accounts page and its actions: connect Mastodon and Bluesky
accounts, disconnect any account.

The page itself is a workspace view. The three actions call the platform (register
Earshot on a Mastodon server, open a Bluesky session, revoke tokens), and a
platform call must never run inside the request's tenant transaction (tenancy.md
§3.4, §7.3), so they are global URLs like the OAuth callback: each gates the user
inside `tenant_context` (404 for non-members, 403 below admin), leaves it for the
platform call and opens it again to write or to render.
"""

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from frontend.account_forms import BlueskyConnectForm, MastodonConnectForm
from social.access import access_social_account
from social.config import connectable_platforms, form_platforms
from social.instance_apps import register_instance_app
from social.selectors import workspace_accounts
from social.services import (
    RevokeOutcome,
    bluesky_base_url,
    connect_account,
    disconnect_account,
    open_bluesky_session,
    plan_revocation,
    revoke_tokens,
)
from tenants.access import access_tenant, find_tenant, require_role
from tenants.context import tenant_context
from tenants.decorators import tenant_view
from tenants.exceptions import WorkspaceError
from tenants.http import TenantRequest
from tenants.models import Membership, Tenant
from tenants.selectors import workspace_brands

Role = Membership.Role


@tenant_view()
def accounts(request: TenantRequest) -> HttpResponse:
    """Connected social accounts per brand; admins connect and disconnect them."""
    return _accounts_page(request, request.membership)


def _accounts_page(
    request: HttpRequest,
    membership: Membership,
    *,
    mastodon_form: MastodonConnectForm | None = None,
    bluesky_form: BlueskyConnectForm | None = None,
) -> HttpResponse:
    """Render the page; call inside the workspace's tenant context."""
    # The global actions render it too: give the layout its workspace.
    request.tenant = membership.tenant  # type: ignore[attr-defined]
    request.membership = membership  # type: ignore[attr-defined]
    brands = workspace_brands(membership)
    context = {
        "accounts": workspace_accounts(membership),
        "brands": brands,
        "platforms": connectable_platforms(),
        "form_platforms": form_platforms(),
        "can_manage": membership.has_role(Role.ADMIN),
        "mastodon_form": mastodon_form or MastodonConnectForm(brands=brands),
        "bluesky_form": bluesky_form or BlueskyConnectForm(brands=brands),
    }
    failed = any(f is not None and f.errors for f in (mastodon_form, bluesky_form))
    return render(
        request, "frontend/accounts.html", context, status=400 if failed else 200
    )


def _admin_of(request: HttpRequest, tenant_slug: str) -> tuple[Tenant, Membership]:
    """The gate of the global account actions: the live workspace and the user's
    admin (or owner) membership of it; 404 for non-members, 403 below admin or
    while the workspace is suspended. Leaves no tenant open."""
    tenant = find_tenant(tenant_slug)
    with tenant_context(tenant):
        membership = access_tenant(request.user, tenant)
        require_role(membership, Role.ADMIN)
    if tenant.status != Tenant.Status.ACTIVE:
        raise PermissionDenied("This workspace is suspended.")
    return tenant, membership


@login_required
@require_POST
def connect_mastodon(request: HttpRequest, tenant_slug: str) -> HttpResponse:
    """Register Earshot on the admin's Mastodon server (once per server), then
    start the OAuth flow there; a bad or failing server is a field error."""
    tenant, membership = _admin_of(request, tenant_slug)
    with tenant_context(tenant):
        form = MastodonConnectForm(request.POST, brands=workspace_brands(membership))
        valid = form.is_valid()
    if valid:
        try:
            app = register_instance_app(form.cleaned_data["instance"])
        except WorkspaceError as exc:
            form.add_error("instance", exc.message)
        else:
            query = {"brand": form.cleaned_data["brand"].pk, "instance": app.base_url}
            start = reverse("social:connect", args=[tenant.slug, "mastodon"])
            return redirect(f"{start}?{urlencode(query)}")
    with tenant_context(tenant):
        return _accounts_page(request, membership, mastodon_form=form)


@login_required
@require_POST
def connect_bluesky(request: HttpRequest, tenant_slug: str) -> HttpResponse:
    """Open a Bluesky session with the handle and app password and connect the
    account; refused credentials are a field error."""
    tenant, membership = _admin_of(request, tenant_slug)
    with tenant_context(tenant):
        form = BlueskyConnectForm(request.POST, brands=workspace_brands(membership))
        valid = form.is_valid()
    if valid:
        data = form.cleaned_data
        try:
            tokens = open_bluesky_session(data["handle"], data["app_password"])
            with tenant_context(tenant):
                account = connect_account(
                    membership,
                    brand=data["brand"],
                    platform="bluesky",
                    tokens=tokens,
                    base_url=bluesky_base_url(),
                )
        except WorkspaceError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            messages.success(
                request, f"Connected @{account.handle} to {data['brand']}."
            )
            return redirect("frontend:accounts", tenant_slug=tenant.slug)
    with tenant_context(tenant):
        return _accounts_page(request, membership, bluesky_form=form)


@login_required
@require_POST
def account_disconnect(
    request: HttpRequest, tenant_slug: str, account_id: int
) -> HttpResponse:
    """Revoke the account's token where the platform allows it, then disconnect
    it here whatever the platform said (the outcome is audited)."""
    tenant, membership = _admin_of(request, tenant_slug)
    with tenant_context(tenant):
        revocation = plan_revocation(access_social_account(membership, account_id))
    outcome = revoke_tokens(revocation)
    with tenant_context(tenant):
        account = disconnect_account(
            membership,
            account=access_social_account(membership, account_id),
            revoke=outcome,
        )
        label = account.get_platform_display()
    level = messages.ERROR if outcome.status == "failed" else messages.SUCCESS
    messages.add_message(
        request, level, _disconnected(f"@{account.handle}", label, outcome)
    )
    return redirect("frontend:accounts", tenant_slug=tenant.slug)


def _disconnected(handle: str, platform: str, outcome: RevokeOutcome) -> str:
    said = {
        "revoked": f"{platform} revoked Earshot's access.",
        "unsupported": f"{platform} offers no way to revoke it from here; remove "
        "Earshot in the account's settings there if you want to.",
        "kept": outcome.detail,
        "none": "",
        "failed": f"{platform} did not confirm revoking Earshot's access "
        f"({outcome.detail}); remove Earshot in the account's settings there.",
    }[outcome.status]
    return f"Disconnected {handle}. {said}".strip()
