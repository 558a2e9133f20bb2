"""The settings area: its side navigation (which pages it lists, and where it
shows) and the brand's online state for lists of brands.

The navigation shows on the workspace home and on every settings page; admin-only
pages are listed to admins only (the pages themselves answer 403 to the others).
"""

from dataclasses import dataclass
from typing import Any

from django import template
from django.urls import reverse
from django.utils.timezone import now

from frontend.settings_presenters import BrandState, brand_state
from tenants.models import Brand

register = template.Library()


@dataclass(frozen=True)
class NavItem:
    label: str
    url: str
    current: bool


# (label, URL name, admin only, the URL names it is current on)
PAGES: tuple[tuple[str, str, bool, frozenset[str]], ...] = (
    ("Brands", "brands", False, frozenset({"brands", "brand-settings"})),
    ("Connected accounts", "accounts", False, frozenset({"accounts"})),
    ("Listening rules", "listening-rules", False, frozenset({"listening-rules"})),
    ("Saved replies", "saved-replies", False, frozenset({"saved-replies"})),
    ("Members", "members", False, frozenset({"members", "workspace-delete"})),
    ("API tokens", "api-tokens", False, frozenset({"api-tokens"})),
    ("Webhooks", "webhooks", True, frozenset({"webhooks", "webhook"})),
)
SETTINGS_PAGES = frozenset().union(*(names for *_, names in PAGES))
SHOWN_ON = SETTINGS_PAGES | {"workspace"}


@register.simple_tag(takes_context=True)
def settings_nav(context: dict[str, Any]) -> list[NavItem]:
    """The settings links for this page, or [] where the area is not shown."""
    request = context.get("request")
    tenant = context.get("current_tenant")
    membership = context.get("current_membership")
    match = getattr(request, "resolver_match", None)
    if tenant is None or membership is None or match is None:
        return []
    if match.url_name not in SHOWN_ON or match.namespace != "frontend":
        return []
    is_admin = membership.role in ("owner", "admin")
    return [
        NavItem(
            label,
            reverse(f"frontend:{name}", args=[tenant.slug]),
            match.url_name in names,
        )
        for label, name, admin_only, names in PAGES
        if is_admin or not admin_only
    ]


@register.simple_tag(takes_context=True)
def in_settings(context: dict[str, Any]) -> bool:
    """Whether this page belongs to the settings area (for the top bar's link)."""
    match = getattr(context.get("request"), "resolver_match", None)
    return bool(
        match and match.namespace == "frontend" and match.url_name in SETTINGS_PAGES
    )


@register.filter
def state_now(brand: Brand) -> BrandState:
    """The brand's online state at this moment, in words."""
    return brand_state(brand, now())
