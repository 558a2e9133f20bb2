"""Personal API tokens: create (shown once), revoke, and authenticate.

A token reads `esk_<prefix>_<secret>`. The prefix is public and helps people tell
tokens apart; only the SHA-256 digest of the whole token is stored. The secret has
256 bits of entropy, so a plain digest is enough (no slow hash needed).
"""

import hashlib
import secrets
from datetime import timedelta

from django.utils.timezone import now

from tenants.access import require_role
from tenants.models import ApiToken, Membership
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


def authenticate_api_token(raw: str) -> ApiToken | None:
    """The live token of the open tenant whose digest matches `raw`, or None.

    Call inside the tenant's context: a token of another workspace is not found,
    so using it on this workspace's URLs looks like an unknown workspace (404).
    Touches `last_used_at` at most once a minute.
    """
    if not raw.startswith(TOKEN_PREFIX):
        return None
    token = (
        ApiToken.objects.select_related("membership__user")
        .filter(digest=token_digest(raw), revoked_at__isnull=True)
        .first()
    )
    if token is None:
        return None
    moment = now()
    if token.last_used_at is None or moment - token.last_used_at > LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=moment)
        token.last_used_at = moment
    return token
