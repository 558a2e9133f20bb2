"""The audited gates to a workspace. One condition per line; non-members get 404."""

from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.http import Http404

from tenants.context import current_tenant_id
from tenants.models import ApiToken, Brand, Invitation, Membership, Tenant, User
from tenants.opening import OpenedTenant, fetch_by_member


def find_tenant(tenant_slug: str) -> Tenant:
    """The live tenant with this slug, or 404 (unknown and deleted look the same)."""
    tenant = Tenant.objects.filter(slug=tenant_slug).first()
    if tenant is None:
        raise Http404("No such workspace")
    if tenant.status == Tenant.Status.DELETED:
        raise Http404("No such workspace")
    return tenant


def access_tenant(user: User | AnonymousUser, tenant: Tenant) -> Membership:
    """The user's membership of `tenant`, or 404 so existence does not leak.

    Call inside `tenant_context(tenant)`. Suspension is not checked here: members of
    a suspended workspace pass the gate and the middleware shows them why they
    cannot work.
    """
    if current_tenant_id() != tenant.pk:
        raise RuntimeError("access_tenant must run inside the tenant's own context")
    if not user.is_authenticated:
        raise Http404("No such workspace")
    if not user.is_active:
        raise Http404("No such workspace")
    membership = Membership.objects.filter(user_id=user.pk).first()
    if membership is None:
        raise Http404("No such workspace")
    membership.tenant = tenant
    membership.user = user
    return membership


def open_tenant_for_member(
    user: User | AnonymousUser, tenant_slug: str
) -> OpenedTenant:
    """The workspace and the user's membership of it, or 404 so existence does not leak.

    The opener of `open_tenant_context` for sessions: on PostgreSQL its one
    statement also applies the workspace's setting (tenants/opening.py). Unknown
    and deleted workspaces, inactive users and non-members look the same.
    Suspension is not checked here, as in `access_tenant`.
    """
    if not user.is_authenticated:
        raise Http404("No such workspace")
    if not user.is_active:
        raise Http404("No such workspace")
    opened = fetch_by_member(tenant_slug, user)
    if opened is None:
        raise Http404("No such workspace")
    if opened.tenant.status == Tenant.Status.DELETED:
        raise Http404("No such workspace")
    return opened


def require_role(membership: Membership, role: Membership.Role) -> None:
    """Raise PermissionDenied (403) unless the member holds at least `role`."""
    if not membership.has_role(role):
        raise PermissionDenied(f"This needs the {role.label.lower()} role or higher.")


def access_member(membership: Membership, membership_id: int) -> Membership:
    """Another membership of the same workspace, or 404."""
    target = Membership.objects.select_related("user").filter(pk=membership_id).first()
    if target is None:
        raise Http404("No such member")
    if target.tenant_id != membership.tenant_id:
        raise Http404("No such member")
    return target


def access_invitation(membership: Membership, invitation_id: int) -> Invitation:
    """An invitation of the member's workspace, or 404."""
    invitation = Invitation.objects.filter(pk=invitation_id).first()
    if invitation is None:
        raise Http404("No such invitation")
    if invitation.tenant_id != membership.tenant_id:
        raise Http404("No such invitation")
    return invitation


def access_brand(membership: Membership, brand_id: int) -> Brand:
    """A brand of the member's workspace, or 404. Any member passes."""
    brand = Brand.objects.filter(pk=brand_id).first()
    if brand is None:
        raise Http404("No such brand")
    if brand.tenant_id != membership.tenant_id:
        raise Http404("No such brand")
    return brand


def access_api_token(membership: Membership, token_id: int) -> ApiToken:
    """An API token the member may see, or 404: their own, or any for admins.

    Other members' tokens look like unknown ids to non-admins, so their ids leak
    nothing.
    """
    token = (
        ApiToken.objects.select_related("membership__user").filter(pk=token_id).first()
    )
    if token is None:
        raise Http404("No such token")
    if token.tenant_id != membership.tenant_id:
        raise Http404("No such token")
    if token.membership_id != membership.pk and not membership.has_role(
        Membership.Role.ADMIN
    ):
        raise Http404("No such token")
    return token
