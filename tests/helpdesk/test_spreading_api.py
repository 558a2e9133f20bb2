"""Spreading in the API (R13): the conversation fields, the `spreading` filter, the
brand's threshold setting with field errors, and outsiders (404, nothing changes)."""

from datetime import timedelta
from typing import Any

import pytest

from helpdesk.models import Conversation
from tenants.context import tenant_context
from tenants.models import Brand, Tenant, User
from tests.api_clients import FOREIGN_CALLERS, base, foreign_client, session
from tests.helpdesk.sla_support import T0, make_clocked

pytestmark = pytest.mark.django_db


def spread(conversation: Conversation) -> None:
    with tenant_context(conversation.tenant_id):
        Conversation.objects.filter(pk=conversation.pk).update(
            spreading_since=T0,
            engagement_total=480,
            engagement_per_hour=960.5,
            engagement_read_at=T0,
        )


def test_conversations_show_their_spread_and_filter_on_it(
    tenant: Tenant, agent: User
) -> None:
    quiet = make_clocked(tenant, name="Quiet")
    loud = make_clocked(tenant, name="Loud", started=T0 + timedelta(minutes=5))
    spread(loud)
    client = session(agent)

    every = client.get(f"{base(tenant)}/conversations/").json()["results"]
    only = client.get(f"{base(tenant)}/conversations/?spreading=true").json()

    fields = ("engagement_total", "engagement_per_hour", "engagement_read_at")
    shown = {
        row["id"]: (row["spreading_since"], *(row[f] for f in fields)) for row in every
    }
    assert shown == {
        quiet.pk: (None, 0, 0.0, None),
        loud.pk: (
            "2026-12-07T09:00:00Z",
            480,
            960.5,
            "2026-12-07T09:00:00Z",
        ),
    }
    assert [row["id"] for row in only["results"]] == [loud.pk]


def test_a_bad_spreading_filter_is_a_field_error(tenant: Tenant, agent: User) -> None:
    response = session(agent).get(f"{base(tenant)}/conversations/?spreading=maybe")

    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["spreading"]


def brand_threshold(tenant: Tenant) -> int:
    with tenant_context(tenant):
        return Brand.objects.get().spreading_threshold


def test_admins_set_the_threshold(tenant: Tenant, admin: User) -> None:
    with tenant_context(tenant):
        brand = Brand.objects.get()
    url = f"{base(tenant)}/brands/{brand.pk}/"

    assert session(admin).get(url).json()["spreading_threshold"] == 60
    response = session(admin).patch(url, {"spreading_threshold": 250}, format="json")

    assert response.status_code == 200, response.json()
    assert response.json()["spreading_threshold"] == 250
    assert brand_threshold(tenant) == 250


@pytest.mark.parametrize("value", [0, -5, 1_000_001, "lots", 2.5, None])
def test_a_threshold_out_of_bounds_is_refused_with_its_field(
    tenant: Tenant, admin: User, value: Any
) -> None:
    with tenant_context(tenant):
        brand = Brand.objects.get()

    response = session(admin).patch(
        f"{base(tenant)}/brands/{brand.pk}/",
        {"spreading_threshold": value},
        format="json",
    )

    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["spreading_threshold"]
    assert brand_threshold(tenant) == 60


def test_agents_cannot_change_the_threshold(tenant: Tenant, agent: User) -> None:
    with tenant_context(tenant):
        brand = Brand.objects.get()

    response = session(agent).patch(
        f"{base(tenant)}/brands/{brand.pk}/",
        {"spreading_threshold": 5},
        format="json",
    )

    assert response.status_code == 403
    assert brand_threshold(tenant) == 60


@pytest.mark.parametrize("caller", FOREIGN_CALLERS)
def test_outsiders_see_no_spread_and_change_no_threshold(
    tenant: Tenant, other_tenant: Tenant, outsider: User, caller: str
) -> None:
    loud = make_clocked(tenant, name="Loud")
    spread(loud)
    with tenant_context(tenant):
        brand = Brand.objects.get()
    client = foreign_client(caller, other_tenant, outsider)

    listed = client.get(f"{base(tenant)}/conversations/?spreading=true")
    patched = client.patch(
        f"{base(tenant)}/brands/{brand.pk}/",
        {"spreading_threshold": 5},
        format="json",
    )

    assert (listed.status_code, patched.status_code) == (404, 404)
    assert brand_threshold(tenant) == 60


def test_the_brand_settings_page_has_the_threshold_field(
    tenant: Tenant, admin: User
) -> None:
    with tenant_context(tenant):
        brand = Brand.objects.get()
        Brand.objects.update(spreading_threshold=250)

    page = session(admin).get(f"/t/{tenant.slug}/settings/brands/{brand.pk}/")

    assert page.status_code == 200
    html = page.content.decode()
    assert (
        'name="spreading_threshold" type="number" inputmode="numeric" min="1" '
        'max="1000000" value="250"'
    ) in html
    assert 'data-field="spreading_threshold"' in html


def test_the_inbox_row_and_the_thread_show_the_flag(
    tenant: Tenant, agent: User
) -> None:
    loud = make_clocked(tenant, name="Loud")
    quiet = make_clocked(tenant, name="Quiet", started=T0 + timedelta(minutes=1))
    spread(loud)
    client = session(agent)

    rows = client.get(f"/t/{tenant.slug}/inbox/").content.decode()
    thread = client.get(f"/t/{tenant.slug}/inbox/{loud.pk}/").content.decode()
    other = client.get(f"/t/{tenant.slug}/inbox/{quiet.pk}/").content.decode()

    assert rows.count('class="chip chip-spreading"') == 1
    assert "Spreading · 480 reposts, likes and replies · about 961 an hour" in thread
    assert 'id="spreading-pill"' not in other
