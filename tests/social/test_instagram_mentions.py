"""Instagram `mentions` webhooks carry only the media and comment ids: ingest fetches
the mention's content through the connector (Graph API fields, against the Meta
fake) before recording it. A mention Instagram no longer shows is skipped and noted
on the event; a failing Graph API retries the event; a dead token flags the account.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core import mail
from django.test import Client, override_settings

from helpdesk.models import Message
from social.connectors.base import TokenSet
from social.connectors.meta import sign
from social.ingest import process_webhook_event
from social.models import SocialAccount, WebhookEvent
from social.services import connect_account
from tenants.context import tenant_context
from tenants.models import Tenant, User
from tests.factories import membership_of
from tests.social import fakes_meta
from tests.social.connecting import apps_with, brand_of
from tests.social.fakes_meta import IG_ID, PAGE_TOKEN, FakeGraph, token_expired
from tests.social.fakeserver import FakeServer

pytestmark = pytest.mark.django_db(transaction=True)

BODY = (Path(__file__).parent / "fixtures" / "meta" / "ig_mention.json").read_bytes()
MEDIA, COMMENT = "17918195224117851", "17894227972186120"
CAPTION_MEDIA = "17918195224117852"
COMMENT_MENTION = {
    "id": COMMENT,
    "text": "@acmeair my bag never arrived in Lisbon",
    "timestamp": "2026-08-12T17:59:00+0000",
    "username": "traveller.jo",
}
CAPTION_MENTION = {
    "id": CAPTION_MEDIA,
    "caption": "Boarding with @acmeair, wish me luck",
    "timestamp": "2026-08-12T18:03:00+0000",
    "username": "sam.flies",
}


@pytest.fixture
def graph(fake_http: FakeServer) -> Iterator[FakeGraph]:
    app = {
        "client_id": fakes_meta.APP_ID,
        "client_secret": fakes_meta.APP_SECRET,
        "verify_token": fakes_meta.VERIFY_TOKEN,
        "base_url": fake_http.base_url,
    }
    with override_settings(SOCIAL_APPS=apps_with(instagram=app)):
        yield FakeGraph(fake_http).install()


@pytest.fixture
def account(graph: FakeGraph, owner: User, tenant: Tenant) -> SocialAccount:
    with tenant_context(tenant):
        return connect_account(
            membership_of(tenant, owner),
            brand=brand_of(tenant),
            platform="instagram",
            tokens=TokenSet(
                access_token=PAGE_TOKEN,
                account_external_id=IG_ID,
                handle="acmeair",
                extra={"page_id": fakes_meta.PAGE_ID},
            ),
            base_url=graph.server.base_url,
        )


def deliver() -> Any:
    return Client().post(
        "/hooks/instagram/",
        BODY,
        content_type="application/json",
        headers={"X-Hub-Signature-256": sign(fakes_meta.APP_SECRET, BODY)},
    )


def recorded(tenant: Tenant) -> list[tuple[Any, ...]]:
    with tenant_context(tenant):
        return list(
            Message.objects.order_by("external_id").values_list(
                "external_id",
                "text",
                "author_identity__external_id",
                "author_identity__handle",
                "author_identity__profile_url",
                "conversation__origin",
                "conversation__public_thread_ref",
            )
        )


def lookups(graph: FakeGraph) -> list[list[str]]:
    return [
        r.query["fields"]
        for r in graph.server.requests
        if r.method == "GET" and r.path == f"/v21.0/{IG_ID}"
    ]


def test_mentions_are_hydrated_through_the_graph_api_before_recording(
    graph: FakeGraph, account: SocialAccount, tenant: Tenant
) -> None:
    graph.mentioned["mentioned_comment"] = COMMENT_MENTION
    graph.mentioned["mentioned_media"] = CAPTION_MENTION
    response = deliver()
    assert (response.status_code, response.json()) == (200, {"status": "accepted"})
    event = WebhookEvent.objects.get()
    assert (event.status, event.items, event.error) == ("processed", 2, "")
    assert lookups(graph) == [
        [f"mentioned_comment.comment_id({COMMENT}){{id,text,timestamp,username}}"],
        [f"mentioned_media.media_id({CAPTION_MEDIA}){{id,caption,timestamp,username}}"],
    ]
    assert all(
        r.headers["authorization"] == f"Bearer {PAGE_TOKEN}"
        for r in graph.server.requests
        if r.path == f"/v21.0/{IG_ID}"
    )
    assert recorded(tenant) == [
        (
            f"mention:{MEDIA}:{COMMENT}",
            "@acmeair my bag never arrived in Lisbon",
            "traveller.jo",
            "traveller.jo",
            "https://www.instagram.com/traveller.jo/",
            "mention",
            f"mention:{MEDIA}",
        ),
        (
            f"mention:{CAPTION_MEDIA}",
            "Boarding with @acmeair, wish me luck",
            "sam.flies",
            "sam.flies",
            "https://www.instagram.com/sam.flies/",
            "mention",
            f"mention:{CAPTION_MEDIA}",
        ),
    ]
    # Processing the event again fetches again but records nothing twice.
    WebhookEvent.objects.update(status="received")
    assert process_webhook_event(event.pk) == "processed"
    assert len(recorded(tenant)) == 2


def test_a_mention_instagram_no_longer_shows_is_skipped_and_noted(
    graph: FakeGraph, account: SocialAccount, tenant: Tenant
) -> None:
    graph.mentioned["mentioned_media"] = CAPTION_MENTION
    deliver()
    event = WebhookEvent.objects.get()
    assert (event.status, event.error) == (
        "processed",
        f"skipped mention:{MEDIA}:{COMMENT}: Instagram returned no mentioned "
        "comment for this mention (deleted, or no longer visible to the account).",
    )
    assert [row[0] for row in recorded(tenant)] == [f"mention:{CAPTION_MEDIA}"]


def test_a_failing_graph_api_retries_the_event(
    graph: FakeGraph, account: SocialAccount, tenant: Tenant
) -> None:
    graph.mentioned["mentioned_comment"] = COMMENT_MENTION
    graph.mentioned["mentioned_media"] = CAPTION_MENTION
    unavailable = fakes_meta.graph_error(
        2, "Service temporarily unavailable", status=503
    )
    graph.fail_next("GET", f"/v21.0/{IG_ID}", unavailable, times=2)
    from social.connectors.base import ConnectorError

    event = WebhookEvent.objects.create(
        platform="instagram", event_key="e1", body=BODY, headers_digest="x"
    )
    with pytest.raises(ConnectorError):
        process_webhook_event(event.pk)
    event.refresh_from_db()
    assert event.status == "received"
    assert recorded(tenant) == []
    with pytest.raises(ConnectorError):
        process_webhook_event(event.pk)
    assert process_webhook_event(event.pk) == "processed"
    assert len(recorded(tenant)) == 2


def test_a_dead_token_flags_the_account_and_notes_the_skipped_mentions(
    graph: FakeGraph, account: SocialAccount, tenant: Tenant
) -> None:
    graph.fail_next("GET", f"/v21.0/{IG_ID}", token_expired(), times=2)
    mail.outbox.clear()
    deliver()
    event = WebhookEvent.objects.get()
    assert event.status == "processed"
    assert event.error.startswith(f"skipped mention:{MEDIA}:{COMMENT}: Meta rejected")
    assert recorded(tenant) == []
    with tenant_context(tenant):
        assert SocialAccount.objects.get(pk=account.pk).status == "needs_reauth"
    assert [m.subject for m in mail.outbox] == ["Reconnect @acmeair on Instagram"]
