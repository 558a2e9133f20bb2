"""The Mastodon connector against a fake instance: parsing (REST and streaming),
polling, replies with Idempotency-Key, errors, app registration and the PKCE connect
flow, and delivery lookup. No database."""

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus

import pytest
from django.test import override_settings
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
from social.connectors.mastodon import (
    MastodonConnector,
    html_to_text,
    normalise_instance,
    parse_notification,
    with_mention,
)
from tests.social.fakes_mastodon import (
    ACCESS_TOKEN,
    CODE,
    CODE_VERIFIER,
    FIXTURES,
    LOOPBACK_INSTANCE,
    REDIRECT_URI,
    SCOPES,
    FakeMastodon,
    challenge_for,
    load,
)
from tests.social.fakeserver import FakeServer

CLIENT_REF = "5f0c2a8e-7d4b-4e1a-9c3f-1a2b3c4d5e6f"
SENT_AT = datetime(2026, 1, 2, 3, 5, tzinfo=UTC)
ALICE = Author(
    external_id="7",
    handle="alice@example.social",
    display_name="Alice",
    followers=42,
    profile_url="https://example.social/@alice",
)


@pytest.fixture
def mastodon(fake_http: FakeServer) -> Iterator[FakeMastodon]:
    with override_settings(**LOOPBACK_INSTANCE):
        yield FakeMastodon(fake_http)


def notification(status_id: str) -> dict[str, Any]:
    return next(n for n in load("notifications.json") if n["status"]["id"] == status_id)


def reply(**overrides: Any) -> OutboundReply:
    values: dict[str, Any] = {
        "client_ref": CLIENT_REF,
        "text": "Sorry to hear that! Could you DM us the order number?",
        "visibility": "public",
        "in_reply_to": "1102",
        "recipient_id": "7",
    }
    return OutboundReply(**{**values, **overrides})


def test_capabilities_and_registration() -> None:
    connector = get_connector("mastodon")
    assert isinstance(connector, MastodonConnector)
    assert connector.capabilities == Capabilities(
        public_reply=True,
        private_message=True,
        private_reply_to_public=False,
        start_private=True,
        private_reply_window=None,
        max_length=500,
        public_reply_needs_mention=False,
        webhooks=False,
        polling=True,
        streaming=True,
    )


def test_a_direct_mention_is_a_private_message() -> None:
    data = notification("1103")
    assert parse_notification(data) == InboundItem(
        platform="mastodon",
        external_id="1103",
        author=Author(
            external_id="8",
            handle="bob@other.example",
            display_name="Bob",
            followers=7,
            profile_url="https://other.example/@bob",
        ),
        text="@brand my order 1234 is late",
        created_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        visibility="private",
        kind="direct_message",
        thread_ref="1103",
        in_reply_to="",
        mentions_account=True,
        url="https://other.example/@bob/113000000000001103",
        language="en",
        raw=data,
    )


def test_a_public_mention_becomes_plain_text_from_its_html() -> None:
    data = notification("1102")
    assert parse_notification(data) == InboundItem(
        platform="mastodon",
        external_id="1102",
        author=ALICE,
        text="@brand still nothing & the link https://track.example/parcel/123456789"
        " is dead\n\nsecond line\nthird line",
        created_at=datetime(2026, 1, 2, 3, 0, tzinfo=UTC),
        visibility="public",
        kind="mention",
        thread_ref="1101",
        in_reply_to="1101",
        mentions_account=True,
        url="https://example.social/@alice/113000000000001102",
        language="en",
        raw=data,
    )


def test_unlisted_is_public_and_a_content_warning_leads_the_text() -> None:
    unlisted = parse_notification(notification("1100"))
    warned = parse_notification(notification("1099"))
    assert unlisted is not None
    assert warned is not None
    assert (unlisted.visibility, unlisted.kind, unlisted.thread_ref) == (
        "public",
        "mention",
        "1100",
    )
    assert warned.text == "CW: airline rant\n\n@dan same here, @brand lost my bag too"
    assert (warned.language, warned.author.display_name, warned.author.followers) == (
        "de",
        "Carol :verified:",
        1200,
    )


def test_other_notification_types_are_not_items() -> None:
    favourite = {**notification("1102"), "type": "favourite"}
    follow = {"id": "1", "type": "follow", "account": notification("1102")["account"]}
    assert parse_notification(favourite) is None
    assert parse_notification(follow) is None


def test_html_to_text_keeps_paragraphs_and_decodes_entities() -> None:
    assert html_to_text("<p>a &lt;b&gt; &quot;c&quot;</p><p>d<br>e</p>") == (
        'a <b> "c"\n\nd\ne'
    )


def test_the_stream_yields_mentions_and_skips_heartbeats_and_other_events() -> None:
    lines = (FIXTURES / "stream.txt").read_text().splitlines(keepends=True)
    first, second = MastodonConnector().parse_sse(lines)
    frames = [n for n in _stream_frames(lines) if n.get("type") == "mention"]
    alice = Author(
        external_id="7",
        handle="alice@example.social",
        display_name="Alice",
        followers=42,
    )
    assert first == InboundItem(
        platform="mastodon",
        external_id="1104",
        author=alice,
        text="@brand my order is late",
        created_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        visibility="private",
        kind="direct_message",
        thread_ref="1104",
        mentions_account=True,
        raw=frames[0],
    )
    assert second == InboundItem(
        platform="mastodon",
        external_id="1106",
        author=replace(alice, profile_url=ALICE.profile_url),
        text="@brand order 1234, thanks",
        created_at=datetime(2026, 1, 2, 3, 6, tzinfo=UTC),
        visibility="private",
        kind="direct_message",
        thread_ref="1104",
        in_reply_to="1104",
        mentions_account=True,
        url="https://example.social/@alice/1106",
        language="en",
        raw=frames[1],
    )


def _stream_frames(lines: list[str]) -> list[dict[str, Any]]:
    return [
        json.loads(line.removeprefix("data: "))
        for line in lines
        if line.startswith("data: {")
    ]


def test_the_first_poll_reads_one_page_and_finds_thread_roots(
    mastodon: FakeMastodon,
) -> None:
    mastodon.page_size = 2
    result = MastodonConnector().fetch_since(mastodon.account(), "")
    assert [(i.external_id, i.thread_ref) for i in result.items] == [
        ("1102", "1100"),
        ("1103", "1103"),
    ]
    assert result.cursor == "903"
    notifications, context = mastodon.server.requests
    assert (notifications.method, notifications.path, notifications.query) == (
        "GET",
        "/api/v1/notifications",
        {"types[]": ["mention"], "limit": ["40"]},
    )
    assert notifications.headers["authorization"] == f"Bearer {ACCESS_TOKEN}"
    assert (context.method, context.path) == ("GET", "/api/v1/statuses/1101/context")


def test_polling_follows_link_pages_to_the_cursor_then_finds_nothing_new(
    mastodon: FakeMastodon,
) -> None:
    mastodon.page_size = 2
    connector = MastodonConnector()
    first = connector.fetch_since(mastodon.account(), "898")
    assert [(i.external_id, i.thread_ref) for i in first.items] == [
        ("1099", "1097"),
        ("1100", "1100"),
        ("1102", "1100"),
        ("1103", "1103"),
    ]
    assert first.cursor == "903"
    mention = {"types[]": ["mention"]}
    assert [(r.path, r.query) for r in mastodon.server.requests] == [
        ("/api/v1/notifications", {**mention, "limit": ["40"], "since_id": ["898"]}),
        (
            "/api/v1/notifications",
            {"max_id": ["902"], **mention, "limit": ["2"], "since_id": ["898"]},
        ),
        (
            "/api/v1/notifications",
            {"max_id": ["899"], **mention, "limit": ["2"], "since_id": ["898"]},
        ),
        ("/api/v1/statuses/1098/context", {}),
        ("/api/v1/statuses/1101/context", {}),
    ]

    mastodon.server.requests.clear()
    again = connector.fetch_since(mastodon.account(), first.cursor)
    assert (again.items, again.cursor) == ([], "903")
    assert len(mastodon.server.requests) == 1


def test_a_reply_to_a_vanished_status_keeps_its_parent_as_the_root(
    mastodon: FakeMastodon,
) -> None:
    item = parse_notification(
        {
            **notification("1102"),
            "status": {**notification("1102")["status"], "in_reply_to_id": "5555"},
        }
    )
    assert item is not None
    [resolved] = MastodonConnector().resolve_threads(mastodon.account(), [item])
    assert (resolved.thread_ref, resolved.in_reply_to) == ("5555", "5555")


def test_a_public_reply_is_an_unlisted_status_addressed_to_the_customer(
    mastodon: FakeMastodon,
) -> None:
    result = MastodonConnector().send(mastodon.account(), reply())
    assert result == DeliveryResult(
        external_id="1200", url="https://social.example/@brand/1200", sent_at=SENT_AT
    )
    lookup, post = mastodon.server.requests
    assert (lookup.method, lookup.path) == ("GET", "/api/v1/statuses/1102")
    assert (post.method, post.path) == ("POST", "/api/v1/statuses")
    assert post.headers["authorization"] == f"Bearer {ACCESS_TOKEN}"
    assert post.headers["idempotency-key"] == CLIENT_REF
    assert post.json() == {
        "status": "@alice@example.social Sorry to hear that! Could you DM us the "
        "order number?",
        "visibility": "unlisted",
        "in_reply_to_id": "1102",
    }


def test_a_reply_to_a_followers_only_post_stays_followers_only(
    mastodon: FakeMastodon,
) -> None:
    mastodon.statuses["1102"]["visibility"] = "private"
    MastodonConnector().send(mastodon.account(), reply())
    assert mastodon.server.requests[-1].json()["visibility"] == "private"


def test_a_private_reply_is_a_direct_status_in_the_thread(
    mastodon: FakeMastodon,
) -> None:
    result = MastodonConnector().send(
        mastodon.account(),
        reply(visibility="private", in_reply_to="1103", recipient_id="8", text="Hi"),
    )
    assert result.external_id == "1200"
    assert mastodon.server.requests[-1].json() == {
        "status": "@bob@other.example Hi",
        "visibility": "direct",
        "in_reply_to_id": "1103",
    }
    assert mastodon.created[0]["visibility"] == "direct"


def test_a_new_private_message_looks_the_recipient_up(
    mastodon: FakeMastodon,
) -> None:
    MastodonConnector().send(
        mastodon.account(),
        reply(visibility="private", in_reply_to="", recipient_id="8", text="Hi Bob"),
    )
    lookup, post = mastodon.server.requests
    assert (lookup.method, lookup.path) == ("GET", "/api/v1/accounts/8")
    assert post.json() == {
        "status": "@bob@other.example Hi Bob",
        "visibility": "direct",
    }


def test_text_that_already_mentions_the_customer_is_not_prefixed() -> None:
    acct = "alice@example.social"
    assert with_mention("@alice@example.social thanks", acct) == (
        "@alice@example.social thanks"
    )
    assert with_mention("Thanks @Alice@Example.social!", acct) == (
        "Thanks @Alice@Example.social!"
    )
    # "@alice" would address a local alice, not the remote one.
    assert with_mention("@alice thanks", acct) == "@alice@example.social @alice thanks"
    assert with_mention("no one to address", "") == "no one to address"


def test_a_replayed_idempotency_key_returns_the_same_status(
    mastodon: FakeMastodon,
) -> None:
    connector = MastodonConnector()
    first = connector.send(mastodon.account(), reply())
    second = connector.send(mastodon.account(), reply())
    assert first == second
    assert len(mastodon.created) == 1
    posts = [r for r in mastodon.server.requests if r.method == "POST"]
    assert [p.headers["idempotency-key"] for p in posts] == [CLIENT_REF, CLIENT_REF]


def test_a_validation_error_is_permanent_with_mastodons_message(
    mastodon: FakeMastodon,
) -> None:
    with pytest.raises(ConnectorError) as raised:
        MastodonConnector().send(mastodon.account(), reply(text="x" * 501))
    error = raised.value
    assert (error.message, error.permanent, error.auth, error.status) == (
        "Validation failed: Text character limit of 500 exceeded",
        True,
        False,
        422,
    )
    assert mastodon.created == []


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (401, ("The access token is invalid", True, True, None)),
        # X-RateLimit-Reset is 03:10:00 and it is 03:05:00.
        (429, ("Too many requests", False, False, 300.0)),
        (503, ("Service Unavailable", False, False, None)),
        (403, ("This action is not allowed", True, False, None)),
    ],
)
def test_http_errors_map_to_connector_errors(
    mastodon: FakeMastodon,
    monkeypatch: pytest.MonkeyPatch,
    status: int,
    expected: tuple[str, bool, bool, float | None],
) -> None:
    monkeypatch.setattr(timezone, "now", lambda: SENT_AT)
    mastodon.fail(status)
    with pytest.raises(ConnectorError) as raised:
        MastodonConnector().fetch_since(mastodon.account(), "903")
    error = raised.value
    assert (error.message, error.permanent, error.auth, error.retry_after) == expected
    assert error.status == status


def test_register_app_returns_the_instances_client(mastodon: FakeMastodon) -> None:
    app = MastodonConnector().register_app(mastodon.server.base_url + "/", REDIRECT_URI)
    assert app == AppSecrets(
        client_id=mastodon.client_id,
        client_secret=mastodon.client_secret,
        base_url=mastodon.server.base_url,
    )
    [request] = mastodon.server.requests
    assert (request.method, request.path) == ("POST", "/api/v1/apps")
    assert request.json() == {
        "client_name": "Earshot",
        "redirect_uris": REDIRECT_URI,
        "scopes": SCOPES,
        "website": "https://github.com/earshot-helpdesk",
    }


def test_an_instance_address_becomes_a_base_url() -> None:
    assert normalise_instance(" social.example/ ") == "https://social.example"
    assert normalise_instance("http://127.0.0.1:8000/") == "http://127.0.0.1:8000"


def test_the_authorize_url_carries_a_pkce_challenge() -> None:
    app = AppSecrets(
        client_id="cid", client_secret="s", base_url="https://social.example"
    )
    challenge = challenge_for(CODE_VERIFIER)
    url = MastodonConnector().authorize_url(
        app, redirect_uri=REDIRECT_URI, state="st4te", code_challenge=challenge
    )
    assert url == (
        "https://social.example/oauth/authorize?response_type=code&client_id=cid"
        f"&redirect_uri={quote_plus(REDIRECT_URI)}"
        "&scope=read%3Aaccounts+read%3Anotifications+read%3Astatuses+write%3Astatuses"
        f"&state=st4te&code_challenge={challenge}&code_challenge_method=S256"
    )


def test_an_unregistered_instance_cannot_authorize() -> None:
    with pytest.raises(ConnectorError) as raised:
        MastodonConnector().authorize_url(
            AppSecrets(client_id="cid"),
            redirect_uri=REDIRECT_URI,
            state="s",
            code_challenge="c",
        )
    assert raised.value.permanent is True


def test_the_code_is_exchanged_with_the_pkce_verifier(mastodon: FakeMastodon) -> None:
    tokens = MastodonConnector().exchange_code(
        mastodon.app(),
        code=CODE,
        redirect_uri=REDIRECT_URI,
        code_verifier=CODE_VERIFIER,
    )
    assert tokens == TokenSet(
        access_token=ACCESS_TOKEN,
        account_external_id="109",
        handle="brand",
        display_name="Earshot Air",
        extra={"scope": SCOPES},
    )
    token, me = mastodon.server.requests
    assert (token.method, token.path) == ("POST", "/oauth/token")
    assert token.form() == {
        "grant_type": "authorization_code",
        "code": CODE,
        "client_id": mastodon.client_id,
        "client_secret": mastodon.client_secret,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": CODE_VERIFIER,
        "scope": SCOPES,
    }
    assert (me.method, me.path) == ("GET", "/api/v1/accounts/verify_credentials")
    assert me.headers["authorization"] == f"Bearer {ACCESS_TOKEN}"


def test_a_wrong_verifier_is_refused_with_the_instances_message(
    mastodon: FakeMastodon,
) -> None:
    with pytest.raises(ConnectorError) as raised:
        MastodonConnector().exchange_code(
            mastodon.app(), code=CODE, redirect_uri=REDIRECT_URI, code_verifier="x" * 43
        )
    error = raised.value
    assert (error.status, error.permanent, error.auth) == (400, True, False)
    assert error.message.startswith("The provided authorization grant is invalid")
    assert len(mastodon.server.requests) == 1


def test_refresh_checks_the_token_and_keeps_it(mastodon: FakeMastodon) -> None:
    tokens = MastodonConnector().refresh(mastodon.app(), mastodon.account())
    assert tokens == TokenSet(
        access_token=ACCESS_TOKEN,
        account_external_id="109",
        handle="brand",
        display_name="Earshot Air",
        extra={"scope": SCOPES},
    )
    revoked = mastodon.account(credentials={"access_token": "revoked"})
    with pytest.raises(ConnectorError) as raised:
        MastodonConnector().refresh(mastodon.app(), revoked)
    assert (raised.value.auth, raised.value.status) == (True, 401)


def test_find_delivery_finds_the_reply_among_the_accounts_statuses(
    mastodon: FakeMastodon,
) -> None:
    found = MastodonConnector().find_delivery(
        mastodon.account(),
        reply(in_reply_to="1100", text="Sorry! We are checking with the courier."),
    )
    assert found == DeliveryResult(
        external_id="1101",
        url="https://social.example/@brand/1101",
        sent_at=datetime(2026, 1, 2, 2, 55, tzinfo=UTC),
    )
    [request] = mastodon.server.requests
    assert (request.method, request.path, request.query) == (
        "GET",
        "/api/v1/accounts/109/statuses",
        {"limit": ["40"], "exclude_reblogs": ["true"]},
    )


def test_find_delivery_matches_a_sent_reply_despite_the_rendered_mention(
    mastodon: FakeMastodon,
) -> None:
    connector = MastodonConnector()
    sent = connector.send(mastodon.account(), reply())
    assert connector.find_delivery(mastodon.account(), reply()) == sent


def test_find_delivery_is_none_when_the_reply_never_arrived(
    mastodon: FakeMastodon,
) -> None:
    assert MastodonConnector().find_delivery(mastodon.account(), reply()) is None
    assert mastodon.created == []
