"""Third-party tokens encrypted at rest, bound to their tenant.

Each tenant gets its own Fernet keys, derived with HKDF from the deployment's key ring
(TOKEN_ENCRYPTION_KEYS, newest first) and the tenant id, so one tenant's ciphertext
does not decrypt as another's. MultiFernet decrypts with any key in the ring and
`rotate_credentials` re-encrypts under the newest one.
"""

import json
from typing import Any

from cryptography.fernet import InvalidToken, MultiFernet

from tenants.crypto import scoped_fernet, tenant_fernet


class CredentialsUnreadable(Exception):
    """The ciphertext belongs to another tenant or to a key no longer in the ring."""


# The scope of Earshot's own per-instance app secrets (Mastodon), which belong to
# no tenant; its keys differ from every tenant's.
APP_SECRETS_SCOPE = "apps"


# HKDF salt of platform credentials (tenants/crypto.py derives the keys).
PURPOSE = b"earshot.credentials.v1"


def _fernet(tenant_id: int) -> MultiFernet:
    return tenant_fernet(PURPOSE, tenant_id)


def _app_fernet() -> MultiFernet:
    return scoped_fernet(PURPOSE, APP_SECRETS_SCOPE)


def encrypt_credentials(tenant_id: int, credentials: dict[str, Any]) -> str:
    """Ciphertext (text) of `credentials` for `tenant_id` under the newest key."""
    token = _fernet(tenant_id).encrypt(json.dumps(credentials).encode())
    return token.decode()


def decrypt_credentials(tenant_id: int, ciphertext: str) -> dict[str, Any]:
    """The credentials; CredentialsUnreadable for another tenant or a retired key."""
    if not ciphertext:
        return {}
    try:
        plain = _fernet(tenant_id).decrypt(ciphertext.encode())
    except InvalidToken:
        raise CredentialsUnreadable("These credentials cannot be read here.") from None
    data: dict[str, Any] = json.loads(plain)
    return data


def rotate_credentials(tenant_id: int, ciphertext: str) -> str:
    """Re-encrypt under the newest key (old keys stay readable until removed)."""
    try:
        return _fernet(tenant_id).rotate(ciphertext.encode()).decode()
    except InvalidToken:
        raise CredentialsUnreadable("These credentials cannot be read here.") from None


def encrypt_app_secret(secret: str) -> str:
    """Ciphertext of one of Earshot's own app secrets (not a tenant's)."""
    return _app_fernet().encrypt(secret.encode()).decode()


def decrypt_app_secret(ciphertext: str) -> str:
    """The app secret; CredentialsUnreadable when its key left the ring."""
    try:
        return _app_fernet().decrypt(ciphertext.encode()).decode()
    except InvalidToken:
        raise CredentialsUnreadable("This app secret cannot be read here.") from None
