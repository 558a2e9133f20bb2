"""A platform answering 429 and 5xx (issue 13, fault 1), piece by piece: the
Sandbox's outage switch, Retry-After in both forms, the account's pause and its
degraded state, and polling that backs off then catches up from its cursor."""

import io
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from django.utils.http import http_date

from social import health, sending
from social import http as social_http
from social.connectors.base import ConnectorError, TokenSet
from social.models import SocialAccount
from social.sandbox import network, outage
from social.sandbox.models import App, Outage, OutageHit, Person
from social.services import connect_account
from social.tasks import poll_account
from tenants.context import tenant_context
from tenants.models import Tenant, User
from tests.conftest import login
from tests.factories import membership_of
from tests.social.connecting import brand_of
from tests.social.test_sandbox import connect_through_oauth, live  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _no_outage() -> Iterator[None]:
    outage._forget()
    yield
    outage._forget()


@pytest.fixture
def social_account(owner: User, tenant: Tenant) -> SocialAccount:
    with tenant_context(tenant):
        return connect_account(
            membership_of(tenant, owner),
            brand=brand_of(tenant),
            platform="sandbox",
            tokens=TokenSet(access_token="t", account_external_id="1", handle="acme"),
        )


def test_retry_after_is_read_as_seconds_or_as_an_http_date() -> None:
    now = 1_800_000_000.0
    assert social_http.parse_retry_after("120", now=now) == 120.0
    assert social_http.parse_retry_after(" 7 ", now=now) == 7.0
    assert social_http.parse_retry_after(http_date(now + 45), now=now) == 45.0
    assert social_http.parse_retry_after(http_date(now - 45), now=now) == 0.0
    assert social_http.parse_retry_after("Sun, 06 Dec 2026 nonsense", now=now) is None
    assert social_http.parse_retry_after("-3", now=now) is None
    assert social_http.parse_retry_after("", now=now) is None
    assert social_http.parse_retry_after(None, now=now) is None


def test_a_503_with_a_dated_retry_after_becomes_the_errors_wait() -> None:
    later = http_date(time.time() + 90)

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, headers={"Retry-After": later}, json={"error": "x"})

    social_http.install_client(httpx.Client(transport=httpx.MockTransport(answer)))
    with pytest.raises(ConnectorError) as failed:
        social_http.request("GET", "https://platform.example/api")
    assert (failed.value.status, failed.value.permanent) == (503, False)
    assert failed.value.retry_after is not None
    assert 85 <= failed.value.retry_after <= 90
    assert sending.platform_trouble(failed.value)


def test_only_429_and_5xx_answers_are_platform_trouble() -> None:
    assert sending.platform_trouble(ConnectorError("slow", status=429))
    assert sending.platform_trouble(ConnectorError("down", status=502))
    assert not sending.platform_trouble(ConnectorError("gone", status=404))
    assert not sending.platform_trouble(ConnectorError("connection reset"))


def test_backoff_doubles_with_jitter_up_to_its_cap() -> None:
    for failures, base in [(1, 2.0), (2, 4.0), (3, 8.0), (4, 16.0), (9, 30.0)]:
        waits = [sending.backoff(failures) for _ in range(50)]
        assert all(0.8 * base <= wait <= 1.2 * base for wait in waits)
        assert len(set(waits)) > 1


def test_an_accounts_pause_follows_retry_after_then_backoff_and_ends_on_success(
    social_account: SocialAccount,
) -> None:
    account_id = social_account.pk
    assert sending.pauses([account_id]) == {}
    assert sending.pause(account_id, ConnectorError("slow", retry_after=20)) == (
        pytest.approx(20, abs=0.5)
    )
    assert 19 < sending.pauses([account_id])[account_id] <= 20
    # A shorter wait never cuts a running pause short.
    assert sending.pause(account_id, ConnectorError("down", status=500)) > 19
    sending.resume([account_id])
    assert sending.pauses([account_id]) == {}
    first = sending.pause(account_id, ConnectorError("down", status=500))
    assert 1.6 <= first <= 2.4


def test_degraded_is_set_once_and_cleared_by_the_first_success(
    tenant: Tenant, social_account: SocialAccount
) -> None:
    later = timezone.now() + timedelta(minutes=10)
    with tenant_context(tenant):
        SocialAccount.objects.filter(pk=social_account.pk).update(next_poll_at=later)
        assert health.mark_degraded([social_account.pk], error="429: slow") == [
            social_account.pk
        ]
        since = SocialAccount.objects.get(pk=social_account.pk).degraded_since
        assert since is not None
        assert health.mark_degraded([social_account.pk], error="502: again") == []
        marked = SocialAccount.objects.get(pk=social_account.pk)
        assert (marked.degraded_since, marked.last_error) == (since, "429: slow")
        assert marked.degraded

        assert health.mark_healthy([social_account.pk]) == [social_account.pk]
        cleared = SocialAccount.objects.get(pk=social_account.pk)
        assert (cleared.degraded_since, cleared.last_error) == (None, "")
        assert cleared.next_poll_at is not None
        assert cleared.next_poll_at <= timezone.now()
        assert health.mark_healthy([social_account.pk]) == []


def test_the_accounts_page_the_banner_and_the_api_show_degraded(
    tenant: Tenant, owner: User, agent: User, social_account: SocialAccount
) -> None:
    with tenant_context(tenant):
        health.mark_degraded([social_account.pk], error="The platform answered 429")
    page = login(owner).get("/t/acme-air/settings/accounts/").content.decode()
    assert "Degraded since" in page
    inbox = login(agent).get("/t/acme-air/").content.decode()
    assert 'id="degraded-accounts"' in inbox
    assert f"@{social_account.handle} on Sandbox" in inbox
    rows = login(agent).get("/api/v1/t/acme-air/accounts/").json()
    [row] = [row for row in rows if row["id"] == social_account.pk]
    assert row["degraded"] is True
    assert row["degraded_since"] is not None

    with tenant_context(tenant):
        health.mark_healthy([social_account.pk])
    assert (
        'id="degraded-accounts"'
        not in login(agent).get("/t/acme-air/").content.decode()
    )
    page = login(owner).get("/t/acme-air/settings/accounts/").content.decode()
    assert "Degraded since" not in page


def test_the_mixed_refusals_are_429_dated_503_and_plain_5xx() -> None:
    running = Outage(mode=Outage.Mode.MIXED, retry_after=20, until=timezone.now())
    assert outage.refusal(running, roll=0.1) == (429, "20")
    status, dated = outage.refusal(running, roll=0.6)
    assert status == 503
    assert dated is not None
    assert 19.9 <= (social_http.parse_retry_after(dated) or 0) <= 21
    assert outage.refusal(running, roll=0.8) == (500, None)
    assert outage.refusal(running, roll=0.9) == (502, None)
    only_5xx = Outage(mode=Outage.Mode.SERVER_ERROR, until=timezone.now())
    assert outage.refusal(only_5xx, roll=0.1) == (500, None)
    assert outage.refusal(only_5xx, roll=0.7) == (502, None)
    only_429 = Outage(
        mode=Outage.Mode.RATE_LIMITED, retry_after=7, until=timezone.now()
    )
    assert outage.refusal(only_429, roll=0.99) == (429, "7")


def test_the_switch_refuses_every_api_call_until_it_ends(
    owner: User,
    tenant: Tenant,
    live: str,  # noqa: F811
) -> None:
    account = connect_through_oauth(owner, tenant, live)
    App.objects.update(webhook_url="")  # polling only: nothing else records posts
    jo = Person.objects.create(handle="jo", name="Jo")
    network.create_post(jo, "@acmeair before the outage")
    assert poll_account.run(tenant.pk, account.pk) == 1

    out = io.StringIO()
    call_command(
        "sandbox_outage",
        "--mode",
        "429",
        "--seconds",
        "60",
        "--retry-after",
        "20",
        stdout=out,
    )
    assert "429 Too Many Requests" in out.getvalue()
    outage._forget()  # the live server's thread reads the switch afresh
    during = [network.create_post(jo, f"@acmeair during {n}")[0].pk for n in range(3)]
    assert poll_account.run(tenant.pk, account.pk) == 0
    with tenant_context(tenant):
        polled = SocialAccount.objects.get(pk=account.pk)
    assert polled.degraded
    assert polled.next_poll_at is not None
    assert polled.next_poll_at >= timezone.now() + timedelta(seconds=18)
    [hit] = OutageHit.objects.all()
    assert (hit.status, hit.retry_after, hit.path) == (
        429,
        20.0,
        "/sandbox/api/mentions",
    )
    assert hit.grant_id is not None
    # While paused, the account is not polled at all.
    assert poll_account.run(tenant.pk, account.pk) == 0
    assert OutageHit.objects.count() == 1

    call_command("sandbox_outage", "--off", stdout=io.StringIO())
    outage._forget()
    sending.resume([account.pk])  # as if its pause had run out
    assert poll_account.run(tenant.pk, account.pk) == 3
    assert poll_account.run(tenant.pk, account.pk) == 0
    with tenant_context(tenant):
        caught_up = SocialAccount.objects.get(pk=account.pk)
    assert caught_up.poll_cursor == str(max(during))
    assert (caught_up.degraded, caught_up.poll_failures) == (False, 0)


def test_the_switch_refuses_unknown_modes_and_bad_durations() -> None:
    with pytest.raises(CommandError):
        call_command("sandbox_outage", "--seconds", "0", stdout=io.StringIO())
    with pytest.raises(ValueError, match="unknown outage mode"):
        outage.start_outage(mode="418", seconds=10)
    assert not Outage.objects.exists()
    assert outage.end_outage() is False


def test_a_5xx_outage_answers_without_retry_after(live: str) -> None:  # noqa: F811
    outage.start_outage(mode=Outage.Mode.SERVER_ERROR, seconds=30)
    outage._forget()
    answer: Any = social_http.client().get(f"{live}/sandbox/api/me")
    assert answer.status_code in (500, 502)
    assert "retry-after" not in answer.headers
    assert OutageHit.objects.get().grant_id is None
    assert outage.end_outage() is True
    outage._forget()
    assert social_http.client().get(f"{live}/sandbox/api/me").status_code == 401
