"""The reply's row lock (helpdesk.services.reply_lock) reads its row through
CompiledQuery.first's row plan: the same conversation, brand and annotations as
its queryset gives through Django's ModelIterable."""

from typing import Any

import pytest
from django.db import transaction

from helpdesk.services.reply_lock import _locked, lock_conversation_for_reply
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import Holiday, Tenant
from tests.helpdesk.conftest import item, receive
from tests.helpdesk.test_compiled_instances import state

pytestmark = pytest.mark.django_db(transaction=True)

ANNOTATIONS = ("preloaded_holidays", "has_webhook_endpoints", "new_message_id")


def _plain(instance: Any) -> Any:
    """`state` without the id taken from the sequence (each read takes one)
    and the lock's own marks."""
    kind, stored, *rest = state(instance)
    stored = {
        k: v
        for k, v in stored.items()
        if k not in ("new_message_id", "_reply_locked_in") and not k.startswith("_")
    }
    return kind, stored, *rest


def test_the_locked_row_is_the_querysets(
    tenant: Tenant, account: SocialAccount
) -> None:
    conversation = receive(account, item(text="Where is my bag?")).conversation
    with tenant_context(tenant):
        Holiday.objects.create(
            tenant=tenant,
            brand=conversation.brand,
            name="Closed",
            start_date="2026-12-24",
            end_date="2026-12-26",
        )
        with transaction.atomic():
            locked = lock_conversation_for_reply(conversation.pk)
            expected = _locked(conversation.pk).get()
            assert _plain(locked) == _plain(expected)
            assert _plain(locked.brand) == _plain(expected.brand)
            assert locked.preloaded_holidays == [["2026-12-24", "2026-12-26"]]  # type: ignore[attr-defined]
            assert locked.has_webhook_endpoints is False  # type: ignore[attr-defined]
            assert locked.new_message_id + 1 == expected.new_message_id  # type: ignore[attr-defined]
