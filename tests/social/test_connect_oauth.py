"""The OAuth connect flow (social/views.py) against each platform's fake server over
real HTTP: the authorize redirect with state (and PKCE where the platform has it),
the consent page, the code exchange at the fake, and the account stored with
encrypted tokens and routed. Refusals (a wrong or replayed state, access_denied, a
4xx from the token endpoint) show the failure page and create nothing."""

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client, override_settings
from django.utils import timezone

from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import Tenant, User
from tests.conftest import login
from tests.social import fakes_mastodon, fakes_meta, fakes_reddit, fakes_x
from tests.social.connecting import (
    apps_with,
    audit_actions,
    brand_of,
    challenge_for,
    connected,
    consent,
    query_of,
    raw_credentials,
    routes,
)
from tests.social.fakes_mastodon import LOOPBACK_INSTANCE, FakeMastodon
from tests.social.fakes_meta import FakeGraph, graph_error
from tests.social.fakes_reddit import FakeReddit
from tests.social.fakes_x import FakeX
from tests.social.fakeserver import FakeConsent, FakeServer, Reply

pytestmark = pytest.mark.django_db(transaction=True)

SITE = "http://testserver"


@dataclass(frozen=True)
class Spec:
    """How one platform's connect flow looks from the outside."""

    platform: str
    install: Callable[[FakeServer], Any]
    app: Callable[[FakeServer], dict[str, str]]
    authorize_path: str
    # The authorize query besides state and the PKCE challenge.
    authorize_query: dict[str, str]
    pkce: bool
    token: tuple[str, str]  # the token endpoint's method and path
    refused: Reply  # what that endpoint answers to a bad exchange
    refused_message: str
    account: tuple[str, str]  # external id, handle
    credentials: Callable[[FakeServer], dict[str, Any]]
    lifetime: timedelta | None


def _x_app(server: FakeServer) -> dict[str, str]:
    return {
        "client_id": fakes_x.CLIENT_ID,
        "client_secret": fakes_x.CLIENT_SECRET,
        "base_url": server.base_url,
    }


def _meta_app(server: FakeServer) -> dict[str, str]:
    return {
        "client_id": fakes_meta.APP_ID,
        "client_secret": fakes_meta.APP_SECRET,
        "base_url": server.base_url,
    }


def _reddit_app(server: FakeServer) -> dict[str, str]:
    return {
        "client_id": fakes_reddit.CLIENT_ID,
        "client_secret": fakes_reddit.CLIENT_SECRET,
        "base_url": server.base_url,
    }


def _pages(server: FakeServer) -> list[dict[str, Any]]:
    return [
        {
            "id": page["id"],
            "name": page["name"],
            "username": page.get("username", ""),
            "access_token": page["access_token"],
            "instagram": page.get("instagram_business_account", {}),
        }
        for page in FakeGraph(server).pages
    ]


MASTODON_SCOPES = "read:accounts read:notifications read:statuses write:statuses"

SPECS = {
    "x": Spec(
        platform="x",
        install=lambda server: FakeX(server).install(),
        app=_x_app,
        authorize_path="/i/oauth2/authorize",
        authorize_query={
            "response_type": "code",
            "client_id": fakes_x.CLIENT_ID,
            "redirect_uri": f"{SITE}/social/callback/x/",
            "scope": fakes_x.SCOPE,
            "code_challenge_method": "S256",
        },
        pkce=True,
        token=("POST", "/2/oauth2/token"),
        refused=(
            400,
            {},
            {
                "error": "invalid_request",
                "error_description": "Value passed for the token was invalid.",
            },
        ),
        refused_message="Value passed for the token was invalid.",
        account=(fakes_x.ACCOUNT_ID, fakes_x.HANDLE),
        credentials=lambda server: {
            "access_token": "x-access-1",
            "refresh_token": "x-refresh-1",
            "scope": fakes_x.SCOPE,
        },
        lifetime=timedelta(seconds=7200),
    ),
    "facebook": Spec(
        platform="facebook",
        install=lambda server: FakeGraph(server).install(),
        app=_meta_app,
        authorize_path="/v21.0/dialog/oauth",
        authorize_query={
            "client_id": fakes_meta.APP_ID,
            "redirect_uri": f"{SITE}/social/callback/facebook/",
            "response_type": "code",
            "scope": "pages_show_list,pages_manage_metadata,pages_read_engagement,"
            "pages_read_user_content,pages_manage_engagement,pages_messaging",
        },
        pkce=False,
        token=("GET", "/v21.0/oauth/access_token"),
        refused=graph_error(100, "Invalid verification code format."),
        refused_message="Invalid verification code format.",
        account=(fakes_meta.STAGING_PAGE_ID, "Acme Air Staging"),
        credentials=lambda server: {
            "access_token": fakes_meta.STAGING_TOKEN,
            "refresh_token": "",
            "pages": _pages(server),
            "user_id": fakes_meta.USER_ID,
        },
        lifetime=None,
    ),
    "instagram": Spec(
        platform="instagram",
        install=lambda server: FakeGraph(server).install(),
        app=_meta_app,
        authorize_path="/v21.0/dialog/oauth",
        authorize_query={
            "client_id": fakes_meta.APP_ID,
            "redirect_uri": f"{SITE}/social/callback/instagram/",
            "response_type": "code",
            "scope": "instagram_basic,instagram_manage_comments,"
            "instagram_manage_messages,pages_show_list,pages_read_engagement,"
            "pages_manage_metadata,pages_messaging",
        },
        pkce=False,
        token=("GET", "/v21.0/oauth/access_token"),
        refused=graph_error(100, "Invalid verification code format."),
        refused_message="Invalid verification code format.",
        account=(fakes_meta.IG_ID, "acmeair"),
        credentials=lambda server: {
            "access_token": fakes_meta.PAGE_TOKEN,
            "refresh_token": "",
            "page_id": fakes_meta.PAGE_ID,
            "pages": _pages(server),
            "user_id": fakes_meta.USER_ID,
        },
        lifetime=None,
    ),
    "reddit": Spec(
        platform="reddit",
        install=FakeReddit,
        app=_reddit_app,
        authorize_path="/api/v1/authorize",
        authorize_query={
            "client_id": fakes_reddit.CLIENT_ID,
            "response_type": "code",
            "redirect_uri": f"{SITE}/social/callback/reddit/",
            "duration": "permanent",
            "scope": fakes_reddit.SCOPE,
        },
        pkce=False,
        token=("POST", "/api/v1/access_token"),
        refused=(401, {}, {"message": "Unauthorized", "error": 401}),
        refused_message="Unauthorized",
        account=(fakes_reddit.ACCOUNT_ID, fakes_reddit.HANDLE),
        credentials=lambda server: {
            "access_token": fakes_reddit.ACCESS_TOKEN,
            "refresh_token": fakes_reddit.REFRESH_TOKEN,
            "scope": fakes_reddit.SCOPE,
        },
        lifetime=timedelta(seconds=86400),
    ),
    "mastodon": Spec(
        platform="mastodon",
        install=FakeMastodon,
        app=lambda server: {},
        authorize_path="/oauth/authorize",
        authorize_query={
            "response_type": "code",
            "client_id": fakes_mastodon.load("app.json")["client_id"],
            "redirect_uri": f"{SITE}/social/callback/mastodon/",
            "scope": MASTODON_SCOPES,
            "code_challenge_method": "S256",
        },
        pkce=True,
        token=("POST", "/oauth/token"),
        refused=(
            400,
            {},
            {
                "error": "invalid_grant",
                "error_description": "The provided authorization grant is invalid.",
            },
        ),
        refused_message="The provided authorization grant is invalid.",
        account=(fakes_mastodon.BRAND_ID, "brand"),
        credentials=lambda server: {
            "access_token": fakes_mastodon.ACCESS_TOKEN,
            "refresh_token": "",
            "scope": MASTODON_SCOPES,
        },
        lifetime=None,
    ),
}


@pytest.fixture(params=sorted(SPECS))
def spec(request: pytest.FixtureRequest) -> Spec:
    return SPECS[request.param]


@pytest.fixture
def platform_fake(fake_http: FakeServer, spec: Spec) -> Iterator[Any]:
    fake = spec.install(fake_http)
    apps = apps_with(**{spec.platform: spec.app(fake_http)})
    with override_settings(SOCIAL_APPS=apps, **LOOPBACK_INSTANCE):
        yield fake


def start(client: Client, spec: Spec, tenant: Tenant, server: FakeServer) -> str:
    """Click "connect" as the admin; return where Earshot sends the browser."""
    brand = brand_of(tenant)
    if spec.platform == "mastodon":
        form = client.post(
            "/connect/acme-air/mastodon/",
            {"mastodon-brand": brand.pk, "mastodon-instance": server.base_url},
        )
        assert form.status_code == 302, form.content
        begin = client.get(form["Location"])
    else:
        begin = client.get(
            f"/t/acme-air/social/connect/{spec.platform}/?brand={brand.pk}"
        )
    assert begin.status_code == 302, begin.content
    return str(begin["Location"])


def consent_page(fake: Any) -> FakeConsent:
    consent_: FakeConsent = fake.consent
    return consent_


def test_connects_the_account_with_encrypted_tokens(
    spec: Spec,
    platform_fake: Any,
    fake_http: FakeServer,
    owner: User,
    tenant: Tenant,
) -> None:
    client = login(owner)
    authorize = start(client, spec, tenant, fake_http)
    assert authorize.split("?")[0] == fake_http.base_url + spec.authorize_path
    query = query_of(authorize)
    state = client.session["earshot_connect"]["state"]
    verifier = client.session["earshot_connect"]["verifier"]
    expected = {**spec.authorize_query, "state": state}
    if spec.pkce:
        expected["code_challenge"] = challenge_for(verifier)
    assert query == expected
    before = timezone.now()
    done = client.get(consent(authorize))
    assert (done.status_code, done["Location"]) == (
        302,
        "/t/acme-air/settings/accounts/",
    )
    [sent] = _exchanges(fake_http, spec)
    assert sent["code"] == consent_page(platform_fake).code
    assert sent["redirect_uri"] == f"{SITE}/social/callback/{spec.platform}/"
    if spec.pkce:
        assert sent["code_verifier"] == verifier
    [account] = connected(tenant)
    expires = account.pop("token_expires_at")
    assert account == {
        "platform": spec.platform,
        "external_id": spec.account[0],
        "handle": spec.account[1],
        "status": "connected",
        "base_url": fake_http.base_url,
        "credentials": {
            **spec.credentials(fake_http),
            "expires_at": expires.isoformat() if expires else None,
        },
    }
    if spec.lifetime is None:
        assert expires is None
    else:
        assert before + spec.lifetime <= expires <= timezone.now() + spec.lifetime
    [ciphertext] = raw_credentials(tenant)
    assert spec.credentials(fake_http)["access_token"] not in ciphertext
    assert routes() == [(spec.platform, spec.account[0], tenant.pk)]
    assert audit_actions(tenant) == [
        ("account.connected", {"platform": spec.platform, "handle": spec.account[1]})
    ]
    assert "earshot_connect" not in client.session


def _nothing_connected(tenant: Tenant) -> None:
    with tenant_context(tenant):
        assert SocialAccount.objects.count() == 0
    assert routes() == []
    assert audit_actions(tenant) == []


def _exchanges(server: FakeServer, spec: Spec) -> list[dict[str, str]]:
    """The code exchanges the fake's token endpoint received (their fields)."""
    found = []
    for request in server.requests:
        if (request.method, request.path) != spec.token:
            continue
        if request.method == "POST":
            fields = request.form()
        else:
            fields = {key: values[0] for key, values in request.query.items()}
        if "code" in fields:
            found.append(fields)
    return found


def test_a_wrong_state_connects_nothing(
    spec: Spec,
    platform_fake: Any,
    fake_http: FakeServer,
    owner: User,
    tenant: Tenant,
) -> None:
    client = login(owner)
    callback = consent(start(client, spec, tenant, fake_http))
    forged = callback.replace("state=", "state=forged")
    failed = client.get(forged)
    assert failed.status_code == 400
    assert b"This connection attempt expired or was not started here." in (
        failed.content
    )
    # The attempt is spent: the genuine callback no longer works either.
    replay = client.get(callback)
    assert replay.status_code == 400
    assert _exchanges(fake_http, spec) == []
    _nothing_connected(tenant)


def test_a_refused_authorization_connects_nothing(
    spec: Spec,
    platform_fake: Any,
    fake_http: FakeServer,
    owner: User,
    tenant: Tenant,
) -> None:
    consent_page(platform_fake).deny = True
    client = login(owner)
    callback = consent(start(client, spec, tenant, fake_http))
    assert query_of(callback)["error"] == "access_denied"
    failed = client.get(callback)
    assert failed.status_code == 400
    assert b"The user denied the request." in failed.content
    assert _exchanges(fake_http, spec) == []
    _nothing_connected(tenant)


def test_a_token_endpoint_refusal_connects_nothing(
    spec: Spec,
    platform_fake: Any,
    fake_http: FakeServer,
    owner: User,
    tenant: Tenant,
) -> None:
    client = login(owner)
    callback = consent(start(client, spec, tenant, fake_http))
    fake_http.route(*spec.token, spec.refused)
    failed = client.get(callback)
    assert failed.status_code == 400
    assert (
        f"The platform refused the connection: {spec.refused_message}".encode()
        in failed.content
    )
    assert len(_exchanges(fake_http, spec)) == 1
    _nothing_connected(tenant)


def test_a_replayed_callback_does_not_exchange_the_code_again(
    platform_fake: Any,
    spec: Spec,
    fake_http: FakeServer,
    owner: User,
    tenant: Tenant,
) -> None:
    client = login(owner)
    callback = consent(start(client, spec, tenant, fake_http))
    assert client.get(callback).status_code == 302
    again = client.get(callback)
    assert again.status_code == 400
    assert len(_exchanges(fake_http, spec)) == 1
    assert len(connected(tenant)) == 1


def test_agents_cannot_start_a_connection(
    agent: User, tenant: Tenant, fake_http: FakeServer
) -> None:
    FakeX(fake_http).install()
    client = login(agent)
    with override_settings(SOCIAL_APPS=apps_with(x=_x_app(fake_http))):
        response = client.get(
            f"/t/acme-air/social/connect/x/?brand={brand_of(tenant).pk}"
        )
    assert response.status_code == 403
    assert "earshot_connect" not in client.session
    assert fake_http.requests == []


def test_a_platform_without_an_app_here_is_not_offered(
    owner: User, tenant: Tenant
) -> None:
    client = login(owner)
    brand = brand_of(tenant).pk
    for platform in ("x", "bluesky", "mastodon", "nowhere"):
        response = client.get(f"/t/acme-air/social/connect/{platform}/?brand={brand}")
        assert response.status_code == 404, platform
    assert "earshot_connect" not in client.session
