"""An incident's linking rule: new matching conversations are linked for its
lifetime (terms, a tag, a listening rule), through inbound's after-commit hook or
the sweep's catch-up."""

from typing import Any

import pytest
from django.core.cache import cache

from helpdesk.models import ConversationTag, Tag
from helpdesk.services.inbound import INCIDENT_RULES_KEY
from incidents.models import Incident, IncidentLink
from incidents.services import (
    catch_up_rule_links,
    close_incident,
    create_incident,
    unlink_conversation,
)
from social.models import ListeningRule
from tenants.context import tenant_context
from tenants.models import Tenant, User
from tests.incidents.conftest import CustomerFactory, member

pytestmark = pytest.mark.django_db


def linked(tenant: Tenant, incident: Incident) -> list[str]:
    with tenant_context(tenant):
        return sorted(
            IncidentLink.objects.filter(incident=incident).values_list(
                "conversation__contact__display_name", flat=True
            )
        )


def open_incident(tenant: Tenant, agent: User, capture: Any, **rule: Any) -> Incident:
    with capture(execute=True), tenant_context(tenant):
        return create_incident(member(tenant, agent), title="AA31 cancelled", **rule)


def test_terms_link_new_matching_conversations_until_closed(
    tenant: Tenant,
    agent: User,
    customer: CustomerFactory,
    django_capture_on_commit_callbacks: Any,
) -> None:
    capture = django_capture_on_commit_callbacks
    with capture(execute=True):
        customer("Before", text="AA31 cancelled already?")
    incident = open_incident(tenant, agent, capture, rule_terms="aa31, flight 31")
    assert cache.get(INCIDENT_RULES_KEY.format(tenant.pk)) == 1
    with capture(execute=True):
        customer("Anna", text="Is AA31 really cancelled?")
        customer("Bob", text="Flight 31 is gone, help")
        customer("Cleo", text="My bag is lost")
        customer("Eve", text="aa310 is not my flight")
    assert linked(tenant, incident) == ["Anna", "Bob"]
    with capture(execute=True), tenant_context(tenant):
        close_incident(member(tenant, agent), incident, resolve=[])
    assert cache.get(INCIDENT_RULES_KEY.format(tenant.pk)) == 0
    with capture(execute=True):
        customer("Dan", text="AA31??")
    assert linked(tenant, incident) == ["Anna", "Bob"]


def test_a_listening_rule_links_what_it_matches(
    tenant: Tenant,
    agent: User,
    customer: CustomerFactory,
    django_capture_on_commit_callbacks: Any,
) -> None:
    with tenant_context(tenant):
        rule = ListeningRule.objects.create(
            brand=tenant_brand(tenant), name="AA31", query='"aa 31" OR aa31'
        )
    incident = open_incident(
        tenant, agent, django_capture_on_commit_callbacks, rule_listening_rule=rule
    )
    with django_capture_on_commit_callbacks(execute=True):
        customer("Anna", text="aa 31 is cancelled")
        customer("Bob", text="aa 32 is fine")
    assert linked(tenant, incident) == ["Anna"]


def tenant_brand(tenant: Tenant) -> Any:
    from tenants.models import Brand

    return Brand.objects.get()


def test_the_sweep_links_a_tag_and_what_a_lost_flag_missed_but_not_unlinked_ones(
    tenant: Tenant,
    agent: User,
    customer: CustomerFactory,
    django_capture_on_commit_callbacks: Any,
) -> None:
    with tenant_context(tenant):
        tag = Tag.objects.create(name="aa31")
    incident = open_incident(
        tenant, agent, django_capture_on_commit_callbacks, rule_tag=tag
    )
    cache.clear()  # the flag is lost: inbound links nothing until the sweep
    with django_capture_on_commit_callbacks(execute=True):
        anna, bob = customer("Anna", text="hello"), customer("Bob", text="hi")
    assert linked(tenant, incident) == []
    with tenant_context(tenant):
        ConversationTag.objects.create(conversation=anna, tag=tag)
        ConversationTag.objects.create(conversation=bob, tag=tag)
    with django_capture_on_commit_callbacks(execute=True), tenant_context(tenant):
        assert catch_up_rule_links(tenant.pk) == {incident.pk: [anna.pk, bob.pk]}
    assert cache.get(INCIDENT_RULES_KEY.format(tenant.pk)) == 1
    with tenant_context(tenant):
        unlink_conversation(member(tenant, agent), incident, bob)
        assert catch_up_rule_links(tenant.pk) == {}
    assert linked(tenant, incident) == ["Anna"]
