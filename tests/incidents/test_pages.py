"""The incident pages: list, incident, live progress fragment; and the outsider."""

import pytest

from incidents import updates
from incidents.models import Incident
from tenants.context import tenant_context
from tenants.models import Tenant, User
from tests.conftest import login
from tests.incidents.conftest import CustomerFactory, link, member

pytestmark = pytest.mark.django_db


def test_the_list_shows_open_incidents_with_their_links(
    tenant: Tenant, agent: User, incident: Incident, customer: CustomerFactory
) -> None:
    link(tenant, agent, incident, customer("Anna"), customer("Bob"))
    page = login(agent).get(f"/t/{tenant.slug}/incidents/")
    html = page.content.decode()
    assert page.status_code == 200
    assert "AA31 cancelled, 5 Dec" in html
    assert f'href="/t/{tenant.slug}/incidents/{incident.pk}/"' in html
    assert "<td>2</td>" in html
    assert 'id="incident-create"' in html


def test_the_incident_page_counts_unanswered_and_shows_progress(
    tenant: Tenant,
    agent: User,
    incident: Incident,
    customer: CustomerFactory,
    scheduled: list[tuple[int, float]],
) -> None:
    anna, bob = customer("Anna"), customer("Bob")
    link(tenant, agent, incident, anna, bob)
    client = login(agent)
    page = client.get(f"/t/{tenant.slug}/incidents/{incident.pk}/").content.decode()
    assert '<strong id="unanswered-count">2</strong>' in page
    assert "No update sent yet." in page
    with tenant_context(tenant):
        update, _ = updates.start_update(
            member(tenant, agent),
            incident,
            text="{first_name}, rebooked",
            idempotency_key="44444444-4444-4444-4444-444444444444",
        )
    updates.send_update_tick(tenant, update.pk)
    fragment = client.get(
        f"/t/{tenant.slug}/incidents/{incident.pk}/progress/"
    ).content.decode()
    assert fragment.lstrip().startswith('<section class="panel incident-progress"')
    assert '<strong id="count-sent">2</strong> sent' in fragment
    page = client.get(f"/t/{tenant.slug}/incidents/{incident.pk}/").content.decode()
    assert '<strong id="unanswered-count">0</strong>' in page
    assert "Update sent</span> 2 sent, 0 skipped, 0 failed" in page


def test_a_viewer_reads_without_the_forms(
    tenant: Tenant, viewer: User, incident: Incident
) -> None:
    page = login(viewer).get(f"/t/{tenant.slug}/incidents/{incident.pk}/")
    assert page.status_code == 200
    assert 'id="update-form"' not in page.content.decode()


def test_an_outsider_gets_404_on_every_page(
    tenant: Tenant, incident: Incident, outsider: User, other_tenant: Tenant
) -> None:
    client = login(outsider)
    for path in ("", f"{incident.pk}/", f"{incident.pk}/progress/"):
        assert client.get(f"/t/{tenant.slug}/incidents/{path}").status_code == 404
    # Their own workspace's page with this incident's id: 404 as well.
    own = client.get(f"/t/{other_tenant.slug}/incidents/{incident.pk}/")
    assert own.status_code == 404
