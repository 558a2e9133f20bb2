"""Personal API tokens: create (shown once), revoke, and authenticate.

A token reads `esk_<prefix>_<secret>`. The prefix is public and helps people tell
tokens apart; only the SHA-256 digest of the whole token is stored. The secret has
256 bits of entropy, so a plain digest is enough (no slow hash needed).
"""

import hashlib
import secrets
from datetime import timedelta

from django.http import Http404
from django.utils.timezone import now

from tenants.access import require_role
from tenants.models import ApiToken, Membership, Tenant
from tenants.opening import Lateral, OpenedTenant, fetch_by_token
from tenants.services import record_audit

TOKEN_PREFIX = "esk_"  # noqa: S105 - a public marker, not a secret
# last_used_at is written at most this often per token, not on every request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def token_digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def create_api_token(
    membership: Membership, *, name: str, scope: str
) -> tuple[ApiToken, str]:
    """Create a token for `membership`; returns it and the raw token (shown once).

    Any member may create tokens for themselves; a token's scope above the member's
    role is useless (roles cap scopes per request), so it is refused here. Audited.
    """
    require_role(membership, Membership.Role.VIEWER)
    if scope not in ApiToken.Scope.values:
        raise ValueError(f"Unknown scope {scope!r}")
    if scope == ApiToken.Scope.ADMIN:
        require_role(membership, Membership.Role.ADMIN)
    if scope == ApiToken.Scope.WRITE:
        require_role(membership, Membership.Role.AGENT)
    prefix = secrets.token_hex(4)
    raw = f"{TOKEN_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    token = ApiToken.objects.create(
        membership=membership,
        name=name.strip() or "API token",
        scope=scope,
        prefix=prefix,
        digest=token_digest(raw),
    )
    record_audit(
        membership.tenant,
        actor=membership.user,
        action="api_token.created",
        obj=token,
        data={"scope": scope, "name": token.name},
    )
    return token, raw


def revoke_api_token(membership: Membership, *, token: ApiToken) -> ApiToken:
    """Revoke `token` (idempotent). Members revoke their own; admins revoke any."""
    if token.membership_id != membership.pk:
        require_role(membership, Membership.Role.ADMIN)
    if token.revoked_at is None:
        token.revoked_at = now()
        token.save(update_fields=["revoked_at"])
        record_audit(
            membership.tenant,
            actor=membership.user,
            action="api_token.revoked",
            obj=token,
        )
    return token


def open_tenant_with_token(
    tenant_slug: str, raw: str, *, lateral: Lateral | None = None
) -> OpenedTenant:
    """The workspace, its live token matching `raw`, the membership and user, or 404.

    The opener of `open_tenant_context` for bearer tokens: on PostgreSQL its one
    statement also applies the workspace's setting (tenants/opening.py). A token
    of another workspace is not found there, so using it on this workspace's URLs
    looks like an unknown workspace; revoked tokens, deleted workspaces and
    inactive users look the same. Touches `last_used_at` at most once a minute,
    in that same statement. `lateral`: a read of the view's that rides in it
    (tenants.opening.Lateral; its result is `along`).
    """
    if not raw.startswith(TOKEN_PREFIX):
        raise Http404("No such workspace")
    moment = now()
    opened = fetch_by_token(
        tenant_slug,
        token_digest(raw),
        used_at=moment,
        stale_before=moment - LAST_USED_RESOLUTION,
        lateral=lateral,
    )
    if opened is None:
        raise Http404("No such workspace")
    if opened.tenant.status == Tenant.Status.DELETED:
        raise Http404("No such workspace")
    if not opened.membership.user.is_active:
        raise Http404("No such workspace")
    return opened
