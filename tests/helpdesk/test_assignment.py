import pytest

from helpdesk.exceptions import InvalidTransition
from helpdesk.models import Conversation
from helpdesk.presence import MemoryPresence
from helpdesk.services import assignment
from helpdesk.services.assignment import assign_conversation, claim_conversation
from helpdesk.services.replies import post_reply
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import Brand, Membership, Tenant, User
from tests.factories import add_member, make_user
from tests.helpdesk.conftest import item, member, receive, reload

pytestmark = pytest.mark.django_db


@pytest.fixture
def presence(monkeypatch: pytest.MonkeyPatch) -> MemoryPresence:
    store = MemoryPresence()
    monkeypatch.setattr(assignment, "presence_store", lambda: store)
    return store


def test_assign_and_unassign(
    tenant: Tenant, admin: User, agent: User, account: SocialAccount
) -> None:
    conversation = receive(account, item()).conversation
    with tenant_context(tenant):
        assigned = assign_conversation(
            conversation, membership=member(tenant, admin), assignee=agent
        )
    assert assigned.assignee_id == agent.pk
    with tenant_context(tenant):
        cleared = assign_conversation(
            conversation, membership=member(tenant, admin), assignee=None
        )
    assert cleared.assignee_id is None


def test_a_viewer_or_an_outsider_cannot_be_assigned(
    tenant: Tenant, admin: User, viewer: User, outsider: User, account: SocialAccount
) -> None:
    conversation = receive(account, item()).conversation
    for user in (viewer, outsider):
        with tenant_context(tenant), pytest.raises(InvalidTransition):
            assign_conversation(
                conversation, membership=member(tenant, admin), assignee=user
            )
    assert reload(conversation).assignee_id is None


def test_claim_refuses_a_conversation_someone_else_has(
    tenant: Tenant, admin: User, agent: User, account: SocialAccount
) -> None:
    conversation = receive(account, item()).conversation
    with tenant_context(tenant):
        claim_conversation(conversation, membership=member(tenant, agent))
    with (
        tenant_context(tenant),
        pytest.raises(InvalidTransition, match="Andy is already on"),
    ):
        claim_conversation(conversation, membership=member(tenant, admin))
    assert reload(conversation).assignee_id == agent.pk


def test_new_conversations_go_round_robin_to_online_agents(
    tenant: Tenant, owner: User, account: SocialAccount, presence: MemoryPresence
) -> None:
    agents = [make_user(f"agent{n}@acme.example") for n in range(3)]
    for user in agents:
        add_member(tenant, user, Membership.Role.AGENT)
    for user in agents[:2]:
        presence.touch(tenant.pk, user.pk)
    conversations = [
        receive(account, item(author=f"c{n}", external_id=f"p{n}")).conversation
        for n in range(4)
    ]
    picks = [conversation.assignee_id or 0 for conversation in conversations]
    assert sorted(picks) == sorted([agents[0].pk, agents[1].pk] * 2)
    assert agents[2].pk not in picks


def test_capacity_is_respected(
    tenant: Tenant, agent: User, account: SocialAccount, presence: MemoryPresence
) -> None:
    with tenant_context(tenant):
        Membership.objects.filter(user=agent).update(capacity=1)
    presence.touch(tenant.pk, agent.pk)
    first = receive(account, item(author="a", external_id="p1")).conversation
    second = receive(account, item(author="b", external_id="p2")).conversation
    assert (first.assignee_id, second.assignee_id) == (agent.pk, None)


def test_no_auto_assign_when_the_brand_turns_it_off(
    tenant: Tenant, agent: User, account: SocialAccount, presence: MemoryPresence
) -> None:
    with tenant_context(tenant):
        Brand.objects.update(auto_assign=False)
    presence.touch(tenant.pk, agent.pk)
    assert receive(account, item()).conversation.assignee_id is None


def test_a_follow_up_goes_back_to_the_agent_who_answered_while_online(
    tenant: Tenant,
    agent: User,
    admin: User,
    account: SocialAccount,
    presence: MemoryPresence,
) -> None:
    conversation = receive(account, item(external_id="root")).conversation
    with tenant_context(tenant):
        post_reply(conversation, membership=member(tenant, agent), text="On it")
        Conversation.objects.filter(pk=conversation.pk).update(assignee_id=admin.pk)
    presence.touch(tenant.pk, agent.pk)
    receive(account, item(thread="root", text="Thanks, and my bag?"))
    assert reload(conversation).assignee_id == agent.pk
    presence.leave(tenant.pk, agent.pk)
    with tenant_context(tenant):
        Conversation.objects.filter(pk=conversation.pk).update(assignee_id=admin.pk)
    receive(account, item(thread="root", text="Hello?"))
    assert reload(conversation).assignee_id == admin.pk
