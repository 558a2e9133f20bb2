"""The brand's deflection phrases (R15): the setting the composer's check reads."""

from django.core.exceptions import ValidationError

from helpdesk.deflection import clean_deflection_settings, deflection_settings_errors
from tenants.access import require_role
from tenants.models import Brand, Membership
from tenants.services import record_audit


def update_deflection_phrases(
    membership: Membership, brand: Brand, *, phrases: object
) -> Brand:
    """Set the brand's own deflection phrases per language (admins and owners).

    `phrases` is {"en": ["call our hotline", ...], ...}: two-letter language
    codes, each a list of 3-80 character phrases; a language left out uses the
    defaults, an empty list switches the check off for it. Raises ValidationError
    on `phrases` (one message per problem, naming the language and the phrase's
    position) and changes nothing. Audited.
    """
    require_role(membership, Membership.Role.ADMIN)
    errors = deflection_settings_errors(phrases)
    if errors:
        raise ValidationError({"phrases": errors})
    assert isinstance(phrases, dict)  # noqa: S101 - checked above
    brand.deflection_phrases = clean_deflection_settings(phrases)
    brand.save(update_fields=["deflection_phrases"])
    record_audit(
        membership.tenant,
        actor=membership.user,
        action="brand.deflection_updated",
        obj=brand,
        data={"languages": sorted(brand.deflection_phrases)},
    )
    return brand
