"""Settings → Webhooks in the browser: list, create, secret, actions, delivery log."""

import re

import pytest

from helpdesk.models import WebhookDelivery, WebhookEndpoint
from helpdesk.services.webhook_outbox import queue_webhook_deliveries
from tenants.context import tenant_context
from tenants.models import AuditEvent, Tenant, User
from tests.conftest import login
from tests.helpdesk.webhook_support import (  # noqa: F401 - fixtures
    FakeDns,
    WebhookQueue,
    add_endpoint,
    fake_dns_fixture,
    webhook_queue_fixture,
)

pytestmark = pytest.mark.django_db(transaction=True)

PAGE = "/t/acme-air/settings/webhooks/"
URL = "https://hooks.example.com/earshot"


@pytest.fixture(autouse=True)
def _fixtures(fake_dns: FakeDns, webhook_queue: WebhookQueue) -> None:
    """No real DNS, and deliveries are captured rather than sent."""


def endpoints(tenant: Tenant) -> list[tuple[str, str, bool]]:
    with tenant_context(tenant):
        return list(
            WebhookEndpoint.objects.order_by("id").values_list(
                "url", "description", "is_active"
            )
        )


def secret_on(page: bytes) -> str:
    match = re.search(rb'<code class="secret">(whsec_[\w-]+)</code>', page)
    assert match is not None
    return match.group(1).decode()


def test_admins_see_the_page_and_the_nav_link(admin: User, tenant: Tenant) -> None:
    client = login(admin)
    response = client.get(PAGE)
    assert response.status_code == 200
    assert b"No endpoints yet." in response.content
    assert f'href="{PAGE}"'.encode() in client.get("/t/acme-air/").content


@pytest.mark.parametrize("role", ["agent", "viewer"])
def test_other_roles_get_403_and_no_link(
    role: str, tenant: Tenant, request: pytest.FixtureRequest
) -> None:
    client = login(request.getfixturevalue(role))
    assert client.get(PAGE).status_code == 403
    assert client.post(PAGE, {"url": URL}).status_code == 403
    assert f'href="{PAGE}"'.encode() not in client.get("/t/acme-air/").content
    assert endpoints(tenant) == []


def test_adding_an_endpoint_shows_its_secret_once(owner: User, tenant: Tenant) -> None:
    client = login(owner)
    response = client.post(
        PAGE,
        {"url": URL, "description": "CRM", "events": ["message.created"]},
    )
    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0")
    assert "no-store" in response["Cache-Control"]
    secret = secret_on(response.content)
    assert endpoints(tenant) == [(URL, "CRM", True)]
    listing = client.get(PAGE)
    assert secret.encode() not in listing.content
    assert URL.encode() in listing.content
    assert b"message.created" in listing.content


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "https://127.0.0.1/",
        "https://[::1]/",
        "https://10.0.0.1/",
        "https://2130706433/",
        "https://loopback.example.com/",
        "ftp://hooks.example.com/",
        "file:///etc/passwd",
    ],
)
def test_a_refused_url_is_a_field_error_and_nothing_is_saved(
    url: str, owner: User, tenant: Tenant
) -> None:
    response = login(owner).post(PAGE, {"url": url, "description": "x"})
    assert response.status_code == 400
    html = response.content.decode()
    assert re.search(r'<ul class="errorlist"[^>]*id="id_url_error"', html), html
    assert b"whsec_" not in response.content
    assert endpoints(tenant) == []


def test_the_delivery_log_shows_each_attempt(owner: User, tenant: Tenant) -> None:
    endpoint = add_endpoint(tenant, owner, URL).endpoint
    with tenant_context(tenant):
        ok, bad = (
            queue_webhook_deliveries(tenant.pk, "message.created", {})[0],
            queue_webhook_deliveries(tenant.pk, "conversation.updated", {})[0],
        )
        WebhookDelivery.objects.filter(pk=ok).update(
            status="succeeded", attempts=1, last_status_code=204
        )
        WebhookDelivery.objects.filter(pk=bad).update(
            status="failed", attempts=2, last_status_code=500, last_error="HTTP 500."
        )
    response = login(owner).get(f"{PAGE}{endpoint.pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    rows = re.findall(r'<tr id="delivery-(\d+)">(.*?)</tr>', html, re.S)
    assert [int(pk) for pk, _ in rows] == [bad, ok]
    failed_row, ok_row = (row for _, row in rows)
    for text in ("conversation.updated", "Failed, will retry", "<td>2</td>", "500"):
        assert text in failed_row
    assert "HTTP 500." in failed_row
    for text in ("message.created", "Succeeded", "<td>1</td>", "204"):
        assert text in ok_row
    assert "whsec_" not in html


def test_reveal_and_rotate_show_the_secret(owner: User, tenant: Tenant) -> None:
    new = add_endpoint(tenant, owner, URL)
    client = login(owner)
    detail = f"{PAGE}{new.endpoint.pk}/"
    revealed = client.post(detail + "reveal/")
    assert revealed.status_code == 200
    assert "no-store" in revealed["Cache-Control"]
    assert secret_on(revealed.content) == new.secret
    rotated = client.post(detail + "rotate/")
    assert rotated.status_code == 200
    fresh = secret_on(rotated.content)
    assert fresh != new.secret
    assert secret_on(client.post(detail + "reveal/").content) == fresh
    assert client.get(detail + "reveal/").status_code == 405
    with tenant_context(tenant):
        actions = list(
            AuditEvent.objects.filter(action__startswith="webhook.secret")
            .order_by("id")
            .values_list("action", flat=True)
        )
    assert actions == [
        "webhook.secret_revealed",
        "webhook.secret_rotated",
        "webhook.secret_revealed",
    ]


def test_disable_enable_ping_and_delete(
    owner: User, tenant: Tenant, webhook_queue: WebhookQueue
) -> None:
    endpoint = add_endpoint(tenant, owner, URL).endpoint
    client = login(owner)
    detail = f"{PAGE}{endpoint.pk}/"
    response = client.post(detail + "disable/")
    assert (response.status_code, response["Location"]) == (302, detail)
    assert endpoints(tenant) == [(URL, "Test", False)]
    assert b"Disabled by Olivia." in client.get(detail).content
    refused = client.post(detail + "ping/", follow=True)
    assert b"Enable the endpoint before sending a test." in refused.content
    client.post(detail + "enable/")
    assert endpoints(tenant) == [(URL, "Test", True)]
    client.post(detail + "ping/")
    with tenant_context(tenant):
        (ping,) = WebhookDelivery.objects.all()
    assert (ping.event_type, ping.payload) == ("ping", {"endpoint_id": endpoint.pk})
    assert webhook_queue.ids() == [ping.pk]
    response = client.post(detail + "delete/")
    assert (response.status_code, response["Location"]) == (302, PAGE)
    assert endpoints(tenant) == []


def test_editing_an_endpoint(owner: User, tenant: Tenant) -> None:
    endpoint = add_endpoint(tenant, owner, URL).endpoint
    client = login(owner)
    detail = f"{PAGE}{endpoint.pk}/"
    page = client.get(detail)
    assert f'value="{URL}"'.encode() in page.content
    saved = client.post(detail, {"url": URL + "/v2", "description": "Renamed"})
    assert saved.status_code == 302
    refused = client.post(detail, {"url": "https://10.0.0.1/", "description": "x"})
    assert refused.status_code == 400
    assert b'id="id_url_error"' in refused.content
    assert endpoints(tenant) == [(URL + "/v2", "Renamed", True)]


def test_another_workspaces_endpoint_is_404_and_untouched(
    owner: User, tenant: Tenant, outsider: User, other_tenant: Tenant
) -> None:
    theirs = add_endpoint(other_tenant, outsider, URL).endpoint
    client = login(owner)
    detail = f"{PAGE}{theirs.pk}/"
    assert client.get(detail).status_code == 404
    assert client.post(detail, {"url": URL + "/x"}).status_code == 404
    for action in ("enable", "disable", "ping", "delete", "rotate", "reveal"):
        response = client.post(f"{detail}{action}/")
        assert response.status_code == 404, action
        assert b"whsec_" not in response.content
    assert endpoints(other_tenant) == [(URL, "Test", True)]
    with tenant_context(other_tenant):
        assert WebhookDelivery.objects.count() == 0
        assert AuditEvent.objects.filter(action__startswith="webhook.").count() == 1


def test_outsiders_get_404(
    outsider: User, other_tenant: Tenant, tenant: Tenant
) -> None:
    client = login(outsider)
    assert client.get(PAGE).status_code == 404
    assert client.post(PAGE, {"url": URL}).status_code == 404
    assert endpoints(tenant) == []
