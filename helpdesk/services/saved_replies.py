"""Saved replies (R6): the workspace's library of reply starting points.

Agents use them (`render_saved_reply` in services/replies.py); admins manage them,
the way Zendesk macros are shared: a reply belongs to one brand, or to none
(shared by every brand).
"""

from django.core.exceptions import ValidationError

from helpdesk.models import SavedReply
from helpdesk.services.conversations import UNSET
from tenants.access import require_role
from tenants.models import Brand, Membership


def _checked_text(field: str, value: str) -> str:
    text = value.strip()
    if not text:
        raise ValidationError({field: ["This field may not be blank."]})
    return text


def create_saved_reply(
    membership: Membership, *, title: str, body: str, brand: Brand | None
) -> SavedReply:
    """Add a saved reply for `brand` (None: shared by all brands). Admins only.

    `brand` must come from the member's workspace (a composite key also refuses
    another tenant's brand). Raises ValidationError for a blank title or body.
    """
    require_role(membership, Membership.Role.ADMIN)
    return SavedReply.objects.create(
        tenant=membership.tenant,
        title=_checked_text("title", title),
        body=_checked_text("body", body),
        brand=brand,
    )


def update_saved_reply(
    membership: Membership,
    reply: SavedReply,
    *,
    title: str | None = None,
    body: str | None = None,
    brand: Brand | object | None = UNSET,
) -> SavedReply:
    """Change a saved reply's title, body or brand (None: shared). Admins only.

    Arguments left out (None, or UNSET for `brand`) stay as they are. Raises
    ValidationError for a blank title or body; nothing is saved then.
    """
    require_role(membership, Membership.Role.ADMIN)
    changed = []
    if title is not None:
        reply.title = _checked_text("title", title)
        changed.append("title")
    if body is not None:
        reply.body = _checked_text("body", body)
        changed.append("body")
    if brand is not UNSET:
        reply.brand = brand if isinstance(brand, Brand) else None
        changed.append("brand")
    if changed:
        reply.save(update_fields=changed)
    return reply


def delete_saved_reply(membership: Membership, reply: SavedReply) -> None:
    """Delete a saved reply. Admins only. Replies already sent are not affected."""
    require_role(membership, Membership.Role.ADMIN)
    reply.delete()
