"""The daily SLA digest: who gets it, yesterday's figures from the reports, the open
breaches, once per brand and local day."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core import mail

from helpdesk import tasks
from helpdesk.models import CareFact, Conversation
from helpdesk.services import sla
from helpdesk.services.digest import claim_due_digests
from tenants.context import tenant_context
from tenants.models import AuditEvent, Brand, Membership, Tenant, User
from tests.factories import add_member, make_brand, make_user
from tests.helpdesk.sla_support import make_clocked

pytestmark = pytest.mark.django_db

# Tuesday 8 December 2026, 07:30 in Paris (UTC+1): the digest of Monday the 7th.
MORNING = datetime(2026, 12, 8, 6, 30, tzinfo=UTC)
# Monday the 7th in Paris runs from 23:00 UTC on the 6th to 23:00 UTC on the 7th.
MONDAY = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
Kind = CareFact.Kind


@pytest.fixture
def brand(tenant: Tenant) -> Brand:
    with tenant_context(tenant):
        brand = Brand.objects.order_by("id")[0]
        brand.timezone = "Europe/Paris"
        brand.sla_digest = True
        brand.save(update_fields=["timezone", "sla_digest"])
    return brand


def fact(
    conversation: Conversation, kind: str, *, started: datetime, seconds: int = 0
) -> None:
    extra: dict[str, object] = {}
    if kind in (Kind.FIRST_RESPONSE, Kind.BREACH):
        extra = {"raw_seconds": seconds, "business_seconds": seconds}
    if kind == Kind.FIRST_RESPONSE:
        extra["visibility"] = "public"
    if kind == Kind.NO_REPLY:
        extra["reason"] = "thanks"
    with tenant_context(conversation.tenant_id):
        sla.record_fact(
            conversation,
            kind,
            started_at=started,
            at=started + timedelta(seconds=seconds),
            **extra,
        )


def monday_traffic(tenant: Tenant, brand: Brand) -> Conversation:
    """Monday in Paris: 12 conversations opened, 10 answered (4 in 5 min, 4 in 10,
    2 in 25), 1 marked "no reply needed", 1 breach still open. Sunday's and
    Tuesday's (00:30 Paris, still Monday in UTC) do not count. Returns the open
    breach."""
    answered = [300] * 4 + [600] * 4 + [1500] * 2
    for index, seconds in enumerate(answered):
        started = MONDAY + timedelta(minutes=30 * index)
        conversation = make_clocked(tenant, name=f"Answered {index}", started=None)
        fact(conversation, Kind.OPENED, started=started)
        fact(conversation, Kind.FIRST_RESPONSE, started=started, seconds=seconds)
    thanks = make_clocked(tenant, name="Thankful", started=None)
    fact(thanks, Kind.OPENED, started=MONDAY)
    fact(thanks, Kind.NO_REPLY, started=MONDAY, seconds=60)
    late = make_clocked(
        tenant,
        name="Sam Late",
        started=MONDAY + timedelta(hours=8),
        sla_breached_at=MONDAY + timedelta(hours=9),
    )
    fact(late, Kind.OPENED, started=MONDAY + timedelta(hours=8))
    fact(late, Kind.BREACH, started=MONDAY + timedelta(hours=8), seconds=3600)
    for name, started in (
        ("Sunday", datetime(2026, 12, 6, 22, 30, tzinfo=UTC)),
        ("Tuesday", datetime(2026, 12, 7, 23, 30, tzinfo=UTC)),
    ):
        other = make_clocked(tenant, name=name, started=None)
        fact(other, Kind.OPENED, started=started)
    # Breached, then resolved: not open any more.
    make_clocked(tenant, name="Resolved", status="resolved", sla_breached_at=MONDAY)
    return late


def test_owners_and_admins_get_yesterdays_figures_and_the_open_breaches(
    tenant: Tenant, owner: User, admin: User, agent: User, viewer: User, brand: Brand
) -> None:
    gone = make_user("gone@acme.example", is_active=False)
    add_member(tenant, gone, Membership.Role.ADMIN)
    late = monday_traffic(tenant, brand)
    with time_machine.travel(MORNING, tick=False):
        assert tasks.send_sla_digests.delay(tenant.pk).get() == 1
    assert len(mail.outbox) == 1
    email = mail.outbox[0]
    assert email.to == ["ada@acme.example", "olivia@acme.example"]
    assert email.subject == "Acme Air care digest for Monday 7 December"
    link = f"http://testserver/t/acme-air/inbox/{late.pk}/"
    assert email.body == (
        "Acme Air care digest for Monday 7 December 2026 (Acme Air)\n"
        "\n"
        "Yesterday\n"
        "- Conversations: 12\n"
        "- Response rate: 91%\n"
        "- First response: median 10 min, 90th percentile 25 min\n"
        "- SLA breaches: 1\n"
        "\n"
        "Open breaches: 1\n"
        "- Sam Late: first response, was due 7 Dec 19:00\n"
        f"  {link}\n"
        "\n"
        "Reports: http://testserver/t/acme-air/reports/\n"
        "\n"
        "You receive this as an owner or admin of Acme Air because the brand's "
        "daily SLA digest is on.\n"
    )
    html, kind = email.alternatives[0]  # type: ignore[attr-defined]
    assert kind == "text/html"
    assert (
        f'<li><a href="{link}">Sam Late</a>: first response, was due 7 Dec 19:00'
        in html
    )
    assert (
        '<tr><th scope="row" align="left">Response rate</th><td>91%</td></tr>' in html
    )


def test_a_second_run_the_same_day_sends_nothing(
    tenant: Tenant, owner: User, brand: Brand
) -> None:
    with time_machine.travel(MORNING, tick=False):
        assert tasks.send_sla_digests.delay(tenant.pk).get() == 1
    with time_machine.travel(MORNING + timedelta(hours=5), tick=False):
        assert tasks.send_sla_digests.delay(tenant.pk).get() == 0
    assert len(mail.outbox) == 1
    with tenant_context(tenant):
        claims = list(
            AuditEvent.objects.filter(action="sla.digest_sent").values_list(
                "object_id", "data"
            )
        )
    assert claims == [
        (str(brand.pk), {"day": "2026-12-07", "recipients": ["olivia@acme.example"]})
    ]
    # The next morning brings the next day's digest.
    with time_machine.travel(MORNING + timedelta(days=1), tick=False):
        assert tasks.send_sla_digests.delay(tenant.pk).get() == 1
    assert mail.outbox[1].subject == "Acme Air care digest for Tuesday 8 December"


def test_nothing_before_seven_in_the_brands_morning(
    tenant: Tenant, owner: User, brand: Brand
) -> None:
    with time_machine.travel(MORNING - timedelta(minutes=31), tick=False):
        assert tasks.send_sla_digests.delay(tenant.pk).get() == 0
    assert mail.outbox == []


def test_a_brand_with_the_digest_off_gets_nothing(
    tenant: Tenant, owner: User, brand: Brand
) -> None:
    cargo = make_brand(tenant, "Cargo")
    with time_machine.travel(MORNING, tick=False), tenant_context(tenant):
        emails = claim_due_digests(tenant, now=MORNING)
    assert [email.subject for email in emails] == [
        "Acme Air care digest for Monday 7 December"
    ]
    with tenant_context(tenant):
        Brand.objects.filter(pk=brand.pk).update(sla_digest=False)
    with time_machine.travel(MORNING + timedelta(days=1), tick=False):
        assert tasks.send_sla_digests.delay(tenant.pk).get() == 0
    assert mail.outbox == []
    with tenant_context(tenant):
        claimed = set(
            AuditEvent.objects.filter(action="sla.digest_sent").values_list(
                "object_id", flat=True
            )
        )
    assert claimed == {str(brand.pk)}
    assert str(cargo.pk) not in claimed


def test_the_beat_entry_covers_each_workspace_with_its_own_people(
    tenant: Tenant, owner: User, other_tenant: Tenant, outsider: User, brand: Brand
) -> None:
    with tenant_context(other_tenant):
        Brand.objects.update(sla_digest=True, timezone="Asia/Tokyo")
    with time_machine.travel(MORNING, tick=False):
        assert tasks.send_all_sla_digests.delay().get() == 2
    assert sorted((m.subject, tuple(m.to)) for m in mail.outbox) == [
        ("Acme Air care digest for Monday 7 December", ("olivia@acme.example",)),
        ("Globex care digest for Monday 7 December", ("charlie@globex.example",)),
    ]
