"""XConnector against captured-shape fixtures and a fake X API v2 (fakes_x.py)."""

import base64
import hashlib
import hmac
import json
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.utils import timezone

from social.connectors import get_connector
from social.connectors.base import (
    AccountRef,
    AppSecrets,
    Author,
    Capabilities,
    ConnectorError,
    DeliveryResult,
    InboundItem,
    OutboundReply,
    TokenSet,
    WebhookItem,
)
from social.connectors.x import POST_FIELDS, XConnector
from tests.social.fakes_x import (
    AUTH_CODE,
    CLIENT_ID,
    CLIENT_SECRET,
    SCOPE,
    FakeX,
    duplicate_content,
    rate_limited,
    server_error,
    snowflake,
    unauthorized,
    v2_post,
)
from tests.social.fakeserver import FakeServer, Reply

FIXTURES = Path(__file__).parent / "fixtures" / "x"
NOW = datetime(2026, 8, 12, 18, 30, tzinfo=UTC)
APP = AppSecrets(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
PAT = Author("2000", "pat_flyer", "Pat Flyer", 4210, "https://x.com/pat_flyer")
connector = XConnector()


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(fixture_bytes(name))
    return data


def b64_hmac(secret: str, message: bytes) -> str:
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return "sha256=" + base64.b64encode(digest).decode()


@pytest.fixture
def now(monkeypatch: pytest.MonkeyPatch) -> datetime:
    monkeypatch.setattr(timezone, "now", lambda: NOW)
    return NOW


@pytest.fixture
def x_fake(fake_http: FakeServer, now: datetime) -> FakeX:
    return FakeX(fake_http).install()


def public_reply(text: str = "So sorry, Pat. We're on it.") -> OutboundReply:
    return OutboundReply(
        client_ref="ref-1",
        text=text,
        visibility="public",
        in_reply_to="1793338476012345601",
        recipient_id="2000",
    )


def private_reply(text: str = "Could you send us the file reference?") -> OutboundReply:
    return OutboundReply(
        client_ref="ref-2",
        text=text,
        visibility="private",
        in_reply_to="1000-2000",
        recipient_id="2000",
    )


# Registry and capabilities


def test_is_registered_with_its_capabilities() -> None:
    found = get_connector("x")
    assert isinstance(found, XConnector)
    assert found.capabilities == Capabilities(
        public_reply=True,
        private_message=True,
        private_reply_to_public=False,
        start_private=True,
        private_reply_window=None,
        max_length=280,
        public_reply_needs_mention=True,
        webhooks=True,
        polling=True,
        streaming=False,
    )
    assert found.webhook_signature_header == "x-twitter-webhooks-signature"
    assert found.keyword_search is True


# CRC and signatures


def test_crc_answers_with_the_base64_hmac_of_the_token() -> None:
    status, body = connector.webhook_challenge({"crc_token": "crc-abc-123"}, APP)
    assert status == 200
    assert json.loads(body) == {
        "response_token": b64_hmac(CLIENT_SECRET, b"crc-abc-123")
    }


def test_crc_without_a_token_is_refused() -> None:
    assert connector.webhook_challenge({}, APP) == (400, "")
    assert connector.webhook_challenge({"crc_token": ""}, APP) == (400, "")


def test_crc_without_a_consumer_secret_is_an_error() -> None:
    assert connector.webhook_challenge({"crc_token": "t"}, AppSecrets()) == (500, "")


def test_signature_of_the_raw_body_is_accepted_whatever_the_header_case() -> None:
    body = fixture_bytes("aaa_tweet_mention.json")
    signature = b64_hmac(CLIENT_SECRET, body)
    assert connector.verify_webhook(
        body, {"x-twitter-webhooks-signature": signature}, APP
    )
    assert connector.verify_webhook(
        body, {"X-Twitter-Webhooks-Signature": signature}, APP
    )


@pytest.mark.parametrize(
    ("headers", "app"),
    [
        ({"x-twitter-webhooks-signature": b64_hmac("wrong", b"{}")}, APP),
        ({}, APP),
        ({"x-twitter-webhooks-signature": ""}, APP),
        ({"x-twitter-webhooks-signature": "sha256=AAAA"}, APP),
        ({"x-twitter-webhooks-signature": b64_hmac("", b"{}")}, AppSecrets()),
    ],
    ids=["wrong", "missing", "empty", "garbage", "no-secret-configured"],
)
def test_signature_is_rejected(headers: dict[str, str], app: AppSecrets) -> None:
    assert not connector.verify_webhook(b"{}", headers, app)


def test_signature_of_a_body_altered_by_one_byte_is_rejected() -> None:
    body = fixture_bytes("aaa_tweet_mention.json")
    signature = b64_hmac(CLIENT_SECRET, body)
    altered = body.replace(b"ABC123", b"ABC124", 1)
    assert len(altered) == len(body)
    assert not connector.verify_webhook(
        altered, {"x-twitter-webhooks-signature": signature}, APP
    )


def test_event_id_of_an_activity_delivery_is_its_event_uuid() -> None:
    body = fixture_bytes("xaa_post_reply.json")
    assert connector.webhook_event_id(body) == "3091827364059182736"


def test_event_id_of_an_account_activity_delivery_is_a_stable_digest() -> None:
    body = fixture_bytes("aaa_dm.json")
    reformatted = json.dumps(json.loads(body), indent=1, sort_keys=True).encode()
    expected = hashlib.sha256(
        b"1000\ndirect_message_events:9000000000000000001"
    ).hexdigest()
    assert connector.webhook_event_id(body) == expected
    assert connector.webhook_event_id(reformatted) == expected
    assert connector.webhook_event_id(fixture_bytes("aaa_dm_echo.json")) != expected


# Parsing


def test_parses_an_account_activity_mention() -> None:
    data = fixture("aaa_tweet_mention.json")
    items = connector.parse_webhook(fixture_bytes("aaa_tweet_mention.json"))
    assert items == [
        WebhookItem(
            "1000",
            InboundItem(
                platform="x",
                external_id="1793338476012345601",
                author=PAT,
                text="@acmeair my bag never arrived at LHR, ref ABC123. Nobody "
                "answers the phone.",
                created_at=datetime(2024, 5, 22, 18, 46, 0, 557000, tzinfo=UTC),
                visibility="public",
                kind="mention",
                thread_ref="1793338476012345601",
                in_reply_to="",
                mentions_account=True,
                url="https://x.com/pat_flyer/status/1793338476012345601",
                language="en",
                raw=data["tweet_create_events"][0],
            ),
        )
    ]


def test_parses_a_truncated_reply_to_the_brand_with_its_full_text() -> None:
    data = fixture("aaa_tweet_reply_extended.json")
    [parsed] = connector.parse_webhook(fixture_bytes("aaa_tweet_reply_extended.json"))
    assert parsed == WebhookItem(
        "1000",
        InboundItem(
            platform="x",
            external_id="1793342549012345602",
            author=Author("2000", "pat_flyer", "Pat Flyer", 4210, PAT.profile_url),
            text=data["tweet_create_events"][0]["extended_tweet"]["full_text"],
            created_at=datetime(2024, 5, 22, 19, 2, 11, tzinfo=UTC),
            visibility="public",
            kind="comment",
            thread_ref="1793340001000000001",
            in_reply_to="1793340001000000001",
            mentions_account=True,
            url="https://x.com/pat_flyer/status/1793342549012345602",
            language="en",
            raw=data["tweet_create_events"][0],
        ),
    )
    assert parsed.item.text.endswith("It has my medication in it.")


@pytest.mark.parametrize(
    "name",
    ["aaa_tweet_brand_echo.json", "aaa_dm_echo.json", "xaa_post_mention_brand.json"],
)
def test_the_brands_own_posts_and_dms_are_skipped(name: str) -> None:
    assert connector.parse_webhook(fixture_bytes(name)) == []


def test_a_plain_retweet_is_skipped() -> None:
    data = fixture("aaa_tweet_mention.json")
    data["tweet_create_events"][0]["retweeted_status"] = {"id_str": "1"}
    assert connector.parse_webhook(json.dumps(data).encode()) == []


def test_parses_an_account_activity_dm() -> None:
    data = fixture("aaa_dm.json")
    assert connector.parse_webhook(fixture_bytes("aaa_dm.json")) == [
        WebhookItem(
            "1000",
            InboundItem(
                platform="x",
                external_id="9000000000000000001",
                author=PAT,
                text="hi, order #42? The file reference is ABC123",
                created_at=datetime(2024, 5, 22, 18, 46, 0, 557000, tzinfo=UTC),
                visibility="private",
                kind="direct_message",
                thread_ref="1000-2000",
                raw=data["direct_message_events"][0],
            ),
        )
    ]


def test_parses_an_activity_api_reply() -> None:
    data = fixture("xaa_post_reply.json")
    assert connector.parse_webhook(fixture_bytes("xaa_post_reply.json")) == [
        WebhookItem(
            "1111",
            InboundItem(
                platform="x",
                external_id="2090000000000000001",
                author=Author("2222", "cust", "Customer", 97, "https://x.com/cust"),
                text="@brand where is my order?",
                created_at=datetime(2026, 8, 12, 18, 0, tzinfo=UTC),
                visibility="public",
                kind="comment",
                thread_ref="2080761390344937796",
                in_reply_to="2080761390344937796",
                mentions_account=True,
                url="https://x.com/cust/status/2090000000000000001",
                language="en",
                raw=data["data"]["payload"],
            ),
        )
    ]


def test_parses_an_activity_api_dm_with_wrapped_users() -> None:
    data = fixture("xaa_dm_received.json")
    assert connector.parse_webhook(fixture_bytes("xaa_dm_received.json")) == [
        WebhookItem(
            "1111",
            InboundItem(
                platform="x",
                external_id="2090000000000000555",
                author=Author("2222", "cust", "Customer", 97, "https://x.com/cust"),
                text="Order 77 never came \U0001f61e",
                created_at=datetime(2026, 8, 12, 18, 0, tzinfo=UTC),
                visibility="private",
                kind="direct_message",
                thread_ref="1111-2222",
                raw=data["data"]["payload"]["direct_message_events"][0],
            ),
        )
    ]


def test_other_activity_events_are_ignored() -> None:
    body = {"data": {"event_type": "dm.sent", "filter": {"user_id": "1111"}}}
    assert connector.parse_webhook(json.dumps(body).encode()) == []


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", b"{}", b'{"data": {"event_type": "post.reply.create"}}'],
    ids=["not-json", "array", "neither-shape", "no-filter-user"],
)
def test_malformed_deliveries_raise_value_error(body: bytes) -> None:
    with pytest.raises(ValueError, match=r"."):
        connector.parse_webhook(body)


# Sending


def test_a_public_reply_is_posted_in_reply_to_the_post(x_fake: FakeX) -> None:
    result = connector.send(x_fake.account, public_reply())
    assert result == DeliveryResult(
        external_id="1795000000000000001",
        url="https://x.com/acmeair/status/1795000000000000001",
        sent_at=NOW,
    )
    [sent] = x_fake.server.requests
    assert (sent.method, sent.path) == ("POST", "/2/tweets")
    assert sent.headers["authorization"] == "Bearer x-access-1"
    assert sent.headers["content-type"] == "application/json"
    assert sent.json() == {
        "text": "So sorry, Pat. We're on it.",
        "reply": {"in_reply_to_tweet_id": "1793338476012345601"},
    }


def test_a_dm_goes_to_the_recipient(x_fake: FakeX) -> None:
    result = connector.send(x_fake.account, private_reply())
    assert result == DeliveryResult(
        external_id="1795000000000000001",
        url="https://x.com/messages/1000-2000",
        sent_at=NOW,
    )
    [sent] = x_fake.server.requests
    assert (sent.method, sent.path) == (
        "POST",
        "/2/dm_conversations/with/2000/messages",
    )
    assert sent.headers["authorization"] == "Bearer x-access-1"
    assert sent.json() == {"text": "Could you send us the file reference?"}


def test_a_dm_without_recipient_goes_to_the_other_participant_of_the_thread(
    x_fake: FakeX,
) -> None:
    connector.send(x_fake.account, replace(private_reply(), recipient_id=""))
    assert [r.path for r in x_fake.server.requests] == [
        "/2/dm_conversations/with/2000/messages"
    ]


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (replace(public_reply(), in_reply_to=""), "An X reply needs the post it"),
        (
            replace(private_reply(), recipient_id="", private_reply_to_public=True),
            "An X direct message needs the customer's user id.",
        ),
    ],
    ids=["public-without-target", "private-without-recipient"],
)
def test_a_reply_without_a_target_fails_permanently_without_a_call(
    x_fake: FakeX, reply: OutboundReply, message: str
) -> None:
    with pytest.raises(ConnectorError) as caught:
        connector.send(x_fake.account, reply)
    assert caught.value.message.startswith(message)
    assert caught.value.permanent is True
    assert x_fake.server.requests == []


def test_an_account_without_a_token_needs_reauthorization(x_fake: FakeX) -> None:
    account = replace(x_fake.account, credentials={})
    with pytest.raises(ConnectorError) as caught:
        connector.send(account, public_reply())
    assert (caught.value.auth, caught.value.permanent) == (True, True)
    assert x_fake.server.requests == []


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (unauthorized(), ("Unauthorized", True, True, None, 401)),
        (rate_limited(retry_after=30), ("Too Many Requests", False, False, 30.0, 429)),
        (server_error(), ("Service Unavailable", False, False, None, 503)),
        (
            duplicate_content(),
            (
                "You are not allowed to create a Tweet with duplicate content.",
                True,
                False,
                None,
                403,
            ),
        ),
    ],
    ids=["401", "429-retry-after", "503", "403-duplicate"],
)
def test_errors_map_to_connector_errors(
    x_fake: FakeX, reply: Reply, expected: tuple[Any, ...]
) -> None:
    x_fake.fail_next("POST", "/2/tweets", reply)
    with pytest.raises(ConnectorError) as caught:
        connector.send(x_fake.account, public_reply())
    error = caught.value
    assert (
        error.message,
        error.permanent,
        error.auth,
        error.retry_after,
        error.status,
    ) == expected


def test_a_rate_limit_reset_header_becomes_retry_after(x_fake: FakeX) -> None:
    reset = int(time.time()) + 120
    x_fake.fail_next("GET", "/2/users/1000/mentions", rate_limited(reset=reset))
    with pytest.raises(ConnectorError) as caught:
        connector.fetch_since(x_fake.account, "")
    assert caught.value.permanent is False
    assert caught.value.retry_after == pytest.approx(120, abs=3)


def test_posting_the_same_text_twice_is_refused_as_duplicate(x_fake: FakeX) -> None:
    connector.send(x_fake.account, public_reply())
    with pytest.raises(ConnectorError) as caught:
        connector.send(x_fake.account, public_reply())
    assert caught.value.permanent is True
    assert caught.value.message == (
        "You are not allowed to create a Tweet with duplicate content."
    )


# Polling


def test_polling_follows_pages_then_finds_nothing_new(x_fake: FakeX) -> None:
    x_fake.mentions[:] = [
        v2_post(
            "1793000000000000003", "@acmeair three", reply_to="1793000000000000001"
        ),
        v2_post("1793000000000000002", "@acmeair two"),
        v2_post("1793000000000000001", "@acmeair one"),
    ]
    first = connector.fetch_since(x_fake.account, "")
    assert [i.external_id for i in first.items] == [
        "1793000000000000001",
        "1793000000000000002",
        "1793000000000000003",
    ]
    assert first.cursor == "1793000000000000003"
    assert first.items[0] == InboundItem(
        platform="x",
        external_id="1793000000000000001",
        author=PAT,
        text="@acmeair one",
        created_at=datetime(2026, 8, 12, 18, 0, tzinfo=UTC),
        visibility="public",
        kind="mention",
        thread_ref="1793000000000000001",
        mentions_account=True,
        url="https://x.com/pat_flyer/status/1793000000000000001",
        language="en",
        raw=x_fake.mentions[2],
    )
    assert first.items[2].in_reply_to == "1793000000000000001"
    page_one, page_two = x_fake.server.requests
    assert page_one.path == "/2/users/1000/mentions"
    assert page_one.headers["authorization"] == "Bearer x-access-1"
    assert page_one.query == {
        "max_results": ["100"],
        "tweet.fields": [POST_FIELDS],
        "expansions": ["author_id,referenced_tweets.id"],
        "user.fields": ["username,name,public_metrics"],
    }
    assert page_two.query["pagination_token"] == ["page-2"]

    again = connector.fetch_since(x_fake.account, first.cursor)
    assert again.items == []
    assert again.cursor == "1793000000000000003"
    assert x_fake.server.requests[-1].query["since_id"] == ["1793000000000000003"]

    x_fake.mentions.insert(0, v2_post("1793000000000000004", "@acmeair four"))
    latest = connector.fetch_since(x_fake.account, again.cursor)
    assert [i.external_id for i in latest.items] == ["1793000000000000004"]
    assert latest.cursor == "1793000000000000004"


def test_polling_skips_the_brands_own_posts_but_moves_past_them(
    x_fake: FakeX,
) -> None:
    x_fake.mentions[:] = [
        v2_post("1793000000000000009", "@pat_flyer thanks", author_id="1000"),
        v2_post("1793000000000000008", "@acmeair hello"),
    ]
    result = connector.fetch_since(x_fake.account, "1793000000000000007")
    assert [i.external_id for i in result.items] == ["1793000000000000008"]
    assert result.cursor == "1793000000000000009"


def test_recent_search_finds_untagged_posts(x_fake: FakeX) -> None:
    hour_ago = NOW - timedelta(hours=1)
    first, second, third = (snowflake(hour_ago, n) for n in (20, 21, 22))
    x_fake.search_results[:] = [
        v2_post(third, "acme lost my bag again", mentions=()),
        v2_post(second, "flying acme tomorrow", mentions=()),
        v2_post(first, "acme air is late", mentions=()),
    ]
    result = connector.search_recent(
        x_fake.account, '"acme" -from:acmeair -is:retweet', first
    )
    assert [(i.external_id, i.kind, i.mentions_account) for i in result.items] == [
        (second, "post", False),
        (third, "post", False),
    ]
    assert result.cursor == third
    [request] = x_fake.server.requests
    assert request.path == "/2/tweets/search/recent"
    assert request.query["query"] == ['"acme" -from:acmeair -is:retweet']
    assert request.query["since_id"] == [first]
    assert "start_time" not in request.query


def test_a_search_cursor_older_than_the_window_is_sent_as_start_time(
    x_fake: FakeX,
) -> None:
    # X answers 400 to a since_id older than the 7 days recent search covers.
    stale = snowflake(NOW - timedelta(days=8))
    fresh = snowflake(NOW - timedelta(hours=1))
    x_fake.search_results[:] = [v2_post(fresh, "acme again", mentions=())]
    result = connector.search_recent(x_fake.account, "acme", stale)
    assert [i.external_id for i in result.items] == [fresh]
    assert result.cursor == fresh
    [request] = x_fake.server.requests
    assert request.query["start_time"] == ["2026-08-05T18:31:00Z"]
    assert "since_id" not in request.query


def test_recent_search_pages_with_next_token(x_fake: FakeX) -> None:
    x_fake.search_results[:] = [
        v2_post(f"179300000000000003{n}", f"acme {n}", mentions=()) for n in (3, 2, 1)
    ]
    result = connector.search_recent(x_fake.account, "acme", "")
    assert len(result.items) == 3
    assert x_fake.server.requests[1].query["next_token"] == ["page-2"]


# Reconciliation


def test_find_delivery_finds_a_reply_sent_before_a_crash(x_fake: FakeX) -> None:
    sent = connector.send(x_fake.account, public_reply())
    found = connector.find_delivery(x_fake.account, public_reply())
    assert found == replace(sent, sent_at=NOW.replace(microsecond=0))
    lookup = x_fake.server.requests[-1]
    assert lookup.path == "/2/users/1000/tweets"
    assert lookup.query["start_time"] == ["2026-08-10T18:30:00Z"]
    assert lookup.query["exclude"] == ["retweets"]


def test_find_delivery_matches_text_as_x_stores_it(x_fake: FakeX) -> None:
    post = v2_post(
        "1795000000000000077",
        "Sorry &amp; thanks https://t.co/x1",
        author_id="1000",
        created_at="2026-08-12T18:10:00.000Z",
        reply_to="1793338476012345601",
        mentions=(),
    )
    post["entities"] = {
        "urls": [{"url": "https://t.co/x1", "expanded_url": "https://acme.example/r"}]
    }
    x_fake.timeline.append(post)
    found = connector.find_delivery(
        x_fake.account, public_reply("Sorry & thanks https://acme.example/r")
    )
    assert found is not None
    assert found.external_id == "1795000000000000077"


def test_find_delivery_returns_none_when_absent(x_fake: FakeX) -> None:
    connector.send(x_fake.account, replace(public_reply(), in_reply_to="1"))
    assert connector.find_delivery(x_fake.account, public_reply()) is None
    assert connector.find_delivery(x_fake.account, public_reply("other")) is None


def test_find_delivery_cannot_tell_past_the_page_budget(x_fake: FakeX) -> None:
    x_fake.timeline[:] = [
        v2_post(f"17950000000000001{n:02}", f"reply {n}", author_id="1000")
        for n in range(11)
    ]
    with pytest.raises(ConnectorError) as caught:
        connector.find_delivery(x_fake.account, public_reply())
    assert caught.value.permanent is False
    assert len(x_fake.server.requests) == 5


def test_find_delivery_finds_a_dm_or_proves_its_absence(x_fake: FakeX) -> None:
    sent = connector.send(x_fake.account, private_reply())
    assert connector.find_delivery(x_fake.account, private_reply()) == replace(
        sent, sent_at=NOW.replace(microsecond=0)
    )
    assert connector.find_delivery(x_fake.account, private_reply("new")) is None
    lookup = x_fake.server.requests[-1]
    assert lookup.path == "/2/dm_conversations/with/2000/dm_events"
    assert lookup.query["event_types"] == ["MessageCreate"]


def test_find_delivery_stops_at_dms_older_than_the_window(x_fake: FakeX) -> None:
    x_fake.dm_events["2000"][:] = [
        {
            "id": f"90000000000000001{n}",
            "event_type": "MessageCreate",
            "text": "old",
            "sender_id": "1000",
            "created_at": "2026-08-01T00:00:00.000Z",
        }
        for n in range(20)
    ]
    assert connector.find_delivery(x_fake.account, private_reply()) is None
    assert len(x_fake.server.requests) == 1


# OAuth 2.0 with PKCE


def test_authorize_url_asks_for_the_helpdesk_scopes_with_pkce(
    fake_http: FakeServer,
) -> None:
    app = replace(APP, base_url=fake_http.base_url)
    url = connector.authorize_url(
        app,
        redirect_uri="https://earshot.example/connect/x/callback",
        state="state-1",
        code_challenge="challenge-1",
    )
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == fake_http.base_url
    assert parts.path == "/i/oauth2/authorize"
    assert "scope=tweet.read%20tweet.write%20users.read" in parts.query
    assert parse_qs(parts.query) == {
        "response_type": ["code"],
        "client_id": [CLIENT_ID],
        "redirect_uri": ["https://earshot.example/connect/x/callback"],
        "scope": [SCOPE],
        "state": ["state-1"],
        "code_challenge": ["challenge-1"],
        "code_challenge_method": ["S256"],
    }


def test_authorize_url_defaults_to_x_com() -> None:
    url = connector.authorize_url(
        APP, redirect_uri="https://e.example/cb", state="s", code_challenge="c"
    )
    assert url.startswith("https://x.com/i/oauth2/authorize?response_type=code&")


def test_exchange_code_sends_the_verifier_with_basic_auth(x_fake: FakeX) -> None:
    tokens = connector.exchange_code(
        x_fake.app,
        code=AUTH_CODE,
        redirect_uri="https://earshot.example/connect/x/callback",
        code_verifier="verifier-123",
    )
    assert tokens == TokenSet(
        access_token="x-access-1",
        refresh_token="x-refresh-1",
        expires_at=NOW + timedelta(hours=2),
        account_external_id="1000",
        handle="acmeair",
        display_name="Acme Air",
        extra={"scope": SCOPE},
    )
    exchange, me = x_fake.server.requests
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    assert (exchange.method, exchange.path) == ("POST", "/2/oauth2/token")
    assert exchange.headers["authorization"] == f"Basic {basic}"
    assert exchange.headers["content-type"] == "application/x-www-form-urlencoded"
    assert exchange.form() == {
        "grant_type": "authorization_code",
        "code": AUTH_CODE,
        "redirect_uri": "https://earshot.example/connect/x/callback",
        "code_verifier": "verifier-123",
        "client_id": CLIENT_ID,
    }
    assert (me.method, me.path) == ("GET", "/2/users/me")
    assert me.headers["authorization"] == "Bearer x-access-1"


def test_exchange_of_a_bad_code_fails_permanently(x_fake: FakeX) -> None:
    with pytest.raises(ConnectorError) as caught:
        connector.exchange_code(
            x_fake.app, code="nope", redirect_uri="https://e/cb", code_verifier="v"
        )
    assert caught.value.message == "Value passed for the token was invalid."
    assert caught.value.permanent is True


def test_refresh_rotates_both_tokens(x_fake: FakeX) -> None:
    tokens = connector.refresh(x_fake.app, x_fake.account)
    assert tokens == TokenSet(
        access_token="x-access-2",
        refresh_token="x-refresh-2",
        expires_at=NOW + timedelta(hours=2),
        account_external_id="1000",
        handle="acmeair",
        extra={"scope": SCOPE},
    )
    [sent] = x_fake.server.requests
    assert sent.form() == {
        "grant_type": "refresh_token",
        "refresh_token": "x-refresh-1",
        "client_id": CLIENT_ID,
    }


@pytest.mark.parametrize(
    ("credentials", "message"),
    [
        (
            {"access_token": "a", "refresh_token": "stale"},
            "X refused to refresh the token (Value passed for the token was "
            "invalid.); connect the account again.",
        ),
        (
            {"access_token": "a"},
            "The X account has no refresh token; connect it again.",
        ),
    ],
    ids=["refused", "missing"],
)
def test_a_refresh_that_cannot_work_needs_reauthorization(
    x_fake: FakeX, credentials: dict[str, str], message: str
) -> None:
    account: AccountRef = replace(x_fake.account, credentials=credentials)
    with pytest.raises(ConnectorError) as caught:
        connector.refresh(x_fake.app, account)
    assert (caught.value.message, caught.value.auth, caught.value.permanent) == (
        message,
        True,
        True,
    )
