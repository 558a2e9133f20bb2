"""helpdesk.compiled's `fetch`: a compiled shape's rows as values, each where
`columns` says, equal to the instances' attributes; `instances()` makes the
instances `rows()` makes, with no statement."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db.models import Model

from helpdesk.api import LIST_COLUMNS
from helpdesk.compiled import CompiledQuery, Fetched
from helpdesk.inbox_compiled import first_page, first_page_values
from helpdesk.models import Conversation
from helpdesk.services.conversations import update_conversation
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import Brand, Membership, Tenant, User
from tests.factories import make_brand, membership_of
from tests.helpdesk.conftest import item, receive
from tests.statements import count_statements

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


@pytest.fixture
def inbox(tenant: Tenant, owner: User, account: SocialAccount) -> Membership:
    membership = membership_of(tenant, owner)
    for n in range(5):
        result = receive(
            account, item(text=f"Bag {n} lost", author=f"cust-{n}", handle=f"c{n}")
        )
        if n % 2 == 0:
            with tenant_context(tenant):
                update_conversation(
                    result.conversation,
                    membership=membership,
                    tags=["bags", f"n{n}"],
                    assignee=owner,
                )
    return membership


def _attribute(instance: Model, name: str) -> Any:
    # "brand__name": the related object's attribute; None past a missing one.
    value: Any = instance
    for part in name.split("__"):
        if value is None:
            return None
        value = getattr(value, part)
    return value


def _fields(row: Conversation) -> tuple[Any, ...]:
    return tuple(
        _attribute(row, name)
        for name in (
            "id",
            "status",
            "brand__name",
            "social_account__id",
            "contact__display_name",
            "tag_names",
            "assignee__email",
            "queue_key",
            "queue_recent",
            "sla_due_at",
        )
    )


@pytest.mark.parametrize("columns", [None, LIST_COLUMNS], ids=["whole", "listed"])
def test_each_value_is_the_instances_attribute(
    tenant: Tenant, inbox: Membership, columns: tuple[str, ...] | None
) -> None:
    with tenant_context(tenant):
        fetched = first_page_values(
            inbox, filters={"status": None}, size=25, now=NOW, columns=columns
        )
        rows = first_page(
            inbox, filters={"status": None}, size=25, now=NOW, columns=columns
        )
    assert fetched is not None
    assert rows is not None
    assert len(fetched.rows) == len(rows) == 5
    assert {"id", "brand__name", "contact__display_name", "tag_names"} <= set(
        fetched.columns
    )
    assert "attached_contact_0" not in fetched.columns
    for values, row in zip(fetched.rows, rows, strict=True):
        for name, index in fetched.columns.items():
            assert values[index] == _attribute(row, name), name
    tags = [values[fetched.columns["tag_names"]] for values in fetched.rows]
    assert sorted(map(tuple, tags)) == [
        (),
        (),
        ("bags", "n0"),
        ("bags", "n2"),
        ("bags", "n4"),
    ]


def test_instances_are_rows_and_send_no_statement(
    tenant: Tenant, inbox: Membership
) -> None:
    with tenant_context(tenant):
        fetched = first_page_values(
            inbox, filters={}, size=25, now=NOW, columns=LIST_COLUMNS
        )
        assert fetched is not None
        with count_statements() as seen:
            made = fetched.instances()
            head = fetched.head(2)
            two = head.instances()
        rows = first_page(inbox, filters={}, size=25, now=NOW, columns=LIST_COLUMNS)
    assert seen.sql == []
    assert rows is not None
    assert [_fields(row) for row in made] == [_fields(row) for row in rows]
    assert [_fields(row) for row in two] == [_fields(row) for row in rows[:2]]
    assert head.rows == fetched.rows[:2]
    assert len(fetched.rows) == 5


def _brands(name: str) -> Any:
    return Brand.objects.select_related("tenant").filter(name=name).order_by("id")


BRANDS = CompiledQuery(_brands, [str])


def test_converted_values_are_the_fields_values(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    for workspace in (tenant, other_tenant):
        make_brand(workspace, "Shared name")
    with tenant_context(tenant):
        Brand.objects.update(business_hours={"mon": [[9, 17]], "note": "é"})
        fetched: Fetched[Brand] = BRANDS.fetch("Shared name")
        (brand,) = BRANDS.rows("Shared name")
        assert BRANDS.fetch("No such brand").rows == []
    (values,) = fetched.rows
    columns = fetched.columns
    assert values[columns["business_hours"]] == {"mon": [[9, 17]], "note": "é"}
    assert values[columns["tenant__name"]] == tenant.name
    assert values[columns["tenant_id"]] == tenant.pk
    for name, index in columns.items():
        assert values[index] == _attribute(brand, name), name


def test_a_later_time_reads_the_same_shape(tenant: Tenant, inbox: Membership) -> None:
    with tenant_context(tenant):
        now = first_page_values(inbox, filters={}, size=3, now=NOW)
        later = first_page_values(
            inbox, filters={}, size=3, now=NOW + timedelta(days=30)
        )
    assert now is not None
    assert later is not None
    assert later.columns is now.columns
    assert len(now.rows) == len(later.rows) == 4
