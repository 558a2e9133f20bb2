""" "No reply needed" (R9's fair denominator): a reason, separate from resolving,
audited; refusals change nothing; the API endpoint and its tenancy."""

from typing import Any

import pytest
import time_machine
from django.core.exceptions import PermissionDenied
from django.db.models import Sum

from helpdesk.models import CareFact, Conversation, Event, ReportRollup
from helpdesk.services.no_reply import (
    NoReplyNotAllowed,
    NoReplyRefused,
    mark_no_reply,
)
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import AuditEvent, Tenant, User
from tests.api_clients import FOREIGN_CALLERS, base, foreign_client, session
from tests.helpdesk.clock_support import answer, clock_of, facts, nov, reload, write
from tests.helpdesk.conftest import member

pytestmark = pytest.mark.django_db

WED_10 = nov(25, 10)
MARKED_AT = nov(25, 10, 30)


def mark(tenant: Tenant, user: User, conversation: Conversation, reason: str) -> None:
    with time_machine.travel(MARKED_AT, tick=False), tenant_context(tenant):
        mark_no_reply(conversation, membership=member(tenant, user), reason=reason)


def marks(conversation: Conversation) -> tuple[str, Any, Any]:
    fresh = reload(conversation)
    return (fresh.no_reply_reason, fresh.no_reply_at, fresh.no_reply_by_id)


def audits(tenant: Tenant) -> list[tuple[Any, ...]]:
    with tenant_context(tenant):
        return list(
            AuditEvent.objects.filter(action__startswith="conversation.")
            .order_by("id")
            .values_list("action", "actor_id", "object_id", "reason")
        )


def last_event(tenant: Tenant) -> tuple[str, dict[str, Any]]:
    with tenant_context(tenant):
        event = Event.objects.order_by("-seq").first()
    assert event is not None
    return event.type, event.payload["changed"]


def nothing_marked(tenant: Tenant, conversation: Conversation) -> None:
    assert marks(conversation) == ("", None, None)
    assert facts(tenant, "no_reply") == []
    assert audits(tenant) == []


def test_marking_stops_the_clock_records_the_fact_audits_and_tells_the_inbox(
    tenant: Tenant, agent: User, account: SocialAccount
) -> None:
    conversation = write(account, WED_10)
    mark(tenant, agent, conversation, "spam")
    assert marks(conversation) == ("spam", MARKED_AT, agent.pk)
    assert reload(conversation).status == "open"  # not resolved
    assert clock_of(conversation)[:2] == ("", "normal")
    assert reload(conversation).sla_due_at is None
    assert facts(tenant) == [
        (
            "no_reply",
            WED_10,
            MARKED_AT,
            None,
            None,
            None,
            False,
            False,
            "",
            "normal",
            agent.pk,
            "spam",
        )
    ]
    assert audits(tenant) == [
        ("conversation.no_reply", agent.pk, str(conversation.pk), "spam")
    ]
    assert last_event(tenant) == (
        "conversation.updated",
        {
            "sla_kind": "",
            "sla_started_at": None,
            "sla_run_started_at": None,
            "sla_target_seconds": None,
            "sla_due_at": None,
            "sla_due_soon_at": None,
            "queue_at": None,
            "no_reply_reason": "spam",
            "no_reply_at": MARKED_AT.isoformat(),
            "no_reply_by_id": agent.pk,
        },
    )
    with tenant_context(tenant):
        assert ReportRollup.objects.aggregate(n=Sum("no_reply"))["n"] == 1


def test_an_unknown_reason_is_refused_and_nothing_changes(
    tenant: Tenant, agent: User, account: SocialAccount
) -> None:
    conversation = write(account, WED_10)
    before = clock_of(conversation)
    with pytest.raises(NoReplyRefused) as refused:
        mark(tenant, agent, conversation, "boring")
    assert refused.value.field == "reason"
    assert refused.value.http_status == 400
    nothing_marked(tenant, conversation)
    assert clock_of(conversation) == before


def test_an_answered_conversation_cannot_be_marked(
    tenant: Tenant, agent: User, account: SocialAccount
) -> None:
    conversation = write(account, WED_10)
    answer(tenant, agent, conversation, nov(25, 10, 10))
    write(account, nov(25, 10, 20), text="Thanks!", external_id="thanks")
    before = clock_of(conversation)
    with pytest.raises(NoReplyNotAllowed, match="answered already") as refused:
        mark(tenant, agent, conversation, "thanks")
    assert (refused.value.field, refused.value.http_status) == ("reason", 409)
    nothing_marked(tenant, conversation)
    assert clock_of(conversation) == before


def test_a_conversation_is_marked_once(
    tenant: Tenant, agent: User, admin: User, account: SocialAccount
) -> None:
    conversation = write(account, WED_10)
    mark(tenant, agent, conversation, "chatter")
    with pytest.raises(NoReplyNotAllowed, match="already"):
        mark(tenant, admin, conversation, "duplicate")
    assert marks(conversation) == ("chatter", MARKED_AT, agent.pk)
    assert len(facts(tenant, "no_reply")) == 1
    assert len(audits(tenant)) == 1


def test_a_viewer_cannot_mark(
    tenant: Tenant, viewer: User, account: SocialAccount
) -> None:
    conversation = write(account, WED_10)
    with pytest.raises(PermissionDenied):
        mark(tenant, viewer, conversation, "spam")
    nothing_marked(tenant, conversation)


def test_a_later_message_starts_a_clock_and_its_answer_stays_out_of_the_rate(
    tenant: Tenant, agent: User, account: SocialAccount
) -> None:
    conversation = write(account, WED_10)
    mark(tenant, agent, conversation, "chatter")
    write(account, nov(25, 11), text="Hello? Is my bag found?", external_id="more")
    assert clock_of(conversation)[:2] == ("first", "normal")
    assert clock_of(conversation)[6] == nov(25, 12)
    answer(tenant, agent, conversation, nov(25, 11, 15))
    assert marks(conversation) == ("chatter", MARKED_AT, agent.pk)
    [response] = facts(tenant, "first_response")
    assert (response[0], response[3], response[11]) == (
        "first_response",
        900,
        "after_no_reply",
    )
    with tenant_context(tenant):
        totals = ReportRollup.objects.aggregate(
            answered=Sum("answered"), no_reply=Sum("no_reply")
        )
    assert totals == {"answered": 0, "no_reply": 1}


# --- the API -------------------------------------------------------------------


def url(tenant: Tenant, conversation: Conversation) -> str:
    return f"{base(tenant)}/conversations/{conversation.pk}/no-reply/"


def test_the_api_marks_a_conversation(
    tenant: Tenant, agent: User, account: SocialAccount
) -> None:
    conversation = write(account, WED_10)
    with time_machine.travel(MARKED_AT, tick=False):
        response = session(agent).post(
            url(tenant, conversation), {"reason": "thanks"}, format="json"
        )
    assert response.status_code == 200, response.json()
    assert (response.json()["id"], response.json()["status"]) == (
        conversation.pk,
        "open",
    )
    assert marks(conversation) == ("thanks", MARKED_AT, agent.pk)


def test_the_api_refuses_a_bad_reason_with_a_field_message(
    tenant: Tenant, agent: User, account: SocialAccount
) -> None:
    conversation = write(account, WED_10)
    response = session(agent).post(
        url(tenant, conversation), {"reason": "boring"}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["fields"] == {"reason": ['"boring" is not a valid choice.']}
    nothing_marked(tenant, conversation)


def test_the_api_refuses_an_answered_conversation(
    tenant: Tenant, agent: User, account: SocialAccount
) -> None:
    conversation = write(account, WED_10)
    answer(tenant, agent, conversation, nov(25, 10, 10))
    response = session(agent).post(
        url(tenant, conversation), {"reason": "spam"}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["code"] == "no_reply_refused"
    assert list(response.json()["fields"]) == ["reason"]
    nothing_marked(tenant, conversation)


@pytest.mark.parametrize("caller", FOREIGN_CALLERS)
def test_outsiders_get_404_and_nothing_changes(
    caller: str,
    tenant: Tenant,
    account: SocialAccount,
    other_tenant: Tenant,
    outsider: User,
) -> None:
    conversation = write(account, WED_10)
    client = foreign_client(caller, other_tenant, outsider)
    response = client.post(url(tenant, conversation), {"reason": "spam"}, format="json")
    assert response.status_code == 404
    assert b"Acme" not in response.content
    nothing_marked(tenant, conversation)
    with tenant_context(tenant):
        assert CareFact.objects.filter(kind="no_reply").count() == 0
