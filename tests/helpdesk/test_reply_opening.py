"""A token reply takes its row lock in the request's opening statement.

`TenantMiddleware.api` gives a token POST to a conversation's messages the
reply's row lock as a read that rides in `earshot_open_api`'s statement
(tenants.opening.Lateral, helpdesk.access): BEGIN, that statement, the reply's
last write and COMMIT. The read runs after the function has applied the
workspace's setting, under its RLS, and only when the request may reach the
view with the route's role and scope; refusals answer as before and leave the
row unlocked. A second connection looks at the row while the request is still
inside its transaction (at the view's role check, at the suspended answer and
at the reply's gate).
"""

from typing import Any

import psycopg
import pytest
from django.db import connection, transaction
from django.http import Http404
from django.urls import Resolver404, resolve
from psycopg import errors
from rest_framework.test import APIClient

import helpdesk.api
import tenants.middleware
import tenants.permissions
from helpdesk.access import access_conversation_for_reply
from helpdesk.models import Conversation, Message
from helpdesk.services.inbound import InboundResult
from helpdesk.services.reply_lock import TakenLock, lock_lateral
from social.models import SocialAccount
from tenants.access import require_role as real_require_role
from tenants.api_tokens import create_api_token, open_tenant_with_token
from tenants.context import open_tenant_context, tenant_context
from tenants.middleware import _lateral
from tenants.models import ApiToken, Membership, Tenant, User
from tenants.opening import Lateral, lateral_route
from tests.api_clients import base, open_api_channel, push, session, token_client
from tests.factories import membership_of
from tests.helpdesk.conftest import item, receive
from tests.perf.report import conninfo
from tests.statements import count_statements

pytestmark = pytest.mark.django_db(transaction=True)

LOCK = 'FOR UPDATE OF "helpdesk_conversation"'


@pytest.fixture
def thread(account: SocialAccount) -> InboundResult:
    return receive(account, item(text="My flight AA12 is delayed, any news?"))


def row_state(tenant_id: int, conversation_id: int) -> str:
    """The conversation's row as another connection sees it: "locked" when a
    transaction holds it, "free" when it can be locked at once."""
    with psycopg.connect(conninfo(), autocommit=False) as other:
        other.execute(f"SET LOCAL app.tenant_id = {int(tenant_id)}")
        try:
            row = other.execute(
                "SELECT id FROM helpdesk_conversation WHERE id = %s FOR UPDATE NOWAIT",
                [conversation_id],
            ).fetchone()
        except errors.LockNotAvailable:
            return "locked"
        finally:
            other.rollback()
    assert row == (conversation_id,)
    return "free"


@pytest.fixture
def watched(
    monkeypatch: pytest.MonkeyPatch, thread: InboundResult
) -> list[tuple[str, str]]:
    """(where, the row's state) at the view's role check, at the middleware's
    early answers and at the reply's gate, during the request."""
    seen: list[tuple[str, str]] = []
    conversation = thread.conversation

    def look(where: str) -> None:
        seen.append((where, row_state(conversation.tenant_id, conversation.pk)))

    real_error = tenants.middleware.api_error

    def require_role(membership: Membership, role: Membership.Role) -> None:
        look("role check")
        real_require_role(membership, role)

    def api_error(status: int, code: str, message: str) -> Any:
        look("early answer")
        return real_error(status, code, message)

    def gate(membership: Membership, conversation_id: int) -> Conversation:
        look("reply gate")
        return access_conversation_for_reply(membership, conversation_id)

    monkeypatch.setattr(tenants.permissions, "require_role", require_role)
    monkeypatch.setattr(tenants.middleware, "api_error", api_error)
    monkeypatch.setattr(helpdesk.api, "access_conversation_for_reply", gate)
    return seen


def raw_token(tenant: Tenant, user: User, scope: str = "write") -> str:
    with tenant_context(tenant):
        _, raw = create_api_token(membership_of(tenant, user), name="t", scope=scope)
    return raw


def reply(client: APIClient, tenant: Tenant, conversation_id: int) -> Any:
    return client.post(
        f"{base(tenant)}/conversations/{conversation_id}/messages/",
        {"text": "Checking with the airline now."},
        format="json",
    )


def state(thread: InboundResult) -> tuple[Any, ...]:
    with tenant_context(thread.conversation.tenant_id):
        row = Conversation.objects.get(pk=thread.conversation.pk)
        outbound = Message.objects.filter(
            conversation_id=row.pk, direction=Message.Direction.OUT
        ).count()
    return (
        outbound,
        row.status,
        row.public_reply_count,
        row.last_activity_at,
        row.last_answered_by_id,
    )


def assert_refused(
    response: Any, status: int, code: str, thread: InboundResult, before: Any
) -> None:
    """The refusal's answer, with the conversation and its messages unchanged."""
    assert response.status_code == status
    assert response.json()["code"] == code
    assert state(thread) == before


def test_a_token_reply_is_four_statements_with_the_lock_in_the_opening(
    tenant: Tenant, owner: User
) -> None:
    """As tests/helpdesk/test_statements_per_request.py's reply: an API-channel
    conversation, after one reply that warms the caches."""
    client = token_client(tenant, owner, "admin")
    channel = open_api_channel(tenant, owner)
    first = push(client, tenant, channel, 0).json()["conversation_id"]
    second = push(client, tenant, channel, 1).json()["conversation_id"]
    assert reply(client, tenant, first).status_code == 201
    with count_statements() as seen:
        response = reply(client, tenant, second)

    assert response.status_code == 201, response.content
    assert len(seen) == 4, seen.listing()
    assert (seen.sql[0], seen.sql[-1]) == ("BEGIN", "COMMIT")
    assert "earshot_open_api" in seen.sql[1]
    assert LOCK in seen.sql[1]
    assert sum(LOCK in sql for sql in seen.sql) == 1
    with tenant_context(tenant):
        assert list(
            Message.objects.filter(
                conversation_id=second, direction=Message.Direction.OUT
            ).values_list("text", flat=True)
        ) == ["Checking with the airline now."]


def test_the_row_is_locked_before_the_view_runs(
    tenant: Tenant,
    agent: User,
    thread: InboundResult,
    watched: list[tuple[str, str]],
) -> None:
    response = reply(token_client(tenant, agent), tenant, thread.conversation.pk)

    assert response.status_code == 201, response.content
    assert watched == [("role check", "locked"), ("reply gate", "locked")]


def test_the_answer_is_the_same_as_without_the_lateral(
    tenant: Tenant, agent: User, account: SocialAccount
) -> None:
    """The same kind of reply by a session (which locks in a statement of its
    own) and by a token give the same body but for the ids, times and text."""
    first = receive(account, item(author="cust-1", handle="jo")).conversation
    second = receive(account, item(author="cust-2", handle="jo")).conversation
    with count_statements() as by_session:
        from_session = session(agent).post(
            f"{base(tenant)}/conversations/{first.pk}/messages/",
            {"text": "Checking with the airline now, one moment."},
            format="json",
        )
    from_token = reply(token_client(tenant, agent), tenant, second.pk)

    assert (from_session.status_code, from_token.status_code) == (201, 201)
    varying = {"id", "conversation_id", "created_at", "text", "scheduled_for"}
    assert set(from_session.json()) == set(from_token.json())
    assert {k: v for k, v in from_session.json().items() if k not in varying} == {
        k: v for k, v in from_token.json().items() if k not in varying
    }
    assert from_token.json()["text"] == "Checking with the airline now."
    # The session's opening does not lock: its reply locks in its own statement.
    assert sum(LOCK in sql for sql in by_session.sql) == 1
    assert not any(LOCK in sql and "earshot_open" in sql for sql in by_session.sql)


def test_another_workspaces_conversation_is_not_found_and_not_locked(
    tenant: Tenant,
    other_tenant: Tenant,
    outsider: User,
    thread: InboundResult,
    watched: list[tuple[str, str]],
) -> None:
    before = state(thread)
    client = token_client(other_tenant, outsider, "admin")
    with count_statements() as seen:
        response = reply(client, other_tenant, thread.conversation.pk)

    assert_refused(response, 404, "not_found", thread, before)
    assert watched == [("role check", "free"), ("reply gate", "free")]
    # BEGIN, the opening (its read found no row), ROLLBACK: no lock of its own.
    assert len(seen) == 3, seen.listing()
    assert LOCK in seen.sql[1]


@pytest.mark.parametrize(
    ("workspace", "user", "scope", "status", "code", "checkpoint"),
    [
        # another workspace's token: refused by the opening, before any lock
        ("other_tenant", "outsider", "admin", 404, "not_found", "early answer"),
        # a read token: the gate in SQL shuts, so the row is never locked
        ("tenant", "agent", "read", 403, "scope_missing", "role check"),
    ],
)
def test_a_token_that_may_not_reply_locks_nothing(
    request: pytest.FixtureRequest,
    tenant: Tenant,
    thread: InboundResult,
    watched: list[tuple[str, str]],
    workspace: str,
    user: str,
    scope: str,
    status: int,
    code: str,
    checkpoint: str,
) -> None:
    client = token_client(
        request.getfixturevalue(workspace), request.getfixturevalue(user), scope
    )
    before = state(thread)
    response = reply(client, tenant, thread.conversation.pk)

    assert_refused(response, status, code, thread, before)
    assert watched == [(checkpoint, "free")]


def test_a_revoked_token_is_refused_and_locks_nothing(
    tenant: Tenant, agent: User, thread: InboundResult
) -> None:
    before = state(thread)
    with tenant_context(tenant):
        token, raw = create_api_token(
            membership_of(tenant, agent), name="gone", scope="write"
        )
        ApiToken.objects.filter(pk=token.pk).update(revoked_at=token.created_at)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")

    response = reply(client, tenant, thread.conversation.pk)

    assert_refused(response, 404, "not_found", thread, before)
    assert opened_here(tenant, raw, thread) == ("refused", "free")


def test_an_unknown_workspace_is_refused(
    tenant: Tenant, agent: User, thread: InboundResult
) -> None:
    before = state(thread)
    client = token_client(tenant, agent)
    response = client.post(
        f"/api/v1/t/no-such-place/conversations/{thread.conversation.pk}/messages/",
        {"text": "Hello?"},
        format="json",
    )

    assert_refused(response, 404, "not_found", thread, before)


def test_a_suspended_workspace_is_refused_and_locks_nothing(
    tenant: Tenant,
    agent: User,
    thread: InboundResult,
    watched: list[tuple[str, str]],
) -> None:
    client = token_client(tenant, agent)
    before = state(thread)
    Tenant.objects.filter(pk=tenant.pk).update(status=Tenant.Status.SUSPENDED)

    response = reply(client, tenant, thread.conversation.pk)

    assert_refused(response, 403, "workspace_suspended", thread, before)
    assert watched == [("early answer", "free")]


def test_an_inactive_user_is_refused_and_locks_nothing(
    tenant: Tenant, agent: User, thread: InboundResult
) -> None:
    raw = raw_token(tenant, agent)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    before = state(thread)
    User.objects.filter(pk=agent.pk).update(is_active=False)

    response = reply(client, tenant, thread.conversation.pk)

    assert response.status_code == 404
    assert state(thread) == before
    assert opened_here(tenant, raw, thread) == ("refused", "free")


def test_a_member_whose_role_cannot_reply_is_refused_and_locks_nothing(
    tenant: Tenant,
    agent: User,
    thread: InboundResult,
    watched: list[tuple[str, str]],
) -> None:
    client = token_client(tenant, agent)  # a write token, then the role drops
    with tenant_context(tenant):
        Membership.objects.filter(user=agent).update(role=Membership.Role.VIEWER)
    before = state(thread)

    response = reply(client, tenant, thread.conversation.pk)

    assert_refused(response, 403, "permission_denied", thread, before)
    assert watched == [("role check", "free")]


def opened_here(tenant: Tenant, raw: str, thread: InboundResult) -> tuple[str, str]:
    """Open with the reply's lateral in a transaction and look at the row
    before it ends: ("opened", ...) with what rode along, or ("refused", ...)."""
    lateral = lock_lateral(thread.conversation.pk, "agent", "write")
    with transaction.atomic():
        try:
            opened = open_tenant_with_token(tenant.slug, raw, lateral=lateral)
        except Http404:
            outcome = "refused"
        else:
            outcome = "opened" if opened.along is None else "read"
        seen = row_state(tenant.pk, thread.conversation.pk)
        transaction.set_rollback(True)
    return outcome, seen


def test_the_gate_is_the_views_role_and_scope(
    tenant: Tenant, agent: User, viewer: User, thread: InboundResult
) -> None:
    raw_write = raw_token(tenant, agent)
    raw_read = raw_token(tenant, viewer, "read")

    assert opened_here(tenant, raw_write, thread) == ("read", "locked")
    assert opened_here(tenant, raw_read, thread) == ("opened", "free")
    routed: Any = resolve(f"{base(tenant)}/conversations/1/messages/").func
    view = routed.view_class
    assert (view.write_role, view.write_scope) == ("agent", "write")


@pytest.mark.sql_audit_exempt
def test_the_lateral_reads_under_the_opened_workspaces_rls(
    tenant: Tenant,
    other_tenant: Tenant,
    agent: User,
    outsider: User,
    thread: InboundResult,
) -> None:
    """A read given no tenant filter of its own (only the gate's id, not
    compared with any row) sees the opened workspace's rows and no other's:
    the function's setting is in force for it, in the same statement."""
    raw = raw_token(other_tenant, outsider, "admin")
    own_raw = raw_token(tenant, agent)
    counted = Lateral(
        parts=("SELECT count(*) FROM helpdesk_conversation WHERE ", " IS NOT NULL"),
        params=[],
        columns=1,
        role="agent",
        scope="write",
        make=lambda values: values[0],
    )

    def count_as(slug: str, token: str) -> Any:
        with open_tenant_context(
            lambda: open_tenant_with_token(slug, token, lateral=counted)
        ) as opened:
            return opened.along

    assert count_as(tenant.slug, own_raw) == 1
    assert count_as(other_tenant.slug, raw) == 0


def test_a_second_gate_in_the_request_locks_again(
    tenant: Tenant, agent: User, thread: InboundResult
) -> None:
    """The row the opening took is for one reply (its message id is one)."""
    raw = raw_token(tenant, agent)
    lateral = lock_lateral(thread.conversation.pk, "agent", "write")
    with (
        open_tenant_context(
            lambda: open_tenant_with_token(tenant.slug, raw, lateral=lateral)
        ) as opened,
        count_statements() as seen,
    ):
        membership = opened.membership
        first = access_conversation_for_reply(membership, thread.conversation.pk)
        second = access_conversation_for_reply(membership, thread.conversation.pk)
    assert isinstance(opened.along, TakenLock)
    assert first is opened.along.conversation
    assert second is not first
    assert vars(first)["new_message_id"] != vars(second)["new_message_id"]
    assert sum(LOCK in sql for sql in seen.sql) == 1


@pytest.mark.parametrize(
    ("path", "routed"),
    [
        ("conversations/12/messages/", True),
        ("conversations/0012/messages/", True),
        ("conversations/12/messages", False),
        ("conversations/12/messages/x/", False),
        ("conversations/-1/messages/", False),
        ("conversations/abc/messages/", False),
        ("conversations/12/notes/", False),
        ("channels/12/messages/", False),
    ],
)
def test_the_route_is_the_urlconfs(path: str, routed: bool) -> None:
    full = f"/api/v1/t/acme/{path}"
    try:
        name = resolve(full).view_name
    except Resolver404:
        name = None
    assert (name == "api:message-list") is routed
    assert (lateral_route("POST", path) is not None) is routed
    assert lateral_route("GET", path) is None


def test_another_api_version_carries_no_lateral(rf: Any) -> None:
    request = rf.post("/api/v2/t/acme/conversations/12/messages/")
    with transaction.atomic():
        assert _lateral(request) is None
        assert _lateral(rf.post("/api/v1/t/acme/conversations/12/messages/"))
    assert connection.vendor == "postgresql"
