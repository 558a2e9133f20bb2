"""After a delivery batch, the accounts that worked are cleared of the degraded
state (social.health.mark_healthy); on PostgreSQL the degraded ones are read by a
written-out statement that reads what the queryset reads."""

import pytest
from django.utils import timezone

from social import health
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import Tenant
from tests.helpdesk.conftest import make_account

pytestmark = pytest.mark.django_db


def test_the_degraded_accounts_read_as_the_queryset_reads(
    tenant: Tenant, account: SocialAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    accounts = [
        account,
        make_account(tenant, handle="acmeair_help"),
        make_account(tenant, handle="acme_a"),
        make_account(tenant, handle="acme_z"),
    ]
    ids = [a.pk for a in accounts]
    with tenant_context(tenant):
        SocialAccount.objects.filter(pk__in=[ids[1], ids[2], ids[3]]).update(
            degraded_since=timezone.now(), last_error="The platform answered 503"
        )
        written = health._degraded(ids)
        monkeypatch.setattr(health, "current_tenant_id", lambda: None)
        built = health._degraded(ids)
    assert written == built
    assert sorted(written) == sorted(ids[1:])


def test_mark_healthy_clears_only_the_degraded_ones(
    tenant: Tenant, account: SocialAccount
) -> None:
    other = make_account(tenant, handle="acmeair_help")
    with tenant_context(tenant):
        SocialAccount.objects.filter(pk=other.pk).update(
            degraded_since=timezone.now(), last_error="The platform answered 503"
        )
        assert health.mark_healthy([account.pk, other.pk]) == [other.pk]
        assert health.mark_healthy([account.pk, other.pk]) == []
        assert list(
            SocialAccount.objects.filter(pk__in=[account.pk, other.pk]).values_list(
                "degraded_since", "last_error"
            )
        ) == [(None, ""), (None, "")]
