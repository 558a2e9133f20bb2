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
