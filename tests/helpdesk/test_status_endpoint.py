"""The public status endpoint (R8): `GET /status/<tenant_slug>/<brand_slug>.json`.

Public by design (tests/test_tenant_isolation.py lists it in PUBLIC_ROUTES instead
of the IDOR matrix): anyone may read it, so these tests prove exactly what it
shows, that an unknown, deleted or suspended workspace and another workspace's brand
look the same (404), and that it is cached and rate-limited.
"""

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from helpdesk import status_views
from helpdesk.models import Contact, Conversation
from helpdesk.status import typical_reply_minutes
from tenants.context import tenant_context
from tenants.models import Brand, Tenant, User
from tests.conftest import login

pytestmark = pytest.mark.django_db

MONDAY_EVENING = datetime(2026, 11, 23, 20, 0, tzinfo=UTC)
WEEKDAY = [["09:00", "17:00"]]
DEFAULT_HOURS = {
    "mon": WEEKDAY,
    "tue": WEEKDAY,
    "wed": WEEKDAY,
    "thu": WEEKDAY,
    "fri": WEEKDAY,
    "sat": [],
    "sun": [],
}
NOT_FOUND = {"error": "not_found"}

Clock = Callable[[datetime], None]


@pytest.fixture(autouse=True)
def _private_cache(settings: Any) -> None:
    """A cache of this test's own: the suite's Redis database is shared by every test
    run on the machine, and another run's clear() or answers must not reach these."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": f"status-{uuid.uuid4()}",
        }
    }


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    def set_now(moment: datetime) -> None:
        monkeypatch.setattr(timezone, "now", lambda: moment)

    return set_now


def status_of(client: Client, tenant_slug: str, brand_slug: str) -> Any:
    return client.get(f"/status/{tenant_slug}/{brand_slug}.json")


def answered(
    brand: Brand, *, waited: timedelta, answered_at: datetime | None
) -> Conversation:
    """A conversation of `brand` whose first response came `waited` after the
    customer's first message (None: not answered yet)."""
    asked_at = (answered_at or MONDAY_EVENING) - waited
    return Conversation.objects.create(
        brand=brand,
        contact=Contact.objects.create(display_name="Customer"),
        platform="sandbox",
        origin="mention",
        first_customer_message_at=asked_at,
        first_response_at=answered_at,
    )


def test_an_offline_brand_shows_when_it_is_back(tenant: Tenant, clock: Clock) -> None:
    clock(MONDAY_EVENING)
    response = status_of(Client(), "acme-air", "acme-air")
    assert response.status_code == 200
    assert response.json() == {
        "brand": "Acme Air",
        "online": False,
        "next_change": "2026-11-24T09:00:00+00:00",
        "timezone": "UTC",
        "typically_replies_in_minutes": None,
        "hours": DEFAULT_HOURS,
    }
    assert response["Access-Control-Allow-Origin"] == "*"
    assert response["Cache-Control"] == "public, max-age=30"
    assert "Set-Cookie" not in response


def test_an_online_brand_is_read_in_its_time_zone(tenant: Tenant, clock: Clock) -> None:
    with tenant_context(tenant):
        Brand.objects.update(
            timezone="Europe/Berlin", business_hours={"mon": [["08:00", "12:30"]]}
        )
    clock(datetime(2026, 11, 23, 10, 0, tzinfo=UTC))  # 11:00 in Berlin
    response = status_of(Client(), "acme-air", "acme-air")
    assert response.json() == {
        "brand": "Acme Air",
        "online": True,
        "next_change": "2026-11-23T12:30:00+01:00",
        "timezone": "Europe/Berlin",
        "typically_replies_in_minutes": None,
        "hours": {
            "mon": [["08:00", "12:30"]],
            "tue": [],
            "wed": [],
            "thu": [],
            "fri": [],
            "sat": [],
            "sun": [],
        },
    }


def test_typically_replies_in_is_the_median_first_response_of_seven_days(
    tenant: Tenant, clock: Clock
) -> None:
    recent = MONDAY_EVENING - timedelta(hours=3)
    with tenant_context(tenant):
        brand = Brand.objects.get()
        for minutes in (4, 10, 31.5):
            answered(brand, waited=timedelta(minutes=minutes), answered_at=recent)
        # Left out: answered eight days ago, not answered (an automatic reply does
        # not stop the clock), and another brand's conversation.
        answered(
            brand,
            waited=timedelta(minutes=1),
            answered_at=MONDAY_EVENING - timedelta(days=8),
        )
        answered(brand, waited=timedelta(minutes=1), answered_at=None)
        cargo = Brand.objects.create(name="Acme Cargo", slug="acme-cargo")
        answered(cargo, waited=timedelta(minutes=1), answered_at=recent)
    clock(MONDAY_EVENING)
    response = status_of(Client(), "acme-air", "acme-air")
    assert response.json()["typically_replies_in_minutes"] == 10
    assert (
        status_of(Client(), "acme-air", "acme-cargo").json()[
            "typically_replies_in_minutes"
        ]
        == 1
    )


def test_the_typical_reply_time_is_one_aggregate_rounded_up_to_minutes(
    tenant: Tenant, django_assert_num_queries: Any
) -> None:
    with tenant_context(tenant):
        brand = Brand.objects.get()
        for seconds in (240, 600, 750, 1890):
            answered(
                brand, waited=timedelta(seconds=seconds), answered_at=MONDAY_EVENING
            )
        with django_assert_num_queries(1):
            minutes = typical_reply_minutes(brand, at=MONDAY_EVENING)
        # Median of 4:00, 10:00, 12:30 and 31:30 is 11:15, shown as 12 minutes.
        assert minutes == 12
        assert (
            typical_reply_minutes(brand, at=MONDAY_EVENING + timedelta(days=8)) is None
        )


def test_unknown_deleted_suspended_and_foreign_brands_look_the_same(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    client = Client()
    bodies = [
        status_of(client, "no-such-workspace", "acme-air"),
        status_of(client, "acme-air", "no-such-brand"),
        # Globex's brand under Acme's slug.
        status_of(client, "acme-air", "globex"),
    ]
    Tenant.objects.filter(pk=other_tenant.pk).update(status=Tenant.Status.SUSPENDED)
    bodies.append(status_of(client, "globex", "globex"))
    Tenant.objects.filter(pk=tenant.pk).update(status=Tenant.Status.DELETED)
    bodies.append(status_of(client, "acme-air", "acme-air"))
    for response in bodies:
        assert response.status_code == 404
        assert response.json() == NOT_FOUND
        assert response["Access-Control-Allow-Origin"] == "*"
    assert len({response.content for response in bodies}) == 1


def test_no_login_needed_and_members_see_no_more_than_strangers(
    tenant: Tenant, owner: User, outsider: User, clock: Clock
) -> None:
    clock(MONDAY_EVENING)
    with tenant_context(tenant):
        Brand.objects.update(signature_rules={"default": " ^{initials}"})
    anonymous = status_of(Client(), "acme-air", "acme-air")
    stranger = status_of(login(outsider), "acme-air", "acme-air")
    member = status_of(login(owner), "acme-air", "acme-air")
    assert anonymous.status_code == stranger.status_code == member.status_code == 200
    assert anonymous.content == stranger.content == member.content
    assert set(anonymous.json()) == {
        "brand",
        "online",
        "next_change",
        "timezone",
        "typically_replies_in_minutes",
        "hours",
    }
    assert b"initials" not in anonymous.content


def test_answers_are_cached_for_thirty_seconds(
    tenant: Tenant, clock: Clock, django_assert_num_queries: Any
) -> None:
    clock(MONDAY_EVENING)
    assert status_of(Client(), "acme-air", "acme-air").json()["brand"] == "Acme Air"
    with tenant_context(tenant):
        Brand.objects.update(name="Acme Airlines")
    with django_assert_num_queries(0):
        cached = status_of(Client(), "acme-air", "acme-air")
    assert cached.json()["brand"] == "Acme Air"


def test_a_client_past_its_limit_is_told_to_wait(
    tenant: Tenant, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.STATUS_RATE_LIMIT_PER_MINUTE = 3
    # 30 s into a minute, for the whole test.
    monkeypatch.setattr(status_views, "time", SimpleNamespace(time=lambda: 6_000_030.0))
    client = Client()
    codes = [status_of(client, "acme-air", "acme-air").status_code for _ in range(3)]
    refused = status_of(client, "acme-air", "acme-air")
    assert codes == [200, 200, 200]
    assert refused.status_code == 429
    assert refused.json() == {"error": "rate_limited"}
    assert refused["Retry-After"] == "30"
    assert refused["Access-Control-Allow-Origin"] == "*"
    # Another client address has its own allowance.
    other = Client(REMOTE_ADDR="203.0.113.9")
    assert status_of(other, "acme-air", "acme-air").status_code == 200


def test_only_reads_are_allowed(tenant: Tenant) -> None:
    response = Client().post("/status/acme-air/acme-air.json")
    assert response.status_code == 405
