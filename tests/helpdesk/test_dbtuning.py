"""psycopg keeps the write path's long statements in its cache of parsed statements."""

import pytest
from psycopg import _queries
from rest_framework.test import APIClient

from helpdesk.dbtuning import (
    STATEMENT_CHARACTERS,
    STATEMENT_PARAMETERS,
    widen_statement_cache,
)
from social.api_channel import create_api_channel
from tenants.context import tenant_context
from tenants.models import Brand, Tenant, User
from tests.api_clients import base, token_client
from tests.factories import membership_of


def test_the_limits_are_raised_at_start_up() -> None:
    assert widen_statement_cache() is True
    assert _queries.MAX_CACHED_STATEMENT_LENGTH == STATEMENT_CHARACTERS
    assert _queries.MAX_CACHED_STATEMENT_PARAMS == STATEMENT_PARAMETERS


@pytest.mark.django_db
def test_a_second_create_parses_no_statement_again(
    tenant: Tenant, owner: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    with tenant_context(tenant):
        channel = create_api_channel(
            membership_of(tenant, owner), brand=Brand.objects.get(), name="Chat"
        )
    client: APIClient = token_client(tenant, owner, "admin")
    url = f"{base(tenant)}/channels/{channel.pk}/messages/"

    def push(n: int) -> int:
        body = {
            "external_id": f"m-{n}",
            "text": "Where is it?",
            "author": {"id": f"a{n}"},
        }
        return client.post(url, body, format="json").status_code

    assert push(1) == 201
    splits: list[int] = []
    real_split = _queries._split_query

    def counting_split(*args: object, **kwargs: object) -> object:
        splits.append(1)
        return real_split(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(_queries, "_split_query", counting_split)
    assert push(2) == 201
    assert splits == []
