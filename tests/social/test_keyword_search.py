"""Listening by keyword search (R1): the X and Reddit queries built from a brand's
search terms, and polling that searches after the regular fetch and records what
the rules accept, against the fake platforms on 127.0.0.1 (real HTTP).

The fakes answer every search with all their posts, whatever the query: the query
sent is asserted on the request, and what is recorded shows ingest's decision.
"""

import logging
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.core import mail
from django.utils import timezone

from helpdesk.models import Message
from social.connectors.base import FetchResult, TokenSet
from social.connectors.reddit import RedditConnector, parse_submission
from social.connectors.x import XConnector
from social.ingest import record_for_account
from social.models import ListeningRule, SocialAccount
from social.services import connect_account
from social.tasks import poll_account
from tenants.context import tenant_context
from tenants.models import Tenant, User
from tests.factories import membership_of
from tests.social import fakes_reddit, fakes_x
from tests.social.connecting import brand_of
from tests.social.fakes_reddit import FakeReddit, listing
from tests.social.fakes_x import (
    FakeX,
    rate_limited,
    snowflake,
    unauthorized,
    v2_post,
)
from tests.social.fakeserver import FakeServer

SEARCH = "/2/tweets/search/recent"
MENTIONS = f"/2/users/{fakes_x.ACCOUNT_ID}/mentions"
X_QUERY = '("acme air" OR acmeair) -is:retweet -from:acmeair'
# Post ids carry their time, and X refuses a since_id older than its search window.
AN_HOUR_AGO = timezone.now() - timedelta(hours=1)


def x_id(sequence: int) -> str:
    return snowflake(AN_HOUR_AGO, sequence)


@pytest.fixture
def x_fake(fake_http: FakeServer) -> FakeX:
    return FakeX(fake_http).install()


@pytest.fixture
def reddit(fake_http: FakeServer) -> FakeReddit:
    return FakeReddit(fake_http)


def queries(fake: FakeX, path: str) -> list[dict[str, str]]:
    return [
        {key: values[0] for key, values in request.query.items()}
        for request in fake.calls("GET", path)
    ]


# The X query


def test_x_ors_the_terms_and_leaves_out_retweets_and_its_own_posts(
    x_fake: FakeX,
) -> None:
    x_fake.search_results[:] = [
        v2_post(x_id(21), "acme air lost my bag", mentions=()),
        v2_post(x_id(20), "acme air is late", mentions=()),
    ]
    terms = ['"acme air"', "acmeair", "#acmeair", "late flight", "@pat_flyer"]
    result = XConnector().search_public(x_fake.account, terms, x_id(20))
    assert [(i.external_id, i.kind, i.mentions_account) for i in result.items] == [
        (x_id(21), "post", False)
    ]
    assert result.cursor == x_id(21)
    [request] = x_fake.server.requests
    assert request.path == SEARCH
    assert request.query["query"] == [
        '("acme air" OR acmeair OR #acmeair OR (late flight) OR @pat_flyer)'
        " -is:retweet -from:acmeair"
    ]
    assert request.query["since_id"] == [x_id(20)]


def test_x_keeps_the_query_within_512_characters_and_logs_what_it_leaves_out(
    x_fake: FakeX, caplog: pytest.LogCaptureFixture
) -> None:
    fitting = [f"term{n:03d}" for n in range(43)]
    too_long = "a" * 30
    later = [f"more{n:03d}" for n in range(10)]
    terms = [*fitting, too_long, "ab", *later, "@acme.bsky.social"]
    with caplog.at_level(logging.WARNING, logger="social.connectors.x"):
        XConnector().search_public(x_fake.account, terms, "")
    expected = f"({' OR '.join([*fitting, 'ab'])}) -is:retweet -from:acmeair"
    assert len(expected) == 503
    [request] = x_fake.server.requests
    assert request.query["query"] == [expected]
    assert "since_id" not in request.query
    left_out = [too_long, *later, "@acme.bsky.social"]
    assert [r.getMessage() for r in caplog.records] == [
        f"X search for @acmeair leaves out 12 term(s): {left_out}"
    ]


def test_x_makes_no_request_when_no_term_can_be_searched(x_fake: FakeX) -> None:
    result = XConnector().search_public(x_fake.account, ["@acme.bsky.social"], x_id(20))
    assert result == FetchResult(items=[], cursor=x_id(20))
    assert x_fake.server.requests == []


# The Reddit query


def test_reddit_ors_the_terms_in_its_syntax_and_skips_its_own_posts(
    reddit: FakeReddit,
) -> None:
    own = {
        **fakes_reddit.children(fakes_reddit.load("search.json"))[0],
        "name": "t3_own0001",
        "id": "own0001",
        "author": fakes_reddit.HANDLE,
        "created_utc": 1767323000.0,
    }
    things = [own, *fakes_reddit.children(fakes_reddit.load("search.json"))]
    reddit.search_results = listing("t3", things)
    terms = [
        '"earshot air"',
        "earshotair",
        "#earshotair",
        '"earshot air" lost',
        "@acme-air.bsky.social",
    ]
    result = RedditConnector().search_public(reddit.account(), terms, "")
    assert [item.external_id for item in result.items] == [
        "t3_1hx0aaa",
        "t3_1hx9zzz",
    ]
    assert result.cursor == "1767323000:t3_own0001"
    [request] = reddit.server.requests
    assert (request.path, request.query) == (
        "/search",
        {
            "raw_json": ["1"],
            "q": [
                '"earshot air" OR earshotair OR ("earshot air" AND lost)'
                ' OR "acme-air.bsky.social"'
            ],
            "sort": ["new"],
            "type": ["link"],
            "limit": ["100"],
        },
    )


def test_reddit_keeps_q_within_512_characters(
    reddit: FakeReddit, caplog: pytest.LogCaptureFixture
) -> None:
    terms = [f"term{n:03d}" for n in range(50)]
    with caplog.at_level(logging.WARNING, logger="social.connectors.reddit"):
        RedditConnector().search_public(reddit.account(), terms, "")
    # 46 terms of 7 characters and 45 " OR " make 502; one more would be 513.
    [request] = reddit.server.requests
    assert request.query["q"] == [" OR ".join(terms[:46])]
    assert [r.getMessage() for r in caplog.records] == [
        f"Reddit search for u/earshot_brand leaves out 4 term(s): {terms[46:]}"
    ]


# Polling: fetch, then search, through ingest's decision


def connect(
    tenant: Tenant, owner: User, platform: str, tokens: TokenSet, base_url: str
) -> SocialAccount:
    with tenant_context(tenant):
        return connect_account(
            membership_of(tenant, owner),
            brand=brand_of(tenant),
            platform=platform,
            tokens=tokens,
            base_url=base_url,
        )


def add_rule(tenant: Tenant, query: str, **fields: Any) -> None:
    with tenant_context(tenant):
        ListeningRule.objects.create(
            brand=brand_of(tenant), name=query[:80], query=query, **fields
        )


def recorded(tenant: Tenant) -> list[tuple[str, str]]:
    """(external id, conversation origin) of every inbound message, sorted."""
    with tenant_context(tenant):
        rows = Message.objects.filter(direction="in").values_list(
            "external_id", "conversation__origin"
        )
        return sorted((str(external_id), origin) for external_id, origin in rows)


def account_state(tenant: Tenant, account_id: int) -> dict[str, Any]:
    with tenant_context(tenant):
        account = SocialAccount.objects.get(pk=account_id)
    return {
        "status": account.status,
        "poll_cursor": account.poll_cursor,
        "search_cursor": account.search_cursor,
        "poll_failures": account.poll_failures,
        "last_error": account.last_error,
    }


@pytest.fixture
def x_account(tenant: Tenant, owner: User, x_fake: FakeX) -> SocialAccount:
    tokens = TokenSet(
        access_token=x_fake.access_token,
        refresh_token=x_fake.refresh_token,
        account_external_id=fakes_x.ACCOUNT_ID,
        handle=fakes_x.HANDLE,
    )
    account = connect(tenant, owner, "x", tokens, x_fake.server.base_url)
    add_rule(tenant, '("acme air" OR acmeair) -hiring')
    add_rule(tenant, "airline NEAR/2 strike", action="feed")
    add_rule(tenant, "pizza", platforms=["reddit"])
    add_rule(tenant, "strike", enabled=False)
    x_fake.mentions[:] = [v2_post(x_id(1), "@acmeair hello?")]
    x_fake.search_results[:] = [
        v2_post(
            x_id(14),
            "Acme Air news: new routes",
            author_id=fakes_x.ACCOUNT_ID,
            mentions=(),
        ),
        v2_post(x_id(13), "Acme Air is hiring pilots", mentions=()),
        v2_post(x_id(12), "the airline pilots strike", mentions=()),
        v2_post(x_id(11), "acme air lost my bag at T2", mentions=()),
        v2_post(x_id(10), "I love pizza", mentions=()),
    ]
    return account


@pytest.mark.django_db(transaction=True)
def test_polling_x_records_untagged_posts_that_an_inbox_rule_matches(
    tenant: Tenant, x_fake: FakeX, x_account: SocialAccount
) -> None:
    with tenant_context(tenant):
        SocialAccount.objects.filter(pk=x_account.pk).update(poll_failures=2)
    before = timezone.now()
    assert poll_account.run(tenant.pk, x_account.pk) == 2
    assert recorded(tenant) == [
        (x_id(1), "mention"),
        (x_id(11), "listening"),
    ]
    assert [r.path for r in x_fake.server.requests] == [
        MENTIONS,
        SEARCH,
        SEARCH,
        SEARCH,
    ]
    assert [(q["query"], q.get("since_id")) for q in queries(x_fake, SEARCH)] == [
        (X_QUERY, None),
        (X_QUERY, None),
        (X_QUERY, None),
    ]
    assert account_state(tenant, x_account.pk) == {
        "status": "connected",
        "poll_cursor": x_id(1),
        "search_cursor": x_id(14),
        "poll_failures": 0,
        "last_error": "",
    }
    with tenant_context(tenant):
        next_poll = SocialAccount.objects.get(pk=x_account.pk).next_poll_at
    assert next_poll is not None
    assert (
        before + timedelta(seconds=60)
        <= next_poll
        <= timezone.now() + timedelta(seconds=60)
    )


@pytest.mark.django_db(transaction=True)
def test_the_search_cursor_advances_and_nothing_is_recorded_twice(
    tenant: Tenant, x_fake: FakeX, x_account: SocialAccount
) -> None:
    assert poll_account.run(tenant.pk, x_account.pk) == 2
    x_fake.server.requests.clear()
    assert poll_account.run(tenant.pk, x_account.pk) == 0
    assert [(q["query"], q.get("since_id")) for q in queries(x_fake, SEARCH)] == [
        (X_QUERY, x_id(14))
    ]
    assert queries(x_fake, MENTIONS)[0]["since_id"] == x_id(1)

    x_fake.search_results.insert(
        0, v2_post(x_id(15), "Acme Air cancelled my flight", mentions=())
    )
    assert poll_account.run(tenant.pk, x_account.pk) == 1
    assert recorded(tenant) == [
        (x_id(1), "mention"),
        (x_id(11), "listening"),
        (x_id(15), "listening"),
    ]
    assert account_state(tenant, x_account.pk)["search_cursor"] == (x_id(15))


@pytest.mark.django_db(transaction=True)
def test_a_rate_limited_search_backs_off_and_keeps_what_the_fetch_recorded(
    tenant: Tenant, x_fake: FakeX, x_account: SocialAccount
) -> None:
    with tenant_context(tenant):
        SocialAccount.objects.filter(pk=x_account.pk).update(poll_failures=2)
    x_fake.fail_next("GET", SEARCH, rate_limited(retry_after=900))
    before = timezone.now()
    assert poll_account.run(tenant.pk, x_account.pk) == 1
    assert recorded(tenant) == [(x_id(1), "mention")]
    # The fetch's success does not reset the count: the poll as a whole failed.
    assert account_state(tenant, x_account.pk) == {
        "status": "connected",
        "poll_cursor": x_id(1),
        "search_cursor": "",
        "poll_failures": 3,
        "last_error": "Too Many Requests",
    }
    with tenant_context(tenant):
        next_poll = SocialAccount.objects.get(pk=x_account.pk).next_poll_at
    assert next_poll is not None
    wait = timedelta(seconds=900)  # Retry-After beats 60 s * 2**3
    assert before + wait <= next_poll <= timezone.now() + wait

    # Within the platform's pause the account is left alone, even when asked.
    assert poll_account.run(tenant.pk, x_account.pk) == 0
    assert recorded(tenant) == [(x_id(1), "mention")]
    # Once it has passed, the next poll takes up the search where it stopped.
    with time_machine.travel(next_poll + timedelta(seconds=1), tick=True):
        assert poll_account.run(tenant.pk, x_account.pk) == 1
    assert recorded(tenant) == [
        (x_id(1), "mention"),
        (x_id(11), "listening"),
    ]
    assert account_state(tenant, x_account.pk)["poll_failures"] == 0


@pytest.mark.django_db(transaction=True)
def test_an_unauthorized_search_turns_the_account_needs_reauth(
    tenant: Tenant, admin: User, x_fake: FakeX, x_account: SocialAccount
) -> None:
    mail.outbox.clear()
    x_fake.fail_next("GET", SEARCH, unauthorized())
    assert poll_account.run(tenant.pk, x_account.pk) == 1
    assert recorded(tenant) == [(x_id(1), "mention")]
    assert account_state(tenant, x_account.pk) == {
        "status": "needs_reauth",
        "poll_cursor": x_id(1),
        "search_cursor": "",
        "poll_failures": 1,
        "last_error": "Unauthorized",
    }
    assert [m.subject for m in mail.outbox] == ["Reconnect @acmeair on X"]
    assert sorted(mail.outbox[0].to) == ["ada@acme.example", "olivia@acme.example"]
    x_fake.server.requests.clear()
    assert poll_account.run(tenant.pk, x_account.pk) == 0
    assert x_fake.server.requests == []


@pytest.mark.django_db(transaction=True)
def test_without_inbox_rules_nothing_is_searched(
    tenant: Tenant, x_fake: FakeX, x_account: SocialAccount
) -> None:
    with tenant_context(tenant):
        ListeningRule.objects.filter(action="inbox").update(enabled=False)
    assert poll_account.run(tenant.pk, x_account.pk) == 1
    assert [r.path for r in x_fake.server.requests] == [MENTIONS]
    assert recorded(tenant) == [(x_id(1), "mention")]
    assert account_state(tenant, x_account.pk)["search_cursor"] == ""


@pytest.mark.django_db(transaction=True)
def test_polling_reddit_searches_posts_for_the_brands_rules(
    tenant: Tenant, owner: User, reddit: FakeReddit
) -> None:
    tokens = TokenSet(
        access_token=fakes_reddit.ACCESS_TOKEN,
        refresh_token=fakes_reddit.REFRESH_TOKEN,
        account_external_id=fakes_reddit.ACCOUNT_ID,
        handle=fakes_reddit.HANDLE,
    )
    account = connect(tenant, owner, "reddit", tokens, reddit.server.base_url)
    add_rule(tenant, '"earshot air" (lost OR bag)')
    assert poll_account.run(tenant.pk, account.pk) == 4
    assert recorded(tenant) == [
        ("t1_lmn0000", "mention"),
        ("t1_lmn0002", "mention"),
        ("t3_1hx9zzz", "listening"),
        ("t4_2r17c9a", "direct_message"),
    ]
    search = [r for r in reddit.server.requests if r.path == "/search"]
    assert [r.query["q"] for r in search] == [
        ['("earshot air" AND lost) OR ("earshot air" AND bag)']
    ]
    assert account_state(tenant, account.pk) == {
        "status": "connected",
        "poll_cursor": "1767323045:t1_lmn0002",
        "search_cursor": "1767322800:t3_1hx9zzz",
        "poll_failures": 0,
        "last_error": "",
    }


@pytest.mark.django_db(transaction=True)
def test_the_brands_own_post_matches_no_rule_even_when_named_by_handle(
    tenant: Tenant, owner: User, reddit: FakeReddit
) -> None:
    tokens = TokenSet(
        access_token=fakes_reddit.ACCESS_TOKEN,
        account_external_id=fakes_reddit.ACCOUNT_ID,
        handle=fakes_reddit.HANDLE,
    )
    account = connect(tenant, owner, "reddit", tokens, reddit.server.base_url)
    add_rule(tenant, '"earshot air"')
    own, other = (
        parse_submission(
            {
                "name": f"t3_{name}",
                "author": author,
                "title": "Earshot Air: new routes",
                "created_utc": 1767323000.0,
            }
        )
        for name, author in (("own01", "Earshot_Brand"), ("other1", "erin_flies"))
    )
    with tenant_context(tenant):
        loaded = SocialAccount.objects.select_related("brand").get(pk=account.pk)
        assert record_for_account(loaded, own) is False
        assert record_for_account(loaded, other) is True
    assert recorded(tenant) == [("t3_other1", "listening")]
