"""X and Meta deliveries through the real receiver at /hooks/<platform>/: the platform
checks (CRC, hub.challenge), signatures on the raw bytes, routing to the workspace."""

import base64
import hashlib
import hmac
import json
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client, override_settings

from helpdesk.models import Conversation
from social.connectors.base import TokenSet
from social.models import WebhookEvent
from social.services import connect_account
from tenants.context import tenant_context
from tenants.models import Brand, Tenant, User
from tests.factories import membership_of

pytestmark = pytest.mark.django_db(transaction=True)

FIXTURES = Path(__file__).parent / "fixtures"
X_SECRET = "x-consumer-secret"
META_SECRET = "meta-app-secret"
APPS = {
    **settings.SOCIAL_APPS,
    "x": {**settings.SOCIAL_APPS["x"], "client_id": "x-app", "client_secret": X_SECRET},
    "facebook": {
        **settings.SOCIAL_APPS["facebook"],
        "client_id": "fb-app",
        "client_secret": META_SECRET,
        "verify_token": "earshot-verify",
    },
}


@pytest.fixture(autouse=True)
def _apps() -> object:
    with override_settings(SOCIAL_APPS=APPS):
        yield


def connect(tenant: Tenant, user: User, platform: str, external_id: str) -> None:
    with tenant_context(tenant):
        connect_account(
            membership_of(tenant, user),
            brand=Brand.objects.get(),
            platform=platform,
            tokens=TokenSet(
                access_token="t", account_external_id=external_id, handle="acme"
            ),
        )


def previews(tenant: Tenant) -> list[tuple[str, str]]:
    with tenant_context(tenant):
        return list(Conversation.objects.values_list("origin", "preview"))


def test_x_crc_check_answers_with_the_hmac_of_the_token() -> None:
    response = Client().get("/hooks/x/", {"crc_token": "challenge-123"})
    digest = hmac.new(X_SECRET.encode(), b"challenge-123", hashlib.sha256).digest()
    assert response.status_code == 200
    assert response.json() == {
        "response_token": "sha256=" + base64.b64encode(digest).decode()
    }
    assert Client().get("/hooks/x/").status_code == 400


def test_a_signed_x_mention_reaches_its_workspace_only(
    tenant: Tenant, owner: User, other_tenant: Tenant, outsider: User
) -> None:
    connect(tenant, owner, "x", "1000")
    connect(other_tenant, outsider, "x", "2000")
    body = (FIXTURES / "x" / "aaa_tweet_mention.json").read_bytes()
    digest = hmac.new(X_SECRET.encode(), body, hashlib.sha256).digest()
    signature = "sha256=" + base64.b64encode(digest).decode()
    refused = Client().post(
        "/hooks/x/",
        body + b" ",
        content_type="application/json",
        headers={"x-twitter-webhooks-signature": signature},
    )
    assert refused.status_code == 401
    accepted = Client().post(
        "/hooks/x/",
        body,
        content_type="application/json",
        headers={"x-twitter-webhooks-signature": signature},
    )
    assert accepted.json() == {"status": "accepted"}
    assert WebhookEvent.objects.get().status == "processed"
    [(origin, preview)] = previews(tenant)
    assert origin == "mention"
    assert preview.startswith("@acmeair my bag never arrived at LHR")
    assert previews(other_tenant) == []


def test_meta_hub_challenge_needs_the_verify_token() -> None:
    ok = Client().get(
        "/hooks/facebook/",
        {
            "hub.mode": "subscribe",
            "hub.verify_token": "earshot-verify",
            "hub.challenge": "42",
        },
    )
    assert (ok.status_code, ok.content) == (200, b"42")
    wrong = Client().get(
        "/hooks/facebook/",
        {"hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "42"},
    )
    assert wrong.status_code == 403


def test_a_signed_facebook_comment_with_escapes_is_recorded(
    tenant: Tenant, owner: User
) -> None:
    connect(tenant, owner, "facebook", "111000111")
    body = (FIXTURES / "meta" / "fb_feed_comment.json").read_bytes()
    assert b"\\u" in body
    signature = (
        "sha256=" + hmac.new(META_SECRET.encode(), body, hashlib.sha256).hexdigest()
    )
    reserialised = json.dumps(json.loads(body)).encode()
    assert (
        Client()
        .post(
            "/hooks/facebook/",
            reserialised,
            content_type="application/json",
            headers={"x-hub-signature-256": signature},
        )
        .status_code
        == 401
    )
    response = Client().post(
        "/hooks/facebook/",
        body,
        content_type="application/json",
        headers={"x-hub-signature-256": signature},
    )
    assert response.json() == {"status": "accepted"}
    assert previews(tenant) == [
        ("comment", "Still waiting on my refund — 3 weeks now 😞")
    ]
