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


# The scope of Earshot's own per-instance app secrets (Mastodon), which belong to
# no tenant; its keys differ from every tenant's.
APP_SECRETS_SCOPE = "apps"


def _derive(master: str, scope: str) -> Fernet:
    key = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=b"earshot.credentials.v1",
        info=scope.encode(),
    ).derive(master.encode())
    return Fernet(base64.urlsafe_b64encode(key))


@lru_cache(maxsize=1024)
def _scoped(scope: str, ring: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([_derive(master, scope) for master in ring])


def _fernet(tenant_id: int, ring: tuple[str, ...]) -> MultiFernet:
    return _scoped(f"tenant:{tenant_id}", ring)


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


def encrypt_app_secret(secret: str) -> str:
    """Ciphertext of one of Earshot's own app secrets (not a tenant's)."""
    return _scoped(APP_SECRETS_SCOPE, _ring()).encrypt(secret.encode()).decode()


def decrypt_app_secret(ciphertext: str) -> str:
    """The app secret; CredentialsUnreadable when its key left the ring."""
    try:
        return _scoped(APP_SECRETS_SCOPE, _ring()).decrypt(ciphertext.encode()).decode()
    except InvalidToken:
        raise CredentialsUnreadable("This app secret cannot be read here.") from None
