"""access_api_channel on PostgreSQL reads its row with a plain cursor: the same
account, brand and SLA preloads as the compiled queryset, in one statement, and
the same refusals."""

from datetime import date
from typing import Any

import pytest
from django.db import connection
from django.db.models import Model
from django.http import Http404
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from helpdesk.models import Identity, Message
from helpdesk.services.inbound import Lookup, _lookup_pg
from helpdesk.services.sla import PRELOADED_HOLIDAYS, PRELOADED_TARGETS, policy_for
from social.api_channel import (
    _API_CHANNEL,
    ChannelMessage,
    access_api_channel,
    access_api_channel_for_push,
    create_api_channel,
    record_channel_message,
)
from social.connectors.base import Author, InboundItem
from social.models import Platform, SocialAccount
from tenants.context import tenant_context
from tenants.exceptions import TenantContextMissing
from tenants.models import Brand, Holiday, SlaPolicy, Tenant, User
from tests.factories import membership_of

pytestmark = pytest.mark.django_db


def same_row(got: Any, expected: Any, model: type[Model]) -> None:
    for field in model._meta.concrete_fields:
        assert getattr(got, field.attname) == getattr(expected, field.attname), field
    assert got._state.adding is False
    assert got._state.db == "default"


@pytest.mark.parametrize("with_policy", [False, True])
def test_the_channel_is_the_querysets_row_in_one_statement(
    tenant: Tenant, owner: User, with_policy: bool
) -> None:
    with tenant_context(tenant):
        member = membership_of(tenant, owner)
        brand = Brand.objects.get()
        if with_policy:
            SlaPolicy.objects.create(
                tenant=tenant, brand=brand, first_response_minutes=17, urgent_tags=["x"]
            )
            Holiday.objects.create(
                tenant=tenant,
                brand=brand,
                name="Closed",
                start_date=date(2026, 12, 24),
                end_date=date(2026, 12, 26),
            )
        channel = create_api_channel(member, brand=brand, name="Chat")
        expected = _API_CHANNEL.first(channel.pk)
        assert expected is not None
        with CaptureQueriesContext(connection) as queries:
            got = access_api_channel(member, channel.pk)
    assert len(queries) == 1
    assert "tenants_tenant" not in queries[0]["sql"]
    same_row(got, expected, SocialAccount)
    same_row(got.brand, expected.brand, Brand)
    assert got.tenant is member.tenant
    assert got.preloaded_holidays == expected.preloaded_holidays  # type: ignore[attr-defined]
    assert got.preloaded_sla_policy == expected.preloaded_sla_policy  # type: ignore[attr-defined]
    if with_policy:
        assert got.preloaded_holidays == [["2026-12-24", "2026-12-26"]]  # type: ignore[attr-defined]
        # Only the columns targets_of reads (not the row's ids and time).
        assert got.preloaded_sla_policy == {  # type: ignore[attr-defined]
            "first_response_minutes": 17,
            "next_response_minutes": 60,
            "resolution_minutes": None,
            "urgent_first_response_minutes": 10,
            "urgent_next_response_minutes": 10,
            "urgent_on_negative": True,
            "urgent_tags": ["x"],
        }
        with tenant_context(tenant):
            assert getattr(got.brand, PRELOADED_TARGETS) == policy_for(brand)
    else:
        assert got.preloaded_holidays == []  # type: ignore[attr-defined]
        assert got.preloaded_sla_policy is None  # type: ignore[attr-defined]
    assert getattr(got.brand, PRELOADED_TARGETS) is not None
    assert [
        (span.start_date, span.end_date)
        for span in getattr(got.brand, PRELOADED_HOLIDAYS)
    ] == ([(date(2026, 12, 24), date(2026, 12, 26))] if with_policy else [])


@pytest.fixture
def theirs(other_tenant: Tenant, outsider: User) -> SocialAccount:
    """Another workspace's API channel."""
    with tenant_context(other_tenant):
        return create_api_channel(
            membership_of(other_tenant, outsider),
            brand=Brand.objects.get(),
            name="Theirs",
        )


def test_unknown_other_platform_and_other_workspace_channels_are_404(
    tenant: Tenant, owner: User, other_tenant: Tenant, theirs: SocialAccount
) -> None:
    with tenant_context(tenant):
        member = membership_of(tenant, owner)
        brand = Brand.objects.get()
        mastodon = SocialAccount.objects.create(
            tenant=tenant,
            brand=brand,
            platform=Platform.MASTODON,
            external_id="m-1",
            handle="shop",
        )
        for account_id in (theirs.pk, mastodon.pk, 10**9):
            with pytest.raises(Http404):
                access_api_channel(member, account_id)
        assert SocialAccount.objects.count() == 1
    with tenant_context(other_tenant):
        assert SocialAccount.objects.get().pk == theirs.pk


def test_no_open_tenant_is_refused(tenant: Tenant, owner: User) -> None:
    with tenant_context(tenant):
        member = membership_of(tenant, owner)
        channel = create_api_channel(member, brand=Brand.objects.get(), name="Chat")
    with pytest.raises(TenantContextMissing):
        access_api_channel(member, channel.pk)


def test_a_push_reads_its_lookup_with_the_channel_in_one_statement(
    tenant: Tenant, owner: User
) -> None:
    """access_api_channel_for_push: the same channel, and the Lookup _lookup_pg
    gives for the push's keys (a new message by a new author, by a known one,
    and a recorded message), in the channel's one statement."""
    with tenant_context(tenant):
        member = membership_of(tenant, owner)
        channel = create_api_channel(member, brand=Brand.objects.get(), name="Chat")
        known = record_channel_message(
            member,
            account=access_api_channel(member, channel.pk),
            message=ChannelMessage(external_id="m-1", text="Hi", author_id="c-1"),
        )
        expected = access_api_channel(member, channel.pk)
        for external_id, author_id in (("m-2", "c-2"), ("m-2", "c-1"), ("m-1", "c-1")):
            item = InboundItem(
                platform=Platform.API,
                external_id=external_id,
                author=Author(external_id=author_id),
                text="Hi",
                created_at=timezone.now(),
                visibility="private",
            )
            with CaptureQueriesContext(connection) as queries:
                got, lookup = access_api_channel_for_push(
                    member, channel.pk, external_id=external_id, author_id=author_id
                )
            assert len(queries) == 1
            same_row(got, expected, SocialAccount)
            same_row(got.brand, expected.brand, Brand)
            assert got.tenant is member.tenant
            assert got.preloaded_holidays == expected.preloaded_holidays  # type: ignore[attr-defined]
            assert lookup is not None
            assert lookup.fits(item)
            duplicate, identity = _lookup_pg(tenant.pk, item)
            assert lookup.duplicate is duplicate is (external_id == "m-1")
            if author_id == "c-2":
                assert identity is None
                assert lookup.identity is None
            else:
                assert identity is not None
                assert lookup.identity is not None
                assert identity.pk == known.message.author_identity_id
                same_row(lookup.identity, identity, Identity)


def test_a_push_to_a_refused_channel_is_404_with_its_lookup(
    tenant: Tenant, owner: User, theirs: SocialAccount
) -> None:
    with tenant_context(tenant):
        member = membership_of(tenant, owner)
        for account_id in (theirs.pk, 10**9):
            with pytest.raises(Http404):
                access_api_channel_for_push(
                    member, account_id, external_id="m-1", author_id="c-1"
                )


def test_a_lookup_read_for_other_keys_is_not_used(tenant: Tenant, owner: User) -> None:
    """record_channel_message with a Lookup of another message (one that says
    "recorded before") looks the push up itself and records it."""
    with tenant_context(tenant):
        member = membership_of(tenant, owner)
        channel = create_api_channel(member, brand=Brand.objects.get(), name="Chat")
        stale = Lookup(Platform.API, "m-other", "c-1", duplicate=True, identity=None)
        result = record_channel_message(
            member,
            account=access_api_channel(member, channel.pk),
            message=ChannelMessage(external_id="m-1", text="Hi", author_id="c-1"),
            lookup=stale,
        )
        assert result.created is True
        assert list(Message.objects.values_list("external_id", flat=True)) == ["m-1"]
