"""Outages (DESIGN.md §5, invariant 7): 503 with Retry-After in the API's error shape,
a plain page for browsers, never a 500 page (also with DEBUG); the cache, the
channel layer and the broker are not needed to accept a write.

Outages are simulated by making the failing call raise the error the real client
raises, or by pointing the cache at a port nothing listens on.
"""

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import kombu.exceptions
import pytest
import redis.exceptions
from django.db import InterfaceError, OperationalError
from django.test import Client
from django.utils import timezone

from helpdesk import api, events, tasks
from helpdesk.models import Conversation, Event, Message
from helpdesk.outage import OUTAGE_MESSAGE
from helpdesk.services import writebatch
from helpdesk.services.inbound import InboundResult
from social.models import SocialAccount
from social.tokens import refresh_account_token
from tenants import middleware
from tenants import tasks as tenant_tasks
from tenants.context import tenant_context
from tenants.models import Invitation, Membership, Tenant, User
from tenants.ratelimit import fixed_window_wait
from tenants.services import invite_member
from tests.api_clients import base, token_client
from tests.conftest import login
from tests.factories import membership_of
from tests.helpdesk.conftest import DeliveryQueue, item, receive

pytestmark = pytest.mark.django_db(transaction=True)

# A Redis nothing listens on: every command fails with a real ConnectionError.
DEAD_REDIS = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",
    }
}
OUTAGES: list[tuple[Callable[[], Exception], str]] = [
    (lambda: OperationalError("database is locked"), "database"),
    (lambda: InterfaceError("connection already closed"), "database"),
    (lambda: redis.exceptions.ConnectionError("Connection refused"), "cache"),
    (lambda: redis.exceptions.TimeoutError("Timeout reading from socket"), "cache"),
    (lambda: kombu.exceptions.OperationalError("Connection refused"), "broker"),
]
ANSWER = "Sorry Jo, checking AA12 now."
OUTAGE_IDS = ["db-locked", "db-closed", "redis-refused", "redis-timeout", "broker"]


def failing(error: Callable[[], Exception]) -> Callable[..., Any]:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise error()

    return fail


def assert_api_outage(response: Any, service: str) -> None:
    assert response.status_code == 503
    assert response["Retry-After"] == "30"
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "code": "service_unavailable",
        "message": OUTAGE_MESSAGE,
        "fields": {},
        "details": {"service": service},
    }


def outbound(tenant: Tenant) -> list[tuple[str, str]]:
    with tenant_context(tenant):
        return list(
            Message.objects.filter(direction="out")
            .order_by("id")
            .values_list("delivery_status", "text")
        )


def warnings_of(caplog: pytest.LogCaptureFixture, logger: str) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == logger and record.levelno == logging.WARNING
    ]


def post_answer(client: Any, tenant: Tenant, thread: InboundResult) -> Any:
    return client.post(
        f"{base(tenant)}/conversations/{thread.conversation.pk}/messages/",
        {"text": ANSWER},
        format="json",
    )


@pytest.fixture
def thread(account: SocialAccount) -> InboundResult:
    return receive(account, item(text="My flight AA12 is delayed, any news?"))


# Where the outage strikes: the tenant middleware's lookup (Django converts the
# error into a 500 response) or the API view (DRF's exception handler sees it).
WHERE = [(middleware, "open_tenant_with_token"), (api, "read_inbox_page")]


@pytest.mark.parametrize("debug", [False, True], ids=["prod", "debug"])
@pytest.mark.parametrize(("error", "service"), OUTAGES, ids=OUTAGE_IDS)
@pytest.mark.parametrize(("module", "name"), WHERE, ids=["middleware", "view"])
def test_an_outage_answers_503_in_the_api_shape(
    tenant: Tenant,
    agent: User,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    module: object,
    name: str,
    error: Callable[[], Exception],
    service: str,
    debug: bool,
) -> None:
    client = token_client(tenant, agent, "read")
    client.raise_request_exception = False
    settings.DEBUG = debug
    monkeypatch.setattr(module, name, failing(error))

    response = client.get(f"{base(tenant)}/conversations/")

    assert_api_outage(response, service)


def test_a_write_cut_short_by_an_outage_changes_nothing(
    tenant: Tenant,
    agent: User,
    thread: InboundResult,
    delivery_queue: DeliveryQueue,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The connection drops as the reply's last statement and its COMMIT go out
    (tenants.last_write): nothing of the reply is kept."""

    def lose_the_database(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(writebatch, "execute_last", lose_the_database)
    with tenant_context(tenant):
        events_before = Event.objects.count()
        conversation_before = Conversation.objects.values().get(
            pk=thread.conversation.pk
        )

    response = post_answer(token_client(tenant, agent), tenant, thread)

    assert_api_outage(response, "database")
    assert outbound(tenant) == []
    with tenant_context(tenant):
        assert Event.objects.count() == events_before
        assert (
            Conversation.objects.values().get(pk=thread.conversation.pk)
            == conversation_before
        )
    assert delivery_queue.calls == []


def test_an_outage_after_the_reply_committed_keeps_it_and_delivers_it(
    tenant: Tenant,
    agent: User,
    thread: InboundResult,
    delivery_queue: DeliveryQueue,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The reply's statement took COMMIT with it; the connection drops while the
    answer is built. The API answers 503, but the committed reply is not left
    behind: its delivery is queued and its events are stored (and published)."""

    def lose_the_database(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(api, "output", lose_the_database)
    with tenant_context(tenant):
        events_before = Event.objects.count()

    response = post_answer(token_client(tenant, agent), tenant, thread)

    assert_api_outage(response, "database")
    assert outbound(tenant) == [("scheduled", ANSWER)]
    with tenant_context(tenant):
        reply = Message.objects.get(direction="out")
        assert list(
            Event.objects.filter(seq__gt=events_before)
            .order_by("seq")
            .values_list("type", flat=True)
        ) == ["message.created", "conversation.updated"]
    assert [args for args, _eta in delivery_queue.calls] == [(tenant.pk, reply.pk)]


@pytest.mark.parametrize("debug", [False, True], ids=["prod", "debug"])
@pytest.mark.parametrize(("error", "service"), OUTAGES, ids=OUTAGE_IDS)
def test_a_page_answers_the_plain_503_page_without_a_traceback(
    tenant: Tenant,
    agent: User,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    error: Callable[[], Exception],
    service: str,
    debug: bool,
) -> None:
    client = login(agent)
    client.raise_request_exception = False
    settings.DEBUG = debug
    monkeypatch.setattr(middleware, "open_tenant_for_member", failing(error))

    response = client.get(f"/t/{tenant.slug}/inbox/")

    assert response.status_code == 503
    assert response["Retry-After"] == "30"
    assert response["Content-Type"] == "text/html; charset=utf-8"
    page = response.content.decode()
    assert "<h1>Earshot is briefly unavailable</h1>" in page
    assert "try again in 30 seconds" in page
    assert "Traceback" not in page
    assert "Error" not in page
    assert service not in page


def test_a_json_client_of_a_page_gets_the_api_shape(
    tenant: Tenant, agent: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = login(agent)
    client.raise_request_exception = False
    monkeypatch.setattr(middleware, "open_tenant_for_member", failing(OperationalError))

    response = client.get(f"/t/{tenant.slug}/inbox/", HTTP_ACCEPT="application/json")

    assert_api_outage(response, "database")


def test_an_error_that_is_not_an_outage_stays_a_500(
    tenant: Tenant, agent: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = token_client(tenant, agent, "read")
    client.raise_request_exception = False
    monkeypatch.setattr(api, "read_inbox_page", failing(lambda: KeyError("bug")))

    response = client.get(f"{base(tenant)}/conversations/")

    assert response.status_code == 500
    assert "Retry-After" not in response


def test_the_api_works_with_the_cache_down_and_logs_the_open_rate_limit(
    tenant: Tenant,
    agent: User,
    thread: InboundResult,
    delivery_queue: DeliveryQueue,
    settings: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = token_client(tenant, agent)
    settings.CACHES = DEAD_REDIS

    with caplog.at_level(logging.WARNING):
        listed = client.get(f"{base(tenant)}/conversations/")
        posted = post_answer(client, tenant, thread)

    assert listed.status_code == 200
    assert [row["id"] for row in listed.json()["results"]] == [thread.conversation.pk]
    assert posted.status_code == 201, posted.json()
    assert outbound(tenant) == [("scheduled", ANSWER)]
    assert [call[0] for call in delivery_queue.calls] == [
        (tenant.pk, posted.json()["id"])
    ]
    rate_limit = warnings_of(caplog, "tenants.api_auth")
    assert len(rate_limit) == 2
    assert all(
        line.startswith("API rate limit not applied, cache unavailable: ")
        for line in rate_limit
    )


def test_a_reply_is_saved_while_the_broker_is_down_and_swept_later(
    tenant: Tenant,
    agent: User,
    thread: InboundResult,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = {"down": True}
    published: list[tuple[int, ...]] = []

    def apply_async(args: tuple[int, ...], *_: Any, **__: Any) -> None:
        if broker["down"]:
            raise kombu.exceptions.OperationalError("Error 111 connecting to redis")
        published.append(tuple(args))

    monkeypatch.setattr(tasks.deliver_message, "apply_async", apply_async)

    with caplog.at_level(logging.WARNING, logger="tenants.tasks"):
        response = post_answer(token_client(tenant, agent), tenant, thread)

    assert response.status_code == 201, response.json()
    message_id = response.json()["id"]
    assert outbound(tenant) == [("scheduled", ANSWER)]
    assert published == []
    assert warnings_of(caplog, "tenants.tasks") == [
        f"broker unavailable, helpdesk.deliver_message({tenant.pk}, {message_id}) "
        "not enqueued (helpdesk.sweep_outbox will pick it up): "
        "OperationalError('Error 111 connecting to redis')"
    ]

    # The broker is back and the reply's send time has passed: the sweep queues it.
    broker["down"] = False
    with tenant_context(tenant):
        Message.objects.filter(pk=message_id).update(
            send_after=timezone.now() - timedelta(minutes=2)
        )
    swept = tasks.sweep_outbox.apply(args=(tenant.pk,)).get()

    assert swept == 1
    assert published == [(tenant.pk, message_id)]


def test_a_broadcast_failure_is_logged_and_the_write_commits(
    tenant: Tenant,
    agent: User,
    thread: InboundResult,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(
        events,
        "_group_send_many",
        failing(lambda: redis.exceptions.ConnectionError("Connection refused")),
    )
    with tenant_context(tenant):
        last_seq = Event.objects.order_by("-seq").values_list("seq", flat=True)[0]

    with caplog.at_level(logging.WARNING, logger="helpdesk.events"):
        response = post_answer(token_client(tenant, agent), tenant, thread)

    assert response.status_code == 201, response.json()
    assert outbound(tenant) == [("scheduled", ANSWER)]
    with tenant_context(tenant):
        stored = list(
            Event.objects.filter(seq__gt=last_seq)
            .order_by("seq")
            .values_list("type", flat=True)
        )
    assert stored != []
    assert warnings_of(caplog, "helpdesk.events") == [
        f"could not push event {type} to t{tenant.pk}, channel layer unavailable: "
        f"{redis.exceptions.ConnectionError('Connection refused')!r}"
        for type in stored
    ]


def test_an_invitation_is_saved_while_the_broker_is_down(
    tenant: Tenant,
    owner: User,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(
        tenant_tasks.send_invitation_email,
        "apply_async",
        failing(lambda: kombu.exceptions.OperationalError("Connection refused")),
    )

    membership = membership_of(tenant, owner)
    with (
        caplog.at_level(logging.WARNING, logger="tenants.tasks"),
        tenant_context(tenant),
    ):
        invitation = invite_member(
            membership, email="new@acme.example", role=Membership.Role.AGENT
        )

    with tenant_context(tenant):
        assert list(Invitation.objects.values_list("pk", "email")) == [
            (invitation.pk, "new@acme.example")
        ]
    assert warnings_of(caplog, "tenants.tasks") == [
        f"broker unavailable, tenants.send_invitation_email({tenant.pk}, "
        f"{invitation.pk}) not enqueued (no sweep retries it): "
        "OperationalError('Connection refused')"
    ]


def test_a_rate_limit_counts_its_window_and_fails_open_without_the_cache(
    settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    }
    now = 6_000_045.0  # 45 s into a minute
    waits = [fixed_window_wait("t", "203.0.113.9", limit=2, now=now) for _ in range(3)]
    assert waits == [None, None, 15]
    assert fixed_window_wait("t", "203.0.113.10", limit=2, now=now) is None

    settings.CACHES = DEAD_REDIS
    with caplog.at_level(logging.WARNING, logger="tenants.ratelimit"):
        wait = fixed_window_wait("t", "203.0.113.9", limit=2, now=now)

    assert wait is None
    lines = warnings_of(caplog, "tenants.ratelimit")
    assert len(lines) == 1
    assert lines[0].startswith("t rate limit not applied, cache unavailable: ")


def test_the_status_endpoint_answers_with_the_cache_down(
    tenant: Tenant, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.CACHES = DEAD_REDIS

    with caplog.at_level(logging.WARNING):
        response = Client().get(f"/status/{tenant.slug}/acme-air.json")

    assert response.status_code == 200
    assert response.json()["brand"] == "Acme Air"
    assert len(warnings_of(caplog, "tenants.ratelimit")) == 1


def test_a_token_refresh_is_skipped_when_its_lock_is_unreachable(
    tenant: Tenant,
    account: SocialAccount,
    settings: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with tenant_context(tenant):
        SocialAccount.objects.filter(pk=account.pk).update(
            token_expires_at=timezone.now() + timedelta(minutes=1)
        )
        before = SocialAccount.objects.values_list(
            "credentials", "token_expires_at", "last_error", "status"
        ).get(pk=account.pk)
    settings.CACHES = DEAD_REDIS

    with caplog.at_level(logging.WARNING, logger="social.tokens"):
        outcome = refresh_account_token(tenant, account.pk)

    assert outcome == "skipped"
    with tenant_context(tenant):
        after = SocialAccount.objects.values_list(
            "credentials", "token_expires_at", "last_error", "status"
        ).get(pk=account.pk)
    assert after == before
    lines = warnings_of(caplog, "social.tokens")
    assert len(lines) == 1
    assert lines[0].startswith(
        f"token refresh of account {account.pk} skipped, lock unavailable: "
    )


def test_an_inbound_item_is_recorded_while_presence_is_unreachable(
    tenant: Tenant,
    account: SocialAccount,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from helpdesk.presence import RedisPresence
    from helpdesk.services import assignment

    dead = RedisPresence("redis://127.0.0.1:1/0")
    monkeypatch.setattr(assignment, "presence_store", lambda: dead)

    with caplog.at_level(logging.WARNING):
        result = receive(account, item(external_id="while-redis-is-down"))

    assert result.created is True
    assert result.conversation.assignee_id is None
    assert [
        line.split(":")[0] for line in warnings_of(caplog, "helpdesk.presence")
    ] == ["presence unknown, Redis unavailable"]


def test_presence_without_redis_counts_nobody_and_raises_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from helpdesk.presence import RedisPresence

    dead = RedisPresence("redis://127.0.0.1:1/0")

    with caplog.at_level(logging.WARNING):
        assert dead.touch(1, 7) is False
        dead.leave(1, 7)
        assert dead.online(1) == set()

    assert [
        line.split(":")[0] for line in warnings_of(caplog, "helpdesk.presence")
    ] == [
        "presence not recorded, Redis unavailable",
        "presence not cleared, Redis unavailable",
        "presence unknown, Redis unavailable",
    ]


def test_a_member_is_removed_while_the_channel_layer_is_down(
    tenant: Tenant,
    owner: User,
    agent: User,
    settings: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": ["redis://127.0.0.1:1/0"]},
        }
    }
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    target = membership_of(tenant, agent)

    with caplog.at_level(logging.WARNING):
        response = login(owner).post(
            f"/t/acme-air/settings/members/{target.pk}/remove/"
        )

    channel_layers.backends.clear()
    assert response.status_code == 302
    with tenant_context(tenant):
        assert not Membership.objects.filter(user=agent).exists()
    assert [line.split(",")[0] for line in warnings_of(caplog, "tenants.services")] == [
        f"removed member {agent.pk}'s sockets not told to close"
    ]
