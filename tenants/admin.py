"""Two admin sites.

- `operator_site` at `/admin/`: Earshot staff (MFA required outside the demo) see
  the tenant registry with usage, and suspend or reactivate workspaces. Tenant rows
  are not registered here.
- `tenant_admin_site` at `/t/<slug>/admin/`: a workspace's owners and admins. It
  runs inside the tenant's context (the middleware opened it), so changelists,
  forms, FK choices and autocomplete see only that tenant's rows.
"""

from typing import Any

from allauth.mfa.models import Authenticator
from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from tenants.brand_rules import apply_brand_settings, clean_sla_policy_settings
from tenants.exceptions import WorkspaceError
from tenants.models import (
    AuditEvent,
    Brand,
    Holiday,
    Invitation,
    Membership,
    SlaPolicy,
    Tenant,
    User,
)
from tenants.selectors import tenant_usage
from tenants.services import (
    change_role,
    invite_member,
    reactivate_tenant,
    remove_member,
    suspend_tenant,
)
from tenants.sla import (
    POLICY_FIELDS,
    add_holiday,
    check_holiday,
    remove_holiday,
    reset_sla_policy,
    update_sla_policy,
)


class OperatorAdminSite(admin.AdminSite):
    site_header = "Earshot operations"
    site_title = "Earshot operations"
    index_title = "Service administration"

    def has_permission(self, request: HttpRequest) -> bool:
        user = request.user
        if not isinstance(user, User) or not (user.is_active and user.is_staff):
            return False
        if not settings.OPERATOR_MFA_REQUIRED:
            return True
        has_totp: bool = Authenticator.objects.filter(
            user_id=user.pk, type=Authenticator.Type.TOTP
        ).exists()
        return has_totp

    def login(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        """Operators log in through allauth (rate limits and MFA apply).

        A logged-in member who is not staff is refused outright; staff without TOTP
        are sent to set it up.
        """
        if request.user.is_authenticated and not request.user.is_staff:
            return TemplateResponse(request, "frontend/forbidden.html", status=403)
        if request.user.is_authenticated:
            return HttpResponseRedirect(reverse("mfa_activate_totp"))
        next_url = request.GET.get("next", reverse("admin:index"))
        return HttpResponseRedirect(f"{reverse('account_login')}?next={next_url}")


operator_site = OperatorAdminSite(name="admin")


def _operator(request: HttpRequest) -> User:
    """The staff user behind an operator admin request (the site checked staff)."""
    user = request.user
    if not isinstance(user, User):
        raise PermissionError("operator actions need a logged-in staff user")
    return user


class SuspendForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=300)


@admin.register(Tenant, site=operator_site)
class TenantOperatorAdmin(admin.ModelAdmin[Tenant]):
    list_display = ("name", "slug", "status", "plan", "created_at", "members", "brands")
    list_filter = ("status", "plan")
    search_fields = ("name", "slug")
    readonly_fields = (
        "slug",
        "status",
        "status_reason",
        "status_changed_at",
        "created_at",
    )
    fields = ("name", "plan", *readonly_fields)
    actions = ("suspend", "reactivate")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @staticmethod
    def _usage(tenant: Tenant) -> dict[str, int]:
        # One tenant_context per row, shared by the row's usage columns.
        usage: dict[str, int] | None = getattr(tenant, "_usage", None)
        if usage is None:
            usage = tenant_usage(tenant)
            tenant._usage = usage  # type: ignore[attr-defined]
        return usage

    @admin.display(description="members")
    def members(self, tenant: Tenant) -> int:
        return self._usage(tenant)["members"]

    @admin.display(description="brands")
    def brands(self, tenant: Tenant) -> int:
        return self._usage(tenant)["brands"]

    @admin.action(description="Suspend selected workspaces")
    def suspend(
        self, request: HttpRequest, queryset: QuerySet[Tenant]
    ) -> HttpResponse | None:
        form = SuspendForm(request.POST if "reason" in request.POST else None)
        if not form.is_valid():
            return TemplateResponse(
                request,
                "admin/tenants/suspend.html",
                {
                    **self.admin_site.each_context(request),
                    "form": form,
                    "tenants": queryset,
                    "action_checkbox_name": ACTION_CHECKBOX_NAME,
                    "opts": self.model._meta,
                },
            )
        for tenant in queryset:
            try:
                suspend_tenant(
                    tenant,
                    operator=_operator(request),
                    reason=form.cleaned_data["reason"],
                )
            except WorkspaceError as exc:
                self.message_user(request, exc.message, messages.WARNING)
            else:
                self.message_user(
                    request, f"Suspended {tenant.name}.", messages.SUCCESS
                )
        return None

    @admin.action(description="Reactivate selected workspaces")
    def reactivate(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        for tenant in queryset:
            try:
                reactivate_tenant(tenant, operator=_operator(request))
            except WorkspaceError as exc:
                self.message_user(request, exc.message, messages.WARNING)
            else:
                self.message_user(
                    request, f"Reactivated {tenant.name}.", messages.SUCCESS
                )


@admin.register(User, site=operator_site)
class UserOperatorAdmin(admin.ModelAdmin[User]):
    list_display = ("email", "display_name", "is_staff", "is_active", "date_joined")
    list_filter = ("is_staff", "is_active")
    search_fields = ("email", "display_name")
    fields = (
        "email",
        "display_name",
        "first_name",
        "last_name",
        "is_active",
        "is_staff",
    )
    readonly_fields = ("email",)


# --- The tenant-scoped site -----------------------------------------------------------


class TenantAdminSite(admin.AdminSite):
    site_header = "Workspace administration"
    site_title = "Workspace administration"
    index_title = "Workspace data"

    def has_permission(self, request: HttpRequest) -> bool:
        membership: Membership | None = getattr(request, "membership", None)
        if membership is None:
            return False
        return membership.has_role(Membership.Role.ADMIN)

    def each_context(self, request: HttpRequest) -> dict[str, Any]:
        context = super().each_context(request)
        tenant = getattr(request, "tenant", None)
        if tenant is not None:
            context["site_header"] = f"{tenant.name} · administration"
        return context

    def login(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        # Members without the admin role end up here; they are logged in already.
        return TemplateResponse(request, "frontend/forbidden.html", status=403)


tenant_admin_site = TenantAdminSite(name="tenant_admin")


def _membership(request: HttpRequest) -> Membership:
    membership: Membership = request.membership  # type: ignore[attr-defined]
    return membership


class TenantScopedAdmin[M: Any](admin.ModelAdmin[M]):
    """Model permissions come from the workspace role, not Django's auth permissions.

    An id that is not in this workspace is a 404, as everywhere else, instead of the
    admin's usual redirect with an "it doesn't exist" message.
    """

    def get_object(
        self, request: HttpRequest, object_id: str, from_field: str | None = None
    ) -> M:
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            raise Http404("No such object")
        return obj

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return True

    def has_module_permission(self, request: HttpRequest) -> bool:
        return True

    def has_add_permission(self, request: HttpRequest) -> bool:
        return True

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return True

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return True


class ReadOnlyTenantAdmin[M: Any](TenantScopedAdmin[M]):
    """A tenant-scoped list and detail view that nobody edits from the admin."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


BRAND_ADMIN_FIELDS = (
    "name",
    "slug",
    "timezone",
    "business_hours",
    "public_reply_limit",
    "send_hold_seconds",
    "private_first_allowed",
    "auto_assign",
    "signature_rules",
    "pause_while_pending",
    "queue_window_minutes",
    "publish_badge",
    "sla_digest",
)


class BrandAdminForm(forms.ModelForm[Brand]):
    """The brand checks of `tenants.brand_rules` for what the calendar and the
    queue read (hours, signatures, queue window), as field errors."""

    class Meta:
        model = Brand
        fields = BRAND_ADMIN_FIELDS

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        for field in ("business_hours", "signature_rules", "queue_window_minutes"):
            if field not in cleaned:
                continue
            try:
                apply_brand_settings(Brand(), {field: cleaned[field]})  # type: ignore[misc]
            except ValidationError as error:
                for message in error.message_dict.get(field, []):
                    self.add_error(field, message)
        return cleaned


@admin.register(Brand, site=tenant_admin_site)
class BrandAdmin(TenantScopedAdmin[Brand]):
    list_display = (
        "name",
        "slug",
        "timezone",
        "public_reply_limit",
        "send_hold_seconds",
    )
    search_fields = ("name", "slug")
    fields = BRAND_ADMIN_FIELDS
    form = BrandAdminForm


class TeamUserAdmin(ReadOnlyTenantAdmin[User]):
    """The workspace's own people, read only; the source for user autocomplete."""

    list_display = ("email", "display_name")
    search_fields = ("email", "display_name")
    fields = ("email", "display_name")
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[User]:
        tenant_id = request.tenant.pk  # type: ignore[attr-defined]
        return User.objects.filter(memberships__tenant_id=tenant_id).order_by("email")


tenant_admin_site.register(User, TeamUserAdmin)


@admin.register(Membership, site=tenant_admin_site)
class MembershipAdmin(TenantScopedAdmin[Membership]):
    list_display = ("user", "role", "created_at")
    list_filter = ("role",)
    search_fields = ("user__email", "user__display_name")
    autocomplete_fields = ("user",)
    fields = ("user", "role")

    def get_readonly_fields(
        self, request: HttpRequest, obj: Any = None
    ) -> tuple[str, ...]:
        return ("user",) if obj is not None else ()

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # people join through invitations

    def save_model(
        self, request: HttpRequest, obj: Membership, form: Any, change: bool
    ) -> None:
        original = Membership.objects.get(pk=obj.pk)
        try:
            change_role(_membership(request), target=original, role=obj.role)
        except WorkspaceError as exc:
            self.message_user(request, exc.message, messages.ERROR)

    def delete_model(self, request: HttpRequest, obj: Membership) -> None:
        remove_member(_membership(request), target=obj)


@admin.register(Invitation, site=tenant_admin_site)
class InvitationAdmin(TenantScopedAdmin[Invitation]):
    list_display = (
        "email",
        "role",
        "created_at",
        "expires_at",
        "accepted_at",
        "revoked_at",
    )
    search_fields = ("email",)
    fields = ("email", "role")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(
        self, request: HttpRequest, obj: Invitation, form: Any, change: bool
    ) -> None:
        invitation = invite_member(_membership(request), email=obj.email, role=obj.role)
        obj.pk = invitation.pk


@admin.register(AuditEvent, site=tenant_admin_site)
class AuditEventAdmin(ReadOnlyTenantAdmin[AuditEvent]):
    list_display = ("created_at", "actor", "action", "object_type", "object_id")
    list_filter = ("action",)
    search_fields = ("action", "object_id")
    readonly_fields = (
        "created_at",
        "actor",
        "action",
        "object_type",
        "object_id",
        "reason",
        "data",
    )
    fields = readonly_fields


class SlaPolicyAdminForm(forms.ModelForm[SlaPolicy]):
    """The targets checked as the API checks them (1 minute to a week)."""

    class Meta:
        model = SlaPolicy
        # The admin adds `brand` per request: its choices need the open tenant.
        fields = POLICY_FIELDS

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        given = {name: cleaned[name] for name in POLICY_FIELDS if name in cleaned}
        try:
            cleaned.update(clean_sla_policy_settings(given))  # type: ignore[arg-type]
        except ValidationError as error:
            for field, messages_ in error.message_dict.items():
                for message in messages_:
                    self.add_error(field, message)
        return cleaned


@admin.register(SlaPolicy, site=tenant_admin_site)
class SlaPolicyAdmin(TenantScopedAdmin[SlaPolicy]):
    """Brands' own targets and the workspace fallback (no brand). Saves and
    deletions go through `tenants.sla`, so they are audited like the API's."""

    form = SlaPolicyAdminForm
    list_display = (
        "__str__",
        "first_response_minutes",
        "next_response_minutes",
        "resolution_minutes",
        "urgent_first_response_minutes",
        "updated_at",
    )
    fields = ("brand", *POLICY_FIELDS)
    actions = None

    def get_readonly_fields(
        self, request: HttpRequest, obj: Any = None
    ) -> tuple[str, ...]:
        return ("brand",) if obj is not None else ()

    def save_model(
        self, request: HttpRequest, obj: SlaPolicy, form: Any, change: bool
    ) -> None:
        changes = {name: form.cleaned_data[name] for name in POLICY_FIELDS}
        update_sla_policy(obj.brand, membership=_membership(request), changes=changes)  # type: ignore[arg-type]
        saved = SlaPolicy.objects.get(brand=obj.brand)
        obj.pk = saved.pk

    def delete_model(self, request: HttpRequest, obj: SlaPolicy) -> None:
        reset_sla_policy(obj.brand, membership=_membership(request))


class HolidayAdminForm(forms.ModelForm[Holiday]):
    """A holiday checked as the API checks it (order, length, no overlap)."""

    class Meta:
        model = Holiday
        # The admin adds `brand` per request: its choices need the open tenant.
        fields = ("name", "start_date", "end_date")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        needed = ("brand", "name", "start_date", "end_date")
        if all(cleaned.get(name) is not None for name in needed):
            try:
                check_holiday(
                    cleaned["brand"],
                    name=cleaned["name"],
                    start_date=cleaned["start_date"],
                    end_date=cleaned["end_date"],
                )
            except ValidationError as error:
                for field, messages_ in error.message_dict.items():
                    for message in messages_:
                        self.add_error(field, message)
        return cleaned


@admin.register(Holiday, site=tenant_admin_site)
class HolidayAdmin(TenantScopedAdmin[Holiday]):
    """Holidays are added and removed (as in the API), not edited; both go
    through `tenants.sla` and are audited."""

    form = HolidayAdminForm
    list_display = ("name", "brand", "start_date", "end_date")
    list_filter = ("brand",)
    fields = ("brand", "name", "start_date", "end_date")
    actions = None

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(
        self, request: HttpRequest, obj: Holiday, form: Any, change: bool
    ) -> None:
        data = form.cleaned_data
        holiday = add_holiday(
            data["brand"],
            membership=_membership(request),
            name=data["name"],
            start_date=data["start_date"],
            end_date=data["end_date"],
        )
        obj.pk = holiday.pk

    def delete_model(self, request: HttpRequest, obj: Holiday) -> None:
        remove_holiday(obj, membership=_membership(request))
