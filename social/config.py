"""Earshot's app credentials per platform, from settings.SOCIAL_APPS."""

from django.conf import settings
from django.urls import reverse

from social.connectors.base import AppSecrets

# The AppSecrets last built per platform, with a copy of the settings entry they
# were built from. The webhook receiver asks for them on every delivery.
_built: dict[str, tuple[dict[str, str], AppSecrets]] = {}


def app_secrets(platform: str) -> AppSecrets:
    """The AppSecrets for `platform` (empty strings where not configured).

    Built once per platform, and again whenever its entry in settings.SOCIAL_APPS
    differs from the copy they were built from (a changed or removed secret, a
    replaced or overridden SOCIAL_APPS, an entry changed in place): comparing a
    few strings costs a fraction of building them."""
    config = settings.SOCIAL_APPS.get(platform, {})
    built = _built.get(platform)
    if built is not None and built[0] == config:
        return built[1]
    secrets = AppSecrets(
        client_id=config.get("client_id", ""),
        client_secret=config.get("client_secret", ""),
        webhook_secret=config.get("webhook_secret", ""),
        verify_token=config.get("verify_token", ""),
        base_url=config.get("base_url", ""),
    )
    if len(_built) < 64 or platform in _built:
        _built[platform] = (dict(config), secrets)
    return secrets


def callback_url(platform: str) -> str:
    """The OAuth redirect address of this deployment for `platform` (registered
    with the platform, so it is one global URL per platform)."""
    return settings.SITE_URL.rstrip("/") + reverse("social:callback", args=[platform])


# Platforms connected through their own form rather than the OAuth buttons: an app
# per Mastodon instance, an app-password session on Bluesky.
FORM_PLATFORMS = ("mastodon", "bluesky")


def connectable_platforms() -> list[tuple[str, str]]:
    """(platform, label) pairs an admin connects with an OAuth button here: the
    deployment's app is configured. Mastodon and Bluesky have forms instead."""
    from social.models import Platform

    labels = dict(Platform.choices)
    platforms = []
    for platform in settings.SOCIAL_PLATFORMS:
        if platform == "sandbox" and not settings.SANDBOX_ENABLED:
            continue
        if platform in FORM_PLATFORMS:
            continue
        if app_secrets(platform).client_id:
            platforms.append((platform, labels.get(platform, platform)))
    return platforms


def form_platforms() -> list[str]:
    """Which of the form-connected platforms this deployment offers."""
    return [p for p in FORM_PLATFORMS if p in settings.SOCIAL_PLATFORMS]
