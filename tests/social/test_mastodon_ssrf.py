"""Hostile Mastodon instance addresses meet the SSRF guard shared with outbound
webhooks (tenants/netguard.py): registration is refused with a field error, nothing
is stored, and no connection is made, which a listening socket on the target proves.
Later calls to a registered instance go through the same guard, pinned to the
address checked when each connection opens, so a name that rebinds to a private
address is refused too.

Unless a test says otherwise these run as production does, with no private network
allowed (WEBHOOKS_ALLOWED_PRIVATE_NETS empty) and, so that http:// cases exercise
the address checks rather than the scheme check, plain http allowed.
"""

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client, override_settings
from django.utils.html import escape

from social.connectors.base import AppSecrets, ConnectorError
from social.connectors.mastodon import MastodonConnector
from social.models import MastodonApp, SocialAccount
from tenants import netguard
from tenants.context import tenant_context
from tenants.models import Tenant, User
from tests.conftest import login
from tests.social.connecting import brand_of
from tests.social.fakes_mastodon import (
    CODE,
    CODE_VERIFIER,
    REDIRECT_URI,
    FakeMastodon,
)
from tests.social.fakeserver import FakeServer

pytestmark = pytest.mark.django_db(transaction=True)

PUBLIC_ONLY = "Earshot connects only to public Mastodon servers."
NOT_PUBLIC = (
    "resolves to an address that is not public (loopback, private, link-local or "
    f"reserved). {PUBLIC_ONLY}"
)


class Listener:
    """A listening socket that must never see a connection."""

    def __init__(self, family: socket.AddressFamily, address: str) -> None:
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.bind((address, 0))
        self.sock.listen(8)
        self.sock.setblocking(False)
        self.port: int = self.sock.getsockname()[1]

    def connections(self) -> int:
        count = 0
        while True:
            try:
                conn, _ = self.sock.accept()
            except BlockingIOError:
                return count
            conn.close()
            count += 1


@pytest.fixture
def listeners() -> Iterator[dict[str, Listener]]:
    made = {
        "127.0.0.1": Listener(socket.AF_INET, "127.0.0.1"),
        "127.0.0.2": Listener(socket.AF_INET, "127.0.0.2"),
        "::1": Listener(socket.AF_INET6, "::1"),
    }
    yield made
    for listener in made.values():
        listener.sock.close()


class FakeDns:
    """The guard's resolver: answers from a dict, each name's answers in turn (the
    last one repeats), and remembers every lookup."""

    def __init__(self) -> None:
        self.answers: dict[str, list[list[str]]] = {}
        self.lookups: list[str] = []

    def resolve(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        turns = self.answers.get(host)
        if not turns:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return turns.pop(0) if len(turns) > 1 else turns[0]


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> FakeDns:
    fake = FakeDns()
    monkeypatch.setattr(netguard, "resolve_host", fake.resolve)
    return fake


@pytest.fixture(autouse=True)
def production_guard() -> Iterator[None]:
    with override_settings(
        MASTODON_ALLOW_INSECURE=True, WEBHOOKS_ALLOWED_PRIVATE_NETS=[]
    ):
        yield


def submit(client: Client, tenant: Tenant, instance: str) -> Any:
    return client.post(
        "/connect/acme-air/mastodon/",
        {"mastodon-brand": brand_of(tenant).pk, "mastodon-instance": instance},
    )


def assert_refused(response: Any, message: str) -> None:
    assert response.status_code == 400
    assert response.context["mastodon_form"].errors == {"instance": [message]}
    assert escape(message).encode() in response.content
    assert MastodonApp.objects.count() == 0


@pytest.mark.parametrize(
    ("instance", "message"),
    [
        ("http://127.0.0.1:{v4}", "127.0.0.1 is a loopback address."),
        ("http://localhost:{v4}", "localhost is a loopback name."),
        ("http://LOCALHOST.:{v4}", "localhost. is a loopback name."),
        ("http://api.localhost:{v4}", "api.localhost is a loopback name."),
        ("http://[::1]:{v6}", "::1 is a loopback address."),
        ("http://0.0.0.0:{v4}", "0.0.0.0 is an unspecified address."),
        ("http://[::]:{v6}", ":: is an unspecified address."),
        (
            "http://[::ffff:127.0.0.1]:{v4}",
            "::ffff:127.0.0.1 is an IPv4-mapped IPv6 address.",
        ),
        ("http://169.254.169.254", "169.254.169.254 is a cloud metadata address."),
        ("https://[fe80::1]", "fe80::1 is a link-local address."),
        ("https://10.1.2.3", "10.1.2.3 is a private address."),
        ("https://224.0.0.1", "224.0.0.1 is a multicast address."),
    ],
)
def test_a_hostile_address_is_refused_before_any_connection(
    instance: str,
    message: str,
    listeners: dict[str, Listener],
    dns: FakeDns,
    owner: User,
    tenant: Tenant,
) -> None:
    url = instance.format(v4=listeners["127.0.0.1"].port, v6=listeners["::1"].port)
    response = submit(login(owner), tenant, url)

    assert_refused(response, f"{message} {PUBLIC_ONLY}")
    assert dns.lookups == []
    assert [listener.connections() for listener in listeners.values()] == [0, 0, 0]


def test_numbers_a_resolver_would_read_as_loopback_are_refused(
    listeners: dict[str, Listener], owner: User, tenant: Tenant
) -> None:
    port = listeners["127.0.0.1"].port
    for url in (f"http://2130706433:{port}", f"http://0x7f.1:{port}"):
        assert_refused(
            submit(login(owner), tenant, url),
            "Write an IP address as four decimal numbers (a.b.c.d).",
        )
    assert listeners["127.0.0.1"].connections() == 0


@pytest.mark.parametrize(
    ("name", "answer"),
    [
        ("internal.example", ["10.0.0.8"]),
        ("sneaky.example", ["127.0.0.1"]),
        ("sneaky6.example", ["::1"]),
        ("metadata.example", ["169.254.169.254"]),
        ("mixed.example", ["93.184.216.34", "127.0.0.1"]),
    ],
)
def test_a_name_resolving_to_a_private_address_is_refused_before_connecting(
    name: str,
    answer: list[str],
    listeners: dict[str, Listener],
    dns: FakeDns,
    owner: User,
    tenant: Tenant,
) -> None:
    dns.answers[name] = [answer]
    url = f"http://{name}:{listeners['127.0.0.1'].port}"
    response = submit(login(owner), tenant, url)

    assert_refused(response, f"{name} {NOT_PUBLIC}")
    assert dns.lookups == [name]
    assert [listener.connections() for listener in listeners.values()] == [0, 0, 0]


def test_a_name_that_does_not_resolve_is_a_field_error(
    dns: FakeDns, owner: User, tenant: Tenant
) -> None:
    response = submit(login(owner), tenant, "https://nowhere.example")

    assert_refused(response, "Earshot could not resolve nowhere.example.")


@pytest.fixture
def loopback_instance(fake_http: FakeServer, dns: FakeDns) -> Iterator[FakeMastodon]:
    """The fake instance under the name mastodon.test, reachable the way webhook
    tests reach their receivers (127.0.0.1/32 allowed): here it plays a public
    server."""
    dns.answers["mastodon.test"] = [["127.0.0.1"]]
    with override_settings(WEBHOOKS_ALLOWED_PRIVATE_NETS=["127.0.0.1/32"]):
        yield FakeMastodon(fake_http)


def instance_url(server: FakeServer) -> str:
    return "http://mastodon.test:" + server.base_url.rsplit(":", 1)[1]


def test_the_connection_goes_to_the_checked_address_under_the_instances_name(
    loopback_instance: FakeMastodon,
    fake_http: FakeServer,
    dns: FakeDns,
    owner: User,
    tenant: Tenant,
) -> None:
    url = instance_url(fake_http)
    response = submit(login(owner), tenant, url)

    assert response.status_code == 302
    (request,) = fake_http.requests
    assert (request.method, request.path) == ("POST", "/api/v1/apps")
    assert request.headers["host"] == url.removeprefix("http://")
    assert dns.lookups == ["mastodon.test"]
    assert list(MastodonApp.objects.values_list("base_url", flat=True)) == [url]


def test_a_name_that_rebinds_to_a_private_address_is_refused_on_later_calls(
    loopback_instance: FakeMastodon,
    fake_http: FakeServer,
    listeners: dict[str, Listener],
    dns: FakeDns,
    owner: User,
    tenant: Tenant,
) -> None:
    # Public (allowed) while Earshot registers, then 127.0.0.2: rebinding.
    port = fake_http.base_url.rsplit(":", 1)[1]
    dns.answers["mastodon.test"] = [["127.0.0.1"], ["127.0.0.2"]]
    url = f"http://mastodon.test:{port}"
    assert submit(login(owner), tenant, url).status_code == 302
    app = AppSecrets(
        client_id=loopback_instance.client_id,
        client_secret=loopback_instance.client_secret,
        base_url=url,
    )

    with pytest.raises(ConnectorError) as refused:
        MastodonConnector().exchange_code(
            app, code=CODE, redirect_uri=REDIRECT_URI, code_verifier=CODE_VERIFIER
        )

    assert refused.value.message == f"mastodon.test {NOT_PUBLIC}"
    assert refused.value.permanent
    assert [r.path for r in fake_http.requests] == ["/api/v1/apps"]
    assert dns.lookups == ["mastodon.test", "mastodon.test"]
    assert [listener.connections() for listener in listeners.values()] == [0, 0, 0]
    with tenant_context(tenant):
        assert SocialAccount.objects.count() == 0


def test_a_rebinding_answer_during_registration_stores_nothing(
    fake_http: FakeServer,
    listeners: dict[str, Listener],
    dns: FakeDns,
    owner: User,
    tenant: Tenant,
) -> None:
    dns.answers["rebind.example"] = [["127.0.0.2"], ["127.0.0.1"]]
    url = f"http://rebind.example:{listeners['127.0.0.2'].port}"
    response = submit(login(owner), tenant, url)

    assert_refused(response, f"rebind.example {NOT_PUBLIC}")
    assert dns.lookups == ["rebind.example"]
    assert fake_http.requests == []
    assert [listener.connections() for listener in listeners.values()] == [0, 0, 0]


def test_an_instance_whose_name_stops_resolving_is_a_transient_failure(
    dns: FakeDns,
) -> None:
    app = AppSecrets(client_id="cid", client_secret="s", base_url="https://gone.test")

    with pytest.raises(ConnectorError) as failed:
        MastodonConnector().exchange_code(
            app, code=CODE, redirect_uri=REDIRECT_URI, code_verifier=CODE_VERIFIER
        )

    assert failed.value.message == "Earshot could not resolve gone.test."
    assert not failed.value.permanent
    assert dns.lookups == ["gone.test"]
