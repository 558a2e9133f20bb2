"""The incidents API: every route, its field errors, and the outsider."""

from typing import Any

import pytest
from rest_framework.test import APIClient

from helpdesk.models import Conversation, Message
from incidents.models import (
    Incident,
    IncidentEntry,
    IncidentLink,
    IncidentUpdate,
    UpdateRecipient,
)
from tenants.context import tenant_context
from tenants.models import Tenant, User
from tests.api_clients import FOREIGN_CALLERS, base, foreign_client, session
from tests.incidents.conftest import CustomerFactory, link

pytestmark = pytest.mark.django_db

KEY = "33333333-3333-3333-3333-333333333333"


def url(tenant: Tenant, path: str) -> str:
    return f"{base(tenant)}/incidents/{path}"


def state(tenant: Tenant) -> dict[str, Any]:
    with tenant_context(tenant):
        return {
            "incidents": sorted(
                Incident.objects.values_list("title", "status", "holding_statement")
            ),
            "links": IncidentLink.objects.count(),
            "entries": IncidentEntry.objects.count(),
            "updates": IncidentUpdate.objects.count(),
            "recipients": sorted(UpdateRecipient.objects.values_list("status")),
            "replies": Message.objects.filter(direction="out").count(),
            "resolved": Conversation.objects.filter(status="resolved").count(),
        }


def test_an_agent_opens_an_incident_and_bad_fields_get_messages(
    tenant: Tenant, agent: User, other_tenant: Tenant
) -> None:
    client = session(agent)
    created = client.post(
        url(tenant, ""),
        {"title": "AA31 cancelled, 5 Dec", "rule_terms": "AA31, aa 31"},
        format="json",
    )
    assert created.status_code == 201, created.json()
    body = created.json()
    assert (body["title"], body["status"], body["rule_terms"]) == (
        "AA31 cancelled, 5 Dec",
        "open",
        "AA31, aa 31",
    )
    bad = client.post(
        url(tenant, ""),
        {"title": " ", "rule_tag_id": 999999, "brand_id": "x"},
        format="json",
    )
    assert bad.status_code == 400
    assert bad.json()["fields"] == {
        "title": ["This field may not be blank."],
        "rule_tag_id": ["No such tag in this workspace."],
        "brand_id": ["A valid integer is required."],
    }
    listed = client.get(url(tenant, "")).json()
    assert [(i["title"], i["linked"]) for i in listed] == [("AA31 cancelled, 5 Dec", 0)]
    assert client.get(url(tenant, "?status=nope")).status_code == 400


def test_link_note_hold_preview_send_and_close(
    tenant: Tenant,
    agent: User,
    incident: Incident,
    customer: CustomerFactory,
    scheduled: list[tuple[int, float]],
) -> None:
    client = session(agent)
    anna, bob = customer("Anna"), customer("Bob")
    path = url(tenant, f"{incident.pk}/")
    unknown = client.post(
        path + "links/", {"conversation_ids": [anna.pk, 987654]}, format="json"
    )
    assert unknown.status_code == 400
    assert unknown.json()["fields"] == {
        "conversation_ids": ["No such conversation in this workspace: 987654."]
    }
    linked = client.post(
        path + "links/",
        {"conversation_ids": [anna.pk, bob.pk, anna.pk], "via": "bulk"},
        format="json",
    )
    assert linked.json() == {"linked": [anna.pk, bob.pk]}
    note = client.post(path + "notes/", {"text": "Ops says 18:00"}, format="json")
    assert note.status_code == 201
    assert client.post(path + "notes/", {"text": ""}, format="json").json()[
        "fields"
    ] == {"text": ["This field may not be blank."]}
    held = client.put(
        path + "holding-statement/",
        {"text": "We are rebooking everyone."},
        format="json",
    )
    assert held.json()["holding_statement"] == "We are rebooking everyone."
    preview = client.post(path + "preview/", {"text": "Hi {first_name}"}, format="json")
    assert [(p["customer"], p["text"]) for p in preview.json()] == [
        ("Anna", "Hi Anna"),
        ("Bob", "Hi Bob"),
    ]
    refused = client.post(path + "preview/", {"text": "Hi all"}, format="json")
    assert refused.status_code == 400
    assert refused.json()["fields"]["text"][0].startswith("Add {first_name}")
    sent = client.post(
        path + "updates/",
        {"text": "{greeting} {first_name}, rebooking now", "idempotency_key": KEY},
        format="json",
    )
    assert sent.status_code == 201
    again = client.post(
        path + "updates/",
        {"text": "{greeting} {first_name}, rebooking now", "idempotency_key": KEY},
        format="json",
    )
    assert (again.status_code, again.json()["id"]) == (200, sent.json()["id"])
    assert client.post(
        path + "updates/",
        {"text": "{first_name}", "idempotency_key": "x"},
        format="json",
    ).json()["fields"] == {"idempotency_key": ["Must be a valid UUID."]}
    progress = client.get(path + f"updates/{sent.json()['id']}/").json()
    assert progress["counts"] == {
        "pending": 2,
        "sent": 0,
        "skipped": 0,
        "failed": 0,
        "total": 2,
    }
    detail = client.get(path).json()
    assert detail["unanswered"] == 2
    assert [c["customer"] for c in detail["conversations"]] == ["Anna", "Bob"]
    assert [e["kind"] for e in detail["timeline"]] == [
        "holding",
        "note",
        "linked",
        "opened",
    ]
    stray = client.post(path + "close/", {"resolve_ids": [9999999]}, format="json")
    assert stray.status_code == 400
    closed = client.post(path + "close/", {"resolve_ids": [bob.pk]}, format="json")
    assert closed.json()["status"] == "closed"
    with tenant_context(tenant):
        statuses = dict(Conversation.objects.values_list("id", "status"))
        entry = IncidentEntry.objects.get(kind="closed")
    assert (statuses[anna.pk], statuses[bob.pk]) == ("open", "resolved")
    assert entry.data == {"resolved_ids": [bob.pk], "kept_ids": [anna.pk]}
    assert (
        client.post(path + "close/", {"resolve_ids": []}, format="json").json()["code"]
        == "incident_closed"
    )


def test_unlink_and_retry(
    tenant: Tenant,
    agent: User,
    incident: Incident,
    customer: CustomerFactory,
    scheduled: list[tuple[int, float]],
) -> None:
    client = session(agent)
    anna = customer("Anna")
    link(tenant, agent, incident, anna)
    path = url(tenant, f"{incident.pk}/")
    sent = client.post(
        path + "updates/",
        {"text": "{first_name}: rebooked", "idempotency_key": KEY},
        format="json",
    ).json()
    with tenant_context(tenant):
        UpdateRecipient.objects.update(status="failed", reason="Platform said no")
    retried = client.post(path + f"updates/{sent['id']}/retry/", {}, format="json")
    assert retried.json()["counts"]["pending"] == 1
    assert client.delete(path + f"links/{anna.pk}/").status_code == 204
    assert client.delete(path + f"links/{anna.pk}/").status_code == 404


def test_a_viewer_reads_but_cannot_write(
    tenant: Tenant, viewer: User, incident: Incident
) -> None:
    client = session(viewer)
    before = state(tenant)
    assert client.get(url(tenant, f"{incident.pk}/")).status_code == 200
    refused = client.post(
        url(tenant, f"{incident.pk}/notes/"), {"text": "x"}, format="json"
    )
    assert refused.status_code == 403
    assert state(tenant) == before


@pytest.mark.parametrize("caller", FOREIGN_CALLERS)
def test_an_outsider_gets_404_everywhere_and_changes_nothing(
    caller: str,
    tenant: Tenant,
    agent: User,
    incident: Incident,
    customer: CustomerFactory,
    scheduled: list[tuple[int, float]],
    other_tenant: Tenant,
    outsider: User,
) -> None:
    anna = customer("Anna")
    link(tenant, agent, incident, anna)
    update = session(agent).post(
        url(tenant, f"{incident.pk}/updates/"),
        {"text": "{first_name}, rebooked", "idempotency_key": KEY},
        format="json",
    )
    update_id = update.json()["id"]
    client: APIClient = foreign_client(caller, other_tenant, outsider)
    before = state(tenant)
    p = url(tenant, f"{incident.pk}/")
    calls = [
        ("get", url(tenant, ""), None),
        ("post", url(tenant, ""), {"title": "Pwned"}),
        ("get", p, None),
        ("patch", p, {"title": "Pwned"}),
        ("post", p + "links/", {"conversation_ids": [anna.pk]}),
        ("delete", p + f"links/{anna.pk}/", None),
        ("post", p + "notes/", {"text": "Pwned"}),
        ("put", p + "holding-statement/", {"text": "Pwned"}),
        ("post", p + "preview/", {"text": "{first_name}"}),
        ("get", p + "updates/", None),
        ("post", p + "updates/", {"text": "{first_name}", "idempotency_key": KEY}),
        ("get", p + f"updates/{update_id}/", None),
        ("post", p + f"updates/{update_id}/retry/", {}),
        ("post", p + "close/", {"resolve_ids": [anna.pk]}),
    ]
    for method, path, data in calls:
        response = getattr(client, method)(path, data, format="json")
        assert response.status_code == 404, (method, path, response.status_code)
    assert state(tenant) == before
