"""Third-party tokens encrypted at rest, bound to their tenant.

Each tenant gets its own Fernet keys, derived with HKDF from the deployment's key ring
(TOKEN_ENCRYPTION_KEYS, newest first) and the tenant id, so one tenant's ciphertext
does not decrypt as another's. MultiFernet decrypts with any key in the ring and
`rotate_credentials` re-encrypts under the newest one.
"""

import base64
import json
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings


class CredentialsUnreadable(Exception):
    """The ciphertext belongs to another tenant or to a key no longer in the ring."""


def _derive(master: str, tenant_id: int) -> Fernet:
    key = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=b"earshot.credentials.v1",
        info=f"tenant:{tenant_id}".encode(),
    ).derive(master.encode())
    return Fernet(base64.urlsafe_b64encode(key))


@lru_cache(maxsize=1024)
def _fernet(tenant_id: int, ring: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([_derive(master, tenant_id) for master in ring])


def _ring() -> tuple[str, ...]:
    return tuple(settings.TOKEN_ENCRYPTION_KEYS)


def encrypt_credentials(tenant_id: int, credentials: dict[str, Any]) -> str:
    """Ciphertext (text) of `credentials` for `tenant_id` under the newest key."""
    token = _fernet(int(tenant_id), _ring()).encrypt(json.dumps(credentials).encode())
    return token.decode()


def decrypt_credentials(tenant_id: int, ciphertext: str) -> dict[str, Any]:
    """The credentials; CredentialsUnreadable for another tenant or a retired key."""
    if not ciphertext:
        return {}
    try:
        plain = _fernet(int(tenant_id), _ring()).decrypt(ciphertext.encode())
    except InvalidToken:
        raise CredentialsUnreadable("These credentials cannot be read here.") from None
    data: dict[str, Any] = json.loads(plain)
    return data


def rotate_credentials(tenant_id: int, ciphertext: str) -> str:
    """Re-encrypt under the newest key (old keys stay readable until removed)."""
    try:
        return _fernet(int(tenant_id), _ring()).rotate(ciphertext.encode()).decode()
    except InvalidToken:
        raise CredentialsUnreadable("These credentials cannot be read here.") from None
