"""The fault suite's own instruments, checked without a stack (these run in the
normal suite): the Sandbox counts replayed publishes, the harness's webhooks are
signed as the Sandbox signs them, and refusals are judged strictly."""

import json

import pytest

from social.config import app_secrets
from social.connectors import get_connector
from social.sandbox import network
from social.sandbox.models import Person
from tests.faults.scenario import improper
from tests.faults.traffic import Refusal, SandboxIdentity, webhook_request


@pytest.mark.django_db
def test_the_sandbox_counts_every_replay_of_an_idempotency_key() -> None:
    brand = Person.objects.create(handle="acmeair", name="Acme Air", is_brand=True)
    first, created = network.create_post(brand, "Sorry!", idempotency_key="k1")
    again, created_again = network.create_post(brand, "Sorry!", idempotency_key="k1")
    network.create_post(brand, "Sorry!", idempotency_key="k1")
    first.refresh_from_db()
    assert (created, created_again, again.pk) == (True, False, first.pk)
    assert first.replays == 2


def test_harness_webhooks_verify_and_parse_like_the_sandbox_s() -> None:
    identity = SandboxIdentity(
        account_id="7", handle="acmeair", secret=app_secrets("sandbox").webhook_secret
    )
    request = webhook_request(
        identity,
        event_id="e1",
        post_id="p1",
        author=3,
        text="Still waiting",
        root="p0",
        in_reply_to="p0",
        mentions=False,
    )
    connector = get_connector("sandbox")
    headers = {key.lower(): value for key, value in request.headers.items()}
    assert connector.verify_webhook(request.body, headers, app_secrets("sandbox"))
    [item] = connector.parse_webhook(request.body)
    assert (item.account_external_id, item.item.external_id) == ("7", "p1")
    assert (item.item.thread_ref, item.item.in_reply_to) == ("p0", "p0")
    assert json.loads(request.body)["event_id"] == "e1"


def test_only_a_503_with_retry_after_in_the_api_shape_is_a_proper_refusal() -> None:
    good = Refusal("api", 503, "5", "service_unavailable", "")
    hook = Refusal("webhooks", 503, "5", None, "")
    assert improper([good, hook]) == []
    bad = [
        Refusal("api", 500, None, None, "<html>"),
        Refusal("api", 503, None, "service_unavailable", ""),
        Refusal("api", 503, "5", "error", ""),
        Refusal("webhooks", 502, "5", None, ""),
    ]
    assert improper(bad) == bad
