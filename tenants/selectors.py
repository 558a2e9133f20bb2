"""Read-only queries over workspaces, members and invitations."""

from django.db.models import Case, IntegerField, QuerySet, Value, When

from tenants.context import user_scope
from tenants.models import ApiToken, Brand, Invitation, Membership, Tenant, User


def user_workspaces(user: User) -> list[Membership]:
    """The user's memberships in live workspaces, across tenants, tenant loaded.

    Runs under `user_scope`, the SELECT-only RLS policy that shows a user their own
    membership rows before any tenant is open.
    """
    with user_scope(user.pk):
        return list(
            Membership.objects.unscoped()
            .filter(user_id=user.pk)
            .exclude(tenant__status=Tenant.Status.DELETED)
            .select_related("tenant")
            .order_by("tenant__name")
        )


def workspace_members(membership: Membership) -> QuerySet[Membership]:
    """Members of the member's workspace with their users: owners first, then
    admins, agents and viewers, each by email."""
    rank = Case(
        *(When(role=role, then=Value(n)) for role, n in Membership.RANK.items()),
        output_field=IntegerField(),
    )
    return Membership.objects.select_related("user").order_by(
        rank.desc(), "user__email"
    )


def pending_invitations(membership: Membership) -> list[Invitation]:
    """Invitations of the workspace that can still be accepted."""
    return [
        invitation
        for invitation in Invitation.objects.filter(accepted_at=None, revoked_at=None)
        if invitation.is_pending
    ]


def workspace_brands(membership: Membership) -> QuerySet[Brand]:
    """Brands of the member's workspace."""
    return Brand.objects.order_by("name")


def tenant_usage(tenant: Tenant) -> dict[str, int]:
    """Counts for the operator console. Operator edge: opens the tenant's context."""
    from tenants.context import tenant_context

    with tenant_context(tenant):
        return {
            "members": Membership.objects.count(),
            "brands": Brand.objects.count(),
        }


def workspace_api_tokens(membership: Membership) -> QuerySet[ApiToken]:
    """The API tokens the member may see, newest first, members joined: their own,
    or every token of the workspace for admins. Revoked tokens are included."""
    tokens = ApiToken.objects.select_related("membership__user")
    if not membership.has_role(Membership.Role.ADMIN):
        tokens = tokens.filter(membership_id=membership.pk)
    return tokens.order_by("-created_at", "-id")
