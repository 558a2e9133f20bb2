"""Each code is used once, on real PostgreSQL as the runtime role: clicks racing
for the last code of a pool, on their own connections."""

import threading

import pytest
from django.db import connection

from goodwill.exceptions import PoolEmpty
from goodwill.models import GoodwillCode
from goodwill.services import (
    create_goodwill_pool,
    import_goodwill_codes,
    send_goodwill_reply,
)
from helpdesk.models import Message
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import Brand, Tenant, User
from tests.helpdesk.conftest import item, member, receive

pytestmark = pytest.mark.django_db(transaction=True)


def test_clicks_racing_for_the_last_code_one_wins(
    tenant: Tenant, owner: User, agent: User, admin: User, account: SocialAccount
) -> None:
    assert connection.vendor == "postgresql"
    with tenant_context(tenant):
        pool = create_goodwill_pool(
            member(tenant, owner), brand=Brand.objects.get(), name="Voucher"
        )
        import_goodwill_codes(member(tenant, owner), pool, text="LAST01")
    conversations = [
        receive(account, item(visibility="private", author=f"c-{i}")).conversation
        for i in range(4)
    ]
    clickers = [agent, admin, owner, agent]
    barrier = threading.Barrier(len(clickers))
    outcomes: list[str] = []

    def click(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            with tenant_context(tenant):
                outcome = send_goodwill_reply(
                    conversations[index],
                    membership=member(tenant, clickers[index]),
                    pool=pool,
                    text=f"Sorry, customer {index}",
                )
            outcomes.append(f"won {outcome.code.code}")
        except PoolEmpty as empty:
            outcomes.append(empty.code)
        finally:
            connection.close()

    threads = [threading.Thread(target=click, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == ["pool_empty", "pool_empty", "pool_empty", "won LAST01"]
    with tenant_context(tenant):
        code = GoodwillCode.objects.get()
        sent = Message.objects.filter(direction="out")
        assert sent.count() == 1
        assert code.message_id == sent.get().pk
        assert "Voucher: LAST01" in sent.get().text
