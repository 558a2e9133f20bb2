"""Fixtures and helpers of the outbound webhook tests.

- `fake_dns`: the SSRF guard's resolver answers from a dict (no real DNS in tests).
- `loopback_hooks`: settings that let deliveries reach receivers on 127.0.0.1
  (plain http, 127.0.0.1/32 allowed, any port), and a factory for such receivers:
  real http.server instances on 127.0.0.1 (tests/social/fakeserver.py), closed at
  the end of the test.
- `webhook_queue`: captures what is handed to helpdesk.deliver_webhook instead of
  running it; tests run deliveries explicitly with `run_delivery`.

Import the `*_fixture` functions into a test module; pytest finds them there under
their short names (`fake_dns`, `loopback_hooks`, `webhook_queue`).
"""

import socket
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import pytest
from pytest_django.fixtures import Settings as SettingsWrapper

from helpdesk import tasks
from helpdesk.services.webhooks import NewEndpoint, create_webhook_endpoint
from helpdesk.webhooks import ssrf
from tenants.models import Tenant, User
from tests.factories import membership_of
from tests.social.fakeserver import FakeServer, Handler, Reply, running

PUBLIC_IP = "93.184.216.34"


@dataclass
class FakeDns:
    answers: dict[str, list[str]] = field(default_factory=dict)
    lookups: list[str] = field(default_factory=list)

    def resolve(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return list(self.answers[host])


@pytest.fixture(name="fake_dns")
def fake_dns_fixture(monkeypatch: pytest.MonkeyPatch) -> FakeDns:
    dns = FakeDns(
        {
            "hooks.example.com": [PUBLIC_IP],
            "loopback.example.com": ["127.0.0.1"],
            "v6-loopback.example.com": ["::1"],
            "private.example.com": ["10.0.0.8"],
            "metadata.example.com": ["169.254.169.254"],
            "mixed.example.com": [PUBLIC_IP, "192.168.0.10"],
        }
    )
    monkeypatch.setattr(ssrf, "resolve_host", dns.resolve)
    return dns


Receiver = Callable[..., FakeServer]


@pytest.fixture(name="loopback_hooks")
def loopback_hooks_fixture(settings: SettingsWrapper) -> Iterator[Receiver]:
    """A factory of receivers on 127.0.0.1 that deliveries are allowed to reach."""
    settings.WEBHOOKS_ALLOW_HTTP = True
    settings.WEBHOOKS_ALLOWED_PRIVATE_NETS = ["127.0.0.1/32"]
    with ExitStack() as stack:

        def receiver(reply: Handler | Reply | None = None) -> FakeServer:
            server = stack.enter_context(running(FakeServer()))
            server.route("POST", "/hooks", reply or (200, {}, {"ok": True}))
            port = int(server.base_url.rsplit(":", 1)[1])
            settings.WEBHOOKS_ALLOWED_PORTS = [*settings.WEBHOOKS_ALLOWED_PORTS, port]
            return server

        yield receiver


@dataclass
class WebhookQueue:
    calls: list[tuple[tuple[int, int], float | None]] = field(default_factory=list)

    def ids(self) -> list[int]:
        return [args[1] for args, _countdown in self.calls]


@pytest.fixture(name="webhook_queue")
def webhook_queue_fixture(monkeypatch: pytest.MonkeyPatch) -> WebhookQueue:
    queue = WebhookQueue()

    def capture(
        args: tuple[int, int],
        kwargs: Any = None,
        countdown: float | None = None,
        **_: Any,
    ) -> None:
        queue.calls.append((tuple(args), countdown))  # type: ignore[arg-type]

    monkeypatch.setattr(tasks.deliver_webhook, "apply_async", capture)
    return queue


def run_delivery(tenant: Tenant, delivery_id: int) -> str:
    """Run one attempt of helpdesk.deliver_webhook now; returns its outcome."""
    result: str = tasks.deliver_webhook.apply(args=(tenant.pk, delivery_id)).get()
    return result


def add_endpoint(
    tenant: Tenant, user: User, url: str, *, events: tuple[str, ...] = ()
) -> NewEndpoint:
    """An endpoint created through the service (so the URL passes the guard)."""
    from tenants.context import tenant_context

    with tenant_context(tenant):
        return create_webhook_endpoint(
            membership_of(tenant, user), url=url, description="Test", events=events
        )
