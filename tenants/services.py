"""Workspace services: sign-up, members, invitations, brands, operator actions.

Every function that changes rows runs in a transaction and writes an AuditEvent for
security-relevant changes. Emails are sent by Celery tasks enqueued on commit.
"""

import logging
import secrets
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core import signing
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from tenants.access import require_role
from tenants.brand_rules import BrandSettings, apply_brand_settings
from tenants.context import tenant_context
from tenants.exceptions import InvitationInvalid, WorkspaceError
from tenants.models import AuditEvent, Brand, Invitation, Membership, Tenant, User
from tenants.outages import CACHE_ERRORS

logger = logging.getLogger(__name__)

INVITATION_SALT = "earshot.invitation"
Role = Membership.Role


def record_audit(
    tenant: Tenant,
    *,
    actor: User | None,
    action: str,
    obj: Any = None,
    reason: str = "",
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """Write one AuditEvent in `tenant`. Call inside the tenant's context."""
    return AuditEvent.objects.create(
        tenant=tenant,
        actor=actor,
        action=action,
        object_type=type(obj).__name__ if obj is not None else "",
        object_id=str(getattr(obj, "pk", "")) if obj is not None else "",
        reason=reason,
        data=data or {},
    )


def _unique_slug(model: type[Tenant] | type[Brand], name: str, **scope: Any) -> str:
    base = slugify(name)[:40] or "workspace"
    slug = base
    while model.objects.filter(slug=slug, **scope).exists():
        slug = f"{base}-{secrets.token_hex(2)}"
    return slug


def create_workspace(
    *, owner: User, name: str, brand_name: str | None = None
) -> Membership:
    """Create a tenant, its owner membership and a first brand; return the membership.

    The new tenant has no context yet, so this opens its `tenant_context` itself (it
    is the edge for sign-up). Raises WorkspaceError for an empty name.
    """
    name = name.strip()
    if not name:
        raise WorkspaceError("Give your workspace a name.", field="workspace_name")
    with transaction.atomic():
        tenant = Tenant.objects.create(name=name, slug=_unique_slug(Tenant, name))
        with tenant_context(tenant):
            membership = Membership.objects.create(
                tenant=tenant, user=owner, role=Role.OWNER
            )
            brand_label = (brand_name or name).strip()
            Brand.objects.create(
                tenant=tenant,
                name=brand_label,
                slug=slugify(brand_label)[:60] or "brand",
            )
            record_audit(tenant, actor=owner, action="workspace.created", obj=tenant)
    return membership


def add_brand(
    membership: Membership,
    *,
    name: str,
    timezone_name: str = "UTC",
    changes: BrandSettings | None = None,
) -> Brand:
    """Add a brand to the member's workspace. Admins and owners only.

    `changes` may set the other brand settings at once (checked as in
    `update_brand`); raises ValidationError, with messages per field, and creates
    nothing when one is out of bounds.
    """
    require_role(membership, Role.ADMIN)
    name = name.strip()
    if not name:
        raise WorkspaceError("Give the brand a name.", field="name")
    tenant = membership.tenant
    brand = Brand(
        tenant=tenant,
        name=name,
        slug=_unique_slug(Brand, name),
        timezone=timezone_name,
    )
    apply_brand_settings(brand, changes or {})
    brand.full_clean(exclude=["tenant"])
    brand.save()
    record_audit(tenant, actor=membership.user, action="brand.created", obj=brand)
    return brand


def update_brand(
    membership: Membership, brand: Brand, *, changes: BrandSettings
) -> Brand:
    """Change a brand's name and care settings. Admins and owners only.

    Checks every given value first: a known time zone, the hold (0-120 s), the
    public reply limit (1-10), the queue window (0-60 minutes), true or false for
    the flags (private first answer, auto-assign, pause while pending, public
    badge, SLA digest), business hours as {"mon": [["09:00", "17:00"]], ...} with
    ordered, disjoint intervals, and signature templates that use only
    {initials}, {first_name} and {agent_name}. Raises ValidationError with
    messages per field and changes nothing when one fails. The slug stays (links
    and integrations use it). Audited with the names of the changed fields.
    """
    require_role(membership, Role.ADMIN)
    changed = apply_brand_settings(brand, changes)
    if not changed:
        return brand
    brand.full_clean(exclude=["tenant"], validate_unique=False)
    brand.save(update_fields=changed)
    record_audit(
        membership.tenant,
        actor=membership.user,
        action="brand.updated",
        obj=brand,
        data={"fields": changed},
    )
    return brand


# --- Invitations ------------------------------------------------------------------


def invitation_token(invitation: Invitation) -> str:
    """The signed, expiring token carried by the invitation link."""
    return signing.dumps(
        {"t": invitation.tenant_id, "i": invitation.pk}, salt=INVITATION_SALT
    )


def read_invitation_token(token: str) -> tuple[int, int]:
    """(tenant_id, invitation_id) from a token; InvitationInvalid if forged or stale."""
    max_age = timedelta(days=settings.INVITATION_MAX_AGE_DAYS)
    try:
        payload = signing.loads(token, salt=INVITATION_SALT, max_age=max_age)
    except signing.SignatureExpired:
        raise InvitationInvalid(
            "This invitation has expired. Ask for a new one."
        ) from None
    except signing.BadSignature:
        raise InvitationInvalid("This invitation link is not valid.") from None
    try:
        return int(payload["t"]), int(payload["i"])
    except (KeyError, TypeError, ValueError):
        raise InvitationInvalid("This invitation link is not valid.") from None


def invite_member(membership: Membership, *, email: str, role: str) -> Invitation:
    """Invite `email` with `role`; emails the link on commit.

    Admins invite admins, agents and viewers; only owners invite owners. A pending
    invitation for the same address is replaced. Raises WorkspaceError when the
    address already belongs to a member.
    """
    require_role(membership, Role.ADMIN)
    if role not in Role.values:
        raise WorkspaceError("Choose a valid role.", field="role")
    if role == Role.OWNER:
        require_role(membership, Role.OWNER)
    email = User.objects.normalize_email(email.strip()).lower()
    tenant = membership.tenant
    if Membership.objects.filter(user__email__iexact=email).exists():
        raise WorkspaceError(
            f"{email} is already a member of this workspace.", field="email"
        )
    now = timezone.now()
    Invitation.objects.filter(
        email__iexact=email, accepted_at=None, revoked_at=None
    ).update(revoked_at=now)
    invitation = Invitation.objects.create(
        tenant=tenant,
        email=email,
        role=role,
        invited_by=membership.user,
        expires_at=now + timedelta(days=settings.INVITATION_MAX_AGE_DAYS),
    )
    record_audit(
        tenant,
        actor=membership.user,
        action="member.invited",
        obj=invitation,
        data={"role": role},
    )
    from tenants.tasks import enqueue_on_commit, send_invitation_email

    enqueue_on_commit(send_invitation_email, tenant.pk, invitation.pk, swept_by=None)
    return invitation


def revoke_invitation(membership: Membership, *, invitation: Invitation) -> None:
    """Withdraw a pending invitation. Admins and owners only."""
    require_role(membership, Role.ADMIN)
    if not invitation.is_pending:
        raise WorkspaceError("Only a pending invitation can be revoked.")
    invitation.revoked_at = timezone.now()
    invitation.save(update_fields=["revoked_at"])
    record_audit(
        membership.tenant,
        actor=membership.user,
        action="invitation.revoked",
        obj=invitation,
    )


def check_invitation_usable(invitation: Invitation) -> None:
    """Raise InvitationInvalid, with the reason, unless the invitation is usable."""
    if invitation.accepted_at is not None:
        raise InvitationInvalid("This invitation has already been used.")
    if invitation.revoked_at is not None:
        raise InvitationInvalid("This invitation was withdrawn. Ask for a new one.")
    if invitation.expires_at <= timezone.now():
        raise InvitationInvalid("This invitation has expired. Ask for a new one.")


def create_invited_user(*, email: str, password: str, display_name: str) -> User:
    """Create the account of someone who followed an invitation link.

    The link reached them by email, so the address counts as verified for allauth.
    """
    from allauth.account.models import EmailAddress

    user = User.objects.create_user(email, password, display_name=display_name.strip())
    EmailAddress.objects.create(
        user=user, email=user.email, verified=True, primary=True
    )
    return user


def accept_invitation(tenant: Tenant, *, invitation_id: int, user: User) -> Membership:
    """Turn a pending invitation into a membership for `user`.

    Call inside `tenant_context(tenant)`. The invitation row is locked so a link can be
    used once. Raises InvitationInvalid when it is unknown, used, revoked, expired or
    addressed to another email, and WorkspaceError when `user` is already a member;
    nothing changes in those cases.
    """
    invitation = Invitation.objects.select_for_update().filter(pk=invitation_id).first()
    if invitation is None:
        raise InvitationInvalid("This invitation link is not valid.")
    check_invitation_usable(invitation)
    if invitation.email.lower() != user.email.lower():
        raise InvitationInvalid(
            f"This invitation was sent to {invitation.email}. Log in with that address."
        )
    if Membership.objects.filter(user=user).exists():
        raise WorkspaceError("You are already a member of this workspace.")
    try:
        with transaction.atomic():
            membership = Membership.objects.create(
                tenant=tenant, user=user, role=invitation.role
            )
    except IntegrityError:
        raise WorkspaceError("You are already a member of this workspace.") from None
    invitation.accepted_at = timezone.now()
    invitation.accepted_by = user
    invitation.save(update_fields=["accepted_at", "accepted_by"])
    record_audit(
        tenant,
        actor=user,
        action="invitation.accepted",
        obj=invitation,
        data={"role": invitation.role},
    )
    return membership


# --- Members ----------------------------------------------------------------------


def _other_owner_exists(target: Membership) -> bool:
    return Membership.objects.filter(role=Role.OWNER).exclude(pk=target.pk).exists()


def change_role(membership: Membership, *, target: Membership, role: str) -> Membership:
    """Give `target` a new role.

    Admins manage admins, agents and viewers; only owners grant or take away the
    owner role, and the last owner cannot be demoted.
    """
    require_role(membership, Role.ADMIN)
    if role not in Role.values:
        raise WorkspaceError("Choose a valid role.", field="role")
    if Role.OWNER in (role, target.role):
        require_role(membership, Role.OWNER)
    if (
        target.role == Role.OWNER
        and role != Role.OWNER
        and not _other_owner_exists(target)
    ):
        raise WorkspaceError("A workspace needs at least one owner.")
    old = target.role
    target.role = role
    target.save(update_fields=["role"])
    record_audit(
        membership.tenant,
        actor=membership.user,
        action="member.role_changed",
        obj=target,
        data={"from": old, "to": role, "user_id": target.user_id},
    )
    return target


def remove_member(membership: Membership, *, target: Membership) -> None:
    """Remove `target` from the workspace; effective on their very next request.

    Admins remove admins, agents and viewers; only owners remove owners, and the
    last owner cannot be removed.
    """
    require_role(membership, Role.ADMIN)
    if target.role == Role.OWNER:
        require_role(membership, Role.OWNER)
        if not _other_owner_exists(target):
            raise WorkspaceError("A workspace needs at least one owner.")
    record_audit(
        membership.tenant,
        actor=membership.user,
        action="member.removed",
        obj=target,
        data={"user_id": target.user_id, "role": target.role},
    )
    target.delete()
    tenant_id, user_id = membership.tenant_id, target.user_id
    transaction.on_commit(lambda: _close_member_sockets(tenant_id, user_id))


def _close_member_sockets(tenant_id: int, user_id: int) -> None:
    """Tell the removed member's open websockets to close (ASVS 8.3.2)."""
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(
            f"t{tenant_id}.u{user_id}", {"type": "member.removed"}
        )
    except CACHE_ERRORS as error:
        # The removal is committed; the socket's next heartbeat re-checks the
        # membership and closes it (helpdesk.consumers.InboxConsumer).
        logger.warning(
            "removed member %s's sockets not told to close, channel layer "
            "unavailable: %r",
            user_id,
            error,
        )


def delete_workspace(membership: Membership, *, confirm_name: str) -> None:
    """Close the workspace for everyone. Owners only; the name must be typed back.

    The tenant is marked deleted and disappears for its members (404); rows stay for
    the retention period and are purged by an operator job.
    """
    require_role(membership, Role.OWNER)
    tenant = membership.tenant
    if confirm_name.strip() != tenant.name:
        raise WorkspaceError(
            "Type the workspace name exactly to confirm.", field="confirm_name"
        )
    record_audit(tenant, actor=membership.user, action="workspace.deleted", obj=tenant)
    _set_status(tenant, Tenant.Status.DELETED, reason="deleted by owner")


# --- Operator actions (Django admin at /admin/) -------------------------------------


def _set_status(tenant: Tenant, status: str, *, reason: str) -> None:
    tenant.status = status
    tenant.status_reason = reason
    tenant.status_changed_at = timezone.now()
    tenant.save(update_fields=["status", "status_reason", "status_changed_at"])


def suspend_tenant(tenant: Tenant, *, operator: User, reason: str) -> None:
    """Suspend a workspace: members see a notice page; no data is touched.

    Operator edge: opens the tenant's context for its audit row.
    """
    if not reason.strip():
        raise WorkspaceError("Say why the workspace is suspended.", field="reason")
    if tenant.status != Tenant.Status.ACTIVE:
        raise WorkspaceError(f"{tenant.name} is {tenant.get_status_display().lower()}.")
    with tenant_context(tenant):
        _set_status(tenant, Tenant.Status.SUSPENDED, reason=reason.strip())
        record_audit(
            tenant,
            actor=operator,
            action="workspace.suspended",
            obj=tenant,
            reason=reason,
        )


def reactivate_tenant(tenant: Tenant, *, operator: User) -> None:
    """Lift a suspension. Operator edge: opens the tenant's context for the audit."""
    if tenant.status != Tenant.Status.SUSPENDED:
        raise WorkspaceError(f"{tenant.name} is not suspended.")
    with tenant_context(tenant):
        _set_status(tenant, Tenant.Status.ACTIVE, reason="")
        record_audit(tenant, actor=operator, action="workspace.reactivated", obj=tenant)
