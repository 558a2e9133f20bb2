"""The advocate badge of the thread's contact panel (one small query)."""

from typing import Any

from django import template

from advocacy.selectors import contact_advocacy

register = template.Library()


@register.simple_tag(takes_context=True)
def advocate_standing(context: dict[str, Any], contact_id: int | None) -> str:
    """ "confirmed", "pending" or "" for the contact, in the request's workspace."""
    request = context.get("request")
    membership = getattr(request, "membership", None)
    if membership is None or not contact_id:
        return ""
    return contact_advocacy(membership, contact_id)
