"""Helpers for the connect, disconnect and refresh tests: app settings pointing at a
fake, the browser's visit to a fake consent page, and snapshots of what connecting
writes."""

import base64
import hashlib
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from django.conf import settings

from social.crypto import decrypt_credentials
from social.models import ChannelRoute, SocialAccount
from tenants.context import tenant_context
from tenants.models import AuditEvent, Brand, Tenant


def apps_with(**platforms: dict[str, str]) -> dict[str, dict[str, str]]:
    """settings.SOCIAL_APPS with the given platforms' apps replaced."""
    apps = {name: dict(app) for name, app in settings.SOCIAL_APPS.items()}
    for name, app in platforms.items():
        apps[name] = {**apps[name], **app}
    return apps


def challenge_for(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def query_of(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


def consent(authorize_url: str) -> str:
    """Visit a fake platform's consent page as the browser would (real HTTP) and
    return where it sends the browser back: the callback's path and query."""
    answer = httpx.get(authorize_url, follow_redirects=False)
    assert answer.status_code == 302, answer.text
    back = urlsplit(answer.headers["location"])
    assert f"{back.scheme}://{back.netloc}" == settings.SITE_URL
    return f"{back.path}?{back.query}"


def brand_of(tenant: Tenant) -> Brand:
    with tenant_context(tenant):
        return Brand.objects.get()


def connected(tenant: Tenant) -> list[dict[str, Any]]:
    """The tenant's accounts with their decrypted credentials."""
    with tenant_context(tenant):
        return [
            {
                "platform": account.platform,
                "external_id": account.external_id,
                "handle": account.handle,
                "status": account.status,
                "base_url": account.base_url,
                "credentials": decrypt_credentials(tenant.pk, account.credentials),
                "token_expires_at": account.token_expires_at,
            }
            for account in SocialAccount.objects.order_by("pk")
        ]


def raw_credentials(tenant: Tenant) -> list[str]:
    with tenant_context(tenant):
        return list(SocialAccount.objects.values_list("credentials", flat=True))


def routes() -> list[tuple[str, str, int]]:
    return sorted(
        ChannelRoute.objects.values_list("platform", "external_account_id", "tenant_id")
    )


def audit_actions(tenant: Tenant) -> list[tuple[str, dict[str, Any]]]:
    with tenant_context(tenant):
        return [
            (event.action, event.data)
            for event in AuditEvent.objects.filter(
                action__startswith="account."
            ).order_by("pk")
        ]
