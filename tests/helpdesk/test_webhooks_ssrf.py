"""The SSRF guard: every case refused when saving an endpoint and when delivering.

These tests run with WEBHOOKS_ALLOWED_PRIVATE_NETS empty (the production value) and,
unless a test says otherwise, plain http allowed, so http:// cases exercise the
address checks rather than the scheme check.
"""

import httpcore
import pytest
from django.core.exceptions import PermissionDenied
from pytest_django.fixtures import Settings as SettingsWrapper

from helpdesk.models import WebhookDelivery, WebhookEndpoint
from helpdesk.services.webhook_outbox import queue_webhook_deliveries
from helpdesk.services.webhooks import create_webhook_endpoint, update_webhook_endpoint
from helpdesk.webhooks.crypto import encrypt_secret
from helpdesk.webhooks.errors import WebhookUrlRefused
from helpdesk.webhooks.ssrf import UrlRefused, check_url
from helpdesk.webhooks.transport import PinnedBackend
from tenants.context import tenant_context
from tenants.models import AuditEvent, Tenant, User
from tests.factories import membership_of
from tests.helpdesk.webhook_support import (  # noqa: F401 - fixtures
    PUBLIC_IP,
    FakeDns,
    Receiver,
    WebhookQueue,
    fake_dns_fixture,
    loopback_hooks_fixture,
    run_delivery,
    webhook_queue_fixture,
)

pytestmark = pytest.mark.django_db

REFUSED = [
    # loopback, in every spelling
    "http://127.0.0.1/",
    "http://127.0.0.1:8000/hooks",
    "http://localhost/",
    "http://LOCALHOST./",
    "http://api.localhost/",
    "http://[::1]/",
    "http://2130706433/",
    "http://0x7f.1/",
    "http://0x7f000001/",
    "http://017700000001/",
    "http://0177.0.0.1/",
    "http://127.1/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    # private networks
    "http://10.0.0.1/",
    "http://10.255.255.255/",
    "http://172.16.0.1/",
    "http://172.31.255.254/",
    "http://192.168.1.10/",
    "http://[fd12:3456::1]/",
    "http://100.64.0.1/",
    "http://198.18.0.1/",
    # link-local and cloud metadata
    "http://169.254.169.254/latest/meta-data/",
    "http://[fd00:ec2::254]/",
    "http://[fe80::1]/",
    "http://168.63.129.16/",
    # unspecified, multicast, reserved, tunnels
    "http://0.0.0.0/",
    "http://[::]/",
    "http://224.0.0.1/",
    "http://[ff02::1]/",
    "http://240.0.0.1/",
    "http://255.255.255.255/",
    "http://[2002:7f00:1::1]/",
    "http://[64:ff9b::7f00:1]/",
    # names that resolve to refused addresses (fake_dns)
    "http://loopback.example.com/",
    "http://v6-loopback.example.com/",
    "http://private.example.com/",
    "http://metadata.example.com/",
    "http://mixed.example.com/",
    "http://does-not-resolve.example.com/",
    # schemes, credentials, ports, syntax
    "ftp://hooks.example.com/",
    "file:///etc/passwd",
    "gopher://hooks.example.com/",
    "javascript:alert(1)",
    "https://user:pass@hooks.example.com/",
    "https://hooks.example.com@127.0.0.1/",
    "https://hooks.example.com:8443/",
    "https://hooks.example.com:22/",
    "hooks.example.com/no-scheme",
    "",
    "https://" + "a" * 2000 + ".example.com/",
]


@pytest.fixture(autouse=True)
def guard_settings(settings: SettingsWrapper, fake_dns: FakeDns) -> None:
    settings.WEBHOOKS_ALLOW_HTTP = True
    settings.WEBHOOKS_ALLOWED_PRIVATE_NETS = []
    settings.WEBHOOKS_ALLOWED_PORTS = [443]


@pytest.mark.parametrize("url", REFUSED)
def test_guard_refuses(url: str) -> None:
    with pytest.raises(UrlRefused):
        check_url(url)


def test_guard_accepts_public_names_and_addresses(fake_dns: FakeDns) -> None:
    target = check_url("https://hooks.example.com/earshot?x=1")
    assert (target.host, target.port, target.address) == (
        "hooks.example.com",
        443,
        PUBLIC_IP,
    )
    assert check_url(f"https://{PUBLIC_IP}/").address == PUBLIC_IP
    assert check_url("https://[2606:4700::1111]/").address == "2606:4700::1111"
    assert fake_dns.lookups == ["hooks.example.com"]


def test_plain_http_needs_the_development_setting(settings: SettingsWrapper) -> None:
    settings.WEBHOOKS_ALLOW_HTTP = False
    with pytest.raises(UrlRefused, match="https://"):
        check_url("http://hooks.example.com/")
    assert check_url("https://hooks.example.com/").address == PUBLIC_IP


def test_refusals_say_why_without_showing_resolved_addresses() -> None:
    with pytest.raises(UrlRefused) as literal:
        check_url("http://169.254.169.254/")
    assert literal.value.message == (
        "169.254.169.254 is a cloud metadata address. "
        "Earshot delivers webhooks to public internet addresses only."
    )
    with pytest.raises(UrlRefused) as named:
        check_url("https://private.example.com/")
    assert "10.0.0.8" not in named.value.message
    assert named.value.message.startswith("private.example.com resolves to an address")


def test_allowed_private_networks_let_only_those_through(
    settings: SettingsWrapper,
) -> None:
    settings.WEBHOOKS_ALLOWED_PRIVATE_NETS = ["127.0.0.1/32"]
    assert check_url("http://127.0.0.1/").address == "127.0.0.1"
    for url in ("http://127.0.0.2/", "http://[::ffff:127.0.0.1]/", "http://[::1]/"):
        with pytest.raises(UrlRefused):
            check_url(url)


@pytest.mark.parametrize("url", REFUSED)
def test_create_refuses_with_a_url_field_error_and_saves_nothing(
    url: str, tenant: Tenant, owner: User
) -> None:
    with tenant_context(tenant):
        audit_before = AuditEvent.objects.count()
        with pytest.raises(WebhookUrlRefused) as refused:
            create_webhook_endpoint(membership_of(tenant, owner), url=url)
        assert refused.value.field == "url"
        assert refused.value.code == "webhook_url_refused"
        assert WebhookEndpoint.objects.count() == 0
        assert AuditEvent.objects.count() == audit_before


def test_update_refuses_and_keeps_the_old_url(tenant: Tenant, owner: User) -> None:
    with tenant_context(tenant):
        membership = membership_of(tenant, owner)
        endpoint = create_webhook_endpoint(
            membership, url="https://hooks.example.com/a"
        ).endpoint
        with pytest.raises(WebhookUrlRefused):
            update_webhook_endpoint(
                membership, endpoint, url="https://metadata.example.com/"
            )
        endpoint.refresh_from_db()
        assert endpoint.url == "https://hooks.example.com/a"


def test_agents_cannot_create(tenant: Tenant, agent: User) -> None:
    with tenant_context(tenant):
        with pytest.raises(PermissionDenied):
            create_webhook_endpoint(
                membership_of(tenant, agent), url="https://hooks.example.com/"
            )
        assert WebhookEndpoint.objects.count() == 0


def _saved_endpoint(tenant: Tenant, url: str) -> WebhookEndpoint:
    """An endpoint row whose URL the guard would refuse now (DNS changed since)."""
    return WebhookEndpoint.objects.create(
        tenant=tenant, url=url, secret_encrypted=encrypt_secret(tenant.pk, "whsec_x")
    )


def test_delivery_time_check_refuses_and_sends_nothing(
    tenant: Tenant,
    settings: SettingsWrapper,
    loopback_hooks: Receiver,
    webhook_queue: WebhookQueue,
) -> None:
    receiver = loopback_hooks()
    settings.WEBHOOKS_ALLOWED_PRIVATE_NETS = []  # as in production
    with tenant_context(tenant):
        endpoint = _saved_endpoint(tenant, receiver.base_url + "/hooks")
        (delivery_id,) = queue_webhook_deliveries(tenant.pk, "ping", {"n": 1})
    assert run_delivery(tenant, delivery_id) == "retry"
    with tenant_context(tenant):
        delivery = WebhookDelivery.objects.get(pk=delivery_id)
        endpoint.refresh_from_db()
    assert receiver.requests == []
    assert delivery.status == WebhookDelivery.Status.FAILED
    assert delivery.last_error == (
        "Refused: 127.0.0.1 is a loopback address. "
        "Earshot delivers webhooks to public internet addresses only."
    )
    assert delivery.last_status_code is None
    assert endpoint.consecutive_failures == 1


def test_delivery_time_check_sees_a_name_now_resolving_to_metadata(
    tenant: Tenant, fake_dns: FakeDns, webhook_queue: WebhookQueue
) -> None:
    with tenant_context(tenant):
        _saved_endpoint(tenant, "https://hooks.example.com/x")
        (delivery_id,) = queue_webhook_deliveries(tenant.pk, "ping", {})
    fake_dns.answers["hooks.example.com"] = ["169.254.169.254"]
    assert run_delivery(tenant, delivery_id) == "retry"
    with tenant_context(tenant):
        delivery = WebhookDelivery.objects.get(pk=delivery_id)
    assert delivery.last_error.startswith("Refused: hooks.example.com resolves to")


def test_redirects_are_not_followed_even_to_an_allowed_address(
    tenant: Tenant, loopback_hooks: Receiver, webhook_queue: WebhookQueue
) -> None:
    inner = loopback_hooks()
    outer = loopback_hooks((302, {"Location": inner.base_url + "/hooks"}, b""))
    with tenant_context(tenant):
        _saved_endpoint(tenant, outer.base_url + "/hooks")
        (delivery_id,) = queue_webhook_deliveries(tenant.pk, "ping", {})
    assert run_delivery(tenant, delivery_id) == "retry"
    with tenant_context(tenant):
        delivery = WebhookDelivery.objects.get(pk=delivery_id)
    assert len(outer.requests) == 1
    assert inner.requests == []
    assert delivery.status == WebhookDelivery.Status.FAILED
    assert delivery.last_status_code == 302
    assert delivery.last_error == (
        "HTTP 302: redirects are not followed; use the final URL."
    )


def test_redirect_to_loopback_is_not_followed(
    tenant: Tenant, loopback_hooks: Receiver, webhook_queue: WebhookQueue
) -> None:
    target = loopback_hooks()
    outer = loopback_hooks((307, {"Location": "http://localhost:1/admin"}, b""))
    with tenant_context(tenant):
        _saved_endpoint(tenant, outer.base_url + "/hooks")
        (delivery_id,) = queue_webhook_deliveries(tenant.pk, "ping", {})
    run_delivery(tenant, delivery_id)
    with tenant_context(tenant):
        assert WebhookDelivery.objects.get(pk=delivery_id).last_status_code == 307
    assert target.requests == []


def test_a_name_is_resolved_once_and_the_checked_address_is_used(
    tenant: Tenant,
    fake_dns: FakeDns,
    loopback_hooks: Receiver,
    webhook_queue: WebhookQueue,
) -> None:
    receiver = loopback_hooks()
    port = receiver.base_url.rsplit(":", 1)[1]
    fake_dns.answers["hooks.test"] = ["127.0.0.1"]
    with tenant_context(tenant):
        _saved_endpoint(tenant, f"http://hooks.test:{port}/hooks")
        (delivery_id,) = queue_webhook_deliveries(tenant.pk, "ping", {})
    # A rebinding resolver would answer differently the second time; there is none.
    fake_dns.lookups.clear()
    assert run_delivery(tenant, delivery_id) == "succeeded"
    assert fake_dns.lookups == ["hooks.test"]
    (request,) = receiver.requests
    assert request.headers["host"] == f"hooks.test:{port}"


def test_the_pinned_backend_refuses_unchecked_hosts() -> None:
    backend = PinnedBackend({"hooks.example.com": PUBLIC_IP}, deadline=1e12)
    with pytest.raises(httpcore.ConnectError):
        backend.connect_tcp("other.example.com", 443)
    with pytest.raises(httpcore.ConnectError):
        backend.connect_unix_socket("/var/run/docker.sock")
