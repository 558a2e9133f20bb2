"""Connecting a Mastodon account: the admin names the server on the accounts page,
Earshot registers its app there once (`POST /api/v1/apps`, secret encrypted) and
sends the admin into the OAuth flow on that server. Bad or failing servers are a
field error on the form and register nothing. (The OAuth flow itself:
test_connect_oauth.py.)"""

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client, override_settings
from django.utils.html import escape

from social.crypto import decrypt_app_secret
from social.models import MastodonApp, SocialAccount
from tenants.context import tenant_context
from tenants.models import Tenant, User
from tests.conftest import login
from tests.social.connecting import brand_of, consent, query_of, routes
from tests.social.fakes_mastodon import LOOPBACK_INSTANCE, FakeMastodon, load
from tests.social.fakeserver import FakeServer

pytestmark = pytest.mark.django_db(transaction=True)

CALLBACK = "http://testserver/social/callback/mastodon/"
APP = load("app.json")


@pytest.fixture
def mastodon(fake_http: FakeServer) -> Iterator[FakeMastodon]:
    with override_settings(**LOOPBACK_INSTANCE):
        yield FakeMastodon(fake_http)


def submit(client: Client, tenant: Tenant, instance: str) -> Any:
    return client.post(
        "/connect/acme-air/mastodon/",
        {"mastodon-brand": brand_of(tenant).pk, "mastodon-instance": instance},
    )


def registrations(server: FakeServer) -> list[dict[str, str]]:
    return [r.json() for r in server.requests if r.path == "/api/v1/apps"]


def test_registers_earshot_on_the_server_once_and_starts_oauth_there(
    mastodon: FakeMastodon, fake_http: FakeServer, owner: User, tenant: Tenant
) -> None:
    client = login(owner)
    response = submit(client, tenant, f" {fake_http.base_url}/ ")
    brand = brand_of(tenant).pk
    assert response.status_code == 302
    assert response["Location"] == (
        f"/t/acme-air/social/connect/mastodon/?brand={brand}"
        f"&instance=http%3A%2F%2F127.0.0.1%3A{fake_http.base_url.rsplit(':', 1)[1]}"
    )
    assert registrations(fake_http) == [
        {
            "client_name": "Earshot",
            "redirect_uris": CALLBACK,
            "scopes": "read:accounts read:notifications read:statuses write:statuses",
            "website": "https://github.com/earshot-helpdesk",
        }
    ]
    [app] = MastodonApp.objects.all()
    assert (app.base_url, app.redirect_uri, app.client_id) == (
        fake_http.base_url,
        CALLBACK,
        APP["client_id"],
    )
    assert APP["client_secret"] not in app.client_secret
    assert decrypt_app_secret(app.client_secret) == APP["client_secret"]
    begin = client.get(response["Location"])
    authorize = str(begin["Location"])
    assert authorize.startswith(f"{fake_http.base_url}/oauth/authorize?")
    assert query_of(authorize)["client_id"] == APP["client_id"]
    # A second connection on the same server reuses the app.
    again = submit(client, tenant, fake_http.base_url)
    assert again.status_code == 302
    assert len(registrations(fake_http)) == 1
    assert MastodonApp.objects.count() == 1


def test_the_whole_connection_through_the_server(
    mastodon: FakeMastodon, fake_http: FakeServer, owner: User, tenant: Tenant
) -> None:
    client = login(owner)
    start = submit(client, tenant, fake_http.base_url)
    authorize = client.get(start["Location"])["Location"]
    done = client.get(consent(authorize))
    assert done["Location"] == "/t/acme-air/settings/accounts/"
    with tenant_context(tenant):
        account = SocialAccount.objects.get()
    assert (account.platform, account.external_id, account.handle) == (
        "mastodon",
        "109",
        "brand",
    )
    assert account.base_url == fake_http.base_url
    assert routes() == [("mastodon", "109", tenant.pk)]


def test_the_app_is_registered_again_when_the_callback_address_changes(
    mastodon: FakeMastodon, fake_http: FakeServer, owner: User, tenant: Tenant
) -> None:
    client = login(owner)
    submit(client, tenant, fake_http.base_url)
    with override_settings(SITE_URL="https://earshot.example"):
        assert submit(client, tenant, fake_http.base_url).status_code == 302
    assert [r["redirect_uris"] for r in registrations(fake_http)] == [
        CALLBACK,
        "https://earshot.example/social/callback/mastodon/",
    ]
    assert list(MastodonApp.objects.values_list("redirect_uri", flat=True)) == [
        "https://earshot.example/social/callback/mastodon/"
    ]


def _refused(response: Any, message: str) -> None:
    assert response.status_code == 400
    form = response.context["mastodon_form"]
    assert form.errors == {"instance": [message]}
    assert escape(message).encode() in response.content


@pytest.mark.parametrize(
    ("instance", "message"),
    [
        ("", "This field is required."),
        ("ftp://mastodon.example", "Enter a server address such as mastodon.social."),
        ("http://mastodon.example", "The server must use https://."),
        (
            "https://mastodon.example/@acme",
            "Enter the server's address without a path, such as mastodon.social.",
        ),
        (
            "https://admin:pw@mastodon.example",
            "Enter only the server's address, such as mastodon.social.",
        ),
        (
            "https://127.0.0.1",
            "127.0.0.1 is a loopback address. Earshot connects only to public "
            "Mastodon servers.",
        ),
        (
            "https://[::1]:8443",
            "::1 is a loopback address. Earshot connects only to public Mastodon "
            "servers.",
        ),
        (
            "10.0.0.8",
            "10.0.0.8 is a private address. Earshot connects only to public "
            "Mastodon servers.",
        ),
    ],
)
def test_an_address_earshot_may_not_call_is_a_field_error(
    instance: str, message: str, fake_http: FakeServer, owner: User, tenant: Tenant
) -> None:
    _refused(submit(login(owner), tenant, instance), message)
    assert fake_http.requests == []
    assert MastodonApp.objects.count() == 0


def test_an_unreachable_server_is_a_field_error(
    mastodon: FakeMastodon, owner: User, tenant: Tenant
) -> None:
    response = submit(login(owner), tenant, "http://127.0.0.1:9")
    _refused(
        response,
        "Could not reach 127.0.0.1:9: Could not reach the platform (ConnectError).",
    )
    assert MastodonApp.objects.count() == 0


@pytest.mark.parametrize("status", [403, 422, 500, 503])
def test_a_server_that_refuses_to_register_is_a_field_error(
    status: int,
    mastodon: FakeMastodon,
    fake_http: FakeServer,
    owner: User,
    tenant: Tenant,
) -> None:
    fake_http.route("POST", "/api/v1/apps", (status, {}, {"error": "Nope"}))
    host = fake_http.base_url.removeprefix("http://")
    _refused(
        submit(login(owner), tenant, fake_http.base_url),
        f"{host} refused to register Earshot (HTTP {status}).",
    )
    assert MastodonApp.objects.count() == 0


def test_a_server_that_is_not_mastodon_is_a_field_error(
    mastodon: FakeMastodon, fake_http: FakeServer, owner: User, tenant: Tenant
) -> None:
    fake_http.route(
        "POST",
        "/api/v1/apps",
        (200, {"Content-Type": "text/html"}, "<html>Welcome to nginx</html>"),
    )
    host = fake_http.base_url.removeprefix("http://")
    _refused(
        submit(login(owner), tenant, fake_http.base_url),
        f"{host} did not answer like a Mastodon server.",
    )
    assert MastodonApp.objects.count() == 0


def test_a_brand_of_another_workspace_is_refused_before_any_call(
    mastodon: FakeMastodon,
    fake_http: FakeServer,
    owner: User,
    tenant: Tenant,
    other_tenant: Tenant,
) -> None:
    response = login(owner).post(
        "/connect/acme-air/mastodon/",
        {
            "mastodon-brand": brand_of(other_tenant).pk,
            "mastodon-instance": fake_http.base_url,
        },
    )
    assert response.status_code == 400
    assert list(response.context["mastodon_form"].errors) == ["brand"]
    assert fake_http.requests == []


def test_agents_and_outsiders_cannot_register(
    mastodon: FakeMastodon,
    fake_http: FakeServer,
    agent: User,
    outsider: User,
    tenant: Tenant,
    other_tenant: Tenant,
) -> None:
    assert submit(login(agent), tenant, fake_http.base_url).status_code == 403
    assert submit(login(outsider), tenant, fake_http.base_url).status_code == 404
    assert Client().post("/connect/acme-air/mastodon/").status_code == 302
    assert fake_http.requests == []
    assert MastodonApp.objects.count() == 0
