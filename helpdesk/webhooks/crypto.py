"""Webhook endpoint secrets, encrypted at rest and bound to their tenant.

Receivers need the plain secret to check signatures, so it is kept recoverable:
Fernet under the tenant's key from tenants/crypto.py, with its own purpose (salt)
so webhook secrets and platform tokens never decrypt as each other.
"""

import secrets

from cryptography.fernet import InvalidToken

from tenants.crypto import tenant_fernet

SECRET_PREFIX = "whsec_"  # noqa: S105 - a marker that tells secrets apart, not one


class SecretUnreadable(Exception):
    """The ciphertext belongs to another tenant or to a key no longer in the ring."""


def new_secret() -> str:
    """A fresh signing secret (256 bits), in the form shown to integrators."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


PURPOSE = b"earshot.webhook-secret.v1"


def encrypt_secret(tenant_id: int, secret: str) -> str:
    """Ciphertext of `secret` for `tenant_id` under the newest key."""
    return tenant_fernet(PURPOSE, tenant_id).encrypt(secret.encode()).decode()


def decrypt_secret(tenant_id: int, ciphertext: str) -> str:
    """The plain secret; SecretUnreadable for another tenant or a retired key."""
    try:
        plain = tenant_fernet(PURPOSE, tenant_id).decrypt(ciphertext.encode())
    except InvalidToken:
        raise SecretUnreadable("This webhook secret cannot be read here.") from None
    return plain.decode()
