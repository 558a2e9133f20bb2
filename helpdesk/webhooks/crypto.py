"""Webhook endpoint secrets, encrypted at rest and bound to their tenant.

Receivers need the plain secret to check signatures, so it is kept recoverable:
Fernet under a key derived (HKDF) from the deployment's key ring
(settings.TOKEN_ENCRYPTION_KEYS, newest first) and the tenant id, so one tenant's
ciphertext does not decrypt as another's. social/crypto.py does the same for
platform tokens; helpdesk may not import social's glue (STYLE rule 1), and the
derivation uses its own salt so the two kinds of ciphertext never mix.
"""

import base64
import secrets
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

SECRET_PREFIX = "whsec_"  # noqa: S105 - a marker that tells secrets apart, not one


class SecretUnreadable(Exception):
    """The ciphertext belongs to another tenant or to a key no longer in the ring."""


def new_secret() -> str:
    """A fresh signing secret (256 bits), in the form shown to integrators."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def _derive(master: str, tenant_id: int) -> Fernet:
    key = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=b"earshot.webhook-secret.v1",
        info=f"tenant:{tenant_id}".encode(),
    ).derive(master.encode())
    return Fernet(base64.urlsafe_b64encode(key))


@lru_cache(maxsize=1024)
def _fernet(tenant_id: int, ring: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([_derive(master, tenant_id) for master in ring])


def _ring() -> tuple[str, ...]:
    return tuple(settings.TOKEN_ENCRYPTION_KEYS)


def encrypt_secret(tenant_id: int, secret: str) -> str:
    """Ciphertext of `secret` for `tenant_id` under the newest key."""
    return _fernet(int(tenant_id), _ring()).encrypt(secret.encode()).decode()


def decrypt_secret(tenant_id: int, ciphertext: str) -> str:
    """The plain secret; SecretUnreadable for another tenant or a retired key."""
    try:
        plain = _fernet(int(tenant_id), _ring()).decrypt(ciphertext.encode())
    except InvalidToken:
        raise SecretUnreadable("This webhook secret cannot be read here.") from None
    return plain.decode()
