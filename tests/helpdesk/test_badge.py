"""The public response badge (R9): `/status/<workspace>/<brand>/badge.svg`, and the
same figures in the public status JSON (`answers`), for brands that publish them.

Public by design (tests/test_tenant_isolation.py lists it in PUBLIC_ROUTES): these
tests prove what it shows, that it is 404 unless the brand opted in, and that it
is cached and rate-limited with the status endpoint.
"""

import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from xml.etree import ElementTree

import pytest
from django.test import Client
from django.utils import timezone

from helpdesk import histograms, status_views
from helpdesk.badge import badge_svg, duration_words
from tenants.context import tenant_context
from tenants.models import Brand, Tenant, User
from tests.helpdesk.report_support import make_conversation, make_fact

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 31, 18, 0, tzinfo=UTC)
NOT_FOUND = {"error": "not_found"}
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(autouse=True)
def _private_cache(settings: Any) -> None:
    """A cache of this test's own (the suite's Redis is shared by every run)."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": f"badge-{uuid.uuid4()}",
        }
    }


@pytest.fixture(autouse=True)
def _now(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(timezone, "now", lambda: NOW)


def publish(tenant: Tenant, *, on: bool = True, **changes: Any) -> None:
    with tenant_context(tenant):
        Brand.objects.update(publish_badge=on, **changes)


def answered(tenant: Tenant, agent: User, started: datetime, seconds: int) -> None:
    conversation = make_conversation(tenant)
    make_fact(conversation, "opened", started)
    make_fact(
        conversation,
        "first_response",
        started,
        agent=agent,
        visibility="public",
        raw_seconds=seconds,
        business_seconds=seconds,
    )


@pytest.fixture
def month(tenant: Tenant, agent: User) -> None:
    """In the 30 days to 31 March: 49 conversations answered after 12 minutes
    (one of them after 3 hours), one unanswered; and, 31 days back, an
    unanswered one that is out of the window."""
    for n in range(48):
        answered(tenant, agent, NOW - timedelta(days=n % 29, hours=1), 12 * 60)
    answered(tenant, agent, NOW - timedelta(days=3), 3 * 3600)
    make_fact(make_conversation(tenant), "opened", NOW - timedelta(days=2))
    make_fact(make_conversation(tenant), "opened", NOW - timedelta(days=31))


def badge(client: Client, slug: str = "acme-air", brand: str = "acme-air") -> Any:
    return client.get(f"/status/{slug}/{brand}/badge.svg")


def test_the_badge_shows_rate_and_median_of_thirty_days(
    tenant: Tenant, month: None
) -> None:
    publish(tenant)
    response = badge(Client())
    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml; charset=utf-8"
    assert response["Cache-Control"] == "public, max-age=30"
    assert response["Access-Control-Allow-Origin"] == "*"
    assert "Set-Cookie" not in response
    # 49 of 50 answered is 98%; the median is 12 minutes.
    text = "answers 98% of messages, median 12 minutes, last 30 days"
    assert response.content.decode() == badge_svg("Acme Air", text)
    document = ElementTree.fromstring(response.content)  # noqa: S314 - ours
    assert [t.text for t in document.iter(f"{SVG}text")] == ["Acme Air", text]
    assert document.find(f"{SVG}title").text == f"Acme Air: {text}"  # type: ignore[union-attr]
    assert not list(document.iter(f"{SVG}script"))


def test_the_status_json_carries_the_same_figures(tenant: Tenant, month: None) -> None:
    publish(tenant)
    answers = Client().get("/status/acme-air/acme-air.json").json()["answers"]
    assert answers == {
        "response_rate_percent": 98,
        "first_response_median_seconds": histograms.value(histograms.key(720)),
        "days": 30,
        "text": "answers 98% of messages, median 12 minutes, last 30 days",
    }


def test_unpublished_brands_have_no_badge_and_no_figures(
    tenant: Tenant, month: None
) -> None:
    response = badge(Client())
    assert response.status_code == 404
    assert response.json() == NOT_FOUND
    status = Client().get("/status/acme-air/acme-air.json").json()
    assert "answers" not in status
    assert set(status) == {
        "brand",
        "online",
        "next_change",
        "timezone",
        "typically_replies_in_minutes",
        "hours",
    }


def test_unknown_foreign_and_suspended_badges_look_the_same(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    publish(tenant)
    publish(other_tenant)
    client = Client()
    bodies = [
        badge(client, "no-such-workspace"),
        badge(client, "acme-air", "no-such-brand"),
        badge(client, "acme-air", "globex"),
    ]
    Tenant.objects.filter(pk=other_tenant.pk).update(status=Tenant.Status.SUSPENDED)
    bodies.append(badge(client, "globex", "globex"))
    for response in bodies:
        assert response.status_code == 404
        assert response.json() == NOT_FOUND
    assert badge(client).status_code == 200


def test_with_nothing_to_answer_the_badge_says_so(tenant: Tenant, agent: User) -> None:
    publish(tenant)
    text = "no messages needing a reply, last 30 days"
    assert badge(Client()).content.decode() == badge_svg("Acme Air", text)
    make_fact(make_conversation(tenant), "opened", NOW - timedelta(days=1))
    assert Client().get("/status/acme-air/acme-air.json").json()["answers"] == {
        "response_rate_percent": 0,
        "first_response_median_seconds": None,
        "days": 30,
        "text": "answers 0% of messages, last 30 days",
    }


def test_the_text_is_escaped(tenant: Tenant, month: None) -> None:
    publish(tenant, name='Tom & Jerry\'s <Shop> "1"')
    body = badge(Client()).content.decode()
    assert "Tom &amp; Jerry's &lt;Shop&gt;" in body
    assert "aria-label=\"Tom &amp; Jerry's &lt;Shop&gt; &quot;1&quot;: answers" in body
    assert "<Shop>" not in body
    document = ElementTree.fromstring(body)  # noqa: S314 - ours
    assert next(document.iter(f"{SVG}text")).text == 'Tom & Jerry\'s <Shop> "1"'


def test_the_badge_is_cached_for_thirty_seconds(
    tenant: Tenant, month: None, django_assert_num_queries: Any
) -> None:
    publish(tenant)
    first = badge(Client())
    publish(tenant, on=False)
    with django_assert_num_queries(0):
        cached = badge(Client())
    assert cached.status_code == 200
    assert cached.content == first.content


def test_badge_and_status_share_the_rate_limit(
    tenant: Tenant, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish(tenant)
    settings.STATUS_RATE_LIMIT_PER_MINUTE = 3
    monkeypatch.setattr(status_views, "time", SimpleNamespace(time=lambda: 6_000_030.0))
    client = Client()
    codes = [
        badge(client).status_code,
        client.get("/status/acme-air/acme-air.json").status_code,
        badge(client).status_code,
    ]
    refused = badge(client)
    assert codes == [200, 200, 200]
    assert refused.status_code == 429
    assert refused.json() == {"error": "rate_limited"}
    assert refused["Retry-After"] == "30"


def test_only_reads_are_allowed(tenant: Tenant) -> None:
    publish(tenant)
    assert Client().post("/status/acme-air/acme-air/badge.svg").status_code == 405


def test_durations_in_words() -> None:
    assert [
        duration_words(s) for s in (0, 59, 60, 61, 720, 7140, 7141, 36000, 172800)
    ] == [
        "1 minute",
        "1 minute",
        "1 minute",
        "2 minutes",
        "12 minutes",
        "119 minutes",
        "2 hours",
        "10 hours",
        "2 days",
    ]


def test_a_long_name_is_cut() -> None:
    svg = badge_svg("A" * 50, "answers 100% of messages, last 30 days")
    assert f">{'A' * 39}…</text>" in svg
