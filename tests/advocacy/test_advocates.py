"""Advocate suggestions (R14): who is suggested (repeatedly positive, or defending
the brand), that the scan is idempotent and never confirms anyone, that a dismissed
contact comes back only with new evidence, and that decisions are audited."""

import dataclasses
from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from advocacy import tasks
from advocacy.models import AdvocateEvidence, AdvocateSuggestion
from advocacy.selectors import advocate_rows
from advocacy.services import decide_advocate, find_advocates_now, scan_for_advocates
from helpdesk.models import Contact
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import AuditEvent, Membership, Tenant, User
from tests.factories import add_member, make_user, membership_of
from tests.helpdesk.conftest import item, make_account, receive

pytestmark = pytest.mark.django_db

PRAISE = [
    "Thanks so much, the crew was amazing!",
    "Great flight today, love this airline",
    "Wonderful service again, thank you",
]
COMPLAINT = "This is terrible, awful service, I am furious"


@pytest.fixture
def account(tenant: Tenant) -> SocialAccount:
    return make_account(tenant)


def say(account: SocialAccount, text: str, *, who: str = "fan", **kw: object) -> int:
    handle = kw.pop("handle", who)
    return receive(
        account,
        item(text=text, author=who, handle=str(handle), **kw),  # type: ignore[arg-type]
    ).message.pk


def suggestions(tenant: Tenant) -> list[tuple[str, str, int, int]]:
    with tenant_context(tenant):
        return sorted(
            AdvocateSuggestion.objects.values_list(
                "contact__display_name", "status", "positive_count", "defence_count"
            )
        )


def scan(tenant: Tenant, **kw: object) -> tuple[int, int, int, int]:
    with tenant_context(tenant):
        return dataclasses.astuple(scan_for_advocates(tenant, **kw))  # type: ignore[arg-type]


def test_three_positive_messages_make_a_pending_suggestion_two_do_not(
    tenant: Tenant, account: SocialAccount
) -> None:
    for text in PRAISE:
        say(account, text, who="fan", followers=1200)
    for text in PRAISE[:2]:
        say(account, text, who="casual")
    say(account, COMPLAINT, who="grumpy")

    assert scan(tenant) == (6, 5, 1, 0)
    assert suggestions(tenant) == [("Fan", "pending", 3, 0)]


def test_a_positive_message_in_another_customers_complaint_thread_is_a_defence(
    tenant: Tenant, account: SocialAccount
) -> None:
    say(account, COMPLAINT, who="critic", external_id="root-1")
    say(
        account,
        "Honestly they were great with me, lovely crew",
        who="defender",
        thread="root-1",
        mentions=False,
    )
    # Praise in one's own thread is positive, not a defence.
    say(account, PRAISE[0], who="selfie", external_id="root-2")

    scan(tenant)

    assert suggestions(tenant) == [("Defender", "pending", 1, 1)]


def test_a_positive_reply_to_a_critics_message_is_a_defence(
    tenant: Tenant, account: SocialAccount
) -> None:
    say(account, COMPLAINT, who="critic", external_id="bad-1", thread="root-9")
    # The critic's conversation in root-9 is negative too; the reply is in a new
    # thread of its own, so only the reply-to link makes it a defence.
    receive(
        account,
        dataclasses.replace(
            item(
                text="Not my experience at all, they were wonderful",
                author="ally",
                handle="ally",
                external_id="good-1",
                thread="root-10",
            ),
            in_reply_to="bad-1",
        ),
    )

    scan(tenant)

    assert suggestions(tenant) == [("Ally", "pending", 1, 1)]


def test_the_scan_is_idempotent_and_old_messages_do_not_count(
    tenant: Tenant, account: SocialAccount
) -> None:
    long_ago = timezone.now() - timedelta(days=91)
    say(account, PRAISE[0], who="fan", created_at=long_ago)
    for text in PRAISE[1:]:
        say(account, text, who="fan")

    scan(tenant)
    assert suggestions(tenant) == []
    say(account, "Brilliant and helpful as always, thanks", who="fan")
    scan(tenant)
    scan(tenant, full=True)
    tasks.suggest_advocates.delay(tenant.pk)

    assert suggestions(tenant) == [("Fan", "pending", 3, 0)]
    with tenant_context(tenant):
        assert AdvocateEvidence.objects.count() == 3


def test_a_dismissed_contact_returns_only_with_new_evidence(
    tenant: Tenant, account: SocialAccount, owner: User
) -> None:
    for text in PRAISE:
        say(account, text, who="fan")
    scan(tenant)
    with tenant_context(tenant):
        row = AdvocateSuggestion.objects.get()
        decide_advocate(membership_of(tenant, owner), row, confirm=False, note="bot")

    scan(tenant, full=True)
    assert suggestions(tenant) == [("Fan", "dismissed", 3, 0)]

    say(account, "Lovely people, great flight, thanks!", who="fan")
    scan(tenant)
    assert suggestions(tenant) == [("Fan", "pending", 4, 0)]


def test_decisions_are_audited_and_viewers_cannot_decide(
    tenant: Tenant, account: SocialAccount, agent: User
) -> None:
    viewer = make_user("vera@acme.example")
    add_member(tenant, viewer, Membership.Role.VIEWER)
    for text in PRAISE:
        say(account, text, who="fan")
    scan(tenant)
    with tenant_context(tenant):
        row = AdvocateSuggestion.objects.get()
        with pytest.raises(PermissionDenied):
            decide_advocate(membership_of(tenant, viewer), row, confirm=True)
        with pytest.raises(PermissionDenied):
            find_advocates_now(membership_of(tenant, viewer))
        assert AuditEvent.objects.filter(action__startswith="advocate.").count() == 0

        decided = decide_advocate(
            membership_of(tenant, agent), row, confirm=True, note=" Loyal fan "
        )
        again = decide_advocate(membership_of(tenant, agent), row, confirm=True)
        audit = list(
            AuditEvent.objects.filter(action__startswith="advocate.").values_list(
                "action", "actor_id", "object_id", "reason", "data"
            )
        )
    assert (decided.status, again.status) == ("confirmed", "confirmed")
    assert audit == [
        (
            "advocate.confirmed",
            agent.pk,
            str(row.pk),
            "Loyal fan",
            {"contact_id": row.contact_id, "previous": "pending"},
        )
    ]
    assert suggestions(tenant) == [("Fan", "confirmed", 3, 0)]


def test_the_report_rows_carry_reach_evidence_and_last_interaction(
    tenant: Tenant, account: SocialAccount, owner: User
) -> None:
    for text in PRAISE:
        say(account, text, who="fan", followers=25_000)
    scan(tenant)
    with tenant_context(tenant):
        [row] = advocate_rows(membership_of(tenant, owner))
        contact = Contact.objects.get(display_name="Fan")
    assert row.suggestion.contact_id == contact.pk
    assert (row.followers, row.total_followers, row.band) == (25_000, 25_000, "large")
    assert [e.message.text for e in row.evidence] == list(reversed(PRAISE))
    assert row.last_interaction_at is not None
