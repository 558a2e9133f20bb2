"""Competitor listening: a competitor rule's matches go to the competitor feed and
never open a conversation, on every ingest path (one webhook delivery at a time,
batched deliveries, polling with keyword search), and the rule is validated."""

import json
from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from advocacy.competitors import competitor_volume
from advocacy.models import CompetitorMention
from helpdesk.models import Conversation, Message
from social import polling
from social.connectors.base import FetchResult, InboundItem, TokenSet
from social.ingest import process_one_webhook_event, process_webhook_event
from social.listening_rules import brand_search_terms
from social.listening_services import create_listening_rule, update_listening_rule
from social.models import ListeningRule, SocialAccount, WebhookEvent
from social.services import connect_account
from tenants.context import tenant_context
from tenants.models import Brand, Membership, Tenant, User
from tests.api_clients import base, session
from tests.factories import membership_of
from tests.helpdesk.conftest import item

pytestmark = pytest.mark.django_db

RIVAL = '"sky rival" OR skyrival'


@pytest.fixture
def admin(tenant: Tenant, owner: User) -> Membership:
    return membership_of(tenant, owner)


@pytest.fixture
def sandbox(tenant: Tenant, admin: Membership) -> SocialAccount:
    with tenant_context(tenant):
        return connect_account(
            admin,
            brand=Brand.objects.get(),
            platform="sandbox",
            tokens=TokenSet(
                access_token="t", account_external_id="acme-1", handle="acme"
            ),
        )


@pytest.fixture
def rules(tenant: Tenant, admin: Membership) -> dict[str, ListeningRule]:
    with tenant_context(tenant):
        brand = Brand.objects.get()
        return {
            "rival": create_listening_rule(
                admin,
                brand=brand,
                name="Sky Rival",
                query=RIVAL,
                action="feed",
                competitor=True,
            ),
            "acme": create_listening_rule(
                admin, brand=brand, name="Acme untagged", query='"acme air"'
            ),
        }


def post_body(number: int, text: str, *, mentions: bool = False) -> bytes:
    return json.dumps(
        {
            "type": "post.created",
            "for_account": {"id": "acme-1"},
            "mentions_account": mentions,
            "post": {
                "id": f"p{number}",
                "author": {"id": f"u{number}", "handle": f"user{number}", "name": "U"},
                "text": text,
                "in_reply_to": None,
                "root": f"p{number}",
                "created_at": timezone.now().isoformat(),
            },
        }
    ).encode()


def store(bodies: list[bytes]) -> list[int]:
    rows = WebhookEvent.objects.bulk_create(
        WebhookEvent(
            platform="sandbox",
            event_key=f"competitor-{n}",
            body=raw,
            headers_digest="test",
            received_at=timezone.now() + timedelta(microseconds=n),
        )
        for n, raw in enumerate(bodies)
    )
    return [row.pk for row in rows]


def feed(tenant: Tenant) -> list[tuple[str, str, str]]:
    with tenant_context(tenant):
        return sorted(
            CompetitorMention.objects.values_list(
                "external_id", "rule__name", "sentiment"
            )
        )


def conversations(tenant: Tenant) -> list[str]:
    with tenant_context(tenant):
        return sorted(
            str(external_id)
            for external_id in Message.objects.filter(direction="in").values_list(
                "external_id", flat=True
            )
        )


BODIES = [
    (1, "Flew Sky Rival yesterday, awful delay and rude staff", False),
    (2, "skyrival was great, lovely crew", False),
    (3, "acme air lost my bag", False),
    (4, "@acme comparing you to Sky Rival: you are better", True),
    (5, "nothing to do with anyone", False),
]
# p4 tags the brand: the inbox, as always (listening rules read untagged posts only).
EXPECTED_FEED = [("p1", "Sky Rival", "negative"), ("p2", "Sky Rival", "positive")]
EXPECTED_INBOX = ["p3", "p4"]


@pytest.mark.usefixtures("sandbox", "rules")
def test_single_deliveries_put_competitor_matches_in_the_feed_only(
    tenant: Tenant,
) -> None:
    ids = store([post_body(n, text, mentions=m) for n, text, m in BODIES])
    for event_id in ids:
        assert process_one_webhook_event(event_id) == "processed"
    # Replayed: nothing twice.
    WebhookEvent.objects.filter(pk__in=ids).update(status="received")
    for event_id in ids:
        process_one_webhook_event(event_id)

    assert feed(tenant) == EXPECTED_FEED
    assert conversations(tenant) == EXPECTED_INBOX
    with tenant_context(tenant):
        assert Conversation.objects.count() == 2


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("sandbox", "rules")
def test_batched_deliveries_put_competitor_matches_in_the_feed_only(
    tenant: Tenant,
) -> None:
    ids = store([post_body(n, text, mentions=m) for n, text, m in BODIES])

    assert process_webhook_event(ids[0], batch_size=10) == "processed"

    assert (
        list(WebhookEvent.objects.filter(pk__in=ids).values_list("status", flat=True))
        == ["processed"] * 5
    )
    assert feed(tenant) == EXPECTED_FEED
    assert conversations(tenant) == EXPECTED_INBOX


class FakeSearch:
    """A polling connector with keyword search, answering from lists."""

    keyword_search = True

    def __init__(self, fetched: list[InboundItem], found: list[InboundItem]) -> None:
        self.fetched, self.found = fetched, found
        self.terms: list[list[str]] = []

    def fetch_since(self, ref: Any, cursor: str) -> FetchResult:
        return FetchResult(items=self.fetched, cursor="c1")

    def search_public(self, ref: Any, terms: list[str], cursor: str) -> FetchResult:
        self.terms.append(list(terms))
        return FetchResult(items=self.found, cursor="s1")


def test_polling_searches_competitor_terms_and_feeds_the_matches_only(
    tenant: Tenant,
    sandbox: SocialAccount,
    rules: dict[str, ListeningRule],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeSearch(
        fetched=[item(external_id="m1", text="@acme where is my bag?")],
        found=[
            item(
                external_id="s1",
                author="r1",
                mentions=False,
                text="Sky Rival is great, love them",
            ),
            item(external_id="s2", author="r2", mentions=False, text="acme air late"),
        ],
    )
    monkeypatch.setattr(polling, "get_connector", lambda platform: fake)

    assert polling.poll_account(tenant, sandbox.pk) == 2

    assert fake.terms == [['"sky rival"', "skyrival", '"acme air"']]
    assert feed(tenant) == [("s1", "Sky Rival", "positive")]
    assert conversations(tenant) == ["m1", "s2"]


def test_a_competitor_rule_must_be_feed_only(
    tenant: Tenant, admin: Membership, rules: dict[str, ListeningRule]
) -> None:
    with tenant_context(tenant):
        brand = Brand.objects.get()
        with pytest.raises(ValidationError) as refused:
            create_listening_rule(
                admin, brand=brand, name="Rival", query="rival", competitor=True
            )
        assert refused.value.message_dict == {
            "competitor": [
                "A competitor rule's matches go to the competitor feed, never the "
                'inbox: choose "Feed only".'
            ]
        }
        with pytest.raises(ValidationError) as changed:
            update_listening_rule(admin, rules["rival"], changes={"action": "inbox"})
        assert list(changed.value.message_dict) == ["competitor"]
        assert ListeningRule.objects.get(pk=rules["rival"].pk).action == "feed"
        assert ListeningRule.objects.count() == 2


def test_a_competitor_rule_saved_with_the_inbox_action_still_never_feeds_it(
    tenant: Tenant, sandbox: SocialAccount, rules: dict[str, ListeningRule]
) -> None:
    # The admin site writes the row without the service's check.
    with tenant_context(tenant):
        ListeningRule.objects.filter(pk=rules["rival"].pk).update(
            action="inbox", updated_at=timezone.now()
        )
    ids = store([post_body(1, "Sky Rival is late again")])
    process_one_webhook_event(ids[0])

    assert [(ext, rule) for ext, rule, _mood in feed(tenant)] == [("p1", "Sky Rival")]
    assert conversations(tenant) == []


def test_search_terms_leave_out_plain_feed_rules(
    tenant: Tenant, admin: Membership, sandbox: SocialAccount
) -> None:
    with tenant_context(tenant):
        brand = Brand.objects.get()
        create_listening_rule(
            admin, brand=brand, name="Count", query="weather", action="feed"
        )
        create_listening_rule(
            admin,
            brand=brand,
            name="Rival",
            query="skyrival",
            action="feed",
            competitor=True,
        )
        account = SocialAccount.objects.get(pk=sandbox.pk)
        assert brand_search_terms(account) == ["skyrival"]


def test_volume_counts_per_rule_per_day_by_sentiment_with_empty_days(
    tenant: Tenant, admin: Membership, rules: dict[str, ListeningRule]
) -> None:
    today = timezone.localtime().replace(hour=12, minute=0, second=0, microsecond=0)
    with tenant_context(tenant):
        brand = Brand.objects.get()
        for n, (days_ago, mood) in enumerate(
            [(0, "negative"), (0, "negative"), (0, "positive"), (2, "neutral")]
        ):
            CompetitorMention.objects.create(
                rule=rules["rival"],
                brand=brand,
                platform="x",
                external_id=f"x{n}",
                text="t",
                sentiment=mood,
                posted_at=today - timedelta(days=days_ago),
            )
        start = (today - timedelta(days=2)).replace(hour=0)
        series = competitor_volume(
            admin, start=start, end=start + timedelta(days=3), bucket="day"
        )
    assert [
        (s.rule.name, [(p.negative, p.neutral, p.positive) for p in s.points])
        for s in series
    ] == [("Sky Rival", [(0, 1, 0), (0, 0, 0), (2, 0, 1)])]


def test_the_rules_api_marks_a_competitor_rule_and_refuses_one_for_the_inbox(
    tenant: Tenant, owner: User, rules: dict[str, ListeningRule]
) -> None:
    client = session(owner)
    url = f"{base(tenant)}/listening-rules/"
    brand = rules["acme"].brand_id
    refused = client.post(
        url,
        {"brand_id": brand, "name": "Rival", "query": "rival", "competitor": True},
        format="json",
    )
    patched = client.patch(
        f"{url}{rules['acme'].pk}/", {"competitor": True}, format="json"
    )
    kept = client.patch(
        f"{url}{rules['rival'].pk}/", {"competitor": "maybe"}, format="json"
    )
    made = client.post(
        url,
        {
            "brand_id": brand,
            "name": "Rival two",
            "query": "rival",
            "action": "feed",
            "competitor": True,
        },
        format="json",
    )

    assert (refused.status_code, list(refused.json()["fields"])) == (
        400,
        ["competitor"],
    )
    assert (patched.status_code, list(patched.json()["fields"])) == (
        400,
        ["competitor"],
    )
    assert (kept.status_code, list(kept.json()["fields"])) == (400, ["competitor"])
    assert (made.status_code, made.json()["competitor"]) == (201, True)
    with tenant_context(tenant):
        assert sorted(
            ListeningRule.objects.values_list("name", "action", "competitor")
        ) == [
            ("Acme untagged", "inbox", False),
            ("Rival two", "feed", True),
            ("Sky Rival", "feed", True),
        ]
