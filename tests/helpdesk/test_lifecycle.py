from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from helpdesk import tasks
from helpdesk.exceptions import InvalidTransition
from helpdesk.models import Conversation
from helpdesk.services.lifecycle import (
    mark_pending,
    reopen_conversation,
    resolve_conversation,
    snooze_conversation,
)
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import Tenant, User
from tests.helpdesk.conftest import item, member, receive, reload

pytestmark = pytest.mark.django_db


@pytest.fixture
def conversation(account: SocialAccount) -> Conversation:
    return receive(account, item(external_id="root")).conversation


def test_resolve_then_reopen(
    tenant: Tenant, agent: User, conversation: Conversation
) -> None:
    with tenant_context(tenant):
        resolved = resolve_conversation(conversation, membership=member(tenant, agent))
    assert resolved.status == "resolved"
    assert resolved.resolved_at is not None
    with tenant_context(tenant):
        reopened = reopen_conversation(conversation, membership=member(tenant, agent))
    assert (reopened.status, reopened.resolved_at) == ("open", None)


def test_a_viewer_cannot_change_status(
    tenant: Tenant, viewer: User, conversation: Conversation
) -> None:
    with tenant_context(tenant), pytest.raises(PermissionDenied):
        resolve_conversation(conversation, membership=member(tenant, viewer))
    assert reload(conversation).status == "open"


def test_pending_turns_open_when_the_customer_writes(
    tenant: Tenant, agent: User, account: SocialAccount, conversation: Conversation
) -> None:
    with tenant_context(tenant):
        mark_pending(conversation, membership=member(tenant, agent))
    assert reload(conversation).status == "pending"
    receive(account, item(thread="root", text="Still waiting"))
    assert reload(conversation).status == "open"


def test_snooze_wakes_by_itself_when_due(
    tenant: Tenant, agent: User, conversation: Conversation
) -> None:
    soon = timezone.now() + timedelta(minutes=30)
    with tenant_context(tenant):
        snoozed = snooze_conversation(
            conversation, membership=member(tenant, agent), until=soon
        )
    assert (snoozed.status, snoozed.snoozed_until) == ("snoozed", soon)
    assert tasks.wake_snoozed.run(tenant.pk) == 0
    with tenant_context(tenant):
        Conversation.objects.filter(pk=conversation.pk).update(
            snoozed_until=timezone.now() - timedelta(seconds=1)
        )
    assert tasks.wake_snoozed.run(tenant.pk) == 1
    woken = reload(conversation)
    assert (woken.status, woken.snoozed_until) == ("open", None)


def test_a_snoozed_conversation_wakes_on_a_customer_message(
    tenant: Tenant, agent: User, account: SocialAccount, conversation: Conversation
) -> None:
    with tenant_context(tenant):
        snooze_conversation(
            conversation,
            membership=member(tenant, agent),
            until=timezone.now() + timedelta(days=1),
        )
    receive(account, item(thread="root", text="Hello?"))
    assert reload(conversation).status == "open"


def test_snoozing_into_the_past_is_refused(
    tenant: Tenant, agent: User, conversation: Conversation
) -> None:
    with (
        tenant_context(tenant),
        pytest.raises(InvalidTransition, match="in the future"),
    ):
        snooze_conversation(
            conversation,
            membership=member(tenant, agent),
            until=timezone.now() - timedelta(minutes=1),
        )
    assert reload(conversation).status == "open"


def test_beat_fans_out_one_task_per_active_tenant(
    tenant: Tenant, other_tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    Tenant.objects.filter(pk=other_tenant.pk).update(status="suspended")
    called: list[int] = []
    monkeypatch.setattr(tasks.wake_snoozed, "delay", called.append)
    assert tasks.wake_all_snoozed.run() == 1
    assert called == [tenant.pk]
