"""Scheduled token refresh: beat fans out per tenant, each tenant refreshes the
tokens that expire within ten minutes through their connectors (against the
platforms' fakes), a rejected refresh token turns the account needs_reauth (banner
and email to the admins), and a transient failure is retried by the next run."""

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.conf import settings
from django.core import mail
from django.core.cache import cache
from django.test import override_settings
from django.utils import timezone

from social.connectors.base import TokenSet
from social.models import SocialAccount
from social.services import connect_account
from social.tasks import refresh_account_token, refresh_all_tenants
from social.tokens import accounts_due_for_refresh
from tenants.context import tenant_context
from tenants.models import Tenant, User
from tests.conftest import login
from tests.factories import membership_of
from tests.social import fakes_bluesky, fakes_reddit, fakes_x
from tests.social.connecting import apps_with, brand_of, connected
from tests.social.fakes_bluesky import FakeBluesky
from tests.social.fakes_reddit import FakeReddit
from tests.social.fakes_x import FakeX
from tests.social.fakeserver import FakeServer

pytestmark = pytest.mark.django_db(transaction=True)

SOON = timedelta(minutes=5)


@pytest.fixture
def fakes(fake_http: FakeServer) -> Iterator[dict[str, Any]]:
    """X, Reddit and Bluesky on one fake server (their paths do not overlap)."""
    found = {
        "x": FakeX(fake_http).install(),
        "reddit": FakeReddit(fake_http),
        "bluesky": FakeBluesky(fake_http),
    }
    apps = apps_with(
        x={
            "client_id": fakes_x.CLIENT_ID,
            "client_secret": fakes_x.CLIENT_SECRET,
            "base_url": fake_http.base_url,
        },
        reddit={
            "client_id": fakes_reddit.CLIENT_ID,
            "client_secret": fakes_reddit.CLIENT_SECRET,
            "base_url": fake_http.base_url,
        },
        bluesky={"base_url": fake_http.base_url},
    )
    with override_settings(SOCIAL_APPS=apps):
        yield found


TOKENS = {
    "x": TokenSet(
        access_token="x-access-1",
        refresh_token="x-refresh-1",
        account_external_id=fakes_x.ACCOUNT_ID,
        handle="acmeair",
        extra={"scope": fakes_x.SCOPE},
    ),
    "reddit": TokenSet(
        access_token=fakes_reddit.ACCESS_TOKEN,
        refresh_token=fakes_reddit.REFRESH_TOKEN,
        account_external_id=fakes_reddit.ACCOUNT_ID,
        handle=fakes_reddit.HANDLE,
        extra={"scope": fakes_reddit.SCOPE},
    ),
    "bluesky": TokenSet(
        access_token=fakes_bluesky.ACCESS_JWT,
        refresh_token=fakes_bluesky.REFRESH_JWT,
        account_external_id=fakes_bluesky.BRAND_DID,
        handle=fakes_bluesky.HANDLE,
    ),
}


def connect(
    tenant: Tenant,
    user: User,
    platform: str,
    *,
    expires: datetime | None,
    base_url: str,
    tokens: TokenSet | None = None,
) -> SocialAccount:
    chosen = tokens or TOKENS[platform]
    with tenant_context(tenant):
        return connect_account(
            membership_of(tenant, user),
            brand=brand_of(tenant),
            platform=platform,
            tokens=TokenSet(
                access_token=chosen.access_token,
                refresh_token=chosen.refresh_token,
                expires_at=expires,
                account_external_id=chosen.account_external_id,
                handle=chosen.handle,
                extra=chosen.extra,
            ),
            base_url=base_url,
        )


def state(tenant: Tenant, platform: str) -> dict[str, Any]:
    return next(a for a in connected(tenant) if a["platform"] == platform)


def test_the_beat_entry_fans_out_to_the_refresh_tasks() -> None:
    from helpdesk.celery import app

    assert settings.CELERY_BEAT_SCHEDULE["refresh-tokens"] == {
        "task": "social.refresh_all_tenants",
        "schedule": 300.0,
    }
    assert {
        "social.refresh_all_tenants",
        "social.refresh_due_tokens",
        "social.refresh_account_token",
    } <= set(app.tasks)


def test_only_connected_tokens_expiring_soon_are_due(
    owner: User, tenant: Tenant
) -> None:
    now = timezone.now()
    soon = connect(tenant, owner, "x", expires=now + SOON, base_url="")
    expired = connect(
        tenant,
        owner,
        "reddit",
        expires=now - timedelta(hours=1),
        base_url="",
    )
    connect(tenant, owner, "bluesky", expires=now + timedelta(hours=1), base_url="")
    never = connect(
        tenant,
        owner,
        "sandbox",
        expires=None,
        base_url="",
        tokens=TokenSet(access_token="t", account_external_id="1", handle="s"),
    )
    with tenant_context(tenant):
        SocialAccount.objects.filter(pk=never.pk).update(token_expires_at=now)
        SocialAccount.objects.filter(pk=never.pk).update(status="needs_reauth")
        assert accounts_due_for_refresh(now=now) == [expired.pk, soon.pk]


def test_refreshes_each_tenants_expiring_tokens_through_the_connectors(
    fakes: dict[str, Any],
    fake_http: FakeServer,
    owner: User,
    tenant: Tenant,
    outsider: User,
    other_tenant: Tenant,
) -> None:
    base = fake_http.base_url
    soon = timezone.now() + SOON
    connect(tenant, owner, "x", expires=soon, base_url=base)
    connect(tenant, owner, "reddit", expires=soon, base_url=base)
    connect(other_tenant, outsider, "bluesky", expires=soon, base_url=base)
    before = timezone.now()
    assert refresh_all_tenants.delay().get() == 2
    x, reddit = state(tenant, "x"), state(tenant, "reddit")
    assert x["credentials"] == {
        "access_token": "x-access-2",
        "refresh_token": "x-refresh-2",
        "expires_at": x["token_expires_at"].isoformat(),
        "scope": fakes_x.SCOPE,
    }
    assert before + timedelta(seconds=7200) <= x["token_expires_at"]
    assert x["token_expires_at"] <= timezone.now() + timedelta(seconds=7200)
    assert reddit["credentials"] == {
        "access_token": fakes_reddit.REFRESHED_TOKEN,
        "refresh_token": fakes_reddit.REFRESH_TOKEN,
        "expires_at": reddit["token_expires_at"].isoformat(),
        "scope": fakes_reddit.SCOPE,
    }
    refreshed = fakes_bluesky.REFRESHED
    bluesky = state(other_tenant, "bluesky")
    assert bluesky["credentials"]["access_token"] == refreshed["accessJwt"]
    assert bluesky["credentials"]["refresh_token"] == refreshed["refreshJwt"]
    assert (
        bluesky["token_expires_at"].isoformat()
        == (bluesky["credentials"]["expires_at"])
    )
    x_form = next(r.form() for r in fake_http.requests if r.path == "/2/oauth2/token")
    assert x_form == {
        "grant_type": "refresh_token",
        "refresh_token": "x-refresh-1",
        "client_id": fakes_x.CLIENT_ID,
    }
    [bluesky_call] = [
        r
        for r in fake_http.requests
        if r.path == "/xrpc/com.atproto.server.refreshSession"
    ]
    assert bluesky_call.headers["authorization"] == (
        f"Bearer {fakes_bluesky.REFRESH_JWT}"
    )
    # The new X and Reddit tokens are not due: the next run leaves them alone. (The
    # Bluesky fixture's JWTs expired in January 2026, so that account stays due.)
    oauth = {"/2/oauth2/token", "/api/v1/access_token"}

    def token_calls() -> int:
        return sum(r.path in oauth for r in fake_http.requests)

    calls = token_calls()
    refresh_all_tenants.delay().get()
    assert token_calls() == calls == 2


def _reject_refresh(platform: str, fakes: dict[str, Any]) -> str:
    """Make the platform refuse the stored refresh token; the error it gives."""
    if platform == "x":
        fakes["x"].refresh_token = "x-refresh-rotated-elsewhere"
        return (
            "X refused to refresh the token (Value passed for the token was "
            "invalid.); connect the account again."
        )
    if platform == "reddit":
        fakes["reddit"].refresh_token = "revoked"
        return "Reddit refused the grant: invalid_grant"
    fakes["bluesky"].expire_refresh()
    return "Token has expired"


@pytest.mark.parametrize("platform", ["x", "reddit", "bluesky"])
def test_a_rejected_refresh_token_needs_reauthorization(
    platform: str,
    fakes: dict[str, Any],
    fake_http: FakeServer,
    owner: User,
    admin: User,
    agent: User,
    tenant: Tenant,
) -> None:
    account = connect(
        tenant,
        owner,
        platform,
        expires=timezone.now() + SOON,
        base_url=fake_http.base_url,
    )
    before = state(tenant, platform)
    said = _reject_refresh(platform, fakes)
    mail.outbox.clear()
    assert refresh_account_token.delay(tenant.pk, account.pk).get() == "needs_reauth"
    after = state(tenant, platform)
    assert after["status"] == "needs_reauth"
    assert after["credentials"] == before["credentials"]
    with tenant_context(tenant):
        fresh = SocialAccount.objects.get(pk=account.pk)
    assert fresh.last_error == f"Refreshing the access token failed: {said}"
    label = fresh.get_platform_display()
    [email] = mail.outbox
    assert email.subject == f"Reconnect @{fresh.handle} on {label}"
    assert sorted(email.to) == ["ada@acme.example", "olivia@acme.example"]
    page = login(agent).get("/t/acme-air/")
    assert f"@{fresh.handle} on {label} needs to be reconnected".encode() in (
        page.content
    )
    # Flagged accounts are not due any more.
    with tenant_context(tenant):
        assert accounts_due_for_refresh() == []


def test_a_transient_failure_is_recorded_and_retried_later(
    fakes: dict[str, Any], fake_http: FakeServer, owner: User, tenant: Tenant
) -> None:
    account = connect(
        tenant, owner, "x", expires=timezone.now() + SOON, base_url=fake_http.base_url
    )
    before = state(tenant, "x")
    fakes["x"].fail_next("POST", "/2/oauth2/token", fakes_x.server_error())
    mail.outbox.clear()
    assert refresh_account_token.delay(tenant.pk, account.pk).get() == "failed"
    after = state(tenant, "x")
    assert (after["status"], after["credentials"]) == (
        "connected",
        before["credentials"],
    )
    with tenant_context(tenant):
        fresh = SocialAccount.objects.get(pk=account.pk)
        assert accounts_due_for_refresh() == [account.pk]
    assert fresh.last_error == (
        "Refreshing the access token failed: Service Unavailable (will retry)"
    )
    assert mail.outbox == []
    assert refresh_account_token.delay(tenant.pk, account.pk).get() == "refreshed"
    assert state(tenant, "x")["credentials"]["access_token"] == "x-access-2"
    with tenant_context(tenant):
        assert SocialAccount.objects.get(pk=account.pk).last_error == ""


def test_a_refresh_already_running_is_not_started_twice(
    fakes: dict[str, Any], fake_http: FakeServer, owner: User, tenant: Tenant
) -> None:
    account = connect(
        tenant, owner, "x", expires=timezone.now() + SOON, base_url=fake_http.base_url
    )
    lock = f"social:refresh-token:{tenant.pk}:{account.pk}"
    cache.add(lock, 1, timeout=60)
    try:
        assert refresh_account_token.delay(tenant.pk, account.pk).get() == "skipped"
    finally:
        cache.delete(lock)
    assert fake_http.requests == []
