"""Tokens at rest (tenancy.md test 26)."""

import pytest
from django.db import connection
from django.test import override_settings

from social.crypto import (
    CredentialsUnreadable,
    decrypt_credentials,
    encrypt_credentials,
    rotate_credentials,
)
from social.models import SocialAccount
from tenants.models import Tenant
from tests.helpdesk.conftest import make_account

SECRET = {"access_token": "tok-abc123", "refresh_token": "ref-xyz"}


def test_round_trip() -> None:
    assert decrypt_credentials(7, encrypt_credentials(7, SECRET)) == SECRET


def test_another_tenant_cannot_decrypt() -> None:
    ciphertext = encrypt_credentials(7, SECRET)
    with pytest.raises(CredentialsUnreadable):
        decrypt_credentials(8, ciphertext)


def test_rotation_keeps_old_ciphertexts_readable_and_re_encrypts() -> None:
    with override_settings(TOKEN_ENCRYPTION_KEYS=["old-key"]):
        old = encrypt_credentials(7, SECRET)
    with override_settings(TOKEN_ENCRYPTION_KEYS=["new-key", "old-key"]):
        assert decrypt_credentials(7, old) == SECRET
        rotated = rotate_credentials(7, old)
    with override_settings(TOKEN_ENCRYPTION_KEYS=["new-key"]):
        assert decrypt_credentials(7, rotated) == SECRET
        with pytest.raises(CredentialsUnreadable):
            decrypt_credentials(7, old)


@pytest.mark.django_db
@pytest.mark.sql_audit_exempt
def test_the_raw_column_does_not_contain_the_token(tenant: Tenant) -> None:
    account = make_account(tenant)
    from tenants.context import tenant_context

    with tenant_context(tenant):
        SocialAccount.objects.filter(pk=account.pk).update(
            credentials=encrypt_credentials(tenant.pk, SECRET)
        )
        with connection.cursor() as cursor:
            cursor.execute("SELECT credentials FROM social_socialaccount")
            [(raw,)] = cursor.fetchall()
    assert "tok-abc123" not in raw
    assert "ref-xyz" not in raw
    assert decrypt_credentials(tenant.pk, raw) == SECRET
