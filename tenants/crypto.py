"""Keys for secrets kept at rest, derived per tenant (or per other scope).

One key ring for the deployment (settings.TOKEN_ENCRYPTION_KEYS, newest first);
HKDF derives a Fernet key per purpose (the salt) and scope (`tenant:<id>`, or a
name for secrets that belong to no tenant), so one tenant's ciphertext does not
decrypt as another's and platform tokens never decrypt as webhook secrets.
MultiFernet decrypts with any key of the ring and encrypts with the newest.
Used by social/crypto.py (platform tokens) and helpdesk/webhooks/crypto.py
(webhook signing secrets).
"""

import base64
from functools import lru_cache

from cryptography.fernet import Fernet, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings


def _derive(master: str, purpose: bytes, scope: str) -> Fernet:
    key = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=purpose,
        info=scope.encode(),
    ).derive(master.encode())
    return Fernet(base64.urlsafe_b64encode(key))


@lru_cache(maxsize=2048)
def _ring_fernet(purpose: bytes, scope: str, ring: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([_derive(master, purpose, scope) for master in ring])


def scoped_fernet(purpose: bytes, scope: str) -> MultiFernet:
    """The MultiFernet of `purpose` for `scope` under the current key ring."""
    return _ring_fernet(purpose, scope, tuple(settings.TOKEN_ENCRYPTION_KEYS))


def tenant_fernet(purpose: bytes, tenant_id: int) -> MultiFernet:
    """The MultiFernet of `purpose` for one tenant."""
    return scoped_fernet(purpose, f"tenant:{int(tenant_id)}")
