"""The spike alerts API and pages: members list and acknowledge, bad filters get
field errors, an outsider gets 404 and changes nothing, and the schema lists both
operations."""

from datetime import UTC, datetime
from typing import Any

import pytest

from spikes.models import SpikeAlert
from tenants.context import tenant_context
from tenants.models import Brand, Tenant, User
from tests.conftest import login
from tests.test_api_schema import openapi_document

pytestmark = pytest.mark.django_db

OPENED = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)


def make_alert(tenant: Tenant, **fields: Any) -> SpikeAlert:
    with tenant_context(tenant):
        brand = Brand.objects.order_by("pk")[0]
        values: dict[str, Any] = {
            "brand": brand,
            "window_start": OPENED,
            "count": 42,
            "peak_count": 57,
            "baseline": 3.0,
            "threshold": 12.5,
            "by_sentiment": {"negative": 40, "neutral": 2},
            "by_rule": {"0": 42},
            "top_terms": [["aa31", 30], ["cancelled", 25]],
            "sample_message_ids": [],
            "opened_at": OPENED,
            "last_seen_at": OPENED,
        }
        values.update(fields)
        return SpikeAlert.objects.create(**values)


def state(tenant: Tenant) -> list[tuple[Any, ...]]:
    with tenant_context(tenant):
        return list(
            SpikeAlert.objects.order_by("pk").values_list(
                "status", "acknowledged_at", "acknowledged_by_id"
            )
        )


def test_members_list_alerts_newest_first_with_filters(
    tenant: Tenant, viewer: User
) -> None:
    older = make_alert(tenant, status="closed", opened_at=OPENED.replace(hour=8))
    newer = make_alert(tenant)
    client = login(viewer)
    body = client.get(f"/api/v1/t/{tenant.slug}/alerts/").json()
    assert [row["id"] for row in body] == [newer.pk, older.pk]
    assert body[0] == {
        "id": newer.pk,
        "brand_id": newer.brand_id,
        "status": "open",
        "window_start": "2026-12-07T10:00:00Z",
        "window_minutes": 5,
        "count": 42,
        "peak_count": 57,
        "baseline": 3.0,
        "threshold": 12.5,
        "by_sentiment": {"negative": 40, "neutral": 2},
        "by_rule": {"0": 42},
        "top_terms": [
            {"term": "aa31", "messages": 30},
            {"term": "cancelled", "messages": 25},
        ],
        "sample_message_ids": [],
        "opened_at": "2026-12-07T10:00:00Z",
        "last_seen_at": "2026-12-07T10:00:00Z",
        "closed_at": None,
        "acknowledged_at": None,
        "acknowledged_by": None,
    }
    closed = client.get(f"/api/v1/t/{tenant.slug}/alerts/?status=closed").json()
    assert [row["id"] for row in closed] == [older.pk]


def test_a_bad_filter_is_a_field_error(tenant: Tenant, viewer: User) -> None:
    response = login(viewer).get(
        f"/api/v1/t/{tenant.slug}/alerts/?status=burning&brand=x"
    )
    assert response.status_code == 400
    body = response.json()
    assert set(body["fields"]) == {"status", "brand"}, body


def test_any_member_acknowledges_once(
    tenant: Tenant, viewer: User, agent: User
) -> None:
    alert = make_alert(tenant)
    first = login(viewer).post(
        f"/api/v1/t/{tenant.slug}/alerts/{alert.pk}/acknowledge/"
    )
    assert first.status_code == 200
    assert first.json()["acknowledged_by"] == viewer.email
    again = login(agent).post(f"/api/v1/t/{tenant.slug}/alerts/{alert.pk}/acknowledge/")
    assert again.json()["acknowledged_by"] == viewer.email
    ((status, at, by),) = state(tenant)
    assert (status, by) == ("open", viewer.pk)
    assert at is not None


def test_an_outsider_gets_404_and_changes_nothing(
    tenant: Tenant, outsider: User
) -> None:
    alert = make_alert(tenant)
    before = state(tenant)
    client = login(outsider)
    for response in (
        client.get(f"/api/v1/t/{tenant.slug}/alerts/"),
        client.post(f"/api/v1/t/{tenant.slug}/alerts/{alert.pk}/acknowledge/"),
        client.get(f"/t/{tenant.slug}/alerts/"),
        client.get(f"/t/{tenant.slug}/alerts/banner/"),
        client.get(f"/t/{tenant.slug}/alerts/panels/"),
        client.get(f"/t/{tenant.slug}/alerts/{alert.pk}/"),
        client.post(f"/t/{tenant.slug}/alerts/{alert.pk}/acknowledge/"),
    ):
        assert response.status_code == 404
        assert b"aa31" not in response.content
    assert state(tenant) == before


def test_another_workspaces_alert_is_404_to_an_owner(
    tenant: Tenant, other_tenant: Tenant, owner: User
) -> None:
    foreign = make_alert(other_tenant)
    before = state(other_tenant)
    client = login(owner)
    assert client.get(f"/t/{tenant.slug}/alerts/{foreign.pk}/").status_code == 404
    response = client.post(f"/api/v1/t/{tenant.slug}/alerts/{foreign.pk}/acknowledge/")
    assert response.status_code == 404
    assert state(other_tenant) == before


def test_the_pages_show_the_alert_its_terms_and_acknowledge(
    tenant: Tenant, agent: User
) -> None:
    alert = make_alert(tenant)
    client = login(agent)
    listing = client.get(f"/t/{tenant.slug}/alerts/").content.decode()
    assert "Not enough history yet: 0 of 2 weeks needed" in listing
    assert f"/t/{tenant.slug}/alerts/{alert.pk}/" in listing
    page = client.get(f"/t/{tenant.slug}/alerts/{alert.pk}/").content.decode()
    assert "42 messages in the 5 minutes" in page
    assert "aa31" in page
    assert "cancelled" in page
    assert "Acknowledge</button>" in page
    banner = client.get(f"/t/{tenant.slug}/alerts/banner/").content.decode()
    assert "Spike on Acme Air:" in banner
    assert "57 messages in 5 minutes (usually 3)" in banner
    done = client.post(f"/t/{tenant.slug}/alerts/{alert.pk}/acknowledge/")
    assert done.status_code == 302
    ((_, at, by),) = state(tenant)
    assert by == agent.pk
    assert at is not None
    after = client.get(f"/t/{tenant.slug}/alerts/{alert.pk}/").content.decode()
    assert f"Acknowledged by {agent.email}" in after


def test_the_panels_fragment_is_the_pages_brands_and_alerts(
    tenant: Tenant, agent: User
) -> None:
    client = login(agent)
    before = client.get(f"/t/{tenant.slug}/alerts/panels/")
    assert before.status_code == 200
    body = before.content.decode()
    # The fragment alone (one element the page swaps in), not a whole page.
    assert body.startswith(
        f'<div id="spike-panels" data-url="/t/{tenant.slug}/alerts/panels/">'
    )
    assert "<html" not in body
    assert "Not enough history yet: 0 of 2 weeks needed" in body
    assert "No spikes yet." in body

    alert = make_alert(tenant)
    after = client.get(f"/t/{tenant.slug}/alerts/panels/").content.decode()
    assert "No spikes yet." not in after
    assert f'href="/t/{tenant.slug}/alerts/{alert.pk}/">Acme Air: 57 in 5 minutes' in (
        after
    )
    # The page renders the same panels in place, once.
    page = client.get(f"/t/{tenant.slug}/alerts/").content.decode()
    assert page.count('<div id="spike-panels" data-url=') == 1
    assert page.count(f'href="/t/{tenant.slug}/alerts/{alert.pk}/">Acme Air') == 1


def test_the_schema_lists_both_operations() -> None:
    paths = openapi_document()["paths"]
    alerts = paths["/api/v1/t/{tenant_slug}/alerts/"]
    acknowledge = paths["/api/v1/t/{tenant_slug}/alerts/{alert_id}/acknowledge/"]
    assert {p["name"] for p in alerts["get"]["parameters"]} >= {"status", "brand"}
    assert "post" in acknowledge


def brand_spike_settings(tenant: Tenant) -> tuple[bool, int, int]:
    with tenant_context(tenant):
        brand = Brand.objects.order_by("pk")[0]
    return (brand.spike_alerts, brand.spike_threshold, brand.spike_min_count)


def test_an_admin_tunes_the_brands_sensitivity_and_an_agent_cannot(
    tenant: Tenant, admin: User, agent: User
) -> None:
    with tenant_context(tenant):
        brand_id = Brand.objects.order_by("pk")[0].pk
    url = f"/api/v1/t/{tenant.slug}/brands/{brand_id}/"
    changes = {"spike_alerts": False, "spike_threshold": 3, "spike_min_count": 4}
    denied = login(agent).patch(url, changes, content_type="application/json")
    assert denied.status_code == 403
    assert brand_spike_settings(tenant) == (True, 5, 10)
    done = login(admin).patch(url, changes, content_type="application/json")
    assert done.status_code == 200
    assert {k: done.json()[k] for k in changes} == changes
    assert brand_spike_settings(tenant) == (False, 3, 4)
