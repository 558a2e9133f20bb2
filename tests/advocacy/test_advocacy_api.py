"""The advocates and competitor-feed API and pages: what a member reads, what an
agent decides, 4xx with field messages for bad input, and the outsider (another
workspace's session or token) who gets 404 and changes nothing."""

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from advocacy.models import AdvocateSuggestion, CompetitorMention
from advocacy.services import scan_for_advocates
from social.listening_services import create_listening_rule
from social.models import ListeningRule, SocialAccount
from tenants.context import tenant_context
from tenants.models import AuditEvent, Brand, Membership, Tenant, User
from tests.api_clients import FOREIGN_CALLERS, base, foreign_client, session
from tests.conftest import login
from tests.factories import add_member, make_user, membership_of
from tests.helpdesk.conftest import item, make_account, receive

pytestmark = pytest.mark.django_db

PRAISE = [
    "Thanks so much, the crew was amazing!",
    "Great flight today, love this airline",
    "Wonderful service again, thank you",
]


@pytest.fixture
def suggestion(tenant: Tenant) -> AdvocateSuggestion:
    account: SocialAccount = make_account(tenant)
    for text in PRAISE:
        receive(account, item(text=text, author="fan", handle="fan", followers=900))
    with tenant_context(tenant):
        scan_for_advocates(tenant)
        return AdvocateSuggestion.objects.select_related("contact").get()


@pytest.fixture
def rival(tenant: Tenant, owner: User) -> ListeningRule:
    with tenant_context(tenant):
        brand = Brand.objects.get()
        rule = create_listening_rule(
            membership_of(tenant, owner),
            brand=brand,
            name="Sky Rival",
            query="skyrival",
            action="feed",
            competitor=True,
        )
        CompetitorMention.objects.create(
            rule=rule,
            brand=brand,
            platform="x",
            external_id="x1",
            author_handle="flyer",
            text="skyrival lost my bag",
            sentiment="negative",
            posted_at=timezone.now() - timedelta(hours=1),
        )
        return rule


def state(tenant: Tenant) -> list[Any]:
    with tenant_context(tenant):
        return [
            list(AdvocateSuggestion.objects.values_list("status", "decision_note")),
            AuditEvent.objects.filter(action__startswith="advocate.").count(),
        ]


def test_members_read_advocates_with_reach_and_evidence(
    tenant: Tenant, owner: User, suggestion: AdvocateSuggestion
) -> None:
    response = session(owner).get(f"{base(tenant)}/advocates/")

    assert response.status_code == 200
    [row] = response.json()
    assert (row["id"], row["status"], row["contact"]["display_name"]) == (
        suggestion.pk,
        "pending",
        "Fan",
    )
    assert (row["followers"], row["band"], row["positive_count"]) == (900, "medium", 3)
    assert sorted(e["text"] for e in row["evidence"]) == sorted(PRAISE)
    assert row["last_interaction_at"] is not None
    assert (
        session(owner).get(f"{base(tenant)}/advocates/?status=dismissed").json() == []
    )


def test_an_agent_confirms_and_dismisses_through_the_api(
    tenant: Tenant, agent: User, suggestion: AdvocateSuggestion
) -> None:
    url = f"{base(tenant)}/advocates/{suggestion.pk}/"
    confirmed = session(agent).post(f"{url}confirm/", {"note": "fan"}, format="json")
    dismissed = session(agent).post(f"{url}dismiss/", {}, format="json")

    assert (confirmed.status_code, confirmed.json()["status"]) == (200, "confirmed")
    assert (dismissed.status_code, dismissed.json()["status"]) == (200, "dismissed")
    assert state(tenant) == [[("dismissed", "")], 2]


def test_bad_input_is_a_400_with_field_messages(
    tenant: Tenant, agent: User, suggestion: AdvocateSuggestion, rival: ListeningRule
) -> None:
    client = session(agent)
    cases = [
        ("post", f"advocates/{suggestion.pk}/confirm/", {"note": "x" * 501}, "note"),
        ("get", "advocates/?status=maybe", None, "status"),
        ("get", "competitors/volume/?bucket=week", None, "bucket"),
        ("get", "competitors/volume/?start=2026-02-30", None, "start"),
        ("get", "competitors/volume/?start=2026-03-02&end=2026-03-01", None, "start"),
        ("get", "competitors/volume/?bucket=hour&start=2026-01-01", None, "bucket"),
        ("get", "competitors/mentions/?rule=999999", None, "rule"),
        ("get", "competitors/mentions/?end=9999-12-31", None, "end"),
        ("get", "competitors/mentions/?start=0001-01-01", None, "start"),
        ("get", f"competitors/mentions/?rule={2**70}", None, "rule"),
        ("get", "competitors/mentions/?sentiment=angry", None, "sentiment"),
    ]
    for method, path, data, field in cases:
        if method == "post":
            response = client.post(f"{base(tenant)}/{path}", data, format="json")
        else:
            response = client.get(f"{base(tenant)}/{path}")
        assert response.status_code == 400, (path, response.content)
        assert list(response.json()["fields"]) == [field], path
    assert state(tenant) == [[("pending", "")], 0]


def test_a_viewer_reads_but_cannot_decide(
    tenant: Tenant, suggestion: AdvocateSuggestion
) -> None:
    viewer = make_user("vera@acme.example")
    add_member(tenant, viewer, Membership.Role.VIEWER)
    client = session(viewer)

    assert client.get(f"{base(tenant)}/advocates/").status_code == 200
    assert (
        client.post(f"{base(tenant)}/advocates/{suggestion.pk}/confirm/").status_code
        == 403
    )
    assert client.post(f"{base(tenant)}/advocates/scan/").status_code == 403
    assert state(tenant) == [[("pending", "")], 0]


def test_the_competitor_feed_and_its_volume(
    tenant: Tenant, owner: User, rival: ListeningRule
) -> None:
    client = session(owner)
    mentions = client.get(f"{base(tenant)}/competitors/mentions/?rule={rival.pk}")
    volume = client.get(f"{base(tenant)}/competitors/volume/?bucket=hour")

    assert [(m["external_id"], m["sentiment"]) for m in mentions.json()] == [
        ("x1", "negative")
    ]
    [series] = volume.json()
    assert series["rule"] == {"id": rival.pk, "name": "Sky Rival"}
    assert sum(p["negative"] for p in series["points"]) == 1
    assert sum(p["total"] for p in series["points"]) == 1


def test_the_scan_api_suggests_only(tenant: Tenant, agent: User) -> None:
    account = make_account(tenant)
    for text in PRAISE:
        receive(account, item(text=text, author="fan", handle="fan"))
    response = session(agent).post(f"{base(tenant)}/advocates/scan/")

    assert response.status_code == 200
    assert response.json()["suggested"] == 1
    assert state(tenant) == [[("pending", "")], 0]


@pytest.mark.parametrize("caller", FOREIGN_CALLERS)
def test_outsiders_get_404_and_change_nothing(
    caller: str,
    tenant: Tenant,
    other_tenant: Tenant,
    outsider: User,
    suggestion: AdvocateSuggestion,
    rival: ListeningRule,
) -> None:
    client = foreign_client(caller, other_tenant, outsider)
    calls = [
        ("get", "advocates/"),
        ("post", "advocates/scan/"),
        ("post", f"advocates/{suggestion.pk}/confirm/"),
        ("post", f"advocates/{suggestion.pk}/dismiss/"),
        ("get", f"competitors/mentions/?rule={rival.pk}"),
        ("get", "competitors/volume/"),
    ]
    for method, path in calls:
        response = getattr(client, method)(f"{base(tenant)}/{path}")
        assert response.status_code == 404, path
    # Their own workspace's URLs with this workspace's ids: not found either.
    own = f"/api/v1/t/{other_tenant.slug}"
    assert client.post(f"{own}/advocates/{suggestion.pk}/confirm/").status_code == 404
    assert client.get(f"{own}/competitors/mentions/?rule={rival.pk}").status_code == 400
    assert state(tenant) == [[("pending", "")], 0]


# Pages


def test_the_pages_show_suggestions_advocates_and_the_feed(
    tenant: Tenant, owner: User, suggestion: AdvocateSuggestion, rival: ListeningRule
) -> None:
    client = login(owner)
    advocates = client.get(f"/t/{tenant.slug}/reports/advocates/").content.decode()
    feed = client.get(f"/t/{tenant.slug}/reports/competitors/").content.decode()
    reports = client.get(f"/t/{tenant.slug}/reports/").content.decode()

    assert "Fan" in advocates
    assert "Great flight today, love this airline" in advocates
    assert f"/reports/advocates/{suggestion.pk}/decide/" in advocates
    assert "skyrival lost my bag" in feed
    assert "Sky Rival" in feed
    assert f"/t/{tenant.slug}/reports/advocates/" in reports


def test_deciding_on_the_page_confirms_and_the_thread_shows_the_badge(
    tenant: Tenant, agent: User, suggestion: AdvocateSuggestion
) -> None:
    client = login(agent)
    page = f"/t/{tenant.slug}/reports/advocates/"
    bad = client.post(f"{page}{suggestion.pk}/decide/", {"decision": "maybe"})
    assert bad.status_code == 400
    assert "Choose confirm or dismiss." in bad.content.decode()
    assert state(tenant) == [[("pending", "")], 0]

    with tenant_context(tenant):
        first = AdvocateSuggestion.objects.get().contact.conversations.first()
        assert first is not None
        conversation_id = first.pk
    panel = f"/t/{tenant.slug}/conversations/{conversation_id}/contact/"
    assert "Suggested advocate" in client.get(panel).content.decode()
    done = client.post(f"{page}{suggestion.pk}/decide/", {"decision": "confirm"})
    assert (done.status_code, done["Location"]) == (302, page)
    assert state(tenant) == [[("confirmed", "")], 1]
    assert "★ Advocate" in client.get(panel).content.decode()


def test_outsiders_get_404_on_the_pages_and_change_nothing(
    tenant: Tenant, outsider: User, suggestion: AdvocateSuggestion
) -> None:
    client = login(outsider)
    page = f"/t/{tenant.slug}/reports/"
    for url in (f"{page}advocates/", f"{page}competitors/"):
        assert client.get(url).status_code == 404
    for url in (f"{page}advocates/scan/", f"{page}advocates/{suggestion.pk}/decide/"):
        assert client.post(url, {"decision": "confirm"}).status_code == 404
    assert state(tenant) == [[("pending", "")], 0]


def test_admin_pages_are_read_only_and_scoped(
    tenant: Tenant,
    owner: User,
    outsider: User,
    other_tenant: Tenant,
    suggestion: AdvocateSuggestion,
    rival: ListeningRule,
) -> None:
    with tenant_context(tenant):
        mention = CompetitorMention.objects.get().pk
    pages = {
        "advocatesuggestion": suggestion.pk,
        "competitormention": mention,
    }
    olivia, charlie = login(owner), login(outsider)
    for model, pk in pages.items():
        mine = f"/t/{tenant.slug}/admin/advocacy/{model}/"
        theirs = f"/t/{other_tenant.slug}/admin/advocacy/{model}/"
        assert olivia.get(mine).status_code == 200
        assert olivia.get(f"{mine}{pk}/change/").status_code == 200
        assert olivia.get(f"{mine}add/").status_code == 403
        assert olivia.post(f"{mine}{pk}/delete/", {"post": "yes"}).status_code == 403
        assert charlie.get(mine).status_code == 404
        assert charlie.get(f"{mine}{pk}/change/").status_code == 404
        assert charlie.get(f"{theirs}{pk}/change/").status_code == 404
    assert state(tenant) == [[("pending", "")], 0]
    with tenant_context(tenant):
        assert CompetitorMention.objects.count() == 1
