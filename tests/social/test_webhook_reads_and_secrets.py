"""The receiver's lean path: each delivery's body is read once (the connector takes
its event id from what the receiver read), and the app secrets a signature is
checked with are built once per platform, and again as soon as their settings
change, so a rotated secret refuses what the old one signed."""

import base64
import hashlib
import hmac
import json
from contextlib import ExitStack
from importlib import import_module
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
from django.conf import settings
from django.test import override_settings

from social.config import app_secrets
from social.connectors import get_connector
from social.connectors.base import AppSecrets
from social.connectors.text import load_json
from social.models import SocialAccount, WebhookEvent
from social.webhooks import Delivery, check_delivery
from tenants.models import Tenant
from tests.social.test_webhooks import SECRET, conversations, deliver, post_event
from tests.social.test_webhooks import routed as routed

FIXTURES = Path(__file__).parent / "fixtures"
X_SECRET = "x-consumer-secret"
META_SECRET = "meta-app-secret"
APPS = {
    **settings.SOCIAL_APPS,
    "x": {**settings.SOCIAL_APPS["x"], "client_secret": X_SECRET},
    "facebook": {**settings.SOCIAL_APPS["facebook"], "client_secret": META_SECRET},
    "instagram": {**settings.SOCIAL_APPS["instagram"], "client_secret": META_SECRET},
}
# (platform, connector module, fixture, signature header, signature)
SIGNED = [
    (
        "sandbox",
        "sandbox",
        None,
        "x-sandbox-signature",
        lambda body: "sha256=" + hmac.new(SECRET.encode(), body, "sha256").hexdigest(),
    ),
    (
        "x",
        "x",
        "x/aaa_tweet_mention.json",
        "x-twitter-webhooks-signature",
        lambda body: (
            "sha256="
            + base64.b64encode(
                hmac.new(X_SECRET.encode(), body, hashlib.sha256).digest()
            ).decode()
        ),
    ),
    (
        "x",
        "x",
        "x/xaa_post_reply.json",
        "x-twitter-webhooks-signature",
        lambda body: (
            "sha256="
            + base64.b64encode(
                hmac.new(X_SECRET.encode(), body, hashlib.sha256).digest()
            ).decode()
        ),
    ),
    (
        "facebook",
        "meta",
        "meta/fb_messenger_message.json",
        "x-hub-signature-256",
        lambda body: (
            "sha256=" + hmac.new(META_SECRET.encode(), body, hashlib.sha256).hexdigest()
        ),
    ),
    (
        "instagram",
        "meta",
        "meta/ig_comment.json",
        "x-hub-signature-256",
        lambda body: (
            "sha256=" + hmac.new(META_SECRET.encode(), body, hashlib.sha256).hexdigest()
        ),
    ),
]


def body_of(fixture: str | None) -> bytes:
    if fixture is None:
        return json.dumps(post_event("100", event_id="e-once")).encode()
    return (FIXTURES / fixture).read_bytes()


@pytest.mark.parametrize(("platform", "module", "fixture", "header", "sign"), SIGNED)
def test_the_receiver_reads_a_delivery_once_and_keys_it_as_before(
    platform: str, module: str, fixture: str | None, header: str, sign: Any
) -> None:
    body = body_of(fixture)
    expected_key = get_connector(platform).webhook_event_id(body)
    twice = AssertionError("read twice")
    with ExitStack() as stack:
        stack.enter_context(override_settings(SOCIAL_APPS=APPS))
        receiver_reads = stack.enter_context(
            patch("social.webhooks.load_json", wraps=load_json)
        )
        # The connector's own reader, by its module's name or through the text
        # module (social.connectors.base.delivery_object).
        stack.enter_context(
            patch("social.connectors.text.load_json", side_effect=twice)
        )
        if hasattr(import_module(f"social.connectors.{module}"), "load_json"):
            stack.enter_context(
                patch(f"social.connectors.{module}.load_json", side_effect=twice)
            )
        checked = check_delivery(platform, body, {header: sign(body)})
    assert isinstance(checked, Delivery)
    assert (checked.key, checked.malformed) == (expected_key, "")
    assert receiver_reads.call_count == 1


@pytest.mark.parametrize(
    ("platform", "body", "error"),
    [
        (
            "sandbox",
            b"{not json",
            "not a valid sandbox delivery: Expecting property name enclosed in "
            "double quotes: line 1 column 2 (char 1)",
        ),
        (
            "sandbox",
            b"[1]",
            "not a valid sandbox delivery: the delivery: list indices must be "
            "integers or slices, not str",
        ),
        (
            "sandbox",
            b'{"type": "post.created"}',
            "not a valid sandbox delivery: the delivery has no 'event_id'",
        ),
        ("x", b"[1]", "not a valid x delivery: The delivery is not a JSON object."),
        (
            "facebook",
            b'"text"',
            "not a valid facebook delivery: The delivery is not a JSON object.",
        ),
    ],
)
def test_a_malformed_delivery_is_told_as_before(
    platform: str, body: bytes, error: str
) -> None:
    connector_class = type(get_connector(platform))
    with patch.object(connector_class, "verify_webhook", return_value=True):
        checked = check_delivery(platform, body, {})
    assert isinstance(checked, Delivery)
    assert checked.malformed == error
    assert checked.key == "malformed-" + hashlib.sha256(body).hexdigest()


@pytest.mark.parametrize(("platform", "module", "fixture", "header", "sign"), SIGNED)
def test_an_event_id_from_a_read_payload_is_the_id_of_the_body(
    platform: str, module: str, fixture: str | None, header: str, sign: Any
) -> None:
    connector = get_connector(platform)
    body = body_of(fixture)
    assert connector.webhook_event_id(body, load_json(body)) == (
        connector.webhook_event_id(body)
    )


def test_app_secrets_follow_every_change_of_their_settings() -> None:
    first = app_secrets("sandbox")
    assert app_secrets("sandbox") is first
    assert first.webhook_secret == SECRET

    rotated = {**settings.SOCIAL_APPS["sandbox"], "webhook_secret": "rotated"}
    with override_settings(SOCIAL_APPS={**settings.SOCIAL_APPS, "sandbox": rotated}):
        assert app_secrets("sandbox").webhook_secret == "rotated"
        rotated["webhook_secret"] = "changed in place"
        assert app_secrets("sandbox").webhook_secret == "changed in place"
    with override_settings(SOCIAL_APPS={}):
        assert app_secrets("sandbox") == AppSecrets()
    assert app_secrets("sandbox") == first
    assert app_secrets("sandbox").webhook_secret == SECRET


@pytest.mark.django_db(transaction=True)
def test_a_rotated_secret_refuses_what_the_old_one_signed(
    routed: SocialAccount, tenant: Tenant, other_tenant: Tenant
) -> None:
    assert deliver(post_event("100", event_id="e-before")).status_code == 200
    rotated = {**settings.SOCIAL_APPS["sandbox"], "webhook_secret": "rotated"}
    with override_settings(SOCIAL_APPS={**settings.SOCIAL_APPS, "sandbox": rotated}):
        refused = deliver(post_event("100", event_id="e-old-secret"))
        accepted = deliver(post_event("100", event_id="e-new"), secret="rotated")
    assert (refused.status_code, refused.json()) == (
        401,
        {"error": "missing or invalid signature"},
    )
    assert (accepted.status_code, accepted.json()) == (200, {"status": "accepted"})
    keys = set(WebhookEvent.objects.values_list("event_key", flat=True))
    assert keys == {"e-before", "e-new"}
    # Back to the old secret: what the rotated one signs is refused again.
    stale = deliver(post_event("100", event_id="e-stale"), secret="rotated")
    assert stale.status_code == 401
    assert WebhookEvent.objects.count() == 2
    assert len(conversations(tenant)) == 2
    assert conversations(other_tenant) == []
