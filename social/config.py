"""Earshot's app credentials per platform, from settings.SOCIAL_APPS."""

from django.conf import settings

from social.connectors.base import AppSecrets


def app_secrets(platform: str) -> AppSecrets:
    """The AppSecrets for `platform` (empty strings where not configured)."""
    config = settings.SOCIAL_APPS.get(platform, {})
    return AppSecrets(
        client_id=config.get("client_id", ""),
        client_secret=config.get("client_secret", ""),
        webhook_secret=config.get("webhook_secret", ""),
        verify_token=config.get("verify_token", ""),
        base_url=config.get("base_url", ""),
    )


def connectable_platforms() -> list[tuple[str, str]]:
    """(platform, label) pairs an admin can connect here: the app is configured."""
    from social.models import Platform

    labels = dict(Platform.choices)
    platforms = []
    for platform in settings.SOCIAL_PLATFORMS:
        if platform == "sandbox" and not settings.SANDBOX_ENABLED:
            continue
        if app_secrets(platform).client_id:
            platforms.append((platform, labels.get(platform, platform)))
    return platforms
