"""Hostile payloads on every connector's parsers and on the webhook path (issue 13).

Each parser gives items fit to store, or ValueError (a malformed delivery, a skipped
poll item), never another exception; a malformed item leaves its neighbours in the
same delivery or page; the receiver answers 4xx or stores; the worker records the
good events of a batch exactly once beside poisoned ones. Customer text is kept as
written, except NUL (removed) and lone surrogates (U+FFFD): social/connectors/text.py.
"""

import json
from typing import Any
from unittest.mock import patch

import pytest
from django.db import connection
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from helpdesk.models import Conversation, Identity, Message
from social.connectors import get_connector
from social.connectors import text as rules
from social.connectors.base import InboundItem, WebhookItem
from social.connectors.bluesky import parse_chat_log
from social.connectors.bluesky import parse_notification as bluesky_notification
from social.connectors.mastodon import MastodonConnector
from social.connectors.mastodon import parse_notification as mastodon_notification
from social.connectors.reddit import parse_message, parse_submission
from social.ingest import process_webhook_event
from social.models import WebhookEvent
from social.webhooks import Delivery, check_delivery
from tenants.context import tenant_context
from tenants.models import Tenant, User
from tests.social.fakes_mastodon import FakeMastodon
from tests.social.hostile import (
    DEEP,
    HOSTILE_TEXT,
    bodies,
    encode,
    fixture,
    json_values,
    mutated,
    wrong_leaf,
)
from tests.social.test_api_channel import client_for, open_channel
from tests.social.test_mastodon_connector import mastodon as mastodon
from tests.social.test_webhooks import connect, deliver, post_event

hypothesis_settings.register_profile(
    "hostile",
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.function_scoped_fixture,
    ],
)
HOSTILE = hypothesis_settings.get_profile("hostile")

SANDBOX = [
    {
        "event_id": "e1",
        "type": "post.created",
        "for_account": {"id": "100"},
        "mentions_account": True,
        "post": {
            "id": "p1",
            "author": {"id": "u1", "handle": "jo", "name": "Jo", "followers": 3},
            "text": "@acmeair my bag",
            "in_reply_to": None,
            "root": "p1",
            "url": "/sandbox/#post-p1",
            "created_at": "2026-01-05T10:00:00+00:00",
        },
    },
    {
        "event_id": "e2",
        "type": "message.created",
        "for_account": {"id": "100"},
        "message": {
            "id": "m1",
            "sender": {"id": "u1", "handle": "jo", "name": "Jo", "followers": 3},
            "text": "hello",
            "thread": "dm1",
            "created_at": "2026-01-05T10:00:00+00:00",
        },
    },
]
X = [
    fixture("x", name)
    for name in (
        "aaa_dm.json",
        "aaa_tweet_mention.json",
        "aaa_tweet_reply_extended.json",
        "xaa_dm_received.json",
        "xaa_post_mention_brand.json",
        "xaa_post_reply.json",
    )
]
FACEBOOK = [
    fixture("meta", name)
    for name in (
        "fb_batch.json",
        "fb_feed_comment.json",
        "fb_feed_reply.json",
        "fb_messenger_message.json",
    )
]
INSTAGRAM = [
    fixture("meta", name)
    for name in ("ig_comment.json", "ig_dm.json", "ig_mention.json")
]
WEBHOOK_ORIGINALS = {
    "sandbox": SANDBOX,
    "x": X,
    "facebook": FACEBOOK,
    "instagram": INSTAGRAM,
}
MASTODON_NOTIFICATIONS = fixture("mastodon", "notifications.json")
BLUESKY_NOTIFICATIONS = fixture("bluesky", "list_notifications_page1.json")[
    "notifications"
]
BLUESKY_LOGS = fixture("bluesky", "chat_get_log.json")["logs"]
REDDIT_INBOX = [
    {**child["data"], "kind": child["kind"]}
    for child in fixture("reddit", "inbox_page1.json")["data"]["children"]
]
REDDIT_POSTS = [
    {**child["data"], "kind": child["kind"]}
    for child in fixture("reddit", "search.json")["data"]["children"]
]
# Text with every code point hypothesis can make, lone surrogates and NUL included.
any_text = st.text(st.characters(exclude_categories=()), max_size=60)


def expected_text(text: str) -> str:
    """What Earshot keeps of `text` (the rule in social/connectors/text.py)."""
    return "".join(
        "\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in text if c != "\x00"
    )


def assert_storable(item: InboundItem) -> None:
    """Every field fits its column, with text PostgreSQL and UTF-8 accept."""
    author = item.author
    texts = [
        item.platform,
        item.external_id,
        item.text,
        item.visibility,
        item.kind,
        item.thread_ref,
        item.in_reply_to,
        item.url,
        author.external_id,
        author.handle,
        author.display_name,
        author.profile_url,
    ]
    for value in texts:
        assert type(value) is str
        assert "\x00" not in value
        value.encode("utf-8")
    for value in (item.external_id, item.thread_ref, item.in_reply_to):
        assert len(value) <= rules.ID_LENGTH
    assert len(author.handle) <= rules.HANDLE_LENGTH
    assert len(author.display_name) <= rules.NAME_LENGTH
    for link in (item.url, author.profile_url):
        assert len(link) <= rules.URL_LENGTH
        assert link == "" or link.lower().startswith(("http://", "https://", "/"))
    assert type(author.followers) is int
    assert 0 <= author.followers <= rules.MAX_FOLLOWERS
    assert item.created_at.utcoffset() is not None


def parses_or_refuses(parse: Any, value: Any) -> list[InboundItem]:
    """`parse(value)`'s items (each storable), or none when it said ValueError."""
    try:
        result = parse(value)
    except ValueError:
        return []
    if result is None:
        return []
    found = result if isinstance(result, list) else [result]
    for each in found:
        if isinstance(each, WebhookItem):
            assert "\x00" not in each.account_external_id
            each.account_external_id.encode("utf-8")
    items = [each.item if isinstance(each, WebhookItem) else each for each in found]
    for item in items:
        assert_storable(item)
    return items


def test_the_column_lengths_are_the_models() -> None:
    def length(model: Any, name: str) -> int:
        return int(model._meta.get_field(name).max_length)

    assert length(Message, "external_id") == rules.ID_LENGTH
    assert length(Message, "in_reply_to_external_id") == rules.ID_LENGTH
    assert length(Conversation, "public_thread_ref") == rules.ID_LENGTH
    assert length(Identity, "external_id") == rules.ID_LENGTH
    assert length(Identity, "handle") == rules.HANDLE_LENGTH
    assert length(Identity, "display_name") == rules.NAME_LENGTH
    assert length(Identity, "profile_url") == rules.URL_LENGTH
    assert length(Message, "external_url") == rules.URL_LENGTH


@pytest.mark.parametrize("platform", sorted(WEBHOOK_ORIGINALS))
def test_a_webhook_parser_gives_storable_items_or_value_error(platform: str) -> None:
    connector = get_connector(platform)

    @HOSTILE
    @given(body=bodies(WEBHOOK_ORIGINALS[platform]))
    def check(body: bytes) -> None:
        parses_or_refuses(connector.parse_webhook, body)
        try:
            key = connector.webhook_event_id(body)
        except ValueError:
            return
        assert type(key) is str

    check()


@pytest.mark.parametrize("platform", sorted(WEBHOOK_ORIGINALS))
def test_the_receiver_answers_4xx_or_stores_a_storable_delivery(platform: str) -> None:
    connector_class = type(get_connector(platform))

    @HOSTILE
    @given(body=bodies(WEBHOOK_ORIGINALS[platform]))
    def check(body: bytes) -> None:
        # Signatures are tested elsewhere; here every body counts as signed.
        with patch.object(connector_class, "verify_webhook", return_value=True):
            checked = check_delivery(platform, body, {})
        if isinstance(checked, Delivery):
            for value in (checked.key, checked.malformed):
                assert "\x00" not in value
                value.encode("utf-8")
            assert len(checked.key) <= 128
        else:
            status, answer = checked
            assert 400 <= status < 500, answer

    check()


@pytest.mark.parametrize(
    ("name", "parse", "originals"),
    [
        ("mastodon", mastodon_notification, MASTODON_NOTIFICATIONS),
        ("bluesky", bluesky_notification, BLUESKY_NOTIFICATIONS),
        ("bluesky chat", parse_chat_log, BLUESKY_LOGS),
        ("reddit message", parse_message, REDDIT_INBOX),
        ("reddit post", parse_submission, REDDIT_POSTS),
    ],
)
def test_a_poll_parser_gives_a_storable_item_or_value_error(
    name: str, parse: Any, originals: list[Any]
) -> None:
    @HOSTILE
    @given(
        value=st.one_of(
            st.sampled_from(originals).flatmap(mutated), json_values, wrong_leaf
        )
    )
    def check(value: Any) -> None:
        if value == DEEP:
            value = json.loads(encode(value, 500))
        parses_or_refuses(parse, value)

    check()


def test_a_mastodon_stream_keeps_the_frames_around_a_bad_one() -> None:
    good = [dict(MASTODON_NOTIFICATIONS[0]), dict(MASTODON_NOTIFICATIONS[0])]
    good[0]["status"] = {**good[0]["status"], "id": "good-1"}
    good[1]["status"] = {**good[1]["status"], "id": "good-2"}

    @HOSTILE
    @given(poison=st.sampled_from(MASTODON_NOTIFICATIONS).flatmap(mutated))
    def check(poison: Any) -> None:
        lines = []
        for frame in (good[0], poison, good[1]):
            lines += ["event: notification", "data: " + encode(frame).decode(), ""]
        lines += ["event: notification", "data: [[[[", ""]  # not JSON at all
        items = MastodonConnector().parse_sse(lines)
        ids = [item.external_id for item in items]
        assert ids.count("good-1") == 1
        assert ids.count("good-2") == 1
        for item in items:
            assert_storable(item)

    check()


def test_a_meta_delivery_keeps_the_entries_around_a_bad_one() -> None:
    message = fixture("meta", "fb_messenger_message.json")["entry"][0]
    comment = fixture("meta", "fb_feed_comment.json")["entry"][0]

    def entry(mid: str) -> dict[str, Any]:
        event = {**message["messaging"][0]}
        event["message"] = {**event["message"], "mid": mid}
        return {**message, "messaging": [event]}

    @HOSTILE
    @given(poison=mutated(comment))
    def check(poison: Any) -> None:
        if not isinstance(poison, dict) or poison.get("id") != message["id"]:
            poison = {"id": message["id"], "changes": [poison]}
        body = {"object": "page", "entry": [entry("good-1"), poison, entry("good-2")]}
        items = parses_or_refuses(get_connector("facebook").parse_webhook, encode(body))
        ids = [item.external_id for item in items]
        assert ids.count("good-1") == 1
        assert ids.count("good-2") == 1

    check()


@HOSTILE
@given(text=any_text)
def test_customer_text_is_kept_as_written_but_nul_and_lone_surrogates(
    text: str,
) -> None:
    sandbox = json.loads(json.dumps(SANDBOX[1]))
    sandbox["message"]["text"] = text
    facebook = fixture("meta", "fb_messenger_message.json")
    facebook["entry"][0]["messaging"][0]["message"]["text"] = text or "x"
    chat = json.loads(json.dumps(BLUESKY_LOGS[1]))
    chat["message"]["text"] = text
    reddit = {**REDDIT_INBOX[0], "body": text or "x"}

    items = [
        *get_connector("sandbox").parse_webhook(encode(sandbox)),
        *get_connector("facebook").parse_webhook(encode(facebook)),
    ]
    texts = [each.item.text for each in items]
    texts.append(parse_chat_log(json.loads(encode(chat))).text)  # type: ignore[union-attr]
    texts.append(parse_message(json.loads(encode(reddit))).text)

    expected = expected_text(text)
    assert texts == [
        expected,
        expected_text(text or "x"),
        expected,
        expected_text(text or "x"),
    ]


def test_the_sanitising_rule_on_the_named_cases() -> None:
    assert rules.storable("a\x00b") == "ab"
    assert rules.storable("\ud800x\udfff") == "\ufffdx\ufffd"
    for kept in HOSTILE_TEXT[5:]:
        assert rules.storable(kept) == kept


@pytest.mark.parametrize(
    ("url", "kept"),
    [
        ("https://sandbox.example/p/1", "https://sandbox.example/p/1"),
        ("/sandbox/#post-1", "/sandbox/#post-1"),
        ("javascript:window.__pwned=1", ""),
        (" JaVaScRiPt:alert(1)", ""),
        ("java\tscript:alert(1)", ""),
        ("data:text/html,<script>alert(1)</script>", ""),
        ("https://x.example/" + "a" * 200, ""),
    ],
)
def test_only_web_links_are_kept(url: str, kept: str) -> None:
    event = json.loads(json.dumps(SANDBOX[0]))
    event["post"]["url"] = url
    [parsed] = get_connector("sandbox").parse_webhook(encode(event))

    assert parsed.item.url == kept


# End to end, on PostgreSQL: through the receiver and the batched worker.


@pytest.mark.django_db(transaction=True)
def test_deep_json_and_hostile_text_get_a_clean_answer_at_the_receiver(
    tenant: Tenant, owner: User
) -> None:
    connect(tenant, owner, "100", "acmeair")
    deep = b"[" * 100_000 + b"]" * 100_000
    nul_key = encode({**post_event("100"), "event_id": "k\x00\ud800"})

    answers = [deliver(deep), deliver(b"\xff\xfe not utf-8"), deliver(nul_key)]

    assert [a.status_code for a in answers] == [400, 400, 200]
    assert answers[0].json()["error"] == (
        "not a valid sandbox delivery: Not JSON: nested too deeply"
    )
    rows = WebhookEvent.objects.order_by("pk")
    assert [row.status for row in rows] == ["malformed", "malformed", "processed"]
    assert rows[2].event_key.startswith("sha256-")


@pytest.mark.django_db(transaction=True)
def test_a_batch_records_every_good_event_once_beside_poisoned_ones(
    tenant: Tenant, owner: User
) -> None:
    account = connect(tenant, owner, "100", "acmeair")
    labels = iter(range(10**6))

    @hypothesis_settings(HOSTILE, max_examples=8)
    @given(poisons=st.lists(bodies(SANDBOX), min_size=1, max_size=3))
    def check(poisons: list[bytes]) -> None:
        label = next(labels)
        good = [good_event(label, n) for n in range(3)]
        batch = [good[0], *poisons[:2], good[1], *poisons[2:], good[2]]
        ids = store(label, batch)

        process_webhook_event(ids[0], batch_size=20)

        statuses = dict(
            WebhookEvent.objects.filter(pk__in=ids).values_list("pk", "status")
        )
        assert set(statuses.values()) <= {"processed", "malformed", "unroutable"}
        with tenant_context(tenant):
            recorded = list(
                Message.objects.filter(
                    account=account, external_id__startswith=f"good-{label}-"
                ).values_list("external_id", "text")
            )
        assert sorted(recorded) == [
            (f"good-{label}-{n}", f"{HOSTILE_TEXT[n + 9]} \u202e{label}")
            for n in range(3)
        ]

    check()


def good_event(label: int, n: int) -> bytes:
    event = post_event("100", text=f"{HOSTILE_TEXT[n + 9]} \u202e{label}")
    event["post"]["id"] = event["post"]["root"] = f"good-{label}-{n}"
    return json.dumps(event).encode()


def store(label: int, bodies: list[bytes]) -> list[int]:
    rows = WebhookEvent.objects.bulk_create(
        WebhookEvent(
            platform="sandbox",
            event_key=f"hostile-{label}-{n}",
            body=body,
            headers_digest="test",
        )
        for n, body in enumerate(bodies)
    )
    return [row.pk for row in rows]


@pytest.mark.django_db(transaction=True)
def test_the_api_channel_answers_400_to_hostile_bodies(
    tenant: Tenant, owner: User, agent: User
) -> None:
    channel = open_channel(tenant, owner)
    client: APIClient = client_for(tenant, agent, "write")
    url = f"/api/v1/t/{tenant.slug}/channels/{channel}/messages/"
    author = {"id": "cust-9", "handle": "sam", "name": "Sam"}

    def post(body: bytes) -> Any:
        return client.post(url, body, content_type="application/json")

    answers = [
        post(b"[" * 100_000 + b"]" * 100_000),
        post(encode({"external_id": "n1", "text": "a\x00b", "author": author})),
        post(encode({"external_id": "s1", "text": "a\ud800b", "author": author})),
        post(encode({"external_id": ["x"], "text": {"a": 1}, "author": "sam"})),
    ]

    assert [a.status_code for a in answers] == [400, 400, 400, 400]
    with tenant_context(tenant):
        assert Message.objects.count() == 0
    assert connection.vendor == "postgresql"


def test_a_mastodon_poll_keeps_the_notifications_around_bad_ones(
    mastodon: FakeMastodon,
) -> None:
    good = [n for n in MASTODON_NOTIFICATIONS if n["id"] in ("903", "900")]
    person = good[0]["account"]
    mastodon.notifications = [
        *good,
        {"id": "951", "type": "mention", "status": {"id": "s951"}},
        {"id": "952", "type": "mention", "account": "mallory", "status": {"id": "s"}},
        {
            "id": "953",
            "type": "mention",
            "account": person,
            "status": {**good[0]["status"], "id": "9" * 200},
        },
        {
            "id": "954",
            "type": "mention",
            "account": person,
            "status": {**good[0]["status"], "id": "s954", "content": "<p>a\x00b</p>"},
        },
    ]

    fetched = MastodonConnector().fetch_since(mastodon.account(), "")

    assert [(item.external_id, item.text) for item in fetched.items] == [
        ("1100", mastodon_notification(good[1]).text),  # type: ignore[union-attr]
        ("1103", mastodon_notification(good[0]).text),  # type: ignore[union-attr]
        ("s954", "ab"),
    ]
    assert fetched.cursor == "954"
