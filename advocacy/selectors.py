"""Reads of the advocates report (R14): suggestions with their contact, reach,
evidence and last interaction, in a fixed number of queries."""

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Max, OuterRef, QuerySet, Subquery

from advocacy import rules
from advocacy.models import AdvocateEvidence, AdvocateSuggestion
from helpdesk.models import Conversation, Identity
from helpdesk.services.sla import band_for
from tenants.models import Membership

Status = AdvocateSuggestion.Status


@dataclass(frozen=True)
class AdvocateRow:
    """One line of the report."""

    suggestion: AdvocateSuggestion
    identities: list[Identity]
    followers: int  # the largest audience among the contact's identities
    total_followers: int
    band: str
    evidence: list[AdvocateEvidence]
    last_interaction_at: datetime | None


def advocate_suggestions(
    membership: Membership, *, statuses: tuple[str, ...] = (Status.PENDING,)
) -> QuerySet[AdvocateSuggestion]:
    """The workspace's suggestions in `statuses`, newest evidence first, the
    contact joined and its last interaction (its conversations' latest activity)
    annotated as `last_interaction_at`."""
    last = (
        Conversation.objects.filter(contact_id=OuterRef("contact_id"))
        .order_by()
        .values("contact_id")
        .annotate(at=Max("last_activity_at"))
        .values("at")
    )
    return (
        AdvocateSuggestion.objects.filter(status__in=statuses)
        .select_related("contact", "decided_by")
        .annotate(last_interaction_at=Subquery(last))
        .order_by("-last_evidence_at", "-id")
    )


def advocate_rows(
    membership: Membership,
    *,
    statuses: tuple[str, ...] = (Status.PENDING, Status.CONFIRMED),
    limit: int = 200,
) -> list[AdvocateRow]:
    """The report's rows: suggestions with identities (reach) and their latest
    evidence (at most `rules.EVIDENCE_SHOWN` messages each). Three queries."""
    rows = list(advocate_suggestions(membership, statuses=statuses)[:limit])
    contacts = [row.contact_id for row in rows]
    identities: dict[int, list[Identity]] = {pk: [] for pk in contacts}
    for identity in Identity.objects.filter(contact_id__in=contacts).order_by(
        "-followers", "platform"
    ):
        identities[identity.contact_id].append(identity)
    evidence: dict[int, list[AdvocateEvidence]] = {pk: [] for pk in contacts}
    for item in (
        AdvocateEvidence.objects.filter(contact_id__in=contacts)
        .select_related("message")
        .order_by("-sent_at", "-id")
    ):
        shown = evidence[item.contact_id]
        if any(each.message_id == item.message_id for each in shown):
            if item.kind == AdvocateEvidence.Kind.DEFENCE:
                shown[:] = [e for e in shown if e.message_id != item.message_id]
                shown.append(item)
            continue
        if len(shown) < rules.EVIDENCE_SHOWN:
            shown.append(item)
    result = []
    for row in rows:
        mine = identities[row.contact_id]
        largest = max((identity.followers for identity in mine), default=0)
        result.append(
            AdvocateRow(
                suggestion=row,
                identities=mine,
                followers=largest,
                total_followers=sum(identity.followers for identity in mine),
                band=str(band_for(largest)),
                evidence=sorted(evidence[row.contact_id], key=_newest),
                last_interaction_at=getattr(row, "last_interaction_at", None),
            )
        )
    return result


def _newest(item: AdvocateEvidence) -> tuple[float, int]:
    return (-item.sent_at.timestamp(), -item.pk)


def contact_advocacy(membership: Membership, contact_id: int) -> str:
    """The contact's standing for the thread's contact panel: "confirmed",
    "pending" or "" (none, or dismissed)."""
    status = (
        AdvocateSuggestion.objects.filter(contact_id=contact_id)
        .values_list("status", flat=True)
        .first()
    )
    return status if status in (Status.CONFIRMED, Status.PENDING) else ""
