"""Page views: gate, parse, one service or selector call, render."""

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from helpdesk.language import LANGUAGE_CHOICES
from tenants.access import access_invitation, access_member
from tenants.context import tenant_context
from tenants.decorators import tenant_view
from tenants.exceptions import InvitationInvalid, WorkspaceError
from tenants.forms import (
    BrandForm,
    DeleteWorkspaceForm,
    InvitationForm,
    InvitedSignupForm,
    RoleForm,
)
from tenants.http import TenantRequest
from tenants.models import Invitation, Membership, Tenant
from tenants.selectors import (
    pending_invitations,
    user_workspaces,
    workspace_brands,
    workspace_members,
)
from tenants.services import (
    accept_invitation,
    add_brand,
    change_role,
    check_invitation_usable,
    create_invited_user,
    delete_workspace,
    invite_member,
    read_invitation_token,
    remove_member,
    revoke_invitation,
)

Role = Membership.Role


def home(request: HttpRequest) -> HttpResponse:
    """Visitors see what Earshot is; members go to their workspace or pick one."""
    if not request.user.is_authenticated:
        return render(request, "frontend/landing.html")
    memberships = user_workspaces(request.user)
    if len(memberships) == 1:
        return redirect("frontend:workspace", tenant_slug=memberships[0].tenant.slug)
    return redirect("frontend:workspaces")


@login_required
def workspaces(request: HttpRequest) -> HttpResponse:
    memberships = user_workspaces(request.user)  # type: ignore[arg-type]
    return render(request, "frontend/workspaces.html", {"memberships": memberships})


@tenant_view()
def workspace(request: TenantRequest) -> HttpResponse:
    context = {
        "brands": workspace_brands(request.membership),
        "members": workspace_members(request.membership),
    }
    return render(request, "frontend/workspace.html", context)


@tenant_view()
def members(request: TenantRequest) -> HttpResponse:
    form = InvitationForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            invite_member(request.membership, **form.cleaned_data)
        except WorkspaceError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            messages.success(
                request, f"Invitation sent to {form.cleaned_data['email']}."
            )
            return redirect("frontend:members", tenant_slug=request.tenant.slug)
    context = {
        "form": form,
        "members": workspace_members(request.membership),
        "invitations": pending_invitations(request.membership),
        "roles": Role.choices,
        "can_manage": request.membership.has_role(Role.ADMIN),
        "language_choices": LANGUAGE_CHOICES,
    }
    status = 400 if form.errors else 200
    return render(request, "frontend/members.html", context, status=status)


def _back_to_members(request: TenantRequest) -> HttpResponse:
    return redirect("frontend:members", tenant_slug=request.tenant.slug)


@require_POST
@tenant_view(role=Role.ADMIN)
def member_role(request: TenantRequest, membership_id: int) -> HttpResponse:
    target = access_member(request.membership, membership_id)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a valid role.")
        return _back_to_members(request)
    try:
        change_role(request.membership, target=target, role=form.cleaned_data["role"])
    except WorkspaceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request, f"{target.user.email} is now {target.get_role_display().lower()}."
        )
    return _back_to_members(request)


@require_POST
@tenant_view(role=Role.ADMIN)
def member_remove(request: TenantRequest, membership_id: int) -> HttpResponse:
    target = access_member(request.membership, membership_id)
    try:
        remove_member(request.membership, target=target)
    except WorkspaceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request, f"{target.user.email} was removed from the workspace."
        )
    return _back_to_members(request)


@require_POST
@tenant_view(role=Role.ADMIN)
def invitation_revoke(request: TenantRequest, invitation_id: int) -> HttpResponse:
    invitation = access_invitation(request.membership, invitation_id)
    try:
        revoke_invitation(request.membership, invitation=invitation)
    except WorkspaceError as exc:
        messages.error(request, exc.message)
    return _back_to_members(request)


@tenant_view()
def brands(request: TenantRequest) -> HttpResponse:
    form = BrandForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            add_brand(
                request.membership,
                name=form.cleaned_data["name"],
                timezone_name=form.cleaned_data["timezone"],
            )
        except WorkspaceError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, f"Brand {form.cleaned_data['name']} added.")
            return redirect("frontend:brands", tenant_slug=request.tenant.slug)
    context = {
        "form": form,
        "brands": workspace_brands(request.membership),
        "can_manage": request.membership.has_role(Role.ADMIN),
    }
    return render(
        request, "frontend/brands.html", context, status=400 if form.errors else 200
    )


@tenant_view(role=Role.OWNER)
def workspace_delete(request: TenantRequest) -> HttpResponse:
    form = DeleteWorkspaceForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            delete_workspace(
                request.membership, confirm_name=form.cleaned_data["confirm_name"]
            )
        except WorkspaceError as exc:
            form.add_error("confirm_name", exc.message)
        else:
            messages.success(
                request, f"The workspace {request.tenant.name} was deleted."
            )
            return redirect("frontend:home")
    return render(
        request,
        "frontend/workspace_delete.html",
        {"form": form},
        status=400 if form.errors else 200,
    )


def invitation(request: HttpRequest, token: str) -> HttpResponse:
    """Show an invitation; accept it as the logged-in user or with a new account.

    A global page (the invitee is not a member yet): it opens the invitation's
    tenant itself once the signed token has been verified.
    """
    try:
        tenant_id, invitation_id = read_invitation_token(token)
        tenant = Tenant.objects.filter(
            pk=tenant_id, status=Tenant.Status.ACTIVE
        ).first()
        if tenant is None:
            raise InvitationInvalid("This invitation link is not valid.")
        with tenant_context(tenant):
            invite = (
                Invitation.objects.select_related("invited_by")
                .filter(pk=invitation_id)
                .first()
            )
            if invite is None:
                raise InvitationInvalid("This invitation link is not valid.")
            return _invitation_page(request, tenant, invite)
    except InvitationInvalid as exc:
        return render(
            request,
            "frontend/invitation_invalid.html",
            {"reason": exc.message},
            status=400,
        )
    except WorkspaceError as exc:
        return render(
            request,
            "frontend/invitation_invalid.html",
            {"reason": exc.message},
            status=400,
        )


def _invitation_page(
    request: HttpRequest, tenant: Tenant, invite: Invitation
) -> HttpResponse:
    check_invitation_usable(invite)
    signup_form = None
    if request.user.is_authenticated:
        if request.method == "POST":
            accept_invitation(tenant, invitation_id=invite.pk, user=request.user)
            return redirect("frontend:workspace", tenant_slug=tenant.slug)
    else:
        signup_form = InvitedSignupForm(
            request.POST if request.method == "POST" else None, email=invite.email
        )
        if request.method == "POST" and signup_form.is_valid():
            with transaction.atomic():
                user = create_invited_user(
                    email=invite.email, **_signup_fields(signup_form)
                )
                accept_invitation(tenant, invitation_id=invite.pk, user=user)
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            return redirect("frontend:workspace", tenant_slug=tenant.slug)
    context = {"tenant": tenant, "invitation": invite, "signup_form": signup_form}
    status = 400 if signup_form is not None and signup_form.errors else 200
    return render(request, "frontend/invitation.html", context, status=status)


def _signup_fields(form: InvitedSignupForm) -> dict[str, str]:
    return {
        "password": form.cleaned_data["password1"],
        "display_name": form.cleaned_data["display_name"],
    }
