"""Connecting a Bluesky account with its handle and an app password: Earshot opens a
session (`com.atproto.server.createSession`) at the fake PDS, stores the access and
refresh JWTs encrypted and routes the account. Refused credentials are a field
error and connect nothing."""

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from django.test import Client, override_settings

from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import Tenant, User
from tests.conftest import login
from tests.social.connecting import (
    apps_with,
    audit_actions,
    brand_of,
    connected,
    raw_credentials,
    routes,
)
from tests.social.fakes_bluesky import (
    ACCESS_JWT,
    APP_PASSWORD,
    BRAND_DID,
    HANDLE,
    REFRESH_JWT,
    FakeBluesky,
)
from tests.social.fakeserver import FakeServer

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def bluesky(fake_http: FakeServer) -> Iterator[FakeBluesky]:
    apps = apps_with(bluesky={"base_url": fake_http.base_url})
    with override_settings(SOCIAL_APPS=apps):
        yield FakeBluesky(fake_http)


def submit(client: Client, tenant: Tenant, handle: str, password: str) -> Any:
    return client.post(
        "/connect/acme-air/bluesky/",
        {
            "bluesky-brand": brand_of(tenant).pk,
            "bluesky-handle": handle,
            "bluesky-app_password": password,
        },
        follow=True,
    )


def sessions(server: FakeServer) -> list[dict[str, str]]:
    return [
        r.json()
        for r in server.requests
        if r.path == "/xrpc/com.atproto.server.createSession"
    ]


def nothing_connected(tenant: Tenant) -> None:
    with tenant_context(tenant):
        assert SocialAccount.objects.count() == 0
    assert [route for route in routes() if route[2] == tenant.pk] == []
    assert audit_actions(tenant) == []


def test_connects_with_an_app_password(
    bluesky: FakeBluesky, fake_http: FakeServer, owner: User, tenant: Tenant
) -> None:
    response = submit(login(owner), tenant, f"@{HANDLE}", APP_PASSWORD)
    assert response.redirect_chain == [("/t/acme-air/settings/accounts/", 302)]
    assert f"Connected @{HANDLE} to Acme Air.".encode() in response.content
    assert sessions(fake_http) == [{"identifier": HANDLE, "password": APP_PASSWORD}]
    assert connected(tenant) == [
        {
            "platform": "bluesky",
            "external_id": BRAND_DID,
            "handle": HANDLE,
            "status": "connected",
            "base_url": fake_http.base_url,
            "credentials": {
                "access_token": ACCESS_JWT,
                "refresh_token": REFRESH_JWT,
                "expires_at": "2026-01-02T05:04:05+00:00",
            },
            # The access JWT's exp claim, for the scheduled refresh.
            "token_expires_at": datetime(2026, 1, 2, 5, 4, 5, tzinfo=UTC),
        }
    ]
    [ciphertext] = raw_credentials(tenant)
    assert ACCESS_JWT not in ciphertext
    assert REFRESH_JWT not in ciphertext
    assert APP_PASSWORD not in ciphertext
    assert routes() == [("bluesky", BRAND_DID, tenant.pk)]
    assert audit_actions(tenant) == [
        ("account.connected", {"platform": "bluesky", "handle": HANDLE})
    ]


def test_a_wrong_app_password_is_a_field_error(
    bluesky: FakeBluesky, fake_http: FakeServer, owner: User, tenant: Tenant
) -> None:
    response = submit(login(owner), tenant, HANDLE, "wrong-pass-word-here")
    assert response.status_code == 400
    assert response.context["bluesky_form"].errors == {
        "app_password": [
            "Bluesky did not accept this handle and app password. Check both; use "
            "an app password (Settings → Privacy and security → App passwords), "
            "not your account password."
        ]
    }
    # The password is not echoed back into the page.
    assert b"wrong-pass-word-here" not in response.content
    assert len(sessions(fake_http)) == 1
    nothing_connected(tenant)


def test_bluesky_failing_is_a_form_error(
    bluesky: FakeBluesky, owner: User, tenant: Tenant
) -> None:
    bluesky.fail(502)
    response = submit(login(owner), tenant, HANDLE, APP_PASSWORD)
    assert response.status_code == 400
    assert response.context["bluesky_form"].errors == {
        "__all__": ["Could not sign in to Bluesky: Upstream Failure"]
    }
    nothing_connected(tenant)


def test_an_account_of_another_workspace_is_not_taken_over(
    bluesky: FakeBluesky,
    owner: User,
    tenant: Tenant,
    outsider: User,
    other_tenant: Tenant,
) -> None:
    first = login(outsider).post(
        "/connect/globex/bluesky/",
        {
            "bluesky-brand": brand_of(other_tenant).pk,
            "bluesky-handle": HANDLE,
            "bluesky-app_password": APP_PASSWORD,
        },
    )
    assert first.status_code == 302
    response = submit(login(owner), tenant, HANDLE, APP_PASSWORD)
    assert response.status_code == 400
    assert response.context["bluesky_form"].errors == {
        "__all__": [f"@{HANDLE} is connected to another workspace already."]
    }
    nothing_connected(tenant)
    assert routes() == [("bluesky", BRAND_DID, other_tenant.pk)]


def test_agents_and_outsiders_cannot_connect(
    bluesky: FakeBluesky,
    fake_http: FakeServer,
    agent: User,
    outsider: User,
    tenant: Tenant,
    other_tenant: Tenant,
) -> None:
    assert submit(login(agent), tenant, HANDLE, APP_PASSWORD).status_code == 403
    assert submit(login(outsider), tenant, HANDLE, APP_PASSWORD).status_code == 404
    assert fake_http.requests == []
    nothing_connected(tenant)
