"""The Facebook and Instagram connectors against captured-shape fixtures and a fake
Graph API (tests/social/fakes_meta.py)."""

import hashlib
import hmac
import json
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
from social.connectors.meta import FacebookConnector, InstagramConnector, MetaError
from tests.social.fakes_meta import (
    APP_ID,
    APP_SECRET,
    AUTH_CODE,
    FB_COMMENT,
    IG_COMMENT,
    IG_ID,
    IGSID,
    LONG_TOKEN,
    PAGE_ID,
    PAGE_TOKEN,
    PSID,
    SHORT_TOKEN,
    STAGING_PAGE_ID,
    STAGING_TOKEN,
    USER_ID,
    VERIFY_TOKEN,
    WINDOW_MESSAGE,
    FakeGraph,
    business_usage,
    graph_error,
    graph_time,
    token_expired,
)
from tests.social.fakeserver import FakeServer, Reply

FIXTURES = Path(__file__).parent / "fixtures" / "meta"
NOW = datetime(2026, 8, 12, 18, 30, tzinfo=UTC)
APP = AppSecrets(client_id=APP_ID, client_secret=APP_SECRET, verify_token=VERIFY_TOKEN)
facebook = FacebookConnector()
instagram = InstagramConnector()
FB_SCOPES = (
    "pages_show_list,pages_manage_metadata,pages_read_engagement,"
    "pages_read_user_content,pages_manage_engagement,pages_messaging"
)
IG_SCOPES = (
    "instagram_basic,instagram_manage_comments,instagram_manage_messages,"
    "pages_show_list,pages_read_engagement,pages_manage_metadata,pages_messaging"
)


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(fixture_bytes(name))
    return data


def hex_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@pytest.fixture
def now(monkeypatch: pytest.MonkeyPatch) -> datetime:
    monkeypatch.setattr(timezone, "now", lambda: NOW)
    return NOW


@pytest.fixture
def graph(fake_http: FakeServer, now: datetime) -> FakeGraph:
    return FakeGraph(fake_http).install()


def comment_reply(
    text: str = "So sorry, Renée. We have sent you a message.",
) -> OutboundReply:
    return OutboundReply(
        client_ref="ref-1",
        text=text,
        visibility="public",
        in_reply_to=FB_COMMENT,
        recipient_id="555000555",
    )


def message(text: str = "Thanks, we're looking into it.") -> OutboundReply:
    return OutboundReply(
        client_ref="ref-2",
        text=text,
        visibility="private",
        in_reply_to=PSID,
        recipient_id=PSID,
    )


def private_reply(
    text: str = "Could you send us your booking reference?",
) -> OutboundReply:
    return OutboundReply(
        client_ref="ref-3",
        text=text,
        visibility="private",
        in_reply_to=FB_COMMENT,
        recipient_id="555000555",
        private_reply_to_public=True,
    )


# Registry and capabilities


@pytest.mark.parametrize(
    ("platform", "cls", "limit"),
    [("facebook", FacebookConnector, 2000), ("instagram", InstagramConnector, 1000)],
)
def test_is_registered_with_its_capabilities(
    platform: str, cls: type[object], limit: int
) -> None:
    found = get_connector(platform)
    assert isinstance(found, cls)
    assert found.capabilities == Capabilities(
        public_reply=True,
        private_message=True,
        private_reply_to_public=True,
        start_private=False,
        private_reply_window=timedelta(hours=24),
        max_length=limit,
        public_reply_needs_mention=False,
        webhooks=True,
        polling=False,
        streaming=False,
    )
    assert found.webhook_signature_header == "X-Hub-Signature-256"


# Challenge and signatures


def test_challenge_echoes_hub_challenge_for_our_verify_token() -> None:
    params = {
        "hub.mode": "subscribe",
        "hub.verify_token": VERIFY_TOKEN,
        "hub.challenge": "1158201444",
    }
    assert facebook.webhook_challenge(params, APP) == (200, "1158201444")
    assert instagram.webhook_challenge(params, APP) == (200, "1158201444")


@pytest.mark.parametrize(
    ("params", "app"),
    [
        ({"hub.mode": "subscribe", "hub.verify_token": "wrong"}, APP),
        ({"hub.mode": "unsubscribe", "hub.verify_token": VERIFY_TOKEN}, APP),
        ({"hub.mode": "subscribe"}, APP),
        ({}, APP),
        ({"hub.mode": "subscribe", "hub.verify_token": ""}, AppSecrets()),
    ],
    ids=["wrong-token", "wrong-mode", "missing-token", "empty", "none-configured"],
)
def test_challenge_is_refused(params: dict[str, str], app: AppSecrets) -> None:
    assert facebook.webhook_challenge({**params, "hub.challenge": "42"}, app) == (
        403,
        "",
    )


def test_signature_is_a_hex_hmac_of_the_raw_bytes_with_escapes() -> None:
    body = fixture_bytes("fb_feed_comment.json")
    assert b"Ren\\u00e9e O\\u2019Brien" in body
    signature = hex_signature(APP_SECRET, body)
    assert facebook.verify_webhook(body, {"X-Hub-Signature-256": signature}, APP)
    assert facebook.verify_webhook(body, {"x-hub-signature-256": signature}, APP)
    # Re-serialising the parsed JSON changes the bytes, so it no longer verifies.
    again = json.dumps(json.loads(body), ensure_ascii=False).encode()
    assert not facebook.verify_webhook(again, {"X-Hub-Signature-256": signature}, APP)


@pytest.mark.parametrize(
    ("headers", "app"),
    [
        ({"X-Hub-Signature-256": hex_signature("wrong", b"{}")}, APP),
        ({}, APP),
        ({"X-Hub-Signature": "sha1=" + hashlib.sha1(b"{}").hexdigest()}, APP),  # noqa: S324
        ({"X-Hub-Signature-256": hex_signature("", b"{}")}, AppSecrets()),
    ],
    ids=["wrong", "missing", "legacy-sha1-only", "no-secret-configured"],
)
def test_signature_is_rejected(headers: dict[str, str], app: AppSecrets) -> None:
    assert not instagram.verify_webhook(b"{}", headers, app)


def test_event_id_is_stable_across_reserialisation() -> None:
    body = fixture_bytes("fb_batch.json")
    again = json.dumps(json.loads(body), indent=2).encode()
    assert facebook.webhook_event_id(body) == facebook.webhook_event_id(again)
    assert len(facebook.webhook_event_id(body)) == 64
    other = fixture_bytes("fb_feed_comment.json")
    assert facebook.webhook_event_id(other) != facebook.webhook_event_id(body)


# Parsing: Facebook


def test_parses_a_top_level_feed_comment() -> None:
    value = fixture("fb_feed_comment.json")["entry"][0]["changes"][0]["value"]
    assert facebook.parse_webhook(fixture_bytes("fb_feed_comment.json")) == [
        WebhookItem(
            PAGE_ID,
            InboundItem(
                platform="facebook",
                external_id="222000222_333000333",
                author=Author("555000555", display_name="Renée O\u2019Brien"),
                text="Still waiting on my refund — 3 weeks now \U0001f61e",
                created_at=datetime(2025, 3, 22, 18, 20, 4, tzinfo=UTC),
                visibility="public",
                kind="comment",
                thread_ref="111000111_222000222",
                in_reply_to="111000111_222000222",
                url="https://www.facebook.com/222000222_333000333",
                raw=value,
            ),
        )
    ]


def test_a_nested_reply_keeps_the_post_as_thread_and_the_comment_as_parent() -> None:
    [parsed] = facebook.parse_webhook(fixture_bytes("fb_feed_reply.json"))
    assert parsed.account_external_id == PAGE_ID
    assert parsed.item == InboundItem(
        platform="facebook",
        external_id="222000222_333000999",
        author=Author("555000777", display_name="Sam Lee"),
        text="Same here, no reply to my emails either",
        created_at=datetime(2025, 3, 22, 18, 43, 10, tzinfo=UTC),
        visibility="public",
        kind="comment",
        thread_ref="111000111_222000222",
        in_reply_to="222000222_333000333",
        url="https://www.facebook.com/222000222_333000999",
        raw=fixture("fb_feed_reply.json")["entry"][0]["changes"][0]["value"],
    )


def test_parses_a_messenger_message() -> None:
    event = fixture("fb_messenger_message.json")["entry"][0]["messaging"][0]
    assert facebook.parse_webhook(fixture_bytes("fb_messenger_message.json")) == [
        WebhookItem(
            PAGE_ID,
            InboundItem(
                platform="facebook",
                external_id="m_AbCdEf0123456789",
                author=Author(PSID),
                text="Hi, my booking ref is ABC123 and the refund hasn\u2019t arrived",
                created_at=datetime(2025, 3, 22, 19, 0, 0, 1000, tzinfo=UTC),
                visibility="private",
                kind="direct_message",
                thread_ref=PSID,
                in_reply_to="m_PreviousPageMessage",
                raw=event,
            ),
        )
    ]


@pytest.mark.parametrize(
    "name",
    [
        "fb_feed_page_comment.json",
        "fb_messenger_echo.json",
        "fb_messenger_delivery_read.json",
    ],
)
def test_own_comments_echoes_and_receipts_are_skipped(name: str) -> None:
    assert facebook.parse_webhook(fixture_bytes(name)) == []


def test_a_batch_yields_every_entry_and_change_once() -> None:
    items = facebook.parse_webhook(fixture_bytes("fb_batch.json"))
    assert [
        (w.account_external_id, w.item.external_id, w.item.kind, w.item.text)
        for w in items
    ] == [
        (PAGE_ID, "222000222_333002222", "comment", "Any news?"),
        (STAGING_PAGE_ID, "888000888_777000777", "comment", "Is the lounge open?"),
        (PAGE_ID, "m_SecondCustomer", "direct_message", "Hello?"),
    ]


def test_a_comment_without_an_author_is_skipped() -> None:
    data = fixture("fb_feed_comment.json")
    del data["entry"][0]["changes"][0]["value"]["from"]
    assert facebook.parse_webhook(json.dumps(data).encode()) == []


@pytest.mark.parametrize(
    ("connector", "body"),
    [
        (facebook, fixture_bytes("ig_comment.json")),
        (instagram, fixture_bytes("fb_feed_comment.json")),
        (facebook, b"{not json"),
        (facebook, b'["page"]'),
        (facebook, b'{"object": "page", "entry": [{"time": 1}]}'),
    ],
    ids=["ig-to-fb", "fb-to-ig", "not-json", "array", "entry-without-id"],
)
def test_malformed_or_misrouted_deliveries_raise_value_error(
    connector: FacebookConnector | InstagramConnector, body: bytes
) -> None:
    with pytest.raises(ValueError, match=r"."):
        connector.parse_webhook(body)


# Parsing: Instagram


def test_parses_an_instagram_comment() -> None:
    value = fixture("ig_comment.json")["entry"][0]["changes"][0]["value"]
    assert instagram.parse_webhook(fixture_bytes("ig_comment.json")) == [
        WebhookItem(
            IG_ID,
            InboundItem(
                platform="instagram",
                external_id="18100000000000001",
                author=Author(
                    IGSID, "sana.k", profile_url="https://www.instagram.com/sana.k/"
                ),
                text="Size M still available? \U0001f44b",
                created_at=datetime(2025, 8, 21, 12, 28, tzinfo=UTC),
                visibility="public",
                kind="comment",
                thread_ref="18000000000000001",
                in_reply_to="18100000000000000",
                raw=value,
            ),
        )
    ]


def test_the_accounts_own_instagram_comment_is_skipped() -> None:
    assert instagram.parse_webhook(fixture_bytes("ig_comment_own.json")) == []


def test_a_duplicated_ad_comment_yields_one_item() -> None:
    items = instagram.parse_webhook(fixture_bytes("ig_ad_comment_duplicate.json"))
    assert [(w.item.external_id, w.item.in_reply_to) for w in items] == [
        ("18100000000000077", "18000000000000042")
    ]


def test_parses_mentions_as_items_to_hydrate() -> None:
    changes = fixture("ig_mention.json")["entry"][0]["changes"]
    created = datetime(2025, 8, 21, 12, 56, 40, tzinfo=UTC)
    assert instagram.parse_webhook(fixture_bytes("ig_mention.json")) == [
        WebhookItem(
            IG_ID,
            InboundItem(
                platform="instagram",
                external_id="mention:17918195224117851:17894227972186120",
                author=Author(""),
                text="",
                created_at=created,
                visibility="public",
                kind="mention",
                thread_ref="mention:17918195224117851",
                mentions_account=True,
                raw=changes[0]["value"],
                needs_hydration=True,
            ),
        ),
        WebhookItem(
            IG_ID,
            InboundItem(
                platform="instagram",
                external_id="mention:17918195224117852",
                author=Author(""),
                text="",
                created_at=created,
                visibility="public",
                kind="mention",
                thread_ref="mention:17918195224117852",
                mentions_account=True,
                raw=changes[1]["value"],
                needs_hydration=True,
            ),
        ),
    ]


def test_parses_instagram_dms_skipping_echoes_and_unsends() -> None:
    events = fixture("ig_dm.json")["entry"][0]["messaging"]
    base = InboundItem(
        platform="instagram",
        external_id="aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQx",
        author=Author(IGSID),
        text="Hi! Is my order 55 shipped yet?",
        created_at=datetime(2025, 8, 21, 13, 13, 20, tzinfo=UTC),
        visibility="private",
        kind="direct_message",
        thread_ref=IGSID,
        raw=events[0],
    )
    assert instagram.parse_webhook(fixture_bytes("ig_dm.json")) == [
        WebhookItem(IG_ID, base),
        WebhookItem(
            IG_ID,
            replace(
                base,
                external_id="aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQy",
                text="[image]",
                created_at=datetime(2025, 8, 21, 13, 13, 25, tzinfo=UTC),
                raw=events[1],
            ),
        ),
    ]


def test_hydrating_a_mention_reads_the_mentioned_comment(graph: FakeGraph) -> None:
    graph.mentioned["mentioned_comment"] = {
        "id": "17894227972186120",
        "text": "@acmeair lost my bag",
        "timestamp": "2026-08-12T17:59:00+0000",
        "username": "traveller.jo",
    }
    [parsed] = instagram.parse_webhook(fixture_bytes("ig_mention.json"))[:1]
    item = instagram.hydrate_mention(graph.account("instagram"), parsed.item)
    assert item == replace(
        parsed.item,
        author=Author(
            "traveller.jo",
            "traveller.jo",
            profile_url="https://www.instagram.com/traveller.jo/",
        ),
        text="@acmeair lost my bag",
        created_at=datetime(2026, 8, 12, 17, 59, tzinfo=UTC),
        raw={
            "media_id": "17918195224117851",
            "comment_id": "17894227972186120",
            "mentioned_comment": graph.mentioned["mentioned_comment"],
        },
        needs_hydration=False,
    )
    [lookup] = graph.server.requests
    assert lookup.path == f"/v21.0/{IG_ID}"
    assert lookup.query == {
        "fields": [
            "mentioned_comment.comment_id(17894227972186120)"
            "{id,text,timestamp,username}"
        ]
    }
    assert lookup.headers["authorization"] == f"Bearer {PAGE_TOKEN}"


# Sending


def test_a_public_reply_is_posted_under_the_comment(graph: FakeGraph) -> None:
    result = facebook.send(graph.account(), comment_reply())
    assert result == DeliveryResult(
        external_id="222000222_444000001",
        url="https://www.facebook.com/222000222_444000001",
        sent_at=NOW,
    )
    [sent] = graph.server.requests
    assert (sent.method, sent.path) == ("POST", f"/v21.0/{FB_COMMENT}/comments")
    assert sent.query == {}
    assert sent.headers["authorization"] == f"Bearer {PAGE_TOKEN}"
    assert sent.headers["content-type"] == "application/json"
    assert sent.json() == {"message": "So sorry, Renée. We have sent you a message."}


def test_an_instagram_reply_uses_the_replies_edge(graph: FakeGraph) -> None:
    reply = replace(comment_reply("We have DMed you!"), in_reply_to=IG_COMMENT)
    result = instagram.send(graph.account("instagram"), reply)
    assert result == DeliveryResult(external_id="18200000000000001", sent_at=NOW)
    [sent] = graph.server.requests
    assert (sent.method, sent.path) == ("POST", f"/v21.0/{IG_COMMENT}/replies")
    assert sent.json() == {"message": "We have DMed you!"}


def test_an_answer_to_a_mention_uses_the_mentions_edge(graph: FakeGraph) -> None:
    reply = replace(
        comment_reply("Sorry to hear that!"),
        in_reply_to="mention:17918195224117851:17894227972186120",
    )
    instagram.send(graph.account("instagram"), reply)
    [sent] = graph.server.requests
    assert (sent.method, sent.path) == ("POST", f"/v21.0/{IG_ID}/mentions")
    assert sent.json() == {
        "media_id": "17918195224117851",
        "message": "Sorry to hear that!",
        "comment_id": "17894227972186120",
    }


def test_a_message_inside_24_hours_is_a_response(graph: FakeGraph) -> None:
    graph.last_inbound[PSID] = NOW - timedelta(hours=23)
    result = facebook.send(graph.account(), message())
    assert result == DeliveryResult(external_id="m_sent1", sent_at=NOW)
    [sent] = graph.server.requests
    assert (sent.method, sent.path) == ("POST", f"/v21.0/{PAGE_ID}/messages")
    assert sent.headers["authorization"] == f"Bearer {PAGE_TOKEN}"
    assert sent.json() == {
        "recipient": {"id": PSID},
        "messaging_type": "RESPONSE",
        "message": {"text": "Thanks, we're looking into it."},
    }


def test_a_message_after_24_hours_goes_out_with_the_human_agent_tag(
    graph: FakeGraph,
) -> None:
    graph.last_inbound[PSID] = NOW - timedelta(hours=30)
    result = facebook.send(graph.account(), message())
    assert result == DeliveryResult(external_id="m_sent2", sent_at=NOW)
    first, second = graph.server.requests
    assert first.json()["messaging_type"] == "RESPONSE"
    assert second.json() == {
        "recipient": {"id": PSID},
        "messaging_type": "MESSAGE_TAG",
        "message": {"text": "Thanks, we're looking into it."},
        "tag": "HUMAN_AGENT",
    }


def test_a_message_after_7_days_fails_permanently(graph: FakeGraph) -> None:
    graph.last_inbound[PSID] = NOW - timedelta(days=8)
    with pytest.raises(MetaError) as caught:
        facebook.send(graph.account(), message())
    assert caught.value.message == (
        "More than 7 days have passed since the customer's last message; Meta "
        "allows no further replies until they write again."
    )
    assert (caught.value.permanent, caught.value.auth, caught.value.subcode) == (
        True,
        False,
        2018278,
    )
    assert len(graph.server.requests) == 2


def test_a_private_reply_to_a_comment_names_the_comment(graph: FakeGraph) -> None:
    result = facebook.send(graph.account(), private_reply())
    assert result == DeliveryResult(external_id="m_sent1", sent_at=NOW)
    [sent] = graph.server.requests
    assert (sent.method, sent.path) == ("POST", f"/v21.0/{PAGE_ID}/messages")
    assert sent.json() == {
        "recipient": {"comment_id": FB_COMMENT},
        "message": {"text": "Could you send us your booking reference?"},
    }
    with pytest.raises(ConnectorError) as caught:
        facebook.send(graph.account(), private_reply())
    assert caught.value.permanent is True


def test_instagram_messages_go_through_the_linked_page(graph: FakeGraph) -> None:
    reply = replace(
        message("Yes, it ships today!"), in_reply_to=IGSID, recipient_id=IGSID
    )
    instagram.send(graph.account("instagram"), reply)
    [sent] = graph.server.requests
    assert sent.path == f"/v21.0/{PAGE_ID}/messages"
    assert sent.json()["recipient"] == {"id": IGSID}


def test_an_instagram_message_over_1000_bytes_is_refused_before_sending(
    graph: FakeGraph,
) -> None:
    reply = replace(message("é" * 501), recipient_id=IGSID)
    with pytest.raises(ConnectorError) as caught:
        instagram.send(graph.account("instagram"), reply)
    assert caught.value.message == (
        "Instagram messages can be at most 1000 bytes; this one is 1002. Shorten it."
    )
    assert caught.value.permanent is True
    assert graph.server.requests == []


@pytest.mark.parametrize(
    "reply",
    [
        replace(comment_reply(), in_reply_to=""),
        replace(message(), in_reply_to="", recipient_id=""),
        replace(private_reply(), in_reply_to=""),
    ],
    ids=["public", "message", "private-reply"],
)
def test_a_reply_without_a_target_fails_without_a_call(
    graph: FakeGraph, reply: OutboundReply
) -> None:
    with pytest.raises(ConnectorError) as caught:
        facebook.send(graph.account(), reply)
    assert (caught.value.message, caught.value.permanent) == (
        "The reply has nothing to answer.",
        True,
    )
    assert graph.server.requests == []


# Error mapping


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (
            token_expired(),
            (
                "Meta rejected the access token (Error validating access token: The "
                "session has been invalidated because the user changed their "
                "password.). Connect the account again.",
                True,
                True,
                None,
            ),
        ),
        (
            graph_error(190, "Invalid OAuth access token."),
            (
                "Meta rejected the access token (Invalid OAuth access token.). "
                "Connect the account again.",
                True,
                True,
                None,
            ),
        ),
        (
            graph_error(4, "Application request limit reached", headers={}),
            ("Meta rate limit: Application request limit reached", False, False, 300.0),
        ),
        (
            graph_error(
                32, "Page request limit reached", status=403, headers=business_usage(10)
            ),
            ("Meta rate limit: Page request limit reached", False, False, 600.0),
        ),
        (
            graph_error(
                613,
                "Calls to this api have exceeded the rate limit.",
                headers={"Retry-After": "45"},
            ),
            (
                "Meta rate limit: Calls to this api have exceeded the rate limit.",
                False,
                False,
                45.0,
            ),
        ),
        (
            graph_error(
                2,
                "An unexpected error has occurred. Please retry your request later.",
                status=500,
            ),
            (
                "An unexpected error has occurred. Please retry your request later.",
                False,
                False,
                None,
            ),
        ),
        (
            (502, {"Content-Type": "text/html"}, b"Bad Gateway"),
            ("Bad Gateway", False, False, None),
        ),
        (
            graph_error(
                200, "(#200) Requires pages_manage_engagement permission", status=403
            ),
            (
                "Meta refused for lack of permission ((#200) Requires "
                "pages_manage_engagement permission).",
                True,
                False,
                None,
            ),
        ),
        (
            graph_error(10, WINDOW_MESSAGE, subcode=2018278),
            (
                f"The messaging window with this person has closed ({WINDOW_MESSAGE}).",
                True,
                False,
                None,
            ),
        ),
        (
            graph_error(551, "This person isn't available right now."),
            (
                "This person can't receive messages from you right now (This person "
                "isn't available right now.).",
                True,
                False,
                None,
            ),
        ),
        (
            graph_error(100, "(#100) Invalid parameter", kind="GraphMethodException"),
            ("(#100) Invalid parameter", True, False, None),
        ),
    ],
    ids=[
        "401-code-190",
        "400-code-190",
        "code-4-default-wait",
        "code-32-usage-header",
        "code-613-retry-after",
        "500-code-2",
        "502-not-json",
        "code-200-permission",
        "code-10-window",
        "code-551",
        "code-100",
    ],
)
def test_graph_errors_map_to_connector_errors(
    graph: FakeGraph, reply: Reply, expected: tuple[Any, ...]
) -> None:
    graph.fail_next("POST", f"/v21.0/{FB_COMMENT}/comments", reply)
    with pytest.raises(ConnectorError) as caught:
        facebook.send(graph.account(), comment_reply())
    error = caught.value
    assert (error.message, error.permanent, error.auth, error.retry_after) == expected
    assert error.status == reply[0]


def test_an_account_without_a_token_needs_reauthorization(graph: FakeGraph) -> None:
    account = replace(graph.account(), credentials={})
    with pytest.raises(ConnectorError) as caught:
        facebook.send(account, comment_reply())
    assert (caught.value.auth, caught.value.permanent) == (True, True)
    assert graph.server.requests == []


# Reconciliation


def test_find_delivery_finds_a_public_reply(graph: FakeGraph) -> None:
    sent = facebook.send(graph.account(), comment_reply())
    assert facebook.find_delivery(graph.account(), comment_reply()) == sent
    lookup = graph.server.requests[-1]
    assert (lookup.method, lookup.path) == ("GET", f"/v21.0/{FB_COMMENT}/comments")
    assert lookup.query == {
        "fields": ["id,message,from,created_time"],
        "limit": ["100"],
        "order": ["reverse_chronological"],
    }


def test_find_delivery_proves_a_public_reply_absent(graph: FakeGraph) -> None:
    facebook.send(graph.account(), comment_reply("Another answer"))
    assert facebook.find_delivery(graph.account(), comment_reply()) is None


def test_find_delivery_cannot_tell_from_a_long_recent_listing(graph: FakeGraph) -> None:
    graph.page_size = 1
    facebook.send(graph.account(), comment_reply("one"))
    facebook.send(graph.account(), comment_reply("two"))
    with pytest.raises(ConnectorError) as caught:
        facebook.find_delivery(graph.account(), comment_reply())
    assert caught.value.permanent is False
    assert "reconciliation is unavailable" in caught.value.message


def test_find_delivery_trusts_a_listing_reaching_past_the_window(
    graph: FakeGraph,
) -> None:
    graph.page_size = 1
    old = {
        "id": "222000222_1",
        "message": "old",
        "from": {"id": PAGE_ID},
        "created_time": graph_time(NOW - timedelta(days=3)),
    }
    graph.replies[FB_COMMENT][:] = [old, dict(old, id="222000222_0")]
    assert facebook.find_delivery(graph.account(), comment_reply()) is None


def test_find_delivery_on_instagram_needs_a_complete_listing(graph: FakeGraph) -> None:
    account = graph.account("instagram")
    reply = replace(comment_reply("Thanks!"), in_reply_to=IG_COMMENT)
    sent = instagram.send(account, reply)
    assert instagram.find_delivery(account, reply) == sent
    assert graph.server.requests[-1].query == {
        "fields": ["id,text,from,timestamp"],
        "limit": ["100"],
    }
    graph.page_size = 0
    with pytest.raises(ConnectorError):
        instagram.find_delivery(account, replace(reply, text="other"))


def test_find_delivery_finds_a_message_in_the_conversation(graph: FakeGraph) -> None:
    sent = facebook.send(graph.account(), message())
    found = facebook.find_delivery(graph.account(), message())
    assert found == DeliveryResult(external_id=sent.external_id, sent_at=NOW)
    lookup = graph.server.requests[-1]
    assert (lookup.method, lookup.path) == ("GET", f"/v21.0/{PAGE_ID}/conversations")
    assert lookup.query == {
        "platform": ["messenger"],
        "user_id": [PSID],
        "fields": ["messages.limit(50){id,message,from,created_time}"],
    }
    assert facebook.find_delivery(graph.account(), message("new")) is None


def test_find_delivery_without_a_conversation_is_none(graph: FakeGraph) -> None:
    assert facebook.find_delivery(graph.account(), message()) is None


def test_find_delivery_in_a_busy_recent_conversation_cannot_tell(
    graph: FakeGraph,
) -> None:
    graph.page_size = 1
    facebook.send(graph.account(), message("one"))
    facebook.send(graph.account(), message("two"))
    with pytest.raises(ConnectorError) as caught:
        facebook.find_delivery(graph.account(), message())
    assert caught.value.permanent is False


def test_find_delivery_of_a_private_reply_uses_can_reply_privately(
    graph: FakeGraph,
) -> None:
    assert facebook.find_delivery(graph.account(), private_reply()) is None
    lookup = graph.server.requests[-1]
    assert (lookup.path, lookup.query) == (
        f"/v21.0/{FB_COMMENT}",
        {"fields": ["can_reply_privately"]},
    )
    facebook.send(graph.account(), private_reply())
    with pytest.raises(ConnectorError) as caught:
        facebook.find_delivery(graph.account(), private_reply())
    assert caught.value.permanent is False
    assert caught.value.message.startswith(
        "Facebook offers no way to look up a private reply"
    )


def test_find_delivery_of_an_instagram_private_reply_is_unavailable(
    graph: FakeGraph,
) -> None:
    reply = replace(private_reply(), in_reply_to=IG_COMMENT)
    with pytest.raises(ConnectorError) as caught:
        instagram.find_delivery(graph.account("instagram"), reply)
    assert caught.value.permanent is False
    assert graph.server.requests == []


# Facebook Login


@pytest.mark.parametrize(
    ("connector", "scopes"), [(facebook, FB_SCOPES), (instagram, IG_SCOPES)]
)
def test_authorize_url_opens_the_login_dialog(
    fake_http: FakeServer,
    connector: FacebookConnector | InstagramConnector,
    scopes: str,
) -> None:
    app = replace(APP, base_url=fake_http.base_url)
    url = connector.authorize_url(
        app,
        redirect_uri="https://earshot.example/connect/meta/callback",
        state="state-1",
        code_challenge="unused",
    )
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == fake_http.base_url
    assert parts.path == "/v21.0/dialog/oauth"
    assert parse_qs(parts.query) == {
        "client_id": [APP_ID],
        "redirect_uri": ["https://earshot.example/connect/meta/callback"],
        "state": ["state-1"],
        "response_type": ["code"],
        "scope": [scopes],
    }


def test_authorize_url_defaults_to_facebook_com() -> None:
    url = facebook.authorize_url(
        APP, redirect_uri="https://e.example/cb", state="s", code_challenge="c"
    )
    assert url.startswith("https://www.facebook.com/v21.0/dialog/oauth?client_id=")


def pages(graph: FakeGraph) -> list[dict[str, Any]]:
    return [
        {
            "id": STAGING_PAGE_ID,
            "name": "Acme Air Staging",
            "username": "",
            "access_token": STAGING_TOKEN,
            "instagram": {},
        },
        {
            "id": PAGE_ID,
            "name": "Acme Air",
            "username": "acmeair",
            "access_token": PAGE_TOKEN,
            "instagram": {"id": IG_ID, "username": "acmeair", "name": "Acme Air"},
        },
    ]


def test_exchange_code_returns_the_first_page_and_lists_them_all(
    graph: FakeGraph,
) -> None:
    tokens = facebook.exchange_code(
        graph.app,
        code=AUTH_CODE,
        redirect_uri="https://earshot.example/connect/meta/callback",
        code_verifier="unused",
    )
    assert tokens == TokenSet(
        access_token=STAGING_TOKEN,
        account_external_id=STAGING_PAGE_ID,
        handle="Acme Air Staging",
        display_name="Acme Air Staging",
        extra={"pages": pages(graph), "user_id": USER_ID},
    )
    code, exchange, me, accounts = graph.server.requests
    assert (code.method, code.path) == ("GET", "/v21.0/oauth/access_token")
    assert code.query == {
        "client_id": [APP_ID],
        "client_secret": [APP_SECRET],
        "redirect_uri": ["https://earshot.example/connect/meta/callback"],
        "code": [AUTH_CODE],
    }
    assert "authorization" not in code.headers
    assert exchange.query == {
        "client_id": [APP_ID],
        "client_secret": [APP_SECRET],
        "grant_type": ["fb_exchange_token"],
        "fb_exchange_token": [SHORT_TOKEN],
    }
    assert (me.method, me.path, me.query) == ("GET", "/v21.0/me", {"fields": ["id"]})
    assert me.headers["authorization"] == f"Bearer {LONG_TOKEN}"
    assert (accounts.method, accounts.path) == ("GET", "/v21.0/me/accounts")
    assert accounts.headers["authorization"] == f"Bearer {LONG_TOKEN}"
    assert accounts.query == {
        "fields": [
            "id,name,username,access_token,instagram_business_account{id,username,name}"
        ],
        "limit": ["100"],
    }


def test_exchange_code_for_instagram_picks_the_linked_account(
    graph: FakeGraph,
) -> None:
    tokens = instagram.exchange_code(
        graph.app, code=AUTH_CODE, redirect_uri="https://e.example/cb", code_verifier=""
    )
    assert tokens == TokenSet(
        access_token=PAGE_TOKEN,
        account_external_id=IG_ID,
        handle="acmeair",
        display_name="Acme Air",
        extra={"page_id": PAGE_ID, "pages": pages(graph), "user_id": USER_ID},
    )


def test_exchange_of_a_bad_code_fails_permanently(graph: FakeGraph) -> None:
    with pytest.raises(ConnectorError) as caught:
        facebook.exchange_code(
            graph.app,
            code="nope",
            redirect_uri="https://e.example/cb",
            code_verifier="",
        )
    assert (caught.value.message, caught.value.permanent) == (
        "Invalid verification code format.",
        True,
    )


@pytest.mark.parametrize(
    ("connector", "shared", "message"),
    [
        (facebook, [], "No Facebook Page was shared with Earshot"),
        (instagram, [{"id": "1", "name": "P", "access_token": "t"}], "None of the"),
    ],
    ids=["facebook-no-page", "instagram-no-linked-account"],
)
def test_exchange_without_an_eligible_page_fails_permanently(
    graph: FakeGraph,
    connector: FacebookConnector | InstagramConnector,
    shared: list[dict[str, Any]],
    message: str,
) -> None:
    graph.pages[:] = shared
    with pytest.raises(ConnectorError) as caught:
        connector.exchange_code(
            graph.app,
            code=AUTH_CODE,
            redirect_uri="https://e.example/cb",
            code_verifier="",
        )
    assert caught.value.message.startswith(message)
    assert caught.value.permanent is True


def test_refresh_keeps_the_page_token_and_its_details() -> None:
    account = AccountRef(
        platform="instagram",
        external_id=IG_ID,
        handle="acmeair",
        credentials={
            "access_token": PAGE_TOKEN,
            "page_id": PAGE_ID,
            "expires_at": None,
        },
    )
    assert instagram.refresh(APP, account) == TokenSet(
        access_token=PAGE_TOKEN,
        account_external_id=IG_ID,
        handle="acmeair",
        extra={"page_id": PAGE_ID},
    )


def test_refresh_without_a_token_needs_reauthorization() -> None:
    account = AccountRef("facebook", PAGE_ID, "acmeair", credentials={})
    with pytest.raises(ConnectorError) as caught:
        facebook.refresh(APP, account)
    assert (caught.value.auth, caught.value.permanent) == (True, True)
