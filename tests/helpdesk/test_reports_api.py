"""The reports API (R9, R10): exact figures on constructed care facts (applied to
the rollups as the SLA engine does), the filters, bad input and tenancy."""

from datetime import UTC, datetime
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from helpdesk import histograms
from helpdesk.models import Conversation, ReportRollup
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import Brand, Tenant, User
from tests.api_clients import base, session, token_client
from tests.factories import make_brand
from tests.helpdesk.report_support import make_conversation, make_fact, make_message

pytestmark = pytest.mark.django_db

ROUTES = (
    "summary/",
    "timeseries/",
    "agents/",
    "fairness/",
    "heatmap/",
    "aggregates.csv",
    "conversations.csv",
)
PERIOD = {"start": "2026-03-02", "end": "2026-03-08"}


def at(day: int, hour: int, minute: int = 0, month: int = 3) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def b(seconds: float) -> float:
    """What a percentile of `seconds` reads back as (its histogram bucket)."""
    return histograms.value(histograms.key(seconds))


def answer(
    conversation: Conversation, started: datetime, agent: User, raw: int, **fields: Any
) -> None:
    fields.setdefault("business_seconds", raw)
    fields.setdefault("visibility", "public")
    make_fact(
        conversation,
        "first_response",
        started,
        agent=agent,
        raw_seconds=raw,
        at=started,
        **fields,
    )


@pytest.fixture
def cargo(tenant: Tenant) -> Brand:
    return make_brand(tenant, "Cargo")


@pytest.fixture
def week(tenant: Tenant, owner: User, agent: User, cargo: Brand) -> dict[str, Any]:
    """Acme Air's week of 2 to 8 March 2026 (Monday to Sunday), and one
    conversation in the week before.

    a: mention, small band, answered in public by Andy after 10 minutes,
       resolved after an hour; the customer wrote at 09:10 on Monday.
    b: direct message on Bluesky, large band, answered in private by Andy after
       90 minutes, breaching its target; the customer wrote at 14:00 on Tuesday.
    c: mention, medium band, off hours, answered by Olivia after 50 minutes
       (20 business minutes).
    d: marked "no reply needed" (spam) by Andy.   e: unanswered.
    f (week before): answered by Andy after 20 minutes.
    g (brand Cargo): answered by Olivia after a minute.
    """
    a = make_conversation(tenant, follower_band="small")
    make_fact(a, "opened", at(2, 9, 10))
    make_message(a, at(2, 9, 10))
    answer(a, at(2, 9, 10), agent, 600)
    make_message(a, at(2, 9, 20), kind="reply", agent_id=agent.pk)
    make_fact(
        a,
        "resolution",
        at(2, 9, 10),
        agent=agent,
        raw_seconds=3600,
        business_seconds=3000,
    )
    bb = make_conversation(
        tenant, platform="bluesky", origin="direct_message", follower_band="large"
    )
    make_fact(bb, "opened", at(3, 14))
    make_message(bb, at(3, 14))
    answer(bb, at(3, 14), agent, 5400, visibility="private", breached=True)
    make_fact(bb, "breach", at(3, 14), agent=agent)
    c = make_conversation(tenant, follower_band="medium")
    make_fact(c, "opened", at(4, 6), off_hours=True)
    answer(c, at(4, 6), owner, 3000, business_seconds=1200, off_hours=True)
    d = make_conversation(tenant)
    make_fact(d, "opened", at(5, 10))
    make_fact(d, "no_reply", at(5, 10), agent=agent, reason="spam")
    e = make_conversation(tenant)
    make_fact(e, "opened", at(6, 11))
    f = make_conversation(tenant)
    make_fact(f, "opened", at(25, 10, month=2))
    answer(f, at(25, 10, month=2), agent, 1200)
    g = make_conversation(tenant, brand=cargo)
    make_fact(g, "opened", at(3, 10))
    answer(g, at(3, 10), owner, 60)
    return {"a": a, "b": bb, "c": c, "d": d, "e": e, "f": f, "g": g}


def get(client: Any, tenant: Tenant, route: str, **params: Any) -> Any:
    return client.get(f"{base(tenant)}/reports/{route}", params)


def acme_air(tenant: Tenant) -> int:
    with tenant_context(tenant):
        return Brand.objects.get(slug="acme-air").pk


def test_summary_of_a_brand_and_its_previous_week(
    tenant: Tenant, owner: User, week: dict[str, Any]
) -> None:
    response = get(session(owner), tenant, "summary/", brand=acme_air(tenant), **PERIOD)
    assert response.status_code == 200
    body = response.json()
    assert body["period"] == {
        "start": "2026-03-02",
        "end": "2026-03-08",
        "conversations": 5,
        "needing_reply": 4,
        "answered": 3,
        "no_reply": 1,
        "unanswered": 1,
        "response_rate": 0.75,
        "public_response_rate": 2 / 3,
        "private_response_rate": 1.0,
        "answered_within_1h": 0.5,
        "answered_within_24h": 0.75,
        "first_response_p50": b(3000),
        "first_response_p90": b(3000),
        "first_response_business_p50": b(1200),
        "first_response_business_p90": b(1200),
        "next_response_p50": None,
        "next_response_p90": None,
        "breaches": 1,
        "breach_rate": 1 / 3,
        "resolution_p50": b(3600),
        "resolution_p90": b(3600),
        "off_hours_coverage": 1.0,
        "inbound": 2,
    }
    previous = body["previous"]
    assert (previous["start"], previous["end"]) == ("2026-02-23", "2026-03-01")
    assert (previous["conversations"], previous["answered"]) == (1, 1)
    assert previous["response_rate"] == 1.0
    assert previous["first_response_p50"] == b(1200)
    assert body["change"]["conversations"] == 4
    assert body["change"]["response_rate"] == -0.25
    assert body["change"]["first_response_p50"] == b(3000) - b(1200)
    assert body["change"]["next_response_p50"] is None


def test_without_compare_there_is_no_previous_period(
    tenant: Tenant, owner: User, week: dict[str, Any]
) -> None:
    body = get(session(owner), tenant, "summary/", compare="0", **PERIOD).json()
    assert body["previous"] is None
    assert body["change"] is None
    # Both brands: g of Cargo is in.
    assert (body["period"]["conversations"], body["period"]["answered"]) == (6, 4)


def test_filters_narrow_every_figure(
    tenant: Tenant, owner: User, agent: User, week: dict[str, Any]
) -> None:
    client = session(owner)

    def period(**params: Any) -> dict[str, Any]:
        response = get(client, tenant, "summary/", **PERIOD, **params)
        assert response.status_code == 200, response.json()
        figures: dict[str, Any] = response.json()["period"]
        return figures

    by_platform = period(platform="bluesky")
    assert (by_platform["conversations"], by_platform["answered"]) == (1, 1)
    assert by_platform["first_response_p50"] == b(5400)
    # The agent's answers against all the demand of the other filters.
    by_agent = period(agent=agent.pk, brand=acme_air(tenant))
    assert (by_agent["conversations"], by_agent["answered"]) == (5, 2)
    assert by_agent["response_rate"] == 0.5
    assert by_agent["first_response_p50"] == b(600)
    with tenant_context(tenant):
        account = SocialAccount.objects.create(
            brand_id=acme_air(tenant), platform="x", external_id="acct", handle="acme"
        )
    routed = make_conversation(tenant)
    routed.social_account_id = account.pk
    with tenant_context(tenant):
        routed.save(update_fields=["social_account"])
    make_fact(routed, "opened", at(7, 12))
    by_account = period(account=account.pk)
    assert (by_account["conversations"], by_account["unanswered"]) == (1, 1)


def test_timeseries_gives_every_day_of_the_period(
    tenant: Tenant, owner: User, week: dict[str, Any]
) -> None:
    response = get(
        session(owner), tenant, "timeseries/", brand=acme_air(tenant), **PERIOD
    )
    assert response.status_code == 200
    days = response.json()
    empty = {
        "inbound": 0,
        "inbound_by_platform": {},
        "inbound_by_origin": {},
        "inbound_by_sentiment": {},
        "first_response_p50": None,
        "first_response_p90": None,
        "target_seconds": 3600,
    }
    assert days == [
        {
            **empty,
            "date": "2026-03-02",
            "inbound": 1,
            "inbound_by_platform": {"x": 1},
            "inbound_by_origin": {"mention": 1},
            "inbound_by_sentiment": {"neutral": 1},
            "first_response_p50": b(600),
            "first_response_p90": b(600),
        },
        {
            **empty,
            "date": "2026-03-03",
            "inbound": 1,
            "inbound_by_platform": {"bluesky": 1},
            "inbound_by_origin": {"direct_message": 1},
            "inbound_by_sentiment": {"neutral": 1},
            "first_response_p50": b(5400),
            "first_response_p90": b(5400),
        },
        {
            **empty,
            "date": "2026-03-04",
            "first_response_p50": b(3000),
            "first_response_p90": b(3000),
        },
        {**empty, "date": "2026-03-05"},
        {**empty, "date": "2026-03-06"},
        {**empty, "date": "2026-03-07"},
        {**empty, "date": "2026-03-08"},
    ]


def test_agents_fairness_and_heatmap(
    tenant: Tenant, owner: User, agent: User, week: dict[str, Any]
) -> None:
    client = session(owner)
    brand = acme_air(tenant)
    agents = get(client, tenant, "agents/", brand=brand, **PERIOD).json()
    assert agents == [
        {
            "agent_id": agent.pk,
            "display_name": "Andy",
            "email": "andy@acme.example",
            "answered": 2,
            "first_response_p50": b(600),
            "public_replies": 1,
            "private_moves": 0,
            "no_reply": 1,
        },
        {
            "agent_id": owner.pk,
            "display_name": "Olivia",
            "email": "olivia@acme.example",
            "answered": 1,
            "first_response_p50": b(3000),
            "public_replies": 0,
            "private_moves": 0,
            "no_reply": 0,
        },
    ]
    fairness = get(client, tenant, "fairness/", brand=brand, **PERIOD).json()
    assert fairness == {
        "bands": {
            "small": {
                "answered": 1,
                "first_response_p50": b(600),
                "first_response_p90": b(600),
            },
            "medium": {
                "answered": 1,
                "first_response_p50": b(3000),
                "first_response_p90": b(3000),
            },
            "large": {
                "answered": 1,
                "first_response_p50": b(5400),
                "first_response_p90": b(5400),
            },
        },
        "ratio": b(5400) / b(600),
        "flagged": True,
    }
    heatmap = get(client, tenant, "heatmap/", brand=brand, **PERIOD).json()
    assert heatmap["timezone"] == "UTC"
    cells = {
        (weekday, hour): n
        for weekday, hours in enumerate(heatmap["inbound"])
        for hour, n in enumerate(hours)
        if n
    }
    assert cells == {(0, 9): 1, (1, 14): 1}
    weekday = [9 <= hour < 17 for hour in range(24)]
    assert heatmap["staffed"] == [weekday] * 5 + [[False] * 24] * 2


def test_the_default_period_is_the_thirty_days_ending_today(
    tenant: Tenant, owner: User, week: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(timezone, "now", lambda: at(31, 23, 30))
    body = get(session(owner), tenant, "summary/").json()
    assert (body["period"]["start"], body["period"]["end"]) == (
        "2026-03-02",
        "2026-03-31",
    )
    assert body["period"]["conversations"] == 6
    assert (body["previous"]["start"], body["previous"]["end"]) == (
        "2026-01-31",
        "2026-03-01",
    )


def test_viewers_and_read_tokens_may_read(
    tenant: Tenant, viewer: User, owner: User
) -> None:
    for client in (session(viewer), token_client(tenant, owner, "read")):
        for route in ROUTES:
            response = get(client, tenant, route, **PERIOD)
            assert response.status_code == 200, route


BAD_INPUT = [
    (
        {"start": "2026-02-30"},
        {
            "start": [
                "Date has wrong format. Use one of these formats instead: YYYY-MM-DD."
            ]
        },
    ),
    (
        {"start": "2026-03-09", "end": "2026-03-08"},
        {"end": ["The end is before the start."]},
    ),
    (
        {"start": "2025-03-07", "end": "2026-03-08"},
        {"end": ["A report covers at most 366 days."]},
    ),
    (
        {"start": "0001-01-01", "end": "0001-01-05"},
        {
            "start": ["Pick a day from 2000-01-01 to 2999-12-31."],
            "end": ["Pick a day from 2000-01-01 to 2999-12-31."],
        },
    ),
    (
        {"start": "2999-12-30", "end": "9999-12-31"},
        {"end": ["Pick a day from 2000-01-01 to 2999-12-31."]},
    ),
    ({"platform": "myspace"}, {"platform": ['"myspace" is not a valid choice.']}),
    ({"brand": "first"}, {"brand": ["A valid integer is required."]}),
    ({"account": "1.5"}, {"account": ["A valid integer is required."]}),
    ({"agent": "andy"}, {"agent": ["A valid integer is required."]}),
    ({"brand": "0"}, {"brand": ["Ensure this value is greater than or equal to 1."]}),
    ({"compare": "perhaps"}, {"compare": ["Must be a valid boolean."]}),
]


@pytest.mark.parametrize(("params", "fields"), BAD_INPUT)
def test_bad_input_is_a_field_error_on_every_route(
    tenant: Tenant,
    owner: User,
    week: dict[str, Any],
    params: dict[str, str],
    fields: dict[str, list[str]],
) -> None:
    with tenant_context(tenant):
        before = list(ReportRollup.objects.order_by("id").values())
    client = session(owner)
    for route in ROUTES:
        response = get(client, tenant, route, **params)
        assert response.status_code == 400, route
        assert response["Content-Type"] == "application/json"
        assert response.json() == {
            "code": "invalid",
            "message": "Some fields need attention.",
            "fields": fields,
            "details": {},
        }
    with tenant_context(tenant):
        assert list(ReportRollup.objects.order_by("id").values()) == before


def test_a_full_year_and_the_first_and_last_days_are_allowed(
    tenant: Tenant, owner: User
) -> None:
    client = session(owner)
    response = get(client, tenant, "summary/", start="2025-03-08", end="2026-03-08")
    assert response.status_code == 200
    assert response.json()["period"]["start"] == "2025-03-08"
    for start, end in (("2000-01-01", "2000-01-31"), ("2999-12-01", "2999-12-31")):
        for route in ROUTES:
            response = get(client, tenant, route, start=start, end=end)
            assert response.status_code == 200, (route, start)
            if response.streaming:
                # Nothing happened then: a header and no conversation; the
                # header, 22 summary figures, 4 per day of 31 and 11 fairness.
                assert b"".join(response.streaming_content).count(b"\r\n") == (
                    1 if route == "conversations.csv" else 1 + 22 + 4 * 31 + 11
                )


def test_another_workspaces_ids_are_field_errors_and_show_nothing(
    tenant: Tenant,
    other_tenant: Tenant,
    owner: User,
    outsider: User,
    week: dict[str, Any],
) -> None:
    with tenant_context(other_tenant):
        globex = Brand.objects.get()
        account = SocialAccount.objects.create(
            brand=globex, platform="x", external_id="g", handle="globex"
        )
    globex_conversation = make_conversation(other_tenant)
    make_fact(globex_conversation, "opened", at(3, 9))
    client = session(owner)
    refused = {
        "brand": (globex.pk, "No such brand in this workspace."),
        "account": (account.pk, "No such account in this workspace."),
        "agent": (outsider.pk, "No such member in this workspace."),
    }
    for name, (value, message) in refused.items():
        for route in ROUTES:
            response = get(client, tenant, route, **{name: value})
            assert response.status_code == 400, (name, route)
            assert response.json()["fields"] == {name: [message]}
            assert b"Globex" not in response.content


@pytest.mark.parametrize("route", ROUTES)
def test_outsiders_get_404(
    tenant: Tenant,
    other_tenant: Tenant,
    outsider: User,
    week: dict[str, Any],
    route: str,
) -> None:
    for client in (session(outsider), token_client(other_tenant, outsider, "admin")):
        response = get(client, tenant, route, **PERIOD)
        assert response.status_code == 404
        assert b"Acme" not in response.content
        assert not response.streaming


def test_no_credentials_is_401(tenant: Tenant) -> None:
    for route in ROUTES:
        response = get(APIClient(), tenant, route)
        assert response.status_code == 401, route
        assert not response.streaming
