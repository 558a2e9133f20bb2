"""SLA policies and holidays: what a brand's response clock runs against (R9).

A brand's policy is its own `SlaPolicy` row when it has one, else the workspace's
fallback row (brand null), else the model's defaults. Holidays close a brand's
calendar on whole dates (`tenants.calendar`).

Services here change rows (admins and owners only, in a transaction, audited);
selectors read them. Call everything inside the workspace's tenant context.
"""

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal, cast

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Field, Q, QuerySet
from django.http import Http404
from django.utils import timezone

from tenants.access import require_role
from tenants.brand_rules import SlaPolicySettings, clean_sla_policy_settings
from tenants.models import Brand, Holiday, Membership, SlaPolicy
from tenants.services import record_audit

Role = Membership.Role
Source = Literal["brand", "workspace", "default"]
# The longest closure one holiday may be (a calendar closed for longer than
# `tenants.calendar.SEARCH_DAYS` has no due times at all).
MAX_HOLIDAY_DAYS = 366
HOLIDAY_NAME_MAX = 120  # Holiday.name
POLICY_FIELDS = (
    "first_response_minutes",
    "next_response_minutes",
    "resolution_minutes",
    "urgent_first_response_minutes",
    "urgent_next_response_minutes",
    "urgent_on_negative",
    "urgent_tags",
)


@dataclass(frozen=True)
class SlaPolicyView:
    """The policy in force for a brand (or the workspace fallback), and where its
    values come from: the brand's own row, the workspace fallback, or the
    defaults. `own` says whether the scope asked about has its own row."""

    brand_id: int | None
    source: Source
    own: bool
    first_response_minutes: int
    next_response_minutes: int
    resolution_minutes: int | None
    urgent_first_response_minutes: int
    urgent_next_response_minutes: int
    urgent_on_negative: bool
    urgent_tags: list[str]
    updated_at: datetime | None

    @property
    def inherited(self) -> bool:
        return not self.own

    def values(self) -> dict[str, Any]:
        """The policy fields alone, as `SlaPolicySettings` names them."""
        return {name: getattr(self, name) for name in POLICY_FIELDS}


def _defaults() -> dict[str, Any]:
    return {
        name: cast(Field[Any, Any], SlaPolicy._meta.get_field(name)).get_default()
        for name in POLICY_FIELDS
    }


def _view(brand: Brand | None, row: SlaPolicy | None) -> SlaPolicyView:
    if row is None:
        values, source, updated_at = _defaults(), "default", None
    else:
        values = {name: getattr(row, name) for name in POLICY_FIELDS}
        source = "brand" if row.brand_id is not None else "workspace"
        updated_at = row.updated_at
    scope = "brand" if brand is not None else "workspace"
    return SlaPolicyView(
        brand_id=brand.pk if brand is not None else None,
        source=source,  # type: ignore[arg-type]
        own=source == scope,
        updated_at=updated_at,
        **{**values, "urgent_tags": list(values["urgent_tags"])},
    )


def sla_policy_view(brand: Brand | None) -> SlaPolicyView:
    """The policy in force for `brand` (None: the workspace fallback itself).

    One query. A brand without its own row inherits the fallback row, and a
    workspace without a fallback row uses the model defaults (60/60 minutes, no
    resolution target, 10/10 minutes urgent, negative sentiment is urgent).
    """
    if brand is None:
        rows = SlaPolicy.objects.filter(brand__isnull=True)
    else:
        rows = SlaPolicy.objects.filter(Q(brand=brand) | Q(brand__isnull=True))
    by_scope = {row.brand_id: row for row in rows}
    own = by_scope.get(brand.pk) if brand is not None else None
    return _view(brand, own or by_scope.get(None))


def update_sla_policy(
    brand: Brand | None, *, membership: Membership, changes: SlaPolicySettings
) -> SlaPolicyView:
    """Set SLA targets for `brand` (None: the workspace fallback). Admins only.

    The first save creates the scope's own row, starting from the values it
    inherited, so fields left out keep their effective value. Every target is a
    whole number of minutes from 1 to a week (`SLA_TARGET_LIMITS`); only
    `resolution_minutes` may be null (no target). Raises ValidationError with a
    message per field, and PermissionDenied below admin, changing nothing.
    Audited as `sla_policy.created` or `sla_policy.updated` with the changed
    fields and their old and new values; a save that changes nothing on an
    existing row writes nothing.
    """
    require_role(membership, Role.ADMIN)
    values = clean_sla_policy_settings(changes)
    with transaction.atomic():
        try:
            with transaction.atomic():
                return _save_policy(brand, membership, values)
        except IntegrityError:
            # A concurrent first save created the row: change that one instead.
            return _save_policy(brand, membership, values)


def _save_policy(
    brand: Brand | None, membership: Membership, values: dict[str, Any]
) -> SlaPolicyView:
    row = SlaPolicy.objects.select_for_update().filter(brand=brand).first()
    created = row is None
    before = sla_policy_view(brand).values()
    if row is None:
        row = SlaPolicy(tenant=membership.tenant, brand=brand, **before)
    changed = [name for name, value in values.items() if before[name] != value]
    if not created and not changed:
        return _view(brand, row)
    for name in changed:
        setattr(row, name, values[name])
    row.updated_at = timezone.now()
    if created:
        row.save()
    else:
        row.save(update_fields=[*changed, "updated_at"])
    record_audit(
        membership.tenant,
        actor=membership.user,
        action="sla_policy.created" if created else "sla_policy.updated",
        obj=row,
        data={
            "brand_id": brand.pk if brand is not None else None,
            "fields": changed,
            "from": {name: before[name] for name in changed},
            "to": {name: values[name] for name in changed},
        },
    )
    return _view(brand, row)


def reset_sla_policy(brand: Brand | None, *, membership: Membership) -> SlaPolicyView:
    """Drop the brand's own policy so it inherits the workspace fallback again
    (None: drop the fallback, so brands without their own use the defaults).

    Admins only; idempotent (no row, nothing written). Audited as
    `sla_policy.removed` with the values the row had.
    """
    require_role(membership, Role.ADMIN)
    with transaction.atomic():
        row = SlaPolicy.objects.select_for_update().filter(brand=brand).first()
        if row is not None:
            record_audit(
                membership.tenant,
                actor=membership.user,
                action="sla_policy.removed",
                obj=row,
                data={
                    "brand_id": brand.pk if brand is not None else None,
                    "values": _view(brand, row).values(),
                },
            )
            row.delete()
    return sla_policy_view(brand)


# --- Holidays -------------------------------------------------------------------------


def brand_holidays(brand: Brand) -> QuerySet[Holiday]:
    """The brand's holidays, earliest first."""
    return Holiday.objects.filter(brand=brand).order_by("start_date", "id")


def access_holiday(membership: Membership, brand: Brand, holiday_id: int) -> Holiday:
    """A holiday of this brand of the member's workspace, or 404 (another brand's
    or another workspace's holiday looks like an unknown id)."""
    holiday = Holiday.objects.filter(pk=holiday_id).first()
    if holiday is None:
        raise Http404("No such holiday")
    if holiday.tenant_id != membership.tenant_id:
        raise Http404("No such holiday")
    if holiday.brand_id != brand.pk:
        raise Http404("No such holiday")
    return holiday


def add_holiday(
    brand: Brand,
    *,
    membership: Membership,
    name: str,
    start_date: date,
    end_date: date,
) -> Holiday:
    """Close `brand` from `start_date` to `end_date` (both included, in its time
    zone). Admins only.

    Raises ValidationError per field, creating nothing, for an empty name, an end
    before the start, a closure longer than MAX_HOLIDAY_DAYS, or a range that
    overlaps another holiday of the brand (the brand row is locked while checking,
    so two overlapping adds cannot both pass). Audited as `holiday.added`.
    """
    require_role(membership, Role.ADMIN)
    with transaction.atomic():
        Brand.objects.select_for_update().filter(pk=brand.pk).first()
        name = check_holiday(brand, name=name, start_date=start_date, end_date=end_date)
        holiday = Holiday.objects.create(
            tenant=membership.tenant,
            brand=brand,
            name=name,
            start_date=start_date,
            end_date=end_date,
        )
        record_audit(
            membership.tenant,
            actor=membership.user,
            action="holiday.added",
            obj=holiday,
            data=_holiday_data(holiday),
        )
    return holiday


def check_holiday(brand: Brand, *, name: str, start_date: date, end_date: date) -> str:
    """The holiday's name, stripped, once the holiday may be added to `brand`.

    Raises ValidationError per field: an empty or too long name, an end before
    the start, a closure longer than MAX_HOLIDAY_DAYS, or dates that overlap
    another holiday of the brand (`start_date`, naming it). Reads only.
    """
    name = name.strip()
    errors: dict[str, list[str]] = {}
    if not name:
        errors["name"] = ["Give the holiday a name."]
    elif len(name) > HOLIDAY_NAME_MAX:
        errors["name"] = [f"Give a name of at most {HOLIDAY_NAME_MAX} characters."]
    if end_date < start_date:
        errors["end_date"] = ["The last day is before the first."]
    elif (end_date - start_date).days + 1 > MAX_HOLIDAY_DAYS:
        errors["end_date"] = [f"A holiday lasts at most {MAX_HOLIDAY_DAYS} days."]
    if errors:
        raise ValidationError(errors)
    clash = (
        brand_holidays(brand)
        .filter(start_date__lte=end_date, end_date__gte=start_date)
        .first()
    )
    if clash is not None:
        raise ValidationError(
            {"start_date": [f"These dates overlap {clash.name} ({_span(clash)})."]}
        )
    return name


def remove_holiday(holiday: Holiday, *, membership: Membership) -> None:
    """Reopen the holiday's dates (the weekly hours apply again). Admins only.
    Audited as `holiday.removed` with what it was."""
    require_role(membership, Role.ADMIN)
    with transaction.atomic():
        record_audit(
            membership.tenant,
            actor=membership.user,
            action="holiday.removed",
            obj=holiday,
            data=_holiday_data(holiday),
        )
        holiday.delete()


def _span(holiday: Holiday) -> str:
    if holiday.start_date == holiday.end_date:
        return holiday.start_date.isoformat()
    return f"{holiday.start_date.isoformat()} to {holiday.end_date.isoformat()}"


def _holiday_data(holiday: Holiday) -> dict[str, Any]:
    return {
        "brand_id": holiday.brand_id,
        "name": holiday.name,
        "start_date": holiday.start_date.isoformat(),
        "end_date": holiday.end_date.isoformat(),
    }
