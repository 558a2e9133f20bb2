"""Settings → Webhooks: endpoints, their secrets and the delivery log (admins only).

Pages that show a signing secret are never cached.
"""

from collections.abc import Callable

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from frontend.webhook_forms import WebhookEndpointForm
from helpdesk.access import access_webhook_endpoint
from helpdesk.exceptions import HelpdeskError
from helpdesk.models import WebhookEndpoint
from helpdesk.services.webhooks import (
    create_webhook_endpoint,
    delete_webhook_endpoint,
    disable_webhook_endpoint,
    enable_webhook_endpoint,
    reveal_webhook_secret,
    rotate_webhook_secret,
    send_test_ping,
    update_webhook_endpoint,
)
from helpdesk.webhooks.selectors import endpoint_deliveries, webhook_endpoints
from tenants.decorators import tenant_view
from tenants.http import TenantRequest
from tenants.models import Membership

ADMIN = Membership.Role.ADMIN
LOG_ROWS = 100


def _form_error(form: WebhookEndpointForm, exc: HelpdeskError) -> None:
    form.add_error(exc.field if exc.field in form.fields else None, exc.message)


@never_cache
@tenant_view(role=ADMIN)
def webhooks(request: TenantRequest) -> HttpResponse:
    """The endpoint list and the form to add one; a new secret is shown once."""
    form = WebhookEndpointForm(request.POST if request.method == "POST" else None)
    created = None
    if request.method == "POST" and form.is_valid():
        try:
            created = create_webhook_endpoint(request.membership, **form.cleaned_data)
        except HelpdeskError as exc:
            _form_error(form, exc)
        else:
            form = WebhookEndpointForm()
    context = {
        "form": form,
        "created": created,
        "endpoints": webhook_endpoints(request.membership),
    }
    status = 400 if form.errors else 200
    return render(request, "frontend/webhooks.html", context, status=status)


def _endpoint_page(
    request: TenantRequest,
    endpoint: WebhookEndpoint,
    *,
    form: WebhookEndpointForm | None = None,
    secret: str | None = None,
) -> HttpResponse:
    form = form or WebhookEndpointForm(
        initial={
            "url": endpoint.url,
            "description": endpoint.description,
            "events": endpoint.events,
        }
    )
    context = {
        "endpoint": endpoint,
        "form": form,
        "secret": secret,
        "deliveries": endpoint_deliveries(endpoint)[:LOG_ROWS],
    }
    status = 400 if form.errors else 200
    return render(request, "frontend/webhook.html", context, status=status)


def _back(request: TenantRequest, endpoint: WebhookEndpoint) -> HttpResponse:
    return redirect("frontend:webhook", request.tenant.slug, endpoint.pk)


@never_cache
@tenant_view(role=ADMIN)
def webhook(request: TenantRequest, endpoint_id: int) -> HttpResponse:
    """One endpoint: its settings form and its delivery log, newest first."""
    endpoint = access_webhook_endpoint(request.membership, endpoint_id)
    if request.method != "POST":
        return _endpoint_page(request, endpoint)
    form = WebhookEndpointForm(request.POST)
    if form.is_valid():
        try:
            update_webhook_endpoint(request.membership, endpoint, **form.cleaned_data)
        except HelpdeskError as exc:
            _form_error(form, exc)
        else:
            messages.success(request, "Endpoint saved.")
            return _back(request, endpoint)
    return _endpoint_page(request, endpoint, form=form)


def _act(
    request: TenantRequest,
    endpoint_id: int,
    action: Callable[[Membership, WebhookEndpoint], object],
    done: str,
) -> HttpResponse:
    """Gate, one service call, a message, back to the endpoint's page."""
    endpoint = access_webhook_endpoint(request.membership, endpoint_id)
    try:
        action(request.membership, endpoint)
    except HelpdeskError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, done)
    return _back(request, endpoint)


@require_POST
@tenant_view(role=ADMIN)
def webhook_enable(request: TenantRequest, endpoint_id: int) -> HttpResponse:
    done = "Endpoint enabled: new events will be delivered."
    return _act(request, endpoint_id, enable_webhook_endpoint, done)


@require_POST
@tenant_view(role=ADMIN)
def webhook_disable(request: TenantRequest, endpoint_id: int) -> HttpResponse:
    done = "Endpoint disabled: nothing more will be sent to it."
    return _act(request, endpoint_id, disable_webhook_endpoint, done)


@require_POST
@tenant_view(role=ADMIN)
def webhook_ping(request: TenantRequest, endpoint_id: int) -> HttpResponse:
    done = "A test ping is on its way; see the log below."
    return _act(request, endpoint_id, send_test_ping, done)


@require_POST
@tenant_view(role=ADMIN)
def webhook_delete(request: TenantRequest, endpoint_id: int) -> HttpResponse:
    endpoint = access_webhook_endpoint(request.membership, endpoint_id)
    url = endpoint.url
    delete_webhook_endpoint(request.membership, endpoint)
    messages.success(request, f"Endpoint {url} deleted.")
    return redirect("frontend:webhooks", request.tenant.slug)


@never_cache
@require_POST
@tenant_view(role=ADMIN)
def webhook_rotate(request: TenantRequest, endpoint_id: int) -> HttpResponse:
    """A new secret, shown on the page it answers with (the old one signs for 24 h)."""
    endpoint = access_webhook_endpoint(request.membership, endpoint_id)
    secret = rotate_webhook_secret(request.membership, endpoint)
    return _endpoint_page(request, endpoint, secret=secret)


@never_cache
@require_POST
@tenant_view(role=ADMIN)
def webhook_reveal(request: TenantRequest, endpoint_id: int) -> HttpResponse:
    endpoint = access_webhook_endpoint(request.membership, endpoint_id)
    try:
        secret = reveal_webhook_secret(request.membership, endpoint)
    except HelpdeskError as exc:
        messages.error(request, exc.message)
        return _back(request, endpoint)
    return _endpoint_page(request, endpoint, secret=secret)
