"""An inbound create reads its cached answers from Redis in one round trip.

Routing's presence, the incident-rule flag (a new conversation's) and the
webhook endpoints are read together (one Lua script) before the write batch
(helpdesk.cache's reading_ahead). The API channel push sends that script with
its rate limit's (one Lua script too) in one round trip before the view runs
(tenants.api_auth's ride-along), where each read used to be its own (five for a
new conversation, four for a follow-up, with the rate limit's).
"""

import hashlib
from collections.abc import Iterator
from typing import Any
from uuid import uuid4

import pytest
import redis.exceptions
from django.core.cache import cache
from django.test import override_settings
from redis.connection import AbstractConnection

from helpdesk import cache as read_cache
from helpdesk.models import Conversation, WebhookDelivery
from helpdesk.presence import RedisPresence, presence_store, read_target
from helpdesk.services import inbound, webhook_outbox
from social.models import SocialAccount
from tenants import ratelimit as tenant_ratelimit
from tenants.context import tenant_context
from tenants.models import Tenant, User
from tenants.resp import PlainRedis
from tests.api_clients import open_api_channel, push, token_client
from tests.helpdesk.webhook_support import (  # noqa: F401 - fixtures
    FakeDns,
    WebhookQueue,
    add_endpoint,
    fake_dns_fixture,
    webhook_queue_fixture,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _own_keys(
    fake_dns: FakeDns, webhook_queue: WebhookQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """This test's own endpoint cache key (other test databases share Redis and
    tenant ids); no real DNS, deliveries captured."""
    prefix = uuid4().hex
    monkeypatch.setattr(
        webhook_outbox, "_cache_key", lambda tenant_id: f"{prefix}.t{tenant_id}"
    )


@pytest.fixture
def channel(tenant: Tenant, owner: User) -> SocialAccount:
    return open_api_channel(tenant, owner)


@pytest.fixture
def online_agent(tenant: Tenant, agent: User) -> Iterator[User]:
    store = presence_store()
    assert isinstance(store, RedisPresence)
    store.leave(tenant.pk, agent.pk)
    store.touch(tenant.pk, agent.pk)
    yield agent
    store.leave(tenant.pk, agent.pk)


def _commands(packed: Any) -> list[list[str]]:
    """The commands in a packed RESP request (one or several), with their
    arguments."""
    data = b"".join(bytes(chunk) for chunk in packed)
    commands, at = [], 0
    while at < len(data):
        assert data[at : at + 1] == b"*", data
        end = data.index(b"\r\n", at)
        count, at = int(data[at + 1 : end]), end + 2
        command = []
        for _ in range(count):
            end = data.index(b"\r\n", at)
            size = int(data[at + 1 : end])
            command.append(data[end + 2 : end + 2 + size].decode(errors="replace"))
            at = end + 2 + size + 2
        commands.append(command)
    return commands


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> list[list[list[str]]]:
    """Every request sent to any Redis (through redis-py or tenants.resp's plain
    sockets), as its commands with their arguments."""
    sent: list[list[list[str]]] = []
    original: Any = AbstractConnection.send_packed_command

    def send(self: Any, command: Any, check_health: bool = True) -> None:
        sent.append(_commands([command] if isinstance(command, bytes) else command))
        original(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", send)
    plain_send = PlainRedis._send

    def send_plain(self: PlainRedis, command: bytes) -> None:
        sent.append(_commands([command]))
        plain_send(self, command)

    monkeypatch.setattr(PlainRedis, "_send", send_plain)
    return sent


def test_a_create_makes_one_round_trip_and_uses_every_answer(
    tenant: Tenant,
    owner: User,
    channel: SocialAccount,
    online_agent: User,
    round_trips: list[list[list[str]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def names() -> list[list[str]]:
        return [[command[0] for command in sent] for sent in round_trips]

    def keys_read() -> list[str]:
        ((_, command),) = round_trips
        return command[3 : 3 + int(command[2])]

    endpoints = cache.make_and_validate_key(webhook_outbox._cache_key(tenant.pk))
    rules = cache.make_and_validate_key(f"incidents.rules.t{tenant.pk}")
    client = token_client(tenant, owner, "admin")
    add_endpoint(tenant, owner, "https://hooks.example.com/earshot")
    cache.delete(webhook_outbox._cache_key(tenant.pk))  # its stale window ends
    assert push(client, tenant, channel, 0).status_code == 201  # fills the cache
    cache.set(inbound.INCIDENT_RULES_KEY.format(tenant.pk), 1)
    linked: list[int] = []
    monkeypatch.setattr(
        inbound, "_link_new_conversation", lambda c: linked.append(c.pk)
    )
    round_trips.clear()
    created = push(client, tenant, channel, 1)
    assert created.status_code == 201, created.content
    # The rate limit (tenants.ratelimit.sliding_window) and the reads, together.
    assert names() == [["EVALSHA", "EVALSHA"]]
    assert round_trips[0][0][1] == tenant_ratelimit._SLIDING_SHA
    assert keys_read() == [endpoints, rules, f"earshot:presence:t{tenant.pk}"]
    conversation = created.json()["conversation_id"]
    assert linked == [conversation]
    round_trips.clear()
    followed = push(client, tenant, channel, 2, author=1)
    assert followed.status_code == 201, followed.content
    assert followed.json()["conversation_id"] == conversation
    # The incident flag is read (before the push knows it opens nothing), and
    # not used for a conversation that was not opened.
    assert names() == [["EVALSHA", "EVALSHA"]]
    assert keys_read() == [endpoints, rules, f"earshot:presence:t{tenant.pk}"]
    assert linked == [conversation]
    assert read_cache._prefetched.get() is None
    with tenant_context(tenant):
        assert Conversation.objects.get(pk=conversation).assignee_id == online_agent.pk
        assert list(
            WebhookDelivery.objects.filter(payload__conversation_id=conversation)
            .order_by("id")
            .values_list("event_type", flat=True)
        ) == [
            "message.created",
            "conversation.created",
            "message.created",
            "conversation.updated",
        ]


def test_a_replayed_push_leaves_no_answers_behind(
    tenant: Tenant,
    owner: User,
    channel: SocialAccount,
    round_trips: list[list[list[str]]],
) -> None:
    client = token_client(tenant, owner, "admin")
    assert push(client, tenant, channel, 0).status_code == 201
    round_trips.clear()
    replay = push(client, tenant, channel, 0)
    assert replay.status_code == 200, replay.content
    assert [[command[0] for command in sent] for sent in round_trips] == [
        ["EVALSHA", "EVALSHA"]
    ]
    assert read_cache._prefetched.get() is None


def test_a_failed_round_trip_is_each_readers_own_failure(
    tenant: Tenant,
    owner: User,
    channel: SocialAccount,
    online_agent: User,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Redis away for the rate limit's round trip: the limit fails open, and
    nobody is online, no incident link, the endpoints from the database (as
    when each read failed alone)."""
    client = token_client(tenant, owner, "admin")
    add_endpoint(tenant, owner, "https://hooks.example.com/earshot")
    cache.set(inbound.INCIDENT_RULES_KEY.format(tenant.pk), 1)
    linked: list[int] = []
    monkeypatch.setattr(
        inbound, "_link_new_conversation", lambda c: linked.append(c.pk)
    )
    sent: list[int] = []

    def failing(client: Any, calls: list[Any]) -> Any:
        sent.append(len(calls))
        raise redis.exceptions.ConnectionError("Redis went away")

    monkeypatch.setattr(tenant_ratelimit, "run_scripts", failing)
    read = read_cache._read
    own_reads: list[list[str]] = []

    def counted(keys: list[str], presence: read_cache.PresenceRead | None) -> Any:
        own_reads.append(keys)
        return read(keys, presence)

    monkeypatch.setattr(read_cache, "_read", counted)
    created = push(client, tenant, channel, 1)
    assert created.status_code == 201, created.content
    assert sent == [2]
    assert own_reads == []  # the failed answers were used, not read again
    conversation = created.json()["conversation_id"]
    assert linked == []
    with tenant_context(tenant):
        assert Conversation.objects.get(pk=conversation).assignee_id is None
        assert (
            WebhookDelivery.objects.filter(
                payload__conversation_id=conversation
            ).count()
            == 2
        )
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 3, warnings
    assert warnings[0].startswith("API rate limit not applied, cache unavailable:")
    assert warnings[1:] == [
        "presence unknown, Redis unavailable: network:ConnectionError",
        "webhook endpoint cache unavailable",
    ]


def test_answers_read_along_serve_the_same_or_fewer_keys_once(
    round_trips: list[list[list[str]]],
) -> None:
    first, second = f"read-ahead.{uuid4().hex}", f"read-ahead.{uuid4().hex}"
    cache.set(first, "one")
    cache.set(second, "two")
    raw: Any = cache._cache.get_client(write=True)  # type: ignore[attr-defined]

    def read_along(keys: list[str]) -> None:
        call = read_cache.read_ahead_call(keys, presence=None)
        assert call is not None
        call.answer(raw.eval(call.script, call.numkeys, *call.args))

    def reading(keys: list[str], presence: Any, expected: str) -> int:
        """Round trips of one reading_ahead of `keys` whose answer is `expected`."""
        before = len(round_trips)
        with read_cache.reading_ahead(keys, presence=presence):
            ahead = read_cache.read_ahead()
            assert ahead is not None
            assert ahead.value(keys[-1]) == expected
        return len(round_trips) - before

    read_along([first, second])
    assert reading([first], None, "one") == 0  # fewer keys: no round trip
    assert read_cache._prefetched.get() is None  # used once
    assert reading([first], None, "one") == 1  # read again
    read_along([first])
    cache.set(second, "changed")
    assert reading([first, second], None, "changed") == 1  # more keys: read
    read_along([first])
    assert reading([first], read_target(1), "one") == 1  # with presence: read
    read_along([first])
    read_cache.drop_prefetched()
    assert read_cache._prefetched.get() is None


def test_a_redis_that_does_not_know_the_script_is_sent_it(
    monkeypatch: pytest.MonkeyPatch, round_trips: list[list[list[str]]]
) -> None:
    """A script of this test's own, which this Redis has never seen: NOSCRIPT,
    then EVAL, then the hash again."""
    script = f"{read_cache._READ_LUA}-- {uuid4().hex}\n"
    monkeypatch.setattr(read_cache, "_READ_LUA", script)
    monkeypatch.setattr(
        read_cache,
        "_READ_SHA",
        hashlib.sha1(script.encode(), usedforsecurity=False).hexdigest(),
    )
    key = f"read-ahead.{uuid4().hex}"
    cache.set(key, "known")
    round_trips.clear()
    for _ in range(2):
        with read_cache.reading_ahead([key], presence=None):
            ahead = read_cache.read_ahead()
            assert ahead is not None
            assert ahead.value(key) == "known"
    assert [command[0] for (command,) in round_trips] == ["EVALSHA", "EVAL", "EVALSHA"]


def test_each_answer_is_handed_out_once() -> None:
    key = f"read-ahead.{uuid4().hex}"
    cache.set(key, "first")
    with read_cache.reading_ahead([key], presence=None):
        ahead = read_cache.read_ahead()
        assert ahead is not None
        cache.set(key, "second")
        assert ahead.value(key) == "first"
        assert ahead.value(key) is read_cache.NOT_READ
        assert ahead.value("never-read") is read_cache.NOT_READ
    assert read_cache.read_ahead() is None


def test_an_absent_key_reads_as_none_and_a_bad_value_fails_its_reader() -> None:
    absent, bad = f"read-ahead.{uuid4().hex}", f"read-ahead.{uuid4().hex}"
    raw: Any = cache._cache.get_client(write=True)  # type: ignore[attr-defined]
    raw.lpush(cache.make_and_validate_key(bad), "a list")
    with read_cache.reading_ahead([absent, bad], presence=None):
        ahead = read_cache.read_ahead()
        assert ahead is not None
        assert ahead.value(absent) is None
        with pytest.raises(redis.exceptions.ResponseError, match="WRONGTYPE"):
            ahead.value(bad)
    raw.delete(cache.make_and_validate_key(bad))


@override_settings(
    CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
)
def test_the_demos_memory_cache_reads_nothing_ahead() -> None:
    with read_cache.reading_ahead(["any"], presence=read_target(1)):
        assert read_cache.read_ahead() is None


def test_a_push_builds_its_presence_target_once(
    tenant: Tenant,
    other_tenant: Tenant,
    owner: User,
    channel: SocialAccount,
    online_agent: User,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """inbound_read_call's target serves the same push's record (once, for its
    tenant); a push that records nothing leaves none behind."""
    built: list[int] = []
    real = read_target

    def counted(tenant_id: int) -> read_cache.PresenceRead | None:
        built.append(tenant_id)
        return real(tenant_id)

    monkeypatch.setattr(inbound, "read_target", counted)
    client = token_client(tenant, owner, "admin")
    created = push(client, tenant, channel, 0)
    assert created.status_code == 201, created.content
    assert built == [tenant.pk]
    with tenant_context(tenant):
        assigned = Conversation.objects.get(pk=created.json()["conversation_id"])
    assert assigned.assignee_id == online_agent.pk
    assert inbound._read_call_target.get() is None
    assert push(client, tenant, channel, 0).status_code == 200  # a replay
    assert built == [tenant.pk, tenant.pk]
    assert inbound._read_call_target.get() is None
    # Kept for one tenant: another's record builds its own, and the kept one
    # goes (used once).
    inbound.inbound_read_call(tenant.pk)
    other = inbound._presence_target(other_tenant.pk)
    assert other is not None
    assert other.key == f"earshot:presence:t{other_tenant.pk}"
    assert inbound._read_call_target.get() is None
    assert inbound._presence_target(tenant.pk) is not None
    assert built == [tenant.pk, tenant.pk, tenant.pk, other_tenant.pk, tenant.pk]
    inbound.inbound_read_call(tenant.pk)
    kept = inbound._read_call_target.get()
    assert kept is not None
    assert inbound._presence_target(tenant.pk) is kept[1]
    assert inbound._read_call_target.get() is None
    read_cache.drop_prefetched()
