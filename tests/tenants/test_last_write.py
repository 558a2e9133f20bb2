"""A transaction's last statement takes COMMIT with it (tenants.last_write).

The workspace's event-counter row is what every write of the workspace waits
for; these tests look at it from a second connection (the runtime role, the
workspace's setting applied) while the request is still inside its atomic
block: with the last statement sent together with COMMIT, the row is already
free and its new value visible there; without, it is still locked.
"""

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
from django.db import IntegrityError, connection, connections, transaction
from django.db.backends.postgresql.base import DatabaseWrapper
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from helpdesk.api_output import output
from helpdesk.models import Conversation, Event, Message
from helpdesk.services import writebatch
from incidents.models import IncidentLink
from incidents.services import create_incident
from social.api_channel import record_channel_message
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.last_write import (
    StatementAfterCommit,
    commit_with_last_write,
    execute_last,
)
from tenants.models import AuditEvent, Brand, Tenant, User
from tests.api_clients import base, open_api_channel, push, token_client
from tests.counter_row import counter_seen_elsewhere
from tests.factories import membership_of
from tests.perf.report import conninfo
from tests.statements import count_statements
from tests.test_pgbouncer_isolation import bouncer_url  # noqa: F401 - a fixture

pytestmark = pytest.mark.django_db(transaction=True)

NEXT = writebatch._NEXT_SEQ


def committed_counter(tenant: Tenant) -> int | None:
    with psycopg.connect(conninfo()) as other, other.transaction():
        other.execute(f"SET LOCAL app.tenant_id = {int(tenant.pk)}")
        row = other.execute(
            "SELECT value FROM helpdesk_eventcounter WHERE tenant_id = %s",
            [tenant.pk],
        ).fetchone()
    return None if row is None else int(row[0])


@pytest.fixture
def started(tenant: Tenant) -> Tenant:
    """The workspace's counter at 5, committed."""
    with tenant_context(tenant), connection.cursor() as cursor:
        cursor.execute(NEXT, [tenant.pk, 5])
    assert committed_counter(tenant) == 5
    return tenant


def test_the_last_statement_commits_with_it_and_nothing_may_follow(
    started: Tenant,
) -> None:
    tenant = started
    called: list[str] = []
    with tenant_context(tenant), commit_with_last_write():
        transaction.on_commit(lambda: called.append("published"))
        row = execute_last(NEXT, [tenant.pk, 2])
        assert row == (7,)
        # Still inside the request's atomic block: already committed.
        assert counter_seen_elsewhere(tenant.pk) == ("free", 7)
        assert called == []  # callbacks run when the block ends, as before
        with (
            pytest.raises(StatementAfterCommit, match="helpdesk_eventcounter"),
            connection.cursor() as cursor,
        ):
            cursor.execute(NEXT, [tenant.pk, 1])
    assert called == ["published"]
    assert committed_counter(tenant) == 7


def test_without_the_block_the_row_stays_locked_until_the_commit(
    started: Tenant,
) -> None:
    tenant = started
    with tenant_context(tenant):
        assert execute_last(NEXT, [tenant.pk, 2]) == (7,)
        assert counter_seen_elsewhere(tenant.pk) == ("locked", None)
        # The transaction goes on as usual.
        assert execute_last(NEXT, [tenant.pk, 1]) == (8,)
    assert committed_counter(tenant) == 8


def test_inside_a_savepoint_it_does_not_commit_the_outer_transaction(
    started: Tenant,
) -> None:
    tenant = started
    with transaction.atomic():
        with tenant_context(tenant), commit_with_last_write():  # a savepoint
            assert execute_last(NEXT, [tenant.pk, 2]) == (7,)
            assert counter_seen_elsewhere(tenant.pk) == ("locked", None)
        transaction.set_rollback(True)
    assert committed_counter(tenant) == 5


def test_a_failing_last_statement_commits_nothing(started: Tenant) -> None:
    tenant = started
    called: list[str] = []

    def write_then_fail() -> None:
        with tenant_context(tenant), commit_with_last_write():
            transaction.on_commit(lambda: called.append("published"))
            with connection.cursor() as cursor:
                cursor.execute(NEXT, [tenant.pk, 2])  # an earlier write: 7
            # The counter row exists: a plain INSERT of it is refused.
            execute_last(
                "INSERT INTO helpdesk_eventcounter (tenant_id, value) VALUES (%s, %s)"
                " RETURNING value",
                [tenant.pk, 1],
            )

    with pytest.raises(IntegrityError):
        write_then_fail()
    assert called == []
    assert committed_counter(tenant) == 5
    assert counter_seen_elsewhere(tenant.pk) == ("free", 5)


def test_only_one_statement_commits_per_block(started: Tenant) -> None:
    """The block's second execute_last is refused like any statement after it."""
    tenant = started
    with tenant_context(tenant), commit_with_last_write():
        assert execute_last(NEXT, [tenant.pk, 1]) == (6,)
        with pytest.raises(StatementAfterCommit):
            execute_last(NEXT, [tenant.pk, 1])
    assert committed_counter(tenant) == 6


def test_the_next_transaction_on_the_connection_runs_as_usual(
    started: Tenant,
) -> None:
    tenant = started
    with tenant_context(tenant), commit_with_last_write():
        execute_last(NEXT, [tenant.pk, 1])
    with tenant_context(tenant):
        assert execute_last(NEXT, [tenant.pk, 1]) == (7,)
        assert Event.objects.count() == 0
    assert committed_counter(tenant) == 7


# --- The API's write paths ------------------------------------------------------


@pytest.fixture
def channel(tenant: Tenant, owner: User) -> SocialAccount:
    return open_api_channel(tenant, owner)


@pytest.fixture
def client(tenant: Tenant, owner: User) -> APIClient:
    return token_client(tenant, owner, "admin")


def reply(client: APIClient, tenant: Tenant, conversation: int, **body: Any) -> Any:
    return client.post(
        f"{base(tenant)}/conversations/{conversation}/messages/",
        {"text": "Checking now.", **body},
        format="json",
    )


def test_a_push_is_committed_before_its_answer_is_built(
    client: APIClient,
    tenant: Tenant,
    channel: SocialAccount,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert push(client, tenant, channel, 0).status_code == 201  # sequences 1-2
    seen: list[tuple[str, int | None]] = []

    def recorded(*args: Any, **kwargs: Any) -> Any:
        result = record_channel_message(*args, **kwargs)
        seen.append(counter_seen_elsewhere(tenant.pk))
        return result

    monkeypatch.setattr("social.channel_api.record_channel_message", recorded)
    with count_statements() as statements:
        response = push(client, tenant, channel, 1)
    assert response.status_code == 201, response.content
    assert seen == [("free", 4)]
    assert statements.sql[-1] == "COMMIT", statements.listing()
    assert statements.sql.count("COMMIT") == 1, statements.listing()
    with tenant_context(tenant):
        message = Message.objects.get(pk=response.json()["message_id"])
        assert message.seq == 3
        assert list(Event.objects.order_by("seq").values_list("seq", flat=True)) == [
            1,
            2,
            3,
            4,
        ]


def test_a_reply_is_committed_before_its_answer_is_built(
    client: APIClient,
    tenant: Tenant,
    channel: SocialAccount,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    conversation = push(client, tenant, channel, 0).json()["conversation_id"]
    seen: list[tuple[str, int | None]] = []

    def answer(*args: Any, **kwargs: Any) -> Any:
        seen.append(counter_seen_elsewhere(tenant.pk))
        return output(*args, **kwargs)

    monkeypatch.setattr("helpdesk.api.output", answer)
    with count_statements() as statements:
        response = reply(client, tenant, conversation)
    assert response.status_code == 201, response.content
    assert seen == [("free", 4)]
    # The reply's statement (sequences, message, events), then COMMIT; the
    # delivery that follows (no hold, eager tasks) is the worker's.
    counter = [n for n, sql in enumerate(statements.sql) if "eventcounter" in sql]
    assert statements.sql[counter[0] + 1] == "COMMIT", statements.listing()
    with tenant_context(tenant):
        message = Message.objects.get(pk=response.json()["id"])
        assert (message.seq, message.direction) == (3, Message.Direction.OUT)


def test_a_refused_reply_commits_nothing(
    client: APIClient, tenant: Tenant, channel: SocialAccount
) -> None:
    conversation = push(client, tenant, channel, 0).json()["conversation_id"]
    response = reply(client, tenant, conversation, visibility="sideways")
    assert response.status_code == 400, response.content
    assert response.json()["fields"] == {
        "visibility": ['"sideways" is not a valid choice.']
    }
    assert committed_counter(tenant) == 2
    with tenant_context(tenant):
        assert Message.objects.filter(direction=Message.Direction.OUT).count() == 0


def test_an_overridden_reply_writes_its_audit_after_its_statement(
    client: APIClient, tenant: Tenant, channel: SocialAccount
) -> None:
    """The audit row follows the reply's statement, which then waits for the
    request's COMMIT as before."""
    pushed = client.post(
        f"{base(tenant)}/channels/{channel.pk}/messages/",
        {
            "external_id": "p-1",
            "text": "Still waiting for my refund",
            "author": {"id": "cust-1", "name": "Customer 1"},
            "visibility": "public",
        },
        format="json",
    )
    assert pushed.status_code == 201, pushed.content
    conversation = pushed.json()["conversation_id"]
    with tenant_context(tenant):
        Conversation.objects.filter(pk=conversation).update(public_reply_count=2)
    refused = reply(client, tenant, conversation, visibility="public")
    assert refused.status_code == 409, refused.content
    response = reply(
        client, tenant, conversation, visibility="public", override_reason="outage"
    )
    assert response.status_code == 201, response.content
    with tenant_context(tenant):
        audit = AuditEvent.objects.get(action="reply.limit_overridden")
        assert audit.data == {"conversation_id": conversation, "count": 3}
        assert Conversation.objects.get(pk=conversation).public_reply_count == 3


def test_a_push_that_gets_an_away_reply_records_both(
    client: APIClient,
    tenant: Tenant,
    channel: SocialAccount,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The away reply is written after the push's statement, in its transaction."""
    settings.AWAY_REPLIES_ENABLED = True
    evening = datetime(2026, 11, 23, 20, 0, tzinfo=UTC)  # a Monday, closed at 17:00
    monkeypatch.setattr(timezone, "now", lambda: evening)
    with tenant_context(tenant):
        Brand.objects.update(
            business_hours={"mon": [["09:00", "17:00"]], "tue": [["09:00", "17:00"]]}
        )
    response = push(client, tenant, channel, 0)
    assert response.status_code == 201, response.content
    with tenant_context(tenant):
        kinds = list(
            Message.objects.order_by("seq").values_list("seq", "direction", "kind")
        )
        assert kinds == [
            (1, Message.Direction.IN, Message.Kind.CUSTOMER),
            (3, Message.Direction.OUT, Message.Kind.AUTO_REPLY),
        ]
        events = list(Event.objects.order_by("seq").values_list("seq", "type"))
    # The away reply's message.created, then its delivery (no hold, eager
    # tasks): sending, sent.
    assert events == [
        (1, "message.created"),
        (2, "conversation.created"),
        (3, "message.created"),
        (4, "message.updated"),
        (5, "message.updated"),
    ]
    assert committed_counter(tenant) == 5


def test_a_push_linked_to_an_open_incident_is_linked_after_its_commit(
    client: APIClient, tenant: Tenant, owner: User, channel: SocialAccount
) -> None:
    """The incident link is a task queued on commit: the push's statement still
    takes COMMIT with it, and the link follows."""
    with tenant_context(tenant):
        incident = create_incident(
            membership_of(tenant, owner), title="AA31 cancelled", rule_terms="aa31"
        )
    matching = client.post(
        f"{base(tenant)}/channels/{channel.pk}/messages/",
        {
            "external_id": "m-1",
            "text": "Is AA31 really cancelled?",
            "author": {"id": "cust-1", "name": "Anna"},
        },
        format="json",
    )
    other = push(client, tenant, channel, 2)
    assert matching.status_code == 201, matching.content
    assert other.status_code == 201, other.content
    with tenant_context(tenant):
        assert list(
            IncidentLink.objects.filter(incident=incident).values_list(
                "conversation_id", flat=True
            )
        ) == [matching.json()["conversation_id"]]


# --- Behind pgbouncer in transaction mode (DATABASE_PGBOUNCER) ----------------------


@pytest.fixture
def bouncer(bouncer_url: str) -> Iterator[str]:  # noqa: F811 - the fixture
    """A Django connection `bouncer` through pgbouncer (pool of one server
    session), configured as DATABASE_PGBOUNCER configures `default`."""
    url = urlsplit(bouncer_url)
    wrapper = DatabaseWrapper(
        {
            **connection.settings_dict,
            "HOST": url.hostname,
            "PORT": url.port,
            "OPTIONS": {"server_side_binding": False, "prepare_threshold": None},
            "DISABLE_SERVER_SIDE_CURSORS": True,
        },
        alias="bouncer",
    )
    connections["bouncer"] = wrapper
    try:
        yield bouncer_url
    finally:
        wrapper.close()
        del connections["bouncer"]


def test_through_pgbouncer_the_commit_ends_the_setting_for_the_next_client(
    started: Tenant, bouncer: str
) -> None:
    """The statement and COMMIT in one pipeline through pgbouncer: committed,
    and the next client on the same server session sees no workspace setting."""
    tenant = started
    with psycopg.connect(bouncer, prepare_threshold=None) as other:
        with transaction.atomic(using="bouncer"), commit_with_last_write("bouncer"):
            with connections["bouncer"].cursor() as cursor:
                cursor.execute(f"SET LOCAL app.tenant_id = {int(tenant.pk)}")
                cursor.execute("SELECT pg_backend_pid()")
                (pid,) = cursor.fetchone()
            assert execute_last(NEXT, [tenant.pk, 2], using="bouncer") == (7,)
            with other.transaction():
                setting, other_pid, value = other.execute(
                    "SELECT current_setting('app.tenant_id', true),"
                    " pg_backend_pid(),"
                    " (SELECT count(*) FROM helpdesk_eventcounter)"
                ).fetchone()  # type: ignore[misc]
        assert other_pid == pid  # one server session for both clients
        assert setting in ("", None)
        assert value == 0  # no workspace setting: RLS shows no counter row
    assert committed_counter(tenant) == 7


def test_a_statement_that_is_not_the_last_does_not_commit(started: Tenant) -> None:
    """`commit=False` inside the block: an ordinary statement; the last one commits."""
    tenant = started
    with tenant_context(tenant), commit_with_last_write():
        assert execute_last(NEXT, [tenant.pk, 1], commit=False) == (6,)
        assert counter_seen_elsewhere(tenant.pk) == ("locked", None)
        assert execute_last(NEXT, [tenant.pk, 1]) == (7,)
        assert counter_seen_elsewhere(tenant.pk) == ("free", 7)
    assert committed_counter(tenant) == 7


# --- One write for the statement, COMMIT and the pipeline's Sync ----------------------


def test_the_statement_commit_and_sync_leave_in_one_flush(
    started: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """psycopg's pipeline flushes after each command it sends; the last write
    sends all three and then flushes once (psycopg's `send`), and reads the
    three results; the statement is prepared once it has run twice, as psycopg
    prepares it (prepare_threshold 2)."""
    tenant = started
    communicated: list[object] = []
    flushes: list[object] = []
    real_communicate = psycopg._pipeline_base.pipeline_communicate  # type: ignore[attr-defined]
    real_send = psycopg.generators.send

    def communicate(*args: Any) -> Any:
        communicated.append(args)
        return real_communicate(*args)

    def send(pgconn: Any) -> Any:
        flushes.append(pgconn)
        return real_send(pgconn)

    monkeypatch.setattr(psycopg._pipeline_base, "pipeline_communicate", communicate)
    monkeypatch.setattr(psycopg.generators, "send", send)
    values = []
    for _ in range(3):
        with tenant_context(tenant), commit_with_last_write():
            (value,) = execute_last(NEXT, [tenant.pk, 1]) or (None,)
            values.append(value)
            assert counter_seen_elsewhere(tenant.pk) == ("free", value)
    assert values == [6, 7, 8]
    assert communicated == []
    assert len(flushes) == 3
    raw = connection.connection
    assert raw is not None
    assert raw._pipeline is None
    assert raw.pgconn.pipeline_status == psycopg.pq.PipelineStatus.OFF
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE statement = %s",
            [NEXT.replace("%s", "$1", 1).replace("%s", "$2")],
        )
        assert cursor.fetchone() == (1,)


def test_after_a_failing_last_statement_the_connection_goes_on(
    started: Tenant,
) -> None:
    tenant = started
    with pytest.raises(IntegrityError):  # noqa: SIM117 - the block must fail whole
        with tenant_context(tenant), commit_with_last_write():
            execute_last(
                "INSERT INTO helpdesk_eventcounter (tenant_id, value) VALUES (%s, %s)"
                " RETURNING value",
                [tenant.pk, 1],
            )
    raw = connection.connection
    assert raw is not None
    assert raw._pipeline is None
    assert raw.pgconn.pipeline_status == psycopg.pq.PipelineStatus.OFF
    with tenant_context(tenant), commit_with_last_write():
        assert execute_last(NEXT, [tenant.pk, 2]) == (7,)
    assert committed_counter(tenant) == 7


def test_the_query_log_shows_the_statement_then_commit(started: Tenant) -> None:
    tenant = started
    with (
        tenant_context(tenant),
        commit_with_last_write(),
        CaptureQueriesContext(connection) as captured,
    ):
        assert execute_last(NEXT, [tenant.pk, 2]) == (7,)
    logged = [query["sql"] for query in captured.captured_queries]
    assert logged == [
        NEXT.replace("%s", str(tenant.pk), 1).replace("%s", "2"),
        "COMMIT",
    ]
