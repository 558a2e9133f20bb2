"""Fixtures of incidents: the care core's fake platforms and delivery queue, and
an incident with linked customers whose update ticks the test drives itself."""

from collections.abc import Callable
from typing import Any

import pytest

from helpdesk.models import Conversation
from incidents import updates
from incidents.models import Incident
from incidents.services import create_incident, link_conversations
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import Tenant, User
from tests.helpdesk.conftest import (  # noqa: F401 - fixtures
    account,
    delivery_queue,
    fake_platforms,
    item,
    member,
    receive,
)

__all__ = ["CustomerFactory", "link", "member"]


@pytest.fixture
def scheduled(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, float]]:
    """The update ticks enqueued (update id, countdown); tests run them."""
    calls: list[tuple[int, float]] = []
    monkeypatch.setattr(
        updates,
        "_schedule",
        lambda update, *, countdown: calls.append((update.pk, countdown)),
    )
    return calls


CustomerFactory = Callable[..., Conversation]


@pytest.fixture
def customer(account: SocialAccount) -> CustomerFactory:  # noqa: F811
    """A conversation opened by a new customer (`name`) on the account."""
    counter = iter(range(1, 10_000))

    def make(name: str, **kwargs: Any) -> Conversation:
        n = next(counter)
        handle = name.lower().replace(" ", "")
        result = receive(
            account,
            item(
                author=f"cust-{handle}-{n}",
                handle=handle,
                text=kwargs.pop("text", "Flight AA31 is cancelled, what now?"),
                **kwargs,
            ),
        )
        conversation = result.conversation
        with tenant_context(account.tenant_id):
            contact = conversation.contact
            contact.display_name = name
            contact.save(update_fields=["display_name"])
        return conversation

    return make


@pytest.fixture
def incident(tenant: Tenant, agent: User) -> Incident:
    with tenant_context(tenant):
        return create_incident(member(tenant, agent), title="AA31 cancelled, 5 Dec")


def link(tenant: Tenant, agent: User, incident: Incident, *convs: Conversation) -> None:
    with tenant_context(tenant):
        link_conversations(incident, list(convs), membership=member(tenant, agent))
