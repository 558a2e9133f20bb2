"""Earshot's OAuth apps on Mastodon instances, and the app secrets of any account.

Every Mastodon instance is its own OAuth server, so Earshot registers an app on
each instance an admin names (`POST /api/v1/apps`) and keeps it in the global
`MastodonApp` table (client secret encrypted), reused by every workspace that
connects accounts there. The other platforms have one app per deployment, in
settings (`social.config.app_secrets`).

The instance address comes from a workspace admin and the server calls it, so it
goes through the SSRF guard shared with outbound webhooks (tenants/netguard.py):
https only (plain http with settings.MASTODON_ALLOW_INSECURE, for development), no
credentials, path, query or fragment, no loopback names or refused IP literals; the
name is resolved once, when the connection opens, every address must be public,
and the connection is pinned to the address checked, for the registration and
every later call to the instance (social.http's guarded client). A refusal is a
field error and nothing is stored. Redirects are never followed.
"""

import logging
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction

from social.config import app_secrets, callback_url
from social.connectors.base import AppSecrets, ConnectorError
from social.connectors.mastodon import INSTANCE_POLICY, SCOPES, MastodonConnector
from social.crypto import decrypt_app_secret, encrypt_app_secret
from social.models import MastodonApp
from tenants import netguard
from tenants.exceptions import WorkspaceError

logger = logging.getLogger(__name__)

FIELD = "instance"


def instance_base_url(raw: str) -> str:
    """The instance as `https://host[:port]`; WorkspaceError (field "instance") when
    it is not an address Earshot may call. No network I/O (the name is resolved and
    checked when the connection opens)."""
    text = raw.strip().rstrip("/")
    if not text:
        raise WorkspaceError("Enter the address of your Mastodon server.", field=FIELD)
    parts = urlsplit(text if "://" in text else f"https://{text}")
    insecure_ok = settings.MASTODON_ALLOW_INSECURE
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise WorkspaceError(
            "Enter a server address such as mastodon.social.", field=FIELD
        )
    if parts.scheme != "https" and not insecure_ok:
        raise WorkspaceError("The server must use https://.", field=FIELD)
    if parts.username or parts.password or parts.query or parts.fragment:
        raise WorkspaceError(
            "Enter only the server's address, such as mastodon.social.", field=FIELD
        )
    if parts.path not in ("", "/"):
        raise WorkspaceError(
            "Enter the server's address without a path, such as mastodon.social.",
            field=FIELD,
        )
    try:
        port = parts.port
    except ValueError:
        raise WorkspaceError(
            "The server address has a bad port.", field=FIELD
        ) from None
    host = parts.hostname.lower()
    default_port = 443 if parts.scheme == "https" else 80
    try:
        netguard.check_literal(host, INSTANCE_POLICY)
    except netguard.UrlRefused as refused:
        raise WorkspaceError(refused.message, field=FIELD) from None
    netloc = f"[{host}]" if ":" in host else host
    if port and port != default_port:
        netloc += f":{port}"
    return f"{parts.scheme}://{netloc}"


def registered_app(base_url: str) -> AppSecrets | None:
    """The app Earshot registered on the instance at `base_url` (as
    `instance_base_url` gave it) for this deployment's callback, or None."""
    app = MastodonApp.objects.filter(
        base_url=base_url, redirect_uri=callback_url("mastodon")
    ).first()
    if app is None:
        return None
    return AppSecrets(
        client_id=app.client_id,
        client_secret=decrypt_app_secret(app.client_secret),
        base_url=app.base_url,
    )


def register_instance_app(instance: str) -> AppSecrets:
    """Earshot's app on the Mastodon instance an admin named, registering it there
    on first use (`POST /api/v1/apps`) and storing it (secret encrypted).

    Call outside any transaction: it may call the instance. Raises WorkspaceError
    (field "instance") for an address Earshot may not call, an instance that cannot
    be reached or refuses (4xx/5xx), or an answer that is not a Mastodon app.
    """
    base_url = instance_base_url(instance)
    known = registered_app(base_url)
    if known is not None:
        return known
    redirect_uri = callback_url("mastodon")
    host = urlsplit(base_url).netloc
    try:
        app = MastodonConnector().register_app(base_url, redirect_uri)
    except ConnectorError as error:
        logger.info("registering on %s failed: %s", host, error.message)
        refusal = netguard.refusal_in(error)
        if refusal is not None:
            raise WorkspaceError(refusal.message, field=FIELD) from error
        if error.status is None:
            message = f"Could not reach {host}: {error.message}"
        else:
            message = f"{host} refused to register Earshot (HTTP {error.status})."
        raise WorkspaceError(message, field=FIELD) from error
    except (ValueError, KeyError, TypeError):
        raise WorkspaceError(
            f"{host} did not answer like a Mastodon server.", field=FIELD
        ) from None
    with transaction.atomic():
        MastodonApp.objects.update_or_create(
            base_url=base_url,
            defaults={
                "redirect_uri": redirect_uri,
                "client_id": app.client_id,
                "client_secret": encrypt_app_secret(app.client_secret),
                "scopes": SCOPES,
            },
        )
    return AppSecrets(
        client_id=app.client_id, client_secret=app.client_secret, base_url=base_url
    )


def account_app(platform: str, base_url: str) -> AppSecrets:
    """The app secrets to act for an account: the instance's app for Mastodon
    (empty when none is registered), else the deployment's app for the platform."""
    if platform != "mastodon":
        return app_secrets(platform)
    return registered_app(base_url.rstrip("/")) or AppSecrets(base_url=base_url)
