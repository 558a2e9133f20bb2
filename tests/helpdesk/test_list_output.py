"""The inbox list and a conversation's detail written out (helpdesk.list_output
and helpdesk.api_output.written_answer): the same status, bytes and headers as
ConversationOutput through DRF's Response.

Each test reads the same page (or conversation) twice at a fixed time: as
written today (a compiled first page from its values, helpdesk.compiled.Fetched;
other pages and the detail from model instances), and with the written-out copy
turned off so DRF's serializers and renderer answer from the page's model
instances, as before. Conversations are put into many states by hand (times
with and without microseconds, none, floats, assignees named each way, resolved,
snoozed, awkward text in every string the list shows, tags), so a field the copy
writes otherwise, or in another order, fails here.
"""

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from helpdesk import api, inbox_compiled, list_output
from helpdesk.compiled import Fetched
from helpdesk.models import Contact, Conversation
from helpdesk.services.conversations import update_conversation
from helpdesk.services.notes import add_note
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import Brand, Membership, Tenant, User
from tests.api_clients import base, token_client
from tests.factories import add_member, make_user, membership_of
from tests.helpdesk.conftest import item, receive
from tests.statements import count_statements

pytestmark = pytest.mark.django_db(transaction=True)

NOW = datetime(2026, 12, 7, 12, 0, 0, 250_000, tzinfo=UTC)
AWKWARD = (
    'quote " backslash \\ controls \x01\t\n\x1f separators \u2028 \u2029 '
    "accents é CJK 漢字 emoji 🙂 bidi \u202e nbsp \xa0"
)
SHORT = 'Jo " \\ \x01 \u2028\u2029 é 漢字 🙂 \u202e'  # for short name fields
# Headers that differ between two answers whatever writes them.
VARYING = {"date", "x-request-id"}


@pytest.fixture(autouse=True)
def fixed_time(monkeypatch: pytest.MonkeyPatch) -> None:
    # The queue key, sla_state and the next page's cursor all read the time.
    monkeypatch.setattr(timezone, "now", lambda: NOW)


@pytest.fixture
def client(tenant: Tenant, agent: User) -> APIClient:
    return token_client(tenant, agent, "read")


def _minutes(n: float) -> datetime:
    return NOW + timedelta(minutes=n)


# Field values set by hand, one dict per conversation (the rest as received).
STATES: list[dict[str, Any]] = [
    {},
    {
        "sla_due_at": _minutes(30),
        "sla_due_soon_at": _minutes(24).replace(microsecond=0),
        "sla_kind": "first",
        "engagement_per_hour": 12.5,
        "engagement_total": 40,
        "engagement_read_at": _minutes(-3).replace(microsecond=1),
        "spreading_since": _minutes(-2),
        "priority": 90,
        "sentiment": "negative",
        "language": "de",
        "follower_band": "large",
        "preview": AWKWARD,
    },
    {
        "sla_due_at": _minutes(-5),
        "sla_due_soon_at": _minutes(-10),
        "sla_kind": "next",
        "sla_lane": "urgent",
        "sla_breached_at": _minutes(-5),
        "engagement_per_hour": 123456.789,
        "resolution_due_at": _minutes(600),
        "queue_at": _minutes(-60),
        "awaiting_private": True,
        "channel_state": "private",
        "public_reply_count": 3,
        "first_response_at": _minutes(-50),
    },
    {
        "sla_due_at": _minutes(5),
        "sla_due_soon_at": _minutes(-1),
        "sla_kind": "first",
        "engagement_per_hour": 0.0001,
        "language": "",
        "preview": "",
    },
    {
        "status": "pending",
        "engagement_per_hour": 9999999999999998.0,
        "no_reply_reason": "thanks",
        "no_reply_at": _minutes(-7),
    },
    {"status": "snoozed", "snoozed_until": _minutes(90)},
    {"status": "resolved", "resolved_at": _minutes(-1), "engagement_total": 2**31 - 1},
]


@pytest.fixture
def states(tenant: Tenant, owner: User, account: SocialAccount) -> list[int]:
    made = [
        receive(
            account,
            item(text=f"Case {n}: {AWKWARD}", author=f"cust-{n}", handle=f"c{n}"),
        ).conversation
        for n in range(len(STATES))
    ]
    membership = membership_of(tenant, owner)
    # Assignees named each way User.public_name knows: display name, first
    # name, the email's local part.
    first_named = make_user(f"ann{SHORT}@acme.example", first_name=f"Ann {SHORT}")
    unnamed = make_user(f"{SHORT}.x@acme.example")
    for user in (first_named, unnamed):
        add_member(tenant, user, Membership.Role.AGENT)
    with tenant_context(tenant):
        Brand.objects.update(name=f"Brand {SHORT}", public_reply_limit=7)
        Contact.objects.filter(pk=made[1].contact_id).update(display_name=SHORT)
        Contact.objects.filter(pk=made[2].contact_id).update(display_name="")
        owner.display_name = SHORT
        owner.save(update_fields=["display_name"])
        update_conversation(made[1], membership=membership, tags=["vip", "ß", "bags"])
        update_conversation(made[2], membership=membership, assignee=owner)
        update_conversation(made[4], membership=membership, assignee=first_named)
        update_conversation(made[5], membership=membership, assignee=unnamed)
        add_note(made[1], membership=membership, text=f"Call {AWKWARD}")
        for conversation, values in zip(made, STATES, strict=True):
            Conversation.objects.filter(pk=conversation.pk).update(**values)
    return [c.pk for c in made]


def _as_instances(*args: Any, **kwargs: Any) -> Any:
    # The page as model instances, as before the page was read as values.
    return inbox_compiled.read_inbox_page(*args, **{**kwargs, "values": False})


def _answers(
    client: APIClient, monkeypatch: pytest.MonkeyPatch, url: str
) -> tuple[Any, Any]:
    written = client.get(url)
    with monkeypatch.context() as patch:
        patch.setattr(api, "written_rows", lambda *args: None)
        patch.setattr(api, "written_page", lambda *args: None)
        patch.setattr(api, "read_inbox_page", _as_instances)
        drf = client.get(url)
    return written, drf


def _same_answer(written: Any, drf: Any) -> None:
    assert not hasattr(written, "data"), "the written-out answer was not used"
    assert hasattr(drf, "data")
    assert written.status_code == drf.status_code == 200
    assert written.content == drf.content
    assert _steady(written) == _steady(drf)


def _steady(answer: Any) -> dict[str, str]:
    return {
        key.lower(): value
        for key, value in answer.headers.items()
        if key.lower() not in VARYING
    }


@pytest.mark.parametrize("query", ["status=all", "status=all&page_size=3"])
def test_the_list_is_drfs_bytes_over_many_states(
    client: APIClient,
    tenant: Tenant,
    states: list[int],
    monkeypatch: pytest.MonkeyPatch,
    query: str,
) -> None:
    written, drf = _answers(
        client, monkeypatch, f"{base(tenant)}/conversations/?{query}"
    )

    _same_answer(written, drf)
    body = written.json()
    if query.endswith("page_size=3"):
        assert len(body["results"]) == 3
        assert body["next"] is not None
    else:
        assert sorted(row["id"] for row in body["results"]) == sorted(states)
        assert body["next"] is None
    assert b"\\u2028" in written.content
    assert "\u2028".encode() not in written.content


def test_each_detail_with_its_thread_is_drfs_bytes(
    client: APIClient,
    tenant: Tenant,
    states: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for pk in states:
        for include in ("", "?include=messages,notes", "?include=notes"):
            url = f"{base(tenant)}/conversations/{pk}/{include}"
            written, drf = _answers(client, monkeypatch, url)
            _same_answer(written, drf)
            assert written.json()["id"] == pk


def test_a_row_it_does_not_write_alike_goes_to_drf(
    client: APIClient,
    tenant: Tenant,
    states: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # orjson writes 1e-05 as 0.00001: the whole page is ConversationOutput's.
    with tenant_context(tenant):
        Conversation.objects.filter(pk=states[3]).update(engagement_per_hour=1e-05)

    listed = client.get(f"{base(tenant)}/conversations/?status=all")
    detail = client.get(f"{base(tenant)}/conversations/{states[3]}/")

    assert hasattr(listed, "data")
    assert hasattr(detail, "data")
    assert b'"engagement_per_hour":1e-05' in listed.content
    assert b'"engagement_per_hour":1e-05' in detail.content


def test_another_time_zone_or_an_indent_goes_to_drf(
    client: APIClient, tenant: Tenant, states: list[int]
) -> None:
    url = f"{base(tenant)}/conversations/?status=all"
    with timezone.override("Europe/Paris"):
        in_paris = client.get(url)
    indented = client.get(url, HTTP_ACCEPT="application/json; indent=2")

    assert hasattr(in_paris, "data")
    assert b'"created_at":"2026-12-07T13:00:00.250000+01:00"' in in_paris.content
    assert hasattr(indented, "data")
    assert indented.content.startswith(b'{\n  "results": [')


def test_written_rows_decline_times_not_in_utc(
    tenant: Tenant, states: list[int]
) -> None:
    with tenant_context(tenant):
        rows = list(
            Conversation.objects.filter(pk__in=states[:2])
            .select_related("brand", "contact", "assignee")
            .order_by("pk")
        )
    assert list_output.written_rows(rows, {}) is not None
    rows[1].created_at = rows[1].created_at.astimezone(ZoneInfo("Europe/Paris"))
    assert list_output.written_rows(rows, {}) is None
    rows[1].created_at = rows[1].created_at.replace(tzinfo=None)
    assert list_output.written_rows(rows, {}) is None


def test_the_first_page_is_written_from_its_values_alone(
    client: APIClient,
    tenant: Tenant,
    states: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(*args: Any) -> Any:
        raise AssertionError("a model instance was made")

    url = f"{base(tenant)}/conversations/?status=all&page_size=4"
    with monkeypatch.context() as patch:
        patch.setattr(Fetched, "instances", refuse)
        patch.setattr(api, "written_rows", refuse)
        patch.setattr(Conversation, "__init__", refuse)
        written = client.get(url)
    _, drf = _answers(client, monkeypatch, url)

    _same_answer(written, drf)
    body = written.json()
    assert len(body["results"]) == 4
    assert body["next"] is not None


def test_the_assignees_are_named_as_public_name_names_them(
    client: APIClient, tenant: Tenant, states: list[int]
) -> None:
    listed = client.get(f"{base(tenant)}/conversations/?status=all")

    names = {row["id"]: row["assignee"] for row in listed.json()["results"]}
    assert [names[pk] and names[pk]["name"] for pk in states] == [
        None,
        None,
        SHORT,
        None,
        f"Ann {SHORT}",
        f"{SHORT}.x",
        None,
    ]


def test_later_pages_are_written_from_instances_alike(
    client: APIClient,
    tenant: Tenant,
    states: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = client.get(f"{base(tenant)}/conversations/?status=all&page_size=3")
    second_url = first.json()["next"]
    values_read: list[Any] = []

    def recorded(page: Any) -> None:
        values_read.append(page)

    monkeypatch.setattr(api, "written_page", recorded)

    written, drf = _answers(client, monkeypatch, second_url)

    _same_answer(written, drf)
    assert values_read == []
    ids = [row["id"] for row in first.json()["results"] + written.json()["results"]]
    assert len(ids) == 6
    assert len(set(ids)) == 6
    assert written.json()["next"] is not None


def test_a_page_it_does_not_write_alike_sends_no_second_statement(
    client: APIClient, tenant: Tenant, states: list[int]
) -> None:
    url = f"{base(tenant)}/conversations/?status=all"
    client.get(url)
    with tenant_context(tenant):
        Conversation.objects.filter(pk=states[3]).update(engagement_per_hour=1e-05)

    with count_statements() as seen:
        listed = client.get(url)

    assert hasattr(listed, "data")
    assert b'"engagement_per_hour":1e-05' in listed.content
    care = [sql for sql in seen.sql if '"helpdesk_' in sql]
    assert len(care) == 1, care
