"""Disconnecting an account from the accounts page: the token is revoked at the
platform where it can be (each platform's fake checks the exact request), the
account's routes and credentials go, the account row and its conversations stay,
and the outcome is audited. A platform that refuses or fails does not block the
local disconnect; it is recorded."""

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest
from django.test import override_settings

from helpdesk.models import Contact, Conversation
from social.connectors import register_connector, unregister_connector
from social.connectors.base import (
    AccountRef,
    AppSecrets,
    Connector,
    DeliveryResult,
    OutboundReply,
    TokenSet,
)
from social.crypto import encrypt_app_secret
from social.models import MastodonApp, SocialAccount, WebhookEvent
from social.services import Revocation, RevokeOutcome, connect_account, revoke_tokens
from tenants.context import tenant_context
from tenants.models import Tenant, User
from tests.conftest import login
from tests.factories import membership_of
from tests.social import (
    fakes_bluesky,
    fakes_mastodon,
    fakes_meta,
    fakes_reddit,
    fakes_x,
)
from tests.social.connecting import apps_with, audit_actions, brand_of, routes
from tests.social.fakes_bluesky import FakeBluesky
from tests.social.fakes_mastodon import LOOPBACK_INSTANCE, FakeMastodon
from tests.social.fakes_meta import FakeGraph
from tests.social.fakes_reddit import FakeReddit
from tests.social.fakes_x import FakeX
from tests.social.fakeserver import FakeServer
from tests.social.test_webhooks import deliver, post_event

pytestmark = pytest.mark.django_db(transaction=True)


@dataclass(frozen=True)
class Case:
    platform: str
    install: Callable[[FakeServer], Any]
    app: Callable[[FakeServer], dict[str, str]]
    tokens: TokenSet
    # The revoke requests the platform must receive: (method, path, check).
    expected: Callable[[FakeServer], list[tuple[str, str, dict[str, Any]]]]


def _basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def _sandbox(server: FakeServer) -> None:
    server.route("POST", "/sandbox/api/oauth/revoke", (200, {}, {"revoked": True}))


def _mastodon(server: FakeServer) -> FakeMastodon:
    fake = FakeMastodon(server)
    MastodonApp.objects.create(
        base_url=server.base_url,
        redirect_uri="http://testserver/social/callback/mastodon/",
        client_id=fake.client_id,
        client_secret=encrypt_app_secret(fake.client_secret),
        scopes="read",
    )
    return fake


MASTODON_APP = fakes_mastodon.load("app.json")

CASES = {
    "x": Case(
        "x",
        lambda server: FakeX(server).install(),
        lambda server: {
            "client_id": fakes_x.CLIENT_ID,
            "client_secret": fakes_x.CLIENT_SECRET,
            "base_url": server.base_url,
        },
        TokenSet(
            access_token="x-access-1",
            refresh_token="x-refresh-1",
            account_external_id=fakes_x.ACCOUNT_ID,
            handle=fakes_x.HANDLE,
        ),
        lambda server: [
            (
                "POST",
                "/2/oauth2/revoke",
                {
                    "authorization": _basic(fakes_x.CLIENT_ID, fakes_x.CLIENT_SECRET),
                    "form": {
                        "token": "x-refresh-1",
                        "token_type_hint": "refresh_token",
                        "client_id": fakes_x.CLIENT_ID,
                    },
                },
            ),
            (
                "POST",
                "/2/oauth2/revoke",
                {
                    "authorization": _basic(fakes_x.CLIENT_ID, fakes_x.CLIENT_SECRET),
                    "form": {
                        "token": "x-access-1",
                        "token_type_hint": "access_token",
                        "client_id": fakes_x.CLIENT_ID,
                    },
                },
            ),
        ],
    ),
    "reddit": Case(
        "reddit",
        FakeReddit,
        lambda server: {
            "client_id": fakes_reddit.CLIENT_ID,
            "client_secret": fakes_reddit.CLIENT_SECRET,
            "base_url": server.base_url,
        },
        TokenSet(
            access_token=fakes_reddit.ACCESS_TOKEN,
            refresh_token=fakes_reddit.REFRESH_TOKEN,
            account_external_id=fakes_reddit.ACCOUNT_ID,
            handle=fakes_reddit.HANDLE,
        ),
        lambda server: [
            (
                "POST",
                "/api/v1/revoke_token",
                {
                    "authorization": _basic(
                        fakes_reddit.CLIENT_ID, fakes_reddit.CLIENT_SECRET
                    ),
                    "form": {
                        "token": fakes_reddit.REFRESH_TOKEN,
                        "token_type_hint": "refresh_token",
                    },
                },
            )
        ],
    ),
    "mastodon": Case(
        "mastodon",
        _mastodon,
        lambda server: {},
        TokenSet(
            access_token=fakes_mastodon.ACCESS_TOKEN,
            account_external_id=fakes_mastodon.BRAND_ID,
            handle="brand",
        ),
        lambda server: [
            (
                "POST",
                "/oauth/revoke",
                {
                    "form": {
                        "client_id": MASTODON_APP["client_id"],
                        "client_secret": MASTODON_APP["client_secret"],
                        "token": fakes_mastodon.ACCESS_TOKEN,
                    }
                },
            )
        ],
    ),
    "facebook": Case(
        "facebook",
        lambda server: FakeGraph(server).install(),
        lambda server: {
            "client_id": fakes_meta.APP_ID,
            "client_secret": fakes_meta.APP_SECRET,
            "base_url": server.base_url,
        },
        TokenSet(
            access_token=fakes_meta.PAGE_TOKEN,
            account_external_id=fakes_meta.PAGE_ID,
            handle="acmeair",
            extra={"user_id": fakes_meta.USER_ID},
        ),
        lambda server: [
            (
                "DELETE",
                f"/v21.0/{fakes_meta.USER_ID}/permissions",
                {
                    "authorization": (
                        f"Bearer {fakes_meta.APP_ID}|{fakes_meta.APP_SECRET}"
                    )
                },
            )
        ],
    ),
    "bluesky": Case(
        "bluesky",
        FakeBluesky,
        lambda server: {"base_url": server.base_url},
        TokenSet(
            access_token=fakes_bluesky.ACCESS_JWT,
            refresh_token=fakes_bluesky.REFRESH_JWT,
            account_external_id=fakes_bluesky.BRAND_DID,
            handle=fakes_bluesky.HANDLE,
        ),
        lambda server: [
            (
                "POST",
                "/xrpc/com.atproto.server.deleteSession",
                {"authorization": f"Bearer {fakes_bluesky.REFRESH_JWT}"},
            )
        ],
    ),
    "sandbox": Case(
        "sandbox",
        _sandbox,
        lambda server: {
            "client_id": "earshot-test",
            "client_secret": "earshot-test-secret",
            "base_url": server.base_url + "/sandbox",
        },
        TokenSet(
            access_token="sb-access",
            refresh_token="sb-refresh",
            account_external_id="100",
            handle="acmeair",
        ),
        lambda server: [
            (
                "POST",
                "/sandbox/api/oauth/revoke",
                {
                    "form": {
                        "client_id": "earshot-test",
                        "client_secret": "earshot-test-secret",
                        "token": "sb-refresh",
                    }
                },
            )
        ],
    ),
}


def connect(
    tenant: Tenant, user: User, platform: str, tokens: TokenSet, base_url: str
) -> SocialAccount:
    with tenant_context(tenant):
        return connect_account(
            membership_of(tenant, user),
            brand=brand_of(tenant),
            platform=platform,
            tokens=tokens,
            base_url=base_url,
        )


def with_conversation(tenant: Tenant, account: SocialAccount) -> int:
    with tenant_context(tenant):
        contact = Contact.objects.create(display_name="Pat")
        return Conversation.objects.create(
            brand=account.brand,
            social_account=account,
            contact=contact,
            platform=account.platform,
            origin="mention",
        ).pk


def account_state(tenant: Tenant, account_id: int) -> tuple[str, str, Any, str]:
    with tenant_context(tenant):
        account = SocialAccount.objects.get(pk=account_id)
    return (
        account.status,
        account.credentials,
        account.token_expires_at,
        account.last_error,
    )


def revoke_requests(
    server: FakeServer, case: Case
) -> list[tuple[str, str, dict[str, Any]]]:
    paths = {(method, path) for method, path, _ in case.expected(server)}
    found = []
    for request in server.requests:
        if (request.method, request.path) not in paths:
            continue
        seen: dict[str, Any] = {}
        for key in case.expected(server)[0][2]:
            seen[key] = (
                request.form() if key == "form" else request.headers.get(key, "")
            )
        found.append((request.method, request.path, seen))
    return found


@pytest.fixture(params=sorted(CASES))
def case(request: pytest.FixtureRequest) -> Case:
    return CASES[request.param]


def test_disconnect_revokes_at_the_platform_and_keeps_conversations(
    case: Case, fake_http: FakeServer, owner: User, tenant: Tenant
) -> None:
    case.install(fake_http)
    app = case.app(fake_http)
    base_url = app.get("base_url") or fake_http.base_url
    with override_settings(
        SOCIAL_APPS=apps_with(**{case.platform: app}), **LOOPBACK_INSTANCE
    ):
        account = connect(tenant, owner, case.platform, case.tokens, base_url)
        conversation = with_conversation(tenant, account)
        response = login(owner).post(
            f"/connect/acme-air/accounts/{account.pk}/disconnect/", follow=True
        )
    assert response.redirect_chain == [("/t/acme-air/settings/accounts/", 302)]
    assert revoke_requests(fake_http, case) == case.expected(fake_http)
    assert account_state(tenant, account.pk) == ("disconnected", "", None, "")
    assert routes() == []
    with tenant_context(tenant):
        kept = Conversation.objects.get(pk=conversation)
    assert kept.social_account_id == account.pk
    assert audit_actions(tenant)[-1] == (
        "account.disconnected",
        {
            "platform": case.platform,
            "handle": case.tokens.handle,
            "revoke": "revoked",
            "revoke_detail": "",
        },
    )
    assert b"Disconnected @" in response.content
    assert b"revoked Earshot&#x27;s access." in response.content
    assert b'action="/connect/acme-air/accounts/' not in response.content


def test_a_failed_revoke_still_disconnects_and_is_recorded(
    fake_http: FakeServer, owner: User, tenant: Tenant
) -> None:
    x = FakeX(fake_http).install()
    x.fail_next("POST", "/2/oauth2/revoke", fakes_x.server_error())
    case = CASES["x"]
    with override_settings(SOCIAL_APPS=apps_with(x=case.app(fake_http))):
        account = connect(tenant, owner, "x", case.tokens, fake_http.base_url)
        response = login(owner).post(
            f"/connect/acme-air/accounts/{account.pk}/disconnect/", follow=True
        )
    assert response.status_code == 200
    assert account_state(tenant, account.pk) == (
        "disconnected",
        "",
        None,
        "Revoking the token at the platform failed: Service Unavailable",
    )
    assert routes() == []
    assert x.revoked == []
    assert audit_actions(tenant)[-1] == (
        "account.disconnected",
        {
            "platform": "x",
            "handle": "acmeair",
            "revoke": "failed",
            "revoke_detail": "Service Unavailable",
        },
    )
    assert b"X did not confirm revoking Earshot&#x27;s access" in response.content


def test_a_meta_grant_shared_with_another_account_is_kept(
    fake_http: FakeServer, owner: User, tenant: Tenant
) -> None:
    graph = FakeGraph(fake_http).install()
    app = CASES["facebook"].app(fake_http)
    page = CASES["facebook"].tokens
    instagram = TokenSet(
        access_token=fakes_meta.PAGE_TOKEN,
        account_external_id=fakes_meta.IG_ID,
        handle="acmeair.ig",
        extra={"user_id": fakes_meta.USER_ID, "page_id": fakes_meta.PAGE_ID},
    )
    client = login(owner)
    with override_settings(SOCIAL_APPS=apps_with(facebook=app, instagram=app)):
        facebook_account = connect(tenant, owner, "facebook", page, fake_http.base_url)
        ig_account = connect(tenant, owner, "instagram", instagram, fake_http.base_url)
        client.post(f"/connect/acme-air/accounts/{facebook_account.pk}/disconnect/")
        assert graph.revoked == []
        assert audit_actions(tenant)[-1][1]["revoke"] == "kept"
        assert routes() == [("instagram", fakes_meta.IG_ID, tenant.pk)]
        client.post(f"/connect/acme-air/accounts/{ig_account.pk}/disconnect/")
    assert graph.revoked == [fakes_meta.USER_ID]
    assert audit_actions(tenant)[-1][1]["revoke"] == "revoked"
    assert routes() == []


def test_webhooks_for_a_disconnected_account_are_unroutable_and_it_can_reconnect(
    fake_http: FakeServer, owner: User, tenant: Tenant
) -> None:
    _sandbox(fake_http)
    app = CASES["sandbox"].app(fake_http)
    with override_settings(SOCIAL_APPS=apps_with(sandbox=app)):
        account = connect(
            tenant, owner, "sandbox", CASES["sandbox"].tokens, app["base_url"]
        )
        login(owner).post(f"/connect/acme-air/accounts/{account.pk}/disconnect/")
    assert account_state(tenant, account.pk)[0] == "disconnected"
    assert deliver(post_event("100")).status_code == 200
    assert WebhookEvent.objects.get().status == "unroutable"
    again = connect(tenant, owner, "sandbox", CASES["sandbox"].tokens, "")
    assert again.pk == account.pk
    assert account_state(tenant, account.pk)[0] == "connected"
    assert routes() == [("sandbox", "100", tenant.pk)]


def test_disconnecting_twice_does_nothing_more(
    fake_http: FakeServer, owner: User, tenant: Tenant
) -> None:
    _sandbox(fake_http)
    app = CASES["sandbox"].app(fake_http)
    client = login(owner)
    with override_settings(SOCIAL_APPS=apps_with(sandbox=app)):
        account = connect(
            tenant, owner, "sandbox", CASES["sandbox"].tokens, app["base_url"]
        )
        url = f"/connect/acme-air/accounts/{account.pk}/disconnect/"
        client.post(url)
        second = client.post(url)
    assert second.status_code == 302
    assert len(fake_http.requests) == 1
    assert [action for action, _ in audit_actions(tenant)] == [
        "account.connected",
        "account.disconnected",
    ]


def test_agents_and_outsiders_cannot_disconnect(
    fake_http: FakeServer,
    owner: User,
    agent: User,
    outsider: User,
    tenant: Tenant,
    other_tenant: Tenant,
) -> None:
    _sandbox(fake_http)
    app = CASES["sandbox"].app(fake_http)
    with override_settings(SOCIAL_APPS=apps_with(sandbox=app)):
        account = connect(
            tenant, owner, "sandbox", CASES["sandbox"].tokens, app["base_url"]
        )
        before = account_state(tenant, account.pk)
        url = f"/connect/acme-air/accounts/{account.pk}/disconnect/"
        assert login(agent).post(url).status_code == 403
        assert login(outsider).post(url).status_code == 404
        foreign = f"/connect/globex/accounts/{account.pk}/disconnect/"
        assert login(outsider).post(foreign).status_code == 404
        assert login(agent).get(url).status_code == 405
    assert account_state(tenant, account.pk) == before
    assert routes() == [("sandbox", "100", tenant.pk)]
    assert fake_http.requests == []
    assert [action for action, _ in audit_actions(tenant)] == ["account.connected"]


class _NoRevoke(Connector):
    platform: ClassVar[str] = "reviews"

    def send(self, account: AccountRef, reply: OutboundReply) -> DeliveryResult:
        raise NotImplementedError

    def find_delivery(
        self, account: AccountRef, reply: OutboundReply
    ) -> DeliveryResult | None:
        raise NotImplementedError


def test_a_platform_without_revocation_is_reported_as_such() -> None:
    register_connector(_NoRevoke)
    try:
        outcome = revoke_tokens(
            Revocation(
                platform="reviews",
                app=AppSecrets(),
                account=AccountRef("reviews", "1", "acme", {"access_token": "t"}),
            )
        )
    finally:
        unregister_connector("reviews")
    assert outcome == RevokeOutcome(
        "unsupported", "The platform offers no token revocation."
    )
