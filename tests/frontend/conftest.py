"""Fixtures of the inbox pages: a sandbox account, customers' posts recorded through
the real inbound service, and deliveries captured instead of run."""

from datetime import datetime
from typing import Any

import pytest

from helpdesk import tasks
from helpdesk.models import Conversation
from social.models import SocialAccount
from tenants.models import Tenant
from tests.helpdesk.conftest import item, make_account, receive


@pytest.fixture(autouse=True)
def deliveries(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Replies stay in their hold: what post_reply enqueues is captured, not sent."""
    calls: list[Any] = []

    def capture(args: tuple[int, int], eta: datetime | None = None, **_: Any) -> None:
        calls.append((args, eta))

    monkeypatch.setattr(tasks.deliver_message, "apply_async", capture)
    return calls


@pytest.fixture
def account(tenant: Tenant) -> SocialAccount:
    return make_account(tenant)


def customer_post(account: SocialAccount, **kwargs: Any) -> Conversation:
    """A customer's public post (or DM with visibility="private") to the account."""
    return receive(account, item(**kwargs)).conversation
