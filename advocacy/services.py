"""Advocate suggestions (R14): evidence from inbound messages, suggestions from
the evidence, and a person's decision on each suggestion.

Nothing here tags a contact as an advocate by itself: the scan only creates or
refreshes *pending* suggestions; `confirm_advocate` (a person) is the only way to
an advocate. The thresholds are in `advocacy.rules`.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import Count, Max, Q
from django.utils import timezone

from advocacy import rules
from advocacy.models import AdvocacyScan, AdvocateEvidence, AdvocateSuggestion
from helpdesk.models import Conversation, Message
from helpdesk.sentiment import score_sentiment
from tenants.access import require_role
from tenants.models import Membership, Tenant
from tenants.services import record_audit

Kind = AdvocateEvidence.Kind
Status = AdvocateSuggestion.Status
# Messages read per round trip while scanning.
CHUNK = 2000


@dataclass(frozen=True)
class ScanOutcome:
    """What one scan did: messages read, evidence found (new or not), suggestions
    created (or brought back after a dismissal) and refreshed."""

    messages: int
    evidence: int
    suggested: int
    refreshed: int


def _positive(text: str) -> bool:
    return score_sentiment(text) == "positive"


def _negative(text: str) -> bool:
    return score_sentiment(text) == "negative"


def collect_advocate_evidence(
    tenant: Tenant, *, full: bool = False, now: datetime | None = None
) -> tuple[int, int]:
    """Score the workspace's inbound customer messages of the window and keep the
    positive ones (and the defences among them) as evidence; returns (messages
    read, evidence rows offered).

    Periodic scans read from the workspace's mark (minus `rules.RESCAN_OVERLAP`
    ids); `full` reads the whole window (after a change of the rules, and the
    demo's seed). Scoring costs about 1 ms per message. Idempotent:
    evidence is unique per message and kind. Call inside the tenant's context;
    the mark's row is locked, so two scans of one workspace run one after the
    other.
    """
    moment = now or timezone.now()
    scan, _created = AdvocacyScan.objects.get_or_create(tenant=tenant)
    scan = AdvocacyScan.objects.select_for_update().get(pk=scan.pk)
    floor = 0 if full else max(0, scan.last_message_id - rules.RESCAN_OVERLAP)
    rows = (
        Message.objects.filter(
            direction=Message.Direction.IN,
            kind=Message.Kind.CUSTOMER,
            created_at__gte=moment - rules.WINDOW,
            pk__gt=floor,
        )
        .order_by("pk")
        .values(
            "pk",
            "text",
            "visibility",
            "account_id",
            "conversation_id",
            "in_reply_to_external_id",
            "created_at",
            "author_identity__contact_id",
            "conversation__contact_id",
            "conversation__social_account_id",
            "conversation__public_thread_ref",
        )
    )
    read = 0
    highest = scan.last_message_id
    positives: list[dict[str, Any]] = []
    for values in rows.iterator(chunk_size=CHUNK):
        read += 1
        highest = max(highest, values["pk"])
        if _positive(values["text"]):
            row: dict[str, Any] = dict(values)
            row["contact"] = (
                row["author_identity__contact_id"] or row["conversation__contact_id"]
            )
            positives.append(row)
    evidence = _evidence(positives, moment)
    AdvocateEvidence.objects.bulk_create(evidence, ignore_conflicts=True)
    scan.last_message_id = highest
    scan.scanned_at = moment
    scan.save(update_fields=["last_message_id", "scanned_at"])
    return read, len(evidence)


def _evidence(
    positives: list[dict[str, Any]], moment: datetime
) -> list[AdvocateEvidence]:
    defended = _defences(positives)
    evidence: list[AdvocateEvidence] = []
    for row in positives:
        kinds = [Kind.POSITIVE, *([Kind.DEFENCE] if row["pk"] in defended else [])]
        evidence.extend(
            AdvocateEvidence(
                contact_id=row["contact"],
                message_id=row["pk"],
                conversation_id=row["conversation_id"],
                kind=kind,
                sent_at=row["created_at"],
                found_at=moment,
            )
            for kind in kinds
        )
    return evidence


def _defences(positives: list[dict[str, Any]]) -> set[int]:
    """The positive public messages that defend the brand: in a thread where
    another customer complained, or in reply to another customer's negative
    message. Two queries whatever the number of messages."""
    public = [row for row in positives if row["visibility"] == "public"]
    if not public:
        return set()
    complainers: dict[tuple[int | None, str], set[int]] = defaultdict(set)
    threads = {
        (row["conversation__social_account_id"], row["conversation__public_thread_ref"])
        for row in public
        if row["conversation__public_thread_ref"]
    }
    if threads:
        for account, ref, contact in Conversation.objects.filter(
            social_account_id__in={account for account, _ref in threads},
            public_thread_ref__in={ref for _account, ref in threads},
            sentiment=Conversation.Sentiment.NEGATIVE,
        ).values_list("social_account_id", "public_thread_ref", "contact_id"):
            complainers[(account, ref)].add(contact)
    critics = _critics(public)
    defended = set()
    for row in public:
        thread = (
            row["conversation__social_account_id"],
            row["conversation__public_thread_ref"],
        )
        others = complainers.get(thread, set()) - {row["contact"]}
        critic = critics.get((row["account_id"], row["in_reply_to_external_id"]))
        if others or (critic is not None and critic != row["contact"]):
            defended.add(row["pk"])
    return defended


def _critics(public: list[dict[str, Any]]) -> dict[tuple[int | None, str], int]:
    """(account, external id) of the negative customer messages replied to, with
    their authors' contacts."""
    replied = {
        (row["account_id"], row["in_reply_to_external_id"])
        for row in public
        if row["in_reply_to_external_id"]
    }
    if not replied:
        return {}
    found: dict[tuple[int | None, str], int] = {}
    for account, external_id, text, author, owner in Message.objects.filter(
        direction=Message.Direction.IN,
        account_id__in={account for account, _ref in replied},
        external_id__in={ref for _account, ref in replied},
    ).values_list(
        "account_id",
        "external_id",
        "text",
        "author_identity__contact_id",
        "conversation__contact_id",
    ):
        if (account, external_id) in replied and _negative(text):
            found[(account, external_id or "")] = author or owner
    return found


def suggest_advocates(
    tenant: Tenant, *, now: datetime | None = None
) -> tuple[int, int]:
    """Create or refresh the suggestions of the contacts whose evidence in the
    window makes the thresholds; returns (suggested, refreshed).

    Set-based: one aggregate query, one read of the existing suggestions, one
    bulk insert and one bulk update. A new contact is suggested (pending); a
    pending or confirmed one gets its counts refreshed; a dismissed one is
    suggested again only when evidence was found after the dismissal. Never
    confirms anyone. Call inside the tenant's context.
    """
    moment = now or timezone.now()
    qualifying = list(
        AdvocateEvidence.objects.filter(
            sent_at__gte=moment - rules.WINDOW, contact__merged_into__isnull=True
        )
        .values("contact_id")
        .annotate(
            positives=Count("id", filter=Q(kind=Kind.POSITIVE)),
            defences=Count("id", filter=Q(kind=Kind.DEFENCE)),
            last=Max("sent_at"),
            found=Max("found_at"),
        )
        .filter(
            Q(positives__gte=rules.POSITIVE_MESSAGES) | Q(defences__gte=rules.DEFENCES)
        )
        .order_by("contact_id")
    )
    existing = {
        row.contact_id: row
        for row in AdvocateSuggestion.objects.select_for_update().filter(
            contact_id__in=[each["contact_id"] for each in qualifying]
        )
    }
    new, changed = [], []
    for each in qualifying:
        row = existing.get(each["contact_id"])
        if row is None:
            new.append(
                AdvocateSuggestion(
                    tenant=tenant,
                    contact_id=each["contact_id"],
                    positive_count=each["positives"],
                    defence_count=each["defences"],
                    last_evidence_at=each["last"],
                    suggested_at=moment,
                    updated_at=moment,
                )
            )
        elif _refreshed(row, dict(each), moment):
            changed.append(row)
    AdvocateSuggestion.objects.bulk_create(new, ignore_conflicts=True)
    if changed:
        AdvocateSuggestion.objects.bulk_update(
            changed,
            [
                "status",
                "positive_count",
                "defence_count",
                "last_evidence_at",
                "suggested_at",
                "updated_at",
            ],
        )
    back = sum(row.suggested_at == moment for row in changed)
    return len(new) + back, len(changed) - back


def _refreshed(row: AdvocateSuggestion, each: dict[str, Any], moment: datetime) -> bool:
    """Apply the aggregate to an existing suggestion; True when it changed."""
    if row.status == Status.DISMISSED:
        if row.decided_at is not None and each["found"] <= row.decided_at:
            return False
        row.status = Status.PENDING
        row.suggested_at = moment
    counts = (each["positives"], each["defences"], each["last"])
    if (
        row.suggested_at != moment
        and (row.positive_count, row.defence_count, row.last_evidence_at) == counts
    ):
        return False
    row.positive_count, row.defence_count, row.last_evidence_at = counts
    row.updated_at = moment
    return True


def scan_for_advocates(
    tenant: Tenant, *, full: bool = False, now: datetime | None = None
) -> ScanOutcome:
    """Collect evidence, then suggest: the periodic task's work (incremental) and
    the on-demand action's (`full`). Atomic; call inside the tenant's context."""
    with transaction.atomic():
        read, evidence = collect_advocate_evidence(tenant, full=full, now=now)
        suggested, refreshed = suggest_advocates(tenant, now=now)
    return ScanOutcome(read, evidence, suggested, refreshed)


def find_advocates_now(membership: Membership) -> ScanOutcome:
    """The on-demand scan: the periodic scan's work now (the messages since the
    last scan; all of the window the first time), so a request never rescores 90
    days of messages. Agents and above."""
    require_role(membership, Membership.Role.AGENT)
    return scan_for_advocates(membership.tenant)


def decide_advocate(
    membership: Membership,
    suggestion: AdvocateSuggestion,
    *,
    confirm: bool,
    note: str = "",
) -> AdvocateSuggestion:
    """Confirm (an advocate) or dismiss a suggestion. Agents and above.

    Deciding what is already decided that way changes nothing (a double click).
    Otherwise locks the row, records who decided and when, and writes the
    `advocate.confirmed` / `advocate.dismissed` AuditEvent with the note.
    """
    require_role(membership, Membership.Role.AGENT)
    target = Status.CONFIRMED if confirm else Status.DISMISSED
    with transaction.atomic():
        row = AdvocateSuggestion.objects.select_for_update().get(pk=suggestion.pk)
        if row.status == target:
            return row
        previous = row.status
        moment = timezone.now()
        row.status = target
        row.decided_at = moment
        row.decided_by = membership.user
        row.decision_note = note.strip()[:500]
        row.updated_at = moment
        row.save(
            update_fields=[
                "status",
                "decided_at",
                "decided_by",
                "decision_note",
                "updated_at",
            ]
        )
        record_audit(
            membership.tenant,
            actor=membership.user,
            action=f"advocate.{target}",
            obj=row,
            reason=row.decision_note,
            data={"contact_id": row.contact_id, "previous": previous},
        )
    return row
