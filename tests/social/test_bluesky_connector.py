"""The Bluesky connector against a fake PDS and chat service: parsing, polling of
notifications and the chat log, replies and direct messages, errors, app-password
sessions and delivery lookup. No database."""

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from django.utils import timezone

from social import http as social_http
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
from social.connectors.bluesky import (
    BlueskyConnector,
    parse_chat_log,
    parse_notification,
)
from tests.social.fakes_bluesky import (
    ACCESS_JWT,
    ALICE_DID,
    APP_PASSWORD,
    BOB_CONVO,
    BOB_DID,
    BRAND_DID,
    CAROL_DID,
    CHAT_PROXY,
    DAN_DID,
    HANDLE,
    REFRESH_JWT,
    REFRESHED,
    FakeBluesky,
    load,
)
from tests.social.fakeserver import FakeServer

CLIENT_REF = "9d1e4b7a-2c3f-4a5b-8c6d-7e8f9a0b1c2d"
NOW = datetime(2026, 1, 2, 3, 5, tzinfo=UTC)
P0 = f"at://{BRAND_DID}/app.bsky.feed.post/3lbrandpost22a"
A1 = f"at://{ALICE_DID}/app.bsky.feed.post/3lalicereply2a"
B2 = f"at://{BOB_DID}/app.bsky.feed.post/3lbobmention2a"
C3 = f"at://{CAROL_DID}/app.bsky.feed.post/3lcarolquote2a"
D0 = f"at://{DAN_DID}/app.bsky.feed.post/3ldanroot222a"
B1 = f"at://{BRAND_DID}/app.bsky.feed.post/3lbrandreply2a"
D2 = f"at://{DAN_DID}/app.bsky.feed.post/3ldanreply22a"
WEB = "https://bsky.app/profile"


@pytest.fixture
def bluesky(fake_http: FakeServer) -> FakeBluesky:
    return FakeBluesky(fake_http)


@pytest.fixture
def now(monkeypatch: pytest.MonkeyPatch) -> datetime:
    monkeypatch.setattr(timezone, "now", lambda: NOW)
    return NOW


def notification(uri: str) -> dict[str, Any]:
    pages = [
        load("list_notifications_page1.json"),
        load("list_notifications_page2.json"),
    ]
    return next(n for page in pages for n in page["notifications"] if n["uri"] == uri)


def post(uri: str) -> dict[str, Any]:
    return next(p for p in load("get_posts.json")["posts"] if p["uri"] == uri)


def ref(uri: str) -> dict[str, str]:
    return {"uri": uri, "cid": post(uri)["cid"]}


def cursor(newest: str, seen: list[str], chat: str) -> str:
    short = sorted(hashlib.sha256(uri.encode()).hexdigest()[:12] for uri in seen)
    return json.dumps({"n": newest, "s": short, "c": chat}, separators=(",", ":"))


def reply(**overrides: Any) -> OutboundReply:
    values: dict[str, Any] = {
        "client_ref": CLIENT_REF,
        "text": "So sorry Alice, we are refunding it today.",
        "visibility": "public",
        "in_reply_to": A1,
        "recipient_id": ALICE_DID,
    }
    return OutboundReply(**{**values, **overrides})


def test_capabilities_and_registration() -> None:
    connector = get_connector("bluesky")
    assert isinstance(connector, BlueskyConnector)
    assert connector.capabilities == Capabilities(
        public_reply=True,
        private_message=True,
        private_reply_to_public=False,
        start_private=True,
        private_reply_window=None,
        max_length=300,
        public_reply_needs_mention=False,
        webhooks=False,
        polling=True,
        streaming=False,
    )


def test_a_reply_belongs_to_its_root_and_answers_its_parent() -> None:
    data = notification(A1)
    assert parse_notification(data) == InboundItem(
        platform="bluesky",
        external_id=A1,
        author=Author(
            external_id=ALICE_DID,
            handle="alice.bsky.social",
            display_name="Alice",
            profile_url=f"{WEB}/alice.bsky.social",
        ),
        text="Still no refund for the cancelled flight",
        created_at=datetime(2026, 1, 2, 3, 4, 4, 512000, tzinfo=UTC),
        visibility="public",
        kind="comment",
        thread_ref=P0,
        in_reply_to=P0,
        mentions_account=False,
        url=f"{WEB}/alice.bsky.social/post/3lalicereply2a",
        language="en",
        raw=data,
    )


def test_a_mention_is_its_own_thread_and_mentions_the_account() -> None:
    data = notification(B2)
    assert parse_notification(data) == InboundItem(
        platform="bluesky",
        external_id=B2,
        author=Author(
            external_id=BOB_DID,
            handle="bob.example.com",
            profile_url=f"{WEB}/bob.example.com",
        ),
        text="@earshot.bsky.social my bag is lost, tag 5521",
        created_at=datetime(2026, 1, 2, 2, 59, 59, 100000, tzinfo=UTC),
        visibility="public",
        kind="mention",
        thread_ref=B2,
        mentions_account=True,
        url=f"{WEB}/bob.example.com/post/3lbobmention2a",
        language="en",
        raw=data,
    )


def test_a_quote_is_a_post_and_a_deep_reply_keeps_the_thread_root() -> None:
    quote = parse_notification(notification(C3))
    deep = parse_notification(notification(D2))
    assert (
        quote.kind,
        quote.mentions_account,
        quote.thread_ref,
        quote.in_reply_to,
        quote.text,
    ) == (
        "post",
        True,
        C3,
        "",
        "Is this why my flight was cancelled? \U0001f643",
    )
    assert (deep.kind, deep.thread_ref, deep.in_reply_to, deep.language) == (
        "comment",
        D0,
        B1,
        "de",
    )


def test_a_chat_message_is_private_in_its_conversation() -> None:
    logs = load("chat_get_log.json")["logs"]
    assert parse_chat_log(logs[1]) == InboundItem(
        platform="bluesky",
        external_id="3lmsgbob00001",
        author=Author(external_id=BOB_DID, profile_url=f"{WEB}/{BOB_DID}"),
        text="Hi, it's Bob again: bag tag 5521",
        created_at=datetime(2026, 1, 2, 3, 2, tzinfo=UTC),
        visibility="private",
        kind="direct_message",
        thread_ref=BOB_CONVO,
        raw=logs[1],
    )
    # Conversation starts, deleted messages and deletions are not messages.
    assert [parse_chat_log(logs[i]) for i in (0, 3, 4)] == [None, None, None]


def test_the_first_poll_reads_one_page_and_the_chat_log(bluesky: FakeBluesky) -> None:
    result = BlueskyConnector().fetch_since(bluesky.account(), "")
    assert [(i.external_id, i.visibility) for i in result.items] == [
        (B2, "public"),
        ("3lmsgbob00001", "private"),
        (A1, "public"),
    ]
    # Profiles fill in names, handles and follower counts.
    assert [i.author for i in result.items] == [
        Author(BOB_DID, "bob.example.com", "Bob B.", 7, f"{WEB}/bob.example.com"),
        Author(BOB_DID, "bob.example.com", "Bob B.", 7, f"{WEB}/bob.example.com"),
        Author(ALICE_DID, "alice.bsky.social", "Alice", 42, f"{WEB}/alice.bsky.social"),
    ]
    assert result.cursor == cursor("2026-01-02T03:04:05.000Z", [A1], "2222222222224")
    listed, log, profiles = bluesky.server.requests
    assert (listed.method, listed.path, listed.query) == (
        "GET",
        "/xrpc/app.bsky.notification.listNotifications",
        {"limit": ["50"], "reasons": ["mention", "reply", "quote"]},
    )
    assert listed.headers["authorization"] == f"Bearer {ACCESS_JWT}"
    assert "atproto-proxy" not in listed.headers
    assert (log.path, log.query, log.headers["atproto-proxy"]) == (
        "/xrpc/chat.bsky.convo.getLog",
        {},
        CHAT_PROXY,
    )
    assert (profiles.path, profiles.query) == (
        "/xrpc/app.bsky.actor.getProfiles",
        {"actors": [ALICE_DID, BOB_DID]},
    )


def test_polling_pages_back_to_the_cursor_then_finds_nothing_new(
    bluesky: FakeBluesky,
) -> None:
    connector = BlueskyConnector()
    start = cursor("2026-01-02T02:00:00.000Z", [], "2222222222220")
    first = connector.fetch_since(bluesky.account(), start)
    # Likes and follows are dropped; so is the account's own chat message.
    assert [i.external_id for i in first.items] == [D2, C3, B2, "3lmsgbob00001", A1]
    assert first.cursor == cursor("2026-01-02T03:04:05.000Z", [A1], "2222222222224")
    assert [
        (r.path.removeprefix("/xrpc/"), r.query) for r in bluesky.server.requests
    ] == [
        (
            "app.bsky.notification.listNotifications",
            {"limit": ["50"], "reasons": ["mention", "reply", "quote"]},
        ),
        (
            "app.bsky.notification.listNotifications",
            {
                "limit": ["50"],
                "reasons": ["mention", "reply", "quote"],
                "cursor": ["2026-01-02T02:55:00.000Z"],
            },
        ),
        ("chat.bsky.convo.getLog", {"cursor": ["2222222222220"]}),
        ("chat.bsky.convo.getLog", {"cursor": ["2222222222224"]}),
        (
            "app.bsky.actor.getProfiles",
            {"actors": [ALICE_DID, BOB_DID, CAROL_DID, DAN_DID]},
        ),
    ]

    bluesky.server.requests.clear()
    again = connector.fetch_since(bluesky.account(), first.cursor)
    assert (again.items, again.cursor) == ([], first.cursor)
    assert [r.path for r in bluesky.server.requests] == [
        "/xrpc/app.bsky.notification.listNotifications",
        "/xrpc/chat.bsky.convo.getLog",
    ]


def test_profiles_that_fail_leave_items_as_they_are(bluesky: FakeBluesky) -> None:
    bluesky.server.route(
        "GET",
        "/xrpc/app.bsky.actor.getProfiles",
        (502, {}, {"error": "UpstreamFailure", "message": "Upstream Failure"}),
    )
    result = BlueskyConnector().fetch_since(bluesky.account(), "")
    assert [i.author.followers for i in result.items] == [0, 0, 0]
    assert result.items[1].author.handle == ""


def test_a_public_reply_is_a_post_record_with_root_and_parent(
    bluesky: FakeBluesky, now: datetime
) -> None:
    result = BlueskyConnector().send(bluesky.account(), reply())
    uri = f"at://{BRAND_DID}/app.bsky.feed.post/3lnewpost0001"
    assert result == DeliveryResult(
        external_id=uri, url=f"{WEB}/{HANDLE}/post/3lnewpost0001", sent_at=now
    )
    posts, create = bluesky.server.requests
    assert (posts.method, posts.path, posts.query) == (
        "GET",
        "/xrpc/app.bsky.feed.getPosts",
        {"uris": [A1]},
    )
    assert (create.method, create.path) == (
        "POST",
        "/xrpc/com.atproto.repo.createRecord",
    )
    assert create.headers["authorization"] == f"Bearer {ACCESS_JWT}"
    assert create.json() == {
        "repo": BRAND_DID,
        "collection": "app.bsky.feed.post",
        "record": {
            "$type": "app.bsky.feed.post",
            "text": "So sorry Alice, we are refunding it today.",
            "createdAt": "2026-01-02T03:05:00.000Z",
            "reply": {"root": ref(P0), "parent": ref(A1)},
        },
    }


def test_a_reply_to_a_thread_root_uses_it_as_root_and_parent(
    bluesky: FakeBluesky,
) -> None:
    BlueskyConnector().send(bluesky.account(), reply(in_reply_to=D0))
    record = bluesky.server.requests[-1].json()["record"]
    assert record["reply"] == {"root": ref(D0), "parent": ref(D0)}


def test_a_reply_to_a_vanished_post_is_permanent(bluesky: FakeBluesky) -> None:
    gone = f"at://{ALICE_DID}/app.bsky.feed.post/3ldeleted222a"
    with pytest.raises(ConnectorError) as raised:
        BlueskyConnector().send(bluesky.account(), reply(in_reply_to=gone))
    assert (raised.value.message, raised.value.permanent) == (
        "The Bluesky post being answered no longer exists.",
        True,
    )
    assert bluesky.created == []


def test_a_rejected_record_is_permanent_with_the_pds_message(
    bluesky: FakeBluesky,
) -> None:
    with pytest.raises(ConnectorError) as raised:
        BlueskyConnector().send(bluesky.account(), reply(text="x" * 301))
    error = raised.value
    assert (error.message, error.permanent, error.auth, error.status) == (
        "Invalid app.bsky.feed.post record: Record/text must not be longer than 300 "
        "graphemes",
        True,
        False,
        400,
    )


def test_a_private_reply_goes_to_the_conversation_through_the_chat_proxy(
    bluesky: FakeBluesky,
) -> None:
    result = BlueskyConnector().send(
        bluesky.account(),
        reply(visibility="private", in_reply_to=BOB_CONVO, recipient_id=BOB_DID),
    )
    assert result == DeliveryResult(
        external_id="3lmsgnew00001", sent_at=datetime(2026, 1, 2, 3, 5, tzinfo=UTC)
    )
    [send] = bluesky.server.requests
    assert (send.method, send.path) == ("POST", "/xrpc/chat.bsky.convo.sendMessage")
    assert send.headers["atproto-proxy"] == CHAT_PROXY
    assert send.headers["authorization"] == f"Bearer {ACCESS_JWT}"
    assert send.json() == {
        "convoId": BOB_CONVO,
        "message": {"text": "So sorry Alice, we are refunding it today."},
    }


def test_a_private_reply_to_a_public_post_opens_the_conversation(
    bluesky: FakeBluesky,
) -> None:
    result = BlueskyConnector().send(
        bluesky.account(),
        reply(visibility="private", private_reply_to_public=True),
    )
    assert result.external_id == "3lmsgnew00001"
    lookup, send = bluesky.server.requests
    assert (lookup.path, lookup.query, lookup.headers["atproto-proxy"]) == (
        "/xrpc/chat.bsky.convo.getConvoForMembers",
        {"members": [ALICE_DID]},
        CHAT_PROXY,
    )
    assert send.json()["convoId"] == "3lconvonew001"


def test_a_recipient_who_refuses_messages_is_a_permanent_error(
    bluesky: FakeBluesky,
) -> None:
    with pytest.raises(ConnectorError) as raised:
        BlueskyConnector().send(
            bluesky.account(),
            reply(visibility="private", in_reply_to=C3, recipient_id=CAROL_DID),
        )
    assert (raised.value.message, raised.value.permanent) == (
        "recipient has disabled incoming messages",
        True,
    )


def test_the_fake_chat_service_refuses_calls_without_the_proxy_header(
    bluesky: FakeBluesky,
) -> None:
    with pytest.raises(ConnectorError) as raised:
        social_http.request(
            "GET",
            f"{bluesky.server.base_url}/xrpc/chat.bsky.convo.getLog",
            headers={"Authorization": f"Bearer {ACCESS_JWT}"},
        )
    assert (raised.value.status, raised.value.message) == (
        400,
        f"chat.bsky methods need atproto-proxy: {CHAT_PROXY}",
    )


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (401, ("Authentication Required", True, True, None)),
        # ratelimit-reset is 90 seconds after now.
        (429, ("Rate Limit Exceeded", False, False, 90.0)),
        (502, ("Upstream Failure", False, False, None)),
        (400, ("Input/uris must be a valid at-uri", True, False, None)),
    ],
)
def test_http_errors_map_to_connector_errors(
    bluesky: FakeBluesky,
    now: datetime,
    status: int,
    expected: tuple[str, bool, bool, float | None],
) -> None:
    bluesky.fail(status)
    with pytest.raises(ConnectorError) as raised:
        BlueskyConnector().fetch_since(bluesky.account(), "")
    error = raised.value
    assert (error.message, error.permanent, error.auth, error.retry_after) == expected
    assert error.status == status


def test_an_expired_access_token_is_an_auth_error(bluesky: FakeBluesky) -> None:
    bluesky.expire_access()
    with pytest.raises(ConnectorError) as raised:
        BlueskyConnector().fetch_since(bluesky.account(), "")
    error = raised.value
    assert (error.message, error.status, error.auth, error.permanent) == (
        "Token has expired",
        400,
        True,
        True,
    )


def test_create_session_logs_in_with_the_app_password(bluesky: FakeBluesky) -> None:
    tokens = BlueskyConnector().create_session(
        HANDLE, APP_PASSWORD, bluesky.server.base_url
    )
    assert tokens == TokenSet(
        access_token=ACCESS_JWT,
        refresh_token=REFRESH_JWT,
        expires_at=datetime(2026, 1, 2, 5, 4, 5, tzinfo=UTC),
        account_external_id=BRAND_DID,
        handle=HANDLE,
    )
    [request] = bluesky.server.requests
    assert (request.method, request.path) == (
        "POST",
        "/xrpc/com.atproto.server.createSession",
    )
    assert request.json() == {"identifier": HANDLE, "password": APP_PASSWORD}
    assert "authorization" not in request.headers


def test_a_wrong_app_password_is_an_auth_error(bluesky: FakeBluesky) -> None:
    with pytest.raises(ConnectorError) as raised:
        BlueskyConnector().create_session(HANDLE, "wrong", bluesky.server.base_url)
    assert (raised.value.message, raised.value.auth) == (
        "Invalid identifier or password",
        True,
    )


def test_sessions_default_to_bsky_social(bluesky: FakeBluesky) -> None:
    with pytest.raises(social_http.OutboundBlocked, match=r"bsky\.social"):
        BlueskyConnector().create_session(HANDLE, APP_PASSWORD)


def test_there_is_no_oauth_redirect() -> None:
    connector = BlueskyConnector()
    with pytest.raises(NotImplementedError, match="app password"):
        connector.authorize_url(
            AppSecrets(),
            redirect_uri="https://e.example/",
            state="s",
            code_challenge="c",
        )
    with pytest.raises(NotImplementedError, match="app password"):
        connector.exchange_code(
            AppSecrets(), code="c", redirect_uri="https://e.example/", code_verifier="v"
        )


def test_refresh_uses_the_refresh_token_as_bearer(bluesky: FakeBluesky) -> None:
    tokens = BlueskyConnector().refresh(AppSecrets(), bluesky.account())
    assert tokens == TokenSet(
        access_token=REFRESHED["accessJwt"],
        refresh_token=REFRESHED["refreshJwt"],
        expires_at=datetime(2026, 1, 2, 7, 0, tzinfo=UTC),
        account_external_id=BRAND_DID,
        handle=HANDLE,
    )
    [request] = bluesky.server.requests
    assert (request.method, request.path) == (
        "POST",
        "/xrpc/com.atproto.server.refreshSession",
    )
    assert request.headers["authorization"] == f"Bearer {REFRESH_JWT}"


def test_an_expired_refresh_token_is_an_auth_error(bluesky: FakeBluesky) -> None:
    bluesky.expire_refresh()
    with pytest.raises(ConnectorError) as raised:
        BlueskyConnector().refresh(AppSecrets(), bluesky.account())
    assert (raised.value.message, raised.value.auth, raised.value.permanent) == (
        "Token has expired",
        True,
        True,
    )


def test_find_delivery_finds_a_public_reply_in_the_author_feed(
    bluesky: FakeBluesky,
) -> None:
    found = BlueskyConnector().find_delivery(
        bluesky.account(),
        reply(
            in_reply_to=D0,
            text="Sorry Dan! You can rebook here: earshot.example/rebook",
        ),
    )
    assert found == DeliveryResult(
        external_id=B1,
        url=f"{WEB}/{HANDLE}/post/3lbrandreply2a",
        sent_at=datetime(2026, 1, 2, 2, 30, tzinfo=UTC),
    )
    [request] = bluesky.server.requests
    assert (request.path, request.query) == (
        "/xrpc/app.bsky.feed.getAuthorFeed",
        {"actor": [BRAND_DID], "filter": ["posts_with_replies"], "limit": ["30"]},
    )


def test_find_delivery_is_none_when_the_reply_never_arrived(
    bluesky: FakeBluesky,
) -> None:
    assert BlueskyConnector().find_delivery(bluesky.account(), reply()) is None


def test_find_delivery_finds_a_sent_direct_message(bluesky: FakeBluesky) -> None:
    private = reply(
        visibility="private", in_reply_to=BOB_CONVO, text="Thanks Bob, checking now."
    )
    found = BlueskyConnector().find_delivery(bluesky.account(), private)
    assert found == DeliveryResult(
        external_id="3lmsgbrand001", sent_at=datetime(2026, 1, 2, 3, 3, tzinfo=UTC)
    )
    [request] = bluesky.server.requests
    assert (request.path, request.query, request.headers["atproto-proxy"]) == (
        "/xrpc/chat.bsky.convo.getMessages",
        {"convoId": [BOB_CONVO], "limit": ["30"]},
        CHAT_PROXY,
    )
    missing = reply(visibility="private", in_reply_to=BOB_CONVO, text="Never sent")
    assert BlueskyConnector().find_delivery(bluesky.account(), missing) is None
