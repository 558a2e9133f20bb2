"""The composer's pool count is live: a claim and an import push `goodwill.pool`
(the codes left) to the workspace's sockets after commit; a refused claim or
import pushes nothing."""

from collections.abc import Callable
from typing import Any

import pytest

from goodwill.exceptions import CodeImportInvalid, PoolEmpty
from goodwill.services import import_goodwill_codes, send_goodwill_reply
from helpdesk import events
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import Tenant, User
from tests.goodwill.test_goodwill import make_pool, private_conversation
from tests.helpdesk.conftest import member

pytestmark = pytest.mark.django_db

Pushes = list[tuple[str, dict[str, Any]]]


@pytest.fixture
def pushes(monkeypatch: pytest.MonkeyPatch) -> Pushes:
    sent: Pushes = []
    monkeypatch.setattr(
        events, "send_to_group", lambda group, payload: sent.append((group, payload))
    )
    return sent


def test_a_claim_pushes_the_codes_left_after_commit(
    tenant: Tenant,
    owner: User,
    agent: User,
    account: SocialAccount,
    pushes: Pushes,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    pool = make_pool(tenant, owner, "AAA111\nBBB222", mark=1)
    conversation = private_conversation(account)
    group = events.inbox_group(tenant.pk)
    pushes.clear()
    with tenant_context(tenant):
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            send_goodwill_reply(
                conversation, membership=member(tenant, agent), pool=pool, text="Hi."
            )
            assert pushes == []  # nothing before commit
        assert len(callbacks) >= 1
        ours = [payload for target, payload in pushes if target == group]
        assert ours == [
            {
                "type": "goodwill.pool",
                "pool_id": pool.pk,
                "brand_id": pool.brand_id,
                "available": 1,
            }
        ]
        pushes.clear()
        with django_capture_on_commit_callbacks(execute=True):
            send_goodwill_reply(
                conversation, membership=member(tenant, agent), pool=pool, text="Hi!"
            )
        assert [p["available"] for g, p in pushes if p["type"] == "goodwill.pool"] == [
            0
        ]
        pushes.clear()
        with django_capture_on_commit_callbacks(execute=True), pytest.raises(PoolEmpty):
            send_goodwill_reply(
                conversation, membership=member(tenant, agent), pool=pool, text="Hey"
            )
    assert pushes == []


def test_an_import_pushes_and_a_refused_one_does_not(
    tenant: Tenant,
    owner: User,
    pushes: Pushes,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    pool = make_pool(tenant, owner, "AAA111", mark=1)
    pushes.clear()
    with tenant_context(tenant):
        with django_capture_on_commit_callbacks(execute=True):
            import_goodwill_codes(member(tenant, owner), pool, text="BBB222\nCCC333")
        assert pushes == [
            (
                events.inbox_group(tenant.pk),
                {
                    "type": "goodwill.pool",
                    "pool_id": pool.pk,
                    "brand_id": pool.brand_id,
                    "available": 3,
                },
            )
        ]
        pushes.clear()
        with (
            django_capture_on_commit_callbacks(execute=True),
            pytest.raises(CodeImportInvalid),
        ):
            import_goodwill_codes(member(tenant, owner), pool, text="AAA111")
    assert pushes == []
