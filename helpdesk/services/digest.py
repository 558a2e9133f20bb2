"""The daily SLA digest (R9): yesterday's figures and the open breaches, by email.

A brand with `sla_digest` on gets one email a day, to the workspace's owners and
admins, once its local time reaches DIGEST_HOUR. "Yesterday" is the brand's
previous local date. The figures come from the reports (helpdesk.reports,
`report_summary` over the rollups), so the digest and the reports page agree.

Claiming a digest writes the "sla.digest_sent" AuditEvent for the brand and the
day under the brand's row lock, in the same transaction that reads the figures;
a second run that day (or an overlapping one) finds it and builds nothing. The
email is sent after that transaction, by the task: at most once per brand and day.
"""

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db.models import OuterRef, Subquery
from django.template.loader import render_to_string
from django.urls import reverse

from helpdesk.models import Contact, Conversation
from helpdesk.reports import ReportFilters, report_summary
from tenants.models import AuditEvent, Brand, Membership, Tenant
from tenants.services import record_audit

AUDIT_ACTION = "sla.digest_sent"
# The brand's local hour from which its digest for the previous day goes out.
DIGEST_HOUR = 7
# Open breaches listed by name; the rest are counted.
BREACH_LIST_LIMIT = 50


@dataclass(frozen=True)
class DigestEmail:
    """One brand's digest, ready to send."""

    subject: str
    text: str
    html: str
    recipients: list[str]


def digest_day(brand: Brand, now: datetime) -> date | None:
    """The local date whose digest is due for `brand` at `now`, or None before
    DIGEST_HOUR in the brand's time zone (the digest waits for the morning)."""
    local = now.astimezone(ZoneInfo(brand.timezone))
    if local.hour < DIGEST_HOUR:
        return None
    return local.date() - timedelta(days=1)


def claim_due_digests(tenant: Tenant, *, now: datetime) -> list[DigestEmail]:
    """Claim and build the tenant's digests due at `now`; returns those to send.

    Call inside the tenant's context (transaction). Brands with `sla_digest` on,
    whose local time reached DIGEST_HOUR and whose digest for the previous local
    day was not claimed yet. Locks each brand row (skipping rows another run
    holds), records the "sla.digest_sent" AuditEvent with the day and the
    recipients, and builds the email. A workspace without owners or admins with
    an active account claims nothing.
    """
    recipients = digest_recipients()
    if not recipients:
        return []
    brands = Brand.objects.select_for_update(skip_locked=True).filter(sla_digest=True)
    emails = []
    for brand in brands.order_by("id"):
        day = digest_day(brand, now)
        if day is None or digest_claimed(brand, day):
            continue
        record_audit(
            tenant,
            actor=None,
            action=AUDIT_ACTION,
            obj=brand,
            data={"day": day.isoformat(), "recipients": recipients},
        )
        emails.append(build_digest(tenant, brand, day, recipients=recipients))
    return emails


def digest_recipients() -> list[str]:
    """The emails of the workspace's active owners and admins, sorted. Call in the
    tenant's context."""
    return sorted(
        Membership.objects.filter(
            role__in=[Membership.Role.OWNER, Membership.Role.ADMIN],
            user__is_active=True,
        ).values_list("user__email", flat=True)
    )


def digest_claimed(brand: Brand, day: date) -> bool:
    """Whether the digest of `brand` for `day` was claimed already (its AuditEvent).

    Looks at recent audit rows only: a day's digest is claimed the next day."""
    return AuditEvent.objects.filter(
        action=AUDIT_ACTION,
        object_type="Brand",
        object_id=str(brand.pk),
        data__day=day.isoformat(),
        created_at__gte=datetime.combine(day, datetime.min.time(), ZoneInfo("UTC"))
        - timedelta(days=1),
    ).exists()


def _owner_membership() -> Membership:
    return (
        Membership.objects.select_related("tenant", "user")
        .filter(role=Membership.Role.OWNER)
        .order_by("id")[0]
    )


def day_figures(brand: Brand, day: date) -> dict[str, Any]:
    """The reports' summary of `brand` for `day`: its "period" figures
    (conversations, response_rate, first_response_p50/p90 in seconds, breaches).

    `day` is a date in the brand's time zone (the reports count a brand's days
    there). Read as the workspace's first owner. Call in the tenant's context.
    """
    filters = ReportFilters(start=day, end=day, brand_id=brand.pk)
    summary = report_summary(_owner_membership(), filters)
    return dict(summary["period"])


def open_breaches(brand: Brand) -> list[Conversation]:
    """The brand's unresolved conversations whose running clock is breached,
    oldest due first, each with its contact's name (`str(conversation.contact)`;
    no other field of the contact is read). Call in the tenant's context.

    Read through the brand's breached clocks (helpdesk_conv_breached_ix, helpdesk
    migration 0024), the contact's name by key for each row. Joined to the
    contacts, or looked up by a list of ids, on tables never analyzed each read
    every contact of the tenant (per breach, joined)."""
    name = Contact.objects.filter(pk=OuterRef("contact_id")).values("display_name")
    breached = (
        Conversation.objects.annotate(contact_name=Subquery(name[:1]))
        .filter(brand_id=brand.pk, sla_breached_at__isnull=False)
        .exclude(status=Conversation.Status.RESOLVED)
        .exclude(sla_kind="")
        .order_by("sla_due_at", "id")
    )
    rows: list[Conversation] = []
    for row in breached:
        row.contact = Contact(
            pk=row.contact_id, tenant_id=row.tenant_id, display_name=row.contact_name
        )
        rows.append(row)
    return rows


def minutes(seconds: float | None) -> str:
    """A duration as people read it in a digest: "12 min", "3 h 5 min", "-"."""
    if seconds is None:
        return "-"
    total = round(seconds / 60)
    if total < 60:
        return f"{total} min"
    hours, rest = divmod(total, 60)
    return f"{hours} h {rest} min" if rest else f"{hours} h"


def percent(rate: float | None) -> str:
    """A rate in 0..1 as a whole percentage ("97%"), or "-" without a denominator."""
    return "-" if rate is None else f"{round(rate * 100)}%"


def build_digest(
    tenant: Tenant, brand: Brand, day: date, *, recipients: list[str]
) -> DigestEmail:
    """The digest email of `brand` for `day` (figures and open breaches), text and
    HTML. Call in the tenant's context."""
    figures = day_figures(brand, day)
    site = settings.SITE_URL.rstrip("/")
    breaches = open_breaches(brand)
    listed = [
        {
            "name": str(conversation.contact),
            "preview": conversation.preview,
            "kind": conversation.get_sla_kind_display(),
            "urgent": conversation.sla_lane == "urgent",
            "due_at": conversation.sla_due_at,
            "url": site
            + reverse(
                "frontend:inbox-conversation", args=[tenant.slug, conversation.pk]
            ),
        }
        for conversation in breaches[:BREACH_LIST_LIMIT]
    ]
    context = {
        "tenant": tenant,
        "brand": brand,
        "day": day,
        "conversations": figures.get("conversations", 0),
        "response_rate": percent(figures.get("response_rate")),
        "first_response_p50": minutes(figures.get("first_response_p50")),
        "first_response_p90": minutes(figures.get("first_response_p90")),
        "breaches": figures.get("breaches", 0),
        "open_breaches": listed,
        "more_breaches": max(0, len(breaches) - BREACH_LIST_LIMIT),
        "reports_url": f"{site}/t/{tenant.slug}/reports/",
    }
    subject = f"{brand.name} care digest for {day:%A %-d %B}"
    return DigestEmail(
        subject=subject,
        text=render_to_string("helpdesk/email/sla_digest.txt", context),
        html=render_to_string("helpdesk/email/sla_digest.html", context),
        recipients=recipients,
    )


def send_digest(email: DigestEmail) -> None:
    """Send one digest (plain text with an HTML alternative). Outside transactions."""
    message = EmailMultiAlternatives(
        subject=email.subject, body=email.text, to=email.recipients
    )
    message.attach_alternative(email.html, "text/html")
    message.send()
