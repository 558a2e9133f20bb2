"""The Reddit connector against a fake Reddit: parsing, polling, replies, errors,
the OAuth connect flow and delivery lookup. No database."""

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from social.connectors import get_connector
from social.connectors.base import (
    AppSecrets,
    Author,
    Capabilities,
    ConnectorError,
    DeliveryResult,
    InboundItem,
    OutboundReply,
    TokenSet,
)
from social.connectors.reddit import RedditConnector, parse_message, parse_submission
from tests.social.fakes_reddit import (
    ACCESS_TOKEN,
    CLIENT_ID,
    CLIENT_SECRET,
    CODE,
    REDIRECT_URI,
    REFRESH_TOKEN,
    REFRESHED_TOKEN,
    SCOPE,
    UNKNOWN_USER,
    FakeReddit,
    children,
    load,
)
from tests.social.fakeserver import FakeServer

WEB = "https://www.reddit.com"
SENT_AT = datetime(2026, 1, 2, 3, 5, tzinfo=UTC)
CLIENT_REF = "0b6c1f3e-5d2a-4c59-9d7e-2f1a7b3c4d5e"


@pytest.fixture
def reddit(fake_http: FakeServer) -> FakeReddit:
    return FakeReddit(fake_http)


def thing(fixture: str, index: int) -> dict[str, Any]:
    child = load(fixture)["data"]["children"][index]
    return {**child["data"], "kind": child["kind"]}


def reply(**overrides: Any) -> OutboundReply:
    values: dict[str, Any] = {
        "client_ref": CLIENT_REF,
        "text": "Sorry about that! Could you send us the order number?",
        "visibility": "public",
        "in_reply_to": "t1_lmn0002",
        "recipient_id": "cust_alice",
    }
    return OutboundReply(**{**values, **overrides})


def ids(items: list[InboundItem]) -> list[str]:
    return [item.external_id for item in items]


def author(name: str) -> Author:
    return Author(external_id=name, handle=name, profile_url=f"{WEB}/user/{name}")


def test_capabilities_and_registration() -> None:
    connector = get_connector("reddit")
    assert isinstance(connector, RedditConnector)
    assert connector.capabilities == Capabilities(
        public_reply=True,
        private_message=True,
        private_reply_to_public=False,
        start_private=True,
        private_reply_window=None,
        max_length=10000,
        public_reply_needs_mention=False,
        webhooks=False,
        polling=True,
        streaming=False,
    )
    assert connector.keyword_search is True


def test_a_username_mention_is_a_public_mention_in_its_post() -> None:
    data = thing("inbox_page1.json", 0)
    assert parse_message(data) == InboundItem(
        platform="reddit",
        external_id="t1_lmn0002",
        author=author("cust_alice"),
        text="u/earshot_brand my parcel is late & the tracking page says <nothing>",
        created_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        visibility="public",
        kind="mention",
        thread_ref="t3_1hx9abc",
        in_reply_to="t3_1hx9abc",
        mentions_account=True,
        url=f"{WEB}/r/CustomerService/comments/1hx9abc/"
        "late_parcel_no_answer_from_support/lmn0002/?context=3",
        raw=data,
    )


def test_a_comment_reply_is_a_public_comment_under_the_brands_comment() -> None:
    data = thing("inbox_page2.json", 0)
    assert parse_message(data) == InboundItem(
        platform="reddit",
        external_id="t1_lmn0001",
        author=author("cust_carol"),
        text="That did not help, the refund never arrived.",
        created_at=datetime(2026, 1, 2, 2, 50, tzinfo=UTC),
        visibility="public",
        kind="comment",
        thread_ref="t3_1hw2xyz",
        in_reply_to="t1_brand01",
        mentions_account=False,
        url=f"{WEB}/r/CustomerService/comments/1hw2xyz/refund_still_missing/"
        "lmn0001/?context=3",
        raw=data,
    )


def test_a_mention_listing_item_takes_its_post_from_the_context() -> None:
    data = thing("mentions.json", 1)
    item = parse_message(data)
    assert (item.external_id, item.kind, item.thread_ref, item.in_reply_to) == (
        "t1_lmn0000",
        "mention",
        "t3_1hv7qrs",
        "t1_kq11zz0",
    )
    assert parse_message({**data, "link_id": "t3_explicit"}).thread_ref == (
        "t3_explicit"
    )


def test_a_private_message_reply_belongs_to_its_first_message() -> None:
    data = thing("inbox_page1.json", 1)
    assert parse_message(data) == InboundItem(
        platform="reddit",
        external_id="t4_2r17c9a",
        author=author("cust_bob"),
        text="Thanks, the order number is 1234.",
        created_at=datetime(2026, 1, 2, 3, 0, tzinfo=UTC),
        visibility="private",
        kind="direct_message",
        thread_ref="t4_2r17c8r",
        in_reply_to="t4_2r17c8s",
        mentions_account=False,
        url=f"{WEB}/message/messages/2r17c9a",
        raw=data,
    )


def test_a_first_private_message_is_its_own_thread() -> None:
    data = thing("inbox_page2.json", 1)
    assert parse_message(data) == InboundItem(
        platform="reddit",
        external_id="t4_2r17c8r",
        author=author("cust_bob"),
        text="hi, my order never shipped",
        created_at=datetime(2026, 1, 2, 2, 40, tzinfo=UTC),
        visibility="private",
        kind="direct_message",
        thread_ref="t4_2r17c8r",
        in_reply_to="",
        url=f"{WEB}/message/messages/2r17c8r",
        raw=data,
    )


def test_a_submission_is_a_public_post() -> None:
    data = thing("search.json", 0)
    assert parse_submission(data) == InboundItem(
        platform="reddit",
        external_id="t3_1hx9zzz",
        author=author("erin_flies"),
        text="Earshot Air lost my bag\n\n"
        "Ordered from Earshot Air two weeks ago, still nothing.",
        created_at=datetime(2026, 1, 2, 3, 0, tzinfo=UTC),
        visibility="public",
        kind="post",
        thread_ref="t3_1hx9zzz",
        url=f"{WEB}/r/CustomerService/comments/1hx9zzz/earshot_air_lost_my_bag/",
        raw=data,
    )


def test_the_first_poll_reads_one_page_of_inbox_and_mentions(
    reddit: FakeReddit,
) -> None:
    result = RedditConnector().fetch_since(reddit.account(), "")
    assert ids(result.items) == ["t1_lmn0000", "t4_2r17c9a", "t1_lmn0002"]
    assert result.cursor == "1767323045:t1_lmn0002"
    requests = reddit.server.requests
    assert [(r.method, r.path, r.query) for r in requests] == [
        ("GET", "/message/inbox", {"raw_json": ["1"], "limit": ["100"]}),
        ("GET", "/message/mentions", {"raw_json": ["1"], "limit": ["100"]}),
    ]
    assert requests[0].headers["authorization"] == f"bearer {ACCESS_TOKEN}"
    assert requests[0].headers["user-agent"].startswith("Earshot/")


def test_polling_pages_back_to_the_cursor_then_finds_nothing_new(
    reddit: FakeReddit,
) -> None:
    connector = RedditConnector()
    first = connector.fetch_since(reddit.account(), "1767320000:")
    # Oldest first; the mention listed twice comes once; subreddit mail is skipped.
    assert ids(first.items) == [
        "t1_lmn0000",
        "t4_2r17c8r",
        "t1_lmn0001",
        "t4_2r17c9a",
        "t1_lmn0002",
    ]
    assert first.cursor == "1767323045:t1_lmn0002"
    assert [(r.path, r.query.get("after")) for r in reddit.server.requests] == [
        ("/message/inbox", None),
        ("/message/inbox", ["t4_2r17c9a"]),
        ("/message/mentions", None),
    ]

    reddit.server.requests.clear()
    again = connector.fetch_since(reddit.account(), first.cursor)
    assert again.items == []
    assert again.cursor == first.cursor
    assert [r.path for r in reddit.server.requests] == [
        "/message/inbox",
        "/message/mentions",
    ]


def test_polling_skips_the_accounts_own_messages_but_moves_past_them(
    reddit: FakeReddit,
) -> None:
    own = {
        **load("sent.json")["data"]["children"][0]["data"],
        "name": "t4_own0001",
        "id": "own0001",
        "created_utc": 1767323999.0,
    }
    reddit.inbox_pages[""]["data"]["children"].insert(0, {"kind": "t4", "data": own})
    result = RedditConnector().fetch_since(reddit.account(), "1767323045:t1_lmn0002")
    assert result.items == []
    assert result.cursor == "1767323999:t4_own0001"


def test_polling_stops_when_the_rate_limit_window_is_spent(
    reddit: FakeReddit,
) -> None:
    reddit.ratelimit["x-ratelimit-remaining"] = "0.0"
    reddit.ratelimit["x-ratelimit-reset"] = "37"
    with pytest.raises(ConnectorError) as raised:
        RedditConnector().fetch_since(reddit.account(), "")
    error = raised.value
    assert (error.permanent, error.auth, error.retry_after, error.status) == (
        False,
        False,
        37.0,
        429,
    )
    assert [r.path for r in reddit.server.requests] == ["/message/inbox"]


def test_search_returns_posts_newer_than_the_cursor(reddit: FakeReddit) -> None:
    result = RedditConnector().search_submissions(
        reddit.account(), "Earshot Air", "1767322000:"
    )
    assert ids(result.items) == ["t3_1hx9zzz"]
    assert result.cursor == "1767322800:t3_1hx9zzz"
    request = reddit.server.requests[0]
    assert (request.method, request.path, request.query) == (
        "GET",
        "/search",
        {
            "raw_json": ["1"],
            "q": ["Earshot Air"],
            "sort": ["new"],
            "type": ["link"],
            "limit": ["100"],
        },
    )


def test_a_public_reply_is_a_comment_on_the_answered_thing(
    reddit: FakeReddit,
) -> None:
    result = RedditConnector().send(reddit.account(), reply())
    assert result == DeliveryResult(
        external_id="t1_lmn0100",
        url=f"{WEB}/r/CustomerService/comments/1hx9abc/late_parcel/lmn0100/",
        sent_at=SENT_AT,
    )
    [request] = reddit.server.requests
    assert (request.method, request.path) == ("POST", "/api/comment")
    assert request.headers["authorization"] == f"bearer {ACCESS_TOKEN}"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.form() == {
        "api_type": "json",
        "thing_id": "t1_lmn0002",
        "text": "Sorry about that! Could you send us the order number?",
    }


def test_a_private_reply_in_a_thread_answers_the_thread(reddit: FakeReddit) -> None:
    result = RedditConnector().send(
        reddit.account(),
        reply(
            visibility="private",
            in_reply_to="t4_2r17c8r",
            recipient_id="cust_bob",
            text="Thanks Bob, it ships today.",
        ),
    )
    assert result == DeliveryResult(
        external_id="t4_2r17d100",
        url=f"{WEB}/message/messages/2r17d100",
        sent_at=SENT_AT,
    )
    [request] = reddit.server.requests
    assert (request.path, request.form()) == (
        "/api/comment",
        {
            "api_type": "json",
            "thing_id": "t4_2r17c8r",
            "text": "Thanks Bob, it ships today.",
        },
    )
    assert reddit.sent[-1]["first_message_name"] == "t4_2r17c8r"


@pytest.mark.parametrize(
    ("in_reply_to", "subject"),
    [
        ("t1_lmn0002", "Re: your comment"),
        ("t3_1hx9abc", "Re: your post"),
        ("", "Message from earshot_brand"),
    ],
)
def test_a_new_private_message_is_composed_then_found_in_the_sent_box(
    reddit: FakeReddit, in_reply_to: str, subject: str
) -> None:
    result = RedditConnector().send(
        reddit.account(),
        reply(
            visibility="private",
            in_reply_to=in_reply_to,
            private_reply_to_public=bool(in_reply_to),
            text="Hi Alice, we can sort this out here.",
        ),
    )
    assert result == DeliveryResult(
        external_id="t4_2r17d100",
        url=f"{WEB}/message/messages/2r17d100",
        sent_at=SENT_AT,
    )
    compose, lookup = reddit.server.requests
    assert (compose.method, compose.path, compose.form()) == (
        "POST",
        "/api/compose",
        {
            "api_type": "json",
            "to": "cust_alice",
            "subject": subject,
            "text": "Hi Alice, we can sort this out here.",
        },
    )
    assert (lookup.method, lookup.path) == ("GET", "/message/sent")


def test_compose_errors_are_permanent_with_reddits_message(
    reddit: FakeReddit,
) -> None:
    with pytest.raises(ConnectorError) as raised:
        RedditConnector().send(
            reddit.account(),
            reply(visibility="private", in_reply_to="", recipient_id=UNKNOWN_USER),
        )
    error = raised.value
    assert (error.message, error.permanent, error.auth, error.retry_after) == (
        "USER_DOESNT_EXIST: that user doesn't exist (to)",
        True,
        False,
        None,
    )
    assert [r.path for r in reddit.server.requests] == ["/api/compose"]
    assert reddit.sent == children(load("sent.json"))


def test_reddits_ratelimit_envelope_is_retried_after_its_wait(
    reddit: FakeReddit,
) -> None:
    reddit.comment_refusal = load("comment_ratelimit.json")
    with pytest.raises(ConnectorError) as raised:
        RedditConnector().send(reddit.account(), reply())
    error = raised.value
    assert (error.message, error.permanent, error.retry_after, error.status) == (
        "RATELIMIT: Looks like you've been doing that a lot. Take a break for 8 "
        "minutes before trying again. (ratelimit)",
        False,
        493.6,
        429,
    )


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (401, ("Unauthorized", True, True, None)),
        (429, ("Too Many Requests", False, False, 42.0)),
        (503, ("Service Unavailable", False, False, None)),
        (403, ("Forbidden", True, False, None)),
    ],
)
def test_http_errors_map_to_connector_errors(
    reddit: FakeReddit,
    status: int,
    expected: tuple[str, bool, bool, float | None],
) -> None:
    reddit.fail(status)
    with pytest.raises(ConnectorError) as raised:
        RedditConnector().send(reddit.account(), reply())
    error = raised.value
    assert (error.message, error.permanent, error.auth, error.retry_after) == expected
    assert error.status == status


def test_the_authorize_url_asks_for_a_permanent_grant_and_ignores_pkce() -> None:
    url = RedditConnector().authorize_url(
        AppSecrets(client_id=CLIENT_ID, client_secret=CLIENT_SECRET),
        redirect_uri=REDIRECT_URI,
        state="st4te",
        code_challenge="not-used-by-reddit",
    )
    assert url == (
        "https://www.reddit.com/api/v1/authorize?client_id=earshot-reddit-app"
        "&response_type=code&state=st4te"
        "&redirect_uri=https%3A%2F%2Fearshot.example%2Ft%2Facme%2Fsocial%2Fconnect"
        "%2Freddit%2Fcomplete%2F&duration=permanent"
        "&scope=identity+read+privatemessages+submit+history"
    )


def test_the_code_is_exchanged_with_basic_auth_then_the_account_is_read(
    reddit: FakeReddit, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    monkeypatch.setattr(timezone, "now", lambda: now)
    tokens = RedditConnector().exchange_code(
        reddit.app(), code=CODE, redirect_uri=REDIRECT_URI, code_verifier="ignored"
    )
    assert tokens == TokenSet(
        access_token=ACCESS_TOKEN,
        refresh_token=REFRESH_TOKEN,
        expires_at=now + timedelta(days=1),
        account_external_id="t2_1w72abc",
        handle="earshot_brand",
        extra={"scope": SCOPE},
    )
    token, me = reddit.server.requests
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    assert (token.method, token.path) == ("POST", "/api/v1/access_token")
    assert token.headers["authorization"] == f"Basic {basic}"
    assert token.headers["user-agent"].startswith("Earshot/")
    assert token.form() == {
        "grant_type": "authorization_code",
        "code": CODE,
        "redirect_uri": REDIRECT_URI,
    }
    assert (me.method, me.path) == ("GET", "/api/v1/me")
    assert me.headers["authorization"] == f"bearer {ACCESS_TOKEN}"


def test_a_refused_code_is_an_auth_error(reddit: FakeReddit) -> None:
    with pytest.raises(ConnectorError) as raised:
        RedditConnector().exchange_code(
            reddit.app(), code="stale", redirect_uri=REDIRECT_URI, code_verifier=""
        )
    assert (raised.value.message, raised.value.auth, raised.value.permanent) == (
        "Reddit refused the grant: invalid_grant",
        True,
        True,
    )
    assert len(reddit.server.requests) == 1


def test_a_wrong_client_secret_is_an_auth_error(reddit: FakeReddit) -> None:
    app = AppSecrets(
        client_id=CLIENT_ID, client_secret="wrong", base_url=reddit.server.base_url
    )
    with pytest.raises(ConnectorError) as raised:
        RedditConnector().exchange_code(
            app, code=CODE, redirect_uri=REDIRECT_URI, code_verifier=""
        )
    assert (raised.value.status, raised.value.auth) == (401, True)


def test_refresh_keeps_the_refresh_token_when_reddit_sends_none(
    reddit: FakeReddit, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = datetime(2026, 1, 3, 3, 4, 5, tzinfo=UTC)
    monkeypatch.setattr(timezone, "now", lambda: now)
    tokens = RedditConnector().refresh(reddit.app(), reddit.account())
    assert tokens == TokenSet(
        access_token=REFRESHED_TOKEN,
        refresh_token=REFRESH_TOKEN,
        expires_at=now + timedelta(days=1),
        account_external_id="t2_1w72abc",
        handle="earshot_brand",
        extra={"scope": SCOPE},
    )
    [request] = reddit.server.requests
    assert request.form() == {
        "grant_type": "refresh_token",
        "refresh_token": REFRESH_TOKEN,
    }


def test_a_revoked_refresh_token_is_an_auth_error(reddit: FakeReddit) -> None:
    account = reddit.account(credentials={"refresh_token": "revoked"})
    with pytest.raises(ConnectorError) as raised:
        RedditConnector().refresh(reddit.app(), account)
    assert (raised.value.auth, raised.value.permanent) == (True, True)


def test_find_delivery_finds_a_public_reply_among_the_accounts_comments(
    reddit: FakeReddit,
) -> None:
    found = RedditConnector().find_delivery(
        reddit.account(),
        reply(
            in_reply_to="t3_1hw2xyz",
            text="We have refunded the order, it can take 5 days.",
        ),
    )
    assert found == DeliveryResult(
        external_id="t1_brand01",
        url=f"{WEB}/r/CustomerService/comments/1hw2xyz/refund_still_missing/brand01/",
        sent_at=datetime(2026, 1, 2, 2, 30, tzinfo=UTC),
    )
    [request] = reddit.server.requests
    assert (request.method, request.path, request.query) == (
        "GET",
        "/user/earshot_brand/comments",
        {"raw_json": ["1"], "sort": ["new"], "limit": ["25"]},
    )


def test_find_delivery_is_none_when_the_comment_never_arrived(
    reddit: FakeReddit,
) -> None:
    assert RedditConnector().find_delivery(reddit.account(), reply()) is None


def test_find_delivery_finds_a_sent_private_message(reddit: FakeReddit) -> None:
    private = reply(
        visibility="private",
        in_reply_to="t4_2r17c8r",
        recipient_id="cust_bob",
        text="Hi Bob, could you send us the order number?",
    )
    found = RedditConnector().find_delivery(reddit.account(), private)
    assert found == DeliveryResult(
        external_id="t4_2r17c8s",
        url=f"{WEB}/message/messages/2r17c8s",
        sent_at=datetime(2026, 1, 2, 2, 50, tzinfo=UTC),
    )
    assert [r.path for r in reddit.server.requests] == ["/message/sent"]
    other = reply(
        visibility="private",
        in_reply_to="t4_2r17c8r",
        recipient_id="cust_bob",
        text="Something we never sent",
    )
    assert RedditConnector().find_delivery(reddit.account(), other) is None
