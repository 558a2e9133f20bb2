"""Contacts and their identities across platforms (R11)."""

from collections.abc import Callable
from contextvars import ContextVar

from django.db import IntegrityError, transaction

from helpdesk.models import Contact, Conversation, Identity
from helpdesk.services.webhook_outbox import queue_webhook_deliveries
from social.connectors.base import Author
from tenants.access import require_role
from tenants.models import Membership, Tenant
from tenants.services import record_audit


def upsert_identity(tenant: Tenant, platform: str, author: Author) -> Identity:
    """The identity for `author` on `platform`, created with a new contact if unknown.

    Profile fields (handle, name, followers, URL) are refreshed from the latest item.
    Safe against a concurrent insert of the same identity (unique per tenant).
    """
    identity = (
        Identity.objects.select_related("contact")
        .filter(platform=platform, external_id=author.external_id)
        .first()
    )
    if identity is None:
        try:
            with transaction.atomic():
                contact = Contact.objects.create(
                    tenant=tenant, display_name=author.display_name or author.handle
                )
                return Identity.objects.create(
                    tenant=tenant,
                    contact=contact,
                    platform=platform,
                    external_id=author.external_id,
                    handle=author.handle,
                    display_name=author.display_name,
                    followers=author.followers,
                    profile_url=author.profile_url,
                )
        except IntegrityError:
            identity = Identity.objects.select_related("contact").get(
                platform=platform, external_id=author.external_id
            )
    changed = refresh_identity(identity, author)
    if changed:
        identity.save(update_fields=changed)
    return identity


# Told of every profile refresh while set: social.batch_ingest records some items
# out of arrival order and then gives each identity its arrival-order profile.
refresh_observer: ContextVar[Callable[[Identity, Author], None] | None] = ContextVar(
    "refresh_observer", default=None
)


def refresh_identity(identity: Identity, author: Author) -> list[str]:
    """Set the identity's profile fields the author gives and that differ (in
    memory, not saved); returns the names of the fields it changed."""
    observer = refresh_observer.get()
    if observer is not None:
        observer(identity, author)
    changed = []
    for field, value in (
        ("handle", author.handle),
        ("display_name", author.display_name),
        ("followers", author.followers),
        ("profile_url", author.profile_url),
    ):
        if value and getattr(identity, field) != value:
            setattr(identity, field, value)
            changed.append(field)
    return changed


# The old private name, still imported by helpdesk.services.inbound.
_refresh = refresh_identity


def merge_contacts(
    membership: Membership, *, source: Contact, target: Contact
) -> Contact:
    """Move `source`'s identities and conversations to `target`; audit the merge.

    Agents and above. The source contact stays, marked as merged into the target,
    so links to it keep resolving. Queues the contact.merged webhook event.
    """
    require_role(membership, Membership.Role.AGENT)
    if source.pk == target.pk:
        from helpdesk.exceptions import InvalidTransition

        raise InvalidTransition("A contact cannot be merged into itself.")
    with transaction.atomic():
        identities = Identity.objects.filter(contact=source).update(contact=target)
        conversations = Conversation.objects.filter(contact=source).update(
            contact=target
        )
        source.merged_into = target
        source.save(update_fields=["merged_into"])
        for field in ("email", "external_crm_id", "notes"):
            if not getattr(target, field) and getattr(source, field):
                setattr(target, field, getattr(source, field))
        target.save(update_fields=["email", "external_crm_id", "notes"])
        record_audit(
            membership.tenant,
            actor=membership.user,
            action="contact.merged",
            obj=target,
            data={
                "source_id": source.pk,
                "identities": identities,
                "conversations": conversations,
            },
        )
        queue_webhook_deliveries(
            membership.tenant_id,
            "contact.merged",
            {
                "contact_id": target.pk,
                "merged_contact_id": source.pk,
                "identities_moved": identities,
                "conversations_moved": conversations,
            },
        )
    return target


CONTACT_FIELDS = ("display_name", "email", "notes", "external_crm_id")


def update_contact(
    membership: Membership, contact: Contact, *, changes: dict[str, str]
) -> Contact:
    """Correct a contact's name, email, notes or CRM id (keys of `changes`).

    Agents and above. A contact merged into another is read-only: raises
    InvalidTransition (edit the contact it was merged into). Raises ValueError for
    a key outside CONTACT_FIELDS; nothing is saved then.
    """
    require_role(membership, Membership.Role.AGENT)
    unknown = set(changes) - set(CONTACT_FIELDS)
    if unknown:
        raise ValueError(f"Not contact fields: {sorted(unknown)}")
    if contact.merged_into_id is not None:
        from helpdesk.exceptions import InvalidTransition

        raise InvalidTransition(
            f"This contact was merged into contact {contact.merged_into_id}; "
            "edit that one instead.",
            merged_into_id=contact.merged_into_id,
        )
    changed = [
        field for field, value in changes.items() if getattr(contact, field) != value
    ]
    for field in changed:
        setattr(contact, field, changes[field])
    if changed:
        contact.save(update_fields=changed)
    return contact
