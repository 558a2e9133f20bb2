"""Settings → API tokens: a member's personal tokens (admins see everyone's).

A new token is shown once, in the response to the form that created it; that page
is never cached, and the token is stored only as a digest.
"""

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from tenants.access import access_api_token
from tenants.api_tokens import create_api_token, revoke_api_token
from tenants.decorators import tenant_view
from tenants.forms import ApiTokenForm
from tenants.http import TenantRequest
from tenants.models import Membership
from tenants.selectors import workspace_api_tokens


@never_cache
@tenant_view()
def api_tokens(request: TenantRequest) -> HttpResponse:
    """List the tokens the member may see; create one (shown on this response)."""
    posted = request.POST if request.method == "POST" else None
    form = ApiTokenForm(posted, membership=request.membership)
    created = None
    if posted is not None and form.is_valid():
        token, raw = create_api_token(request.membership, **form.cleaned_data)
        created = {"token": token, "raw": raw}
        form = ApiTokenForm(membership=request.membership)
    context = {
        "form": form,
        "created": created,
        "tokens": workspace_api_tokens(request.membership),
        "sees_all": request.membership.has_role(Membership.Role.ADMIN),
    }
    status = 400 if form.errors else 201 if created else 200
    return render(request, "frontend/api_tokens.html", context, status=status)


@require_POST
@tenant_view()
def api_token_revoke(request: TenantRequest, token_id: int) -> HttpResponse:
    """Revoke a token the member may see (their own; admins: any)."""
    token = access_api_token(request.membership, token_id)
    revoke_api_token(request.membership, token=token)
    messages.success(request, f"The token “{token.name}” was revoked.")
    return redirect("frontend:api-tokens", tenant_slug=request.tenant.slug)
