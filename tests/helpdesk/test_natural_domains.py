"""The write path's non-negative integers are never negative, and the database
says so (migration 0020): on PostgreSQL through the domains `helpdesk_natural`
and `helpdesk_small_natural`, on SQLite through each column's own CHECK, as
before. A negative value is refused by an INSERT, an UPDATE and an upsert (both
the row it proposes and its DO UPDATE), and nothing changes."""

from datetime import UTC, date, datetime
from typing import Any

import pytest
from django.apps import apps
from django.db import IntegrityError, connection, models, transaction
from django.db.backends.sqlite3.base import DatabaseWrapper as SQLiteWrapper

from helpdesk.models import (
    CareFact,
    Contact,
    Conversation,
    Identity,
    Message,
    ReportBlockBucket,
)
from helpdesk.models.fields import (
    NATURAL_DOMAIN,
    SMALL_NATURAL_DOMAIN,
    NaturalField,
    SmallNaturalField,
)
from tenants.context import tenant_context
from tenants.models import Tenant
from tests.helpdesk.report_support import first_brand

AT = datetime(2026, 3, 2, 9, tzinfo=UTC)
MODELS: tuple[type[models.Model], ...] = (
    Conversation,
    CareFact,
    Message,
    Identity,
    ReportBlockBucket,
)
# Model -> its columns of each domain.
DOMAIN_COLUMNS: dict[type[models.Model], dict[str, str]] = {
    Conversation: {
        "public_reply_count": NATURAL_DOMAIN,
        "customer_message_count": NATURAL_DOMAIN,
        "priority": SMALL_NATURAL_DOMAIN,
        "sla_used_seconds": NATURAL_DOMAIN,
        "sla_target_seconds": NATURAL_DOMAIN,
        "engagement_total": NATURAL_DOMAIN,
    },
    CareFact: {
        "raw_seconds": NATURAL_DOMAIN,
        "business_seconds": NATURAL_DOMAIN,
        "target_seconds": NATURAL_DOMAIN,
    },
    Message: {"attempts": SMALL_NATURAL_DOMAIN},
    Identity: {"followers": NATURAL_DOMAIN},
    ReportBlockBucket: {"span": SMALL_NATURAL_DOMAIN},
}


def refusal(domain: str) -> tuple[str, str, str]:
    constraint = f"{domain}_not_negative"
    return (
        "23514",
        f'value for domain {domain} violates check constraint "{constraint}"',
        constraint,
    )


def naturals(model: type[models.Model]) -> list[str]:
    return [
        field.attname
        for field in model._meta.concrete_fields
        if isinstance(field, NaturalField | SmallNaturalField)
    ]


def fetch(sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        return list(cursor.fetchall())


def tables(tenant: Tenant) -> dict[str, list[dict[str, Any]]]:
    """Every row of the tenant's tables of MODELS."""
    with tenant_context(tenant):
        return {
            model._meta.db_table: list(
                model.objects.order_by("id").values()  # type: ignore[attr-defined]
            )
            for model in MODELS
        }


def refused(error: pytest.ExceptionInfo[IntegrityError]) -> tuple[str, str, str]:
    diag = error.value.__cause__.diag  # type: ignore[union-attr]
    return diag.sqlstate, diag.message_primary, diag.constraint_name


def row_values(tenant: Tenant) -> dict[type[models.Model], dict[str, Any]]:
    """What one valid row of each model is created from (every natural 3)."""
    brand = first_brand(tenant)
    with tenant_context(tenant):
        contact = Contact.objects.create(display_name="Customer")
        conversation = Conversation.objects.create(
            brand=brand, contact=contact, platform="x", origin="mention"
        )
    dimensions = {"platform": "x", "origin": "mention", "sentiment": "neutral"}
    values: dict[type[models.Model], dict[str, Any]] = {
        Conversation: {"brand": brand, "contact": contact, **dimensions},
        CareFact: {
            "conversation": conversation,
            "kind": "opened",
            "brand": brand,
            "follower_band": "small",
            "lane": "normal",
            "started_at": AT,
            **dimensions,
        },
        Message: {
            "conversation": conversation,
            "platform": "x",
            "direction": "out",
            "visibility": "public",
            "kind": "reply",
            "text": "hello",
        },
        Identity: {"contact": contact, "platform": "x", "external_id": "cust-1"},
        ReportBlockBucket: {
            "brand": brand,
            "metric": "first_raw",
            "day": date(2026, 3, 2),
            "key": 7,
            "count": 1,
        },
    }
    for model, fields in values.items():
        fields.update(dict.fromkeys(naturals(model), 3))
    return values


def one_row(tenant: Tenant, model: type[models.Model]) -> models.Model:
    fields = row_values(tenant)[model]
    with tenant_context(tenant):
        row: models.Model = model.objects.create(**fields)  # type: ignore[attr-defined]
    return row


@pytest.mark.django_db
def test_every_natural_column_is_of_its_domain_and_has_no_check_of_its_own() -> None:
    declared = {
        (model._meta.db_table, field.column)
        for model in apps.get_models()
        for field in model._meta.concrete_fields
        if isinstance(field, NaturalField | SmallNaturalField)
    }
    expected = {
        (model._meta.db_table, column, domain)
        for model, columns in DOMAIN_COLUMNS.items()
        for column, domain in columns.items()
    }
    assert declared == {(table, column) for table, column, _ in expected}
    assert len(expected) == 12
    typed = fetch(
        "SELECT table_name, column_name, domain_name FROM information_schema.columns "
        "WHERE domain_name = ANY(%s)",
        [[NATURAL_DOMAIN, SMALL_NATURAL_DOMAIN]],
    )
    assert set(typed) == expected
    assert len(typed) == len(expected)
    checks = fetch(
        "SELECT conrelid::regclass::text, pg_get_constraintdef(oid) "
        "FROM pg_constraint WHERE conrelid = ANY(%s::regclass[]) AND contype = 'c'",
        [[model._meta.db_table for model in MODELS]],
    )
    assert checks == []
    domains = fetch(
        "SELECT t.typname, format_type(t.typbasetype, NULL), t.typnotnull, "
        "c.conname, pg_get_constraintdef(c.oid), c.convalidated FROM pg_type t "
        "JOIN pg_constraint c ON c.contypid = t.oid WHERE t.typname = ANY(%s) "
        "ORDER BY t.typname",
        [[NATURAL_DOMAIN, SMALL_NATURAL_DOMAIN]],
    )
    assert domains == [
        (
            NATURAL_DOMAIN,
            "integer",
            False,
            f"{NATURAL_DOMAIN}_not_negative",
            "CHECK ((VALUE >= 0))",
            True,
        ),
        (
            SMALL_NATURAL_DOMAIN,
            "smallint",
            False,
            f"{SMALL_NATURAL_DOMAIN}_not_negative",
            "CHECK ((VALUE >= 0))",
            True,
        ),
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_a_new_row_with_a_negative_value_is_refused(
    tenant: Tenant, model: type[models.Model]
) -> None:
    fields = row_values(tenant)[model]
    before = tables(tenant)
    outcomes = []
    for column in DOMAIN_COLUMNS[model]:
        with (
            tenant_context(tenant),
            pytest.raises(IntegrityError) as error,
            transaction.atomic(),
        ):
            model.objects.create(**{**fields, column: -1})  # type: ignore[attr-defined]
        outcomes.append((column, refused(error)))
    assert outcomes == [
        (column, refusal(domain)) for column, domain in DOMAIN_COLUMNS[model].items()
    ]
    assert tables(tenant) == before


@pytest.mark.django_db
@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_no_value_can_be_updated_below_zero(
    tenant: Tenant, model: type[models.Model]
) -> None:
    row = one_row(tenant, model)
    before = tables(tenant)
    outcomes = []
    for column in DOMAIN_COLUMNS[model]:
        with (
            tenant_context(tenant),
            pytest.raises(IntegrityError) as error,
            transaction.atomic(),
        ):
            model.objects.filter(pk=row.pk).update(  # type: ignore[attr-defined]
                **{column: models.F(column) - 4}
            )
        outcomes.append((column, refused(error)))
    assert outcomes == [
        (column, refusal(domain)) for column, domain in DOMAIN_COLUMNS[model].items()
    ]
    assert tables(tenant) == before
    (stored,) = [r for r in before[model._meta.db_table] if r["id"] == row.pk]
    assert [stored[column] for column in DOMAIN_COLUMNS[model]] == [3] * len(
        DOMAIN_COLUMNS[model]
    )


@pytest.mark.django_db
@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_an_upsert_cannot_store_a_negative_value(
    tenant: Tenant, model: type[models.Model]
) -> None:
    """Neither through the row an upsert proposes (Django's bulk_create with
    update_conflicts) nor through its DO UPDATE (from the stored value)."""
    row = one_row(tenant, model)
    before = tables(tenant)
    table = connection.ops.quote_name(model._meta.db_table)
    proposed, updated = [], []
    for column in DOMAIN_COLUMNS[model]:
        with tenant_context(tenant):
            clone = model.objects.get(pk=row.pk)  # type: ignore[attr-defined]
        setattr(clone, column, -1)
        with (
            tenant_context(tenant),
            pytest.raises(IntegrityError) as error,
            transaction.atomic(),
        ):
            model.objects.bulk_create(  # type: ignore[attr-defined]
                [clone],
                update_conflicts=True,
                unique_fields=["id"],
                update_fields=[column],
            )
        proposed.append((column, refused(error)))
        name = connection.ops.quote_name(column)
        with (
            tenant_context(tenant),
            pytest.raises(IntegrityError) as error,
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(
                f"INSERT INTO {table} SELECT * FROM {table} "
                f'WHERE {table}."tenant_id" = %s AND id = %s '
                f"ON CONFLICT (id) DO UPDATE SET {name} = {table}.{name} - 4",
                [tenant.pk, row.pk],
            )
        updated.append((column, refused(error)))
    expected = [
        (column, refusal(domain)) for column, domain in DOMAIN_COLUMNS[model].items()
    ]
    assert (proposed, updated) == (expected, expected)
    assert tables(tenant) == before


@pytest.mark.django_db
@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_zero_and_null_are_stored_as_before(
    tenant: Tenant, model: type[models.Model]
) -> None:
    row = one_row(tenant, model)
    columns = DOMAIN_COLUMNS[model]
    nullable = [c for c in columns if model._meta.get_field(c).null]
    assert bool(nullable) == (model in (Conversation, CareFact))
    q = connection.ops.quote_name
    table = q(model._meta.db_table)
    with tenant_context(tenant):
        model.objects.filter(pk=row.pk).update(  # type: ignore[attr-defined]
            **{column: models.F(column) - 3 for column in columns}
        )
        zeros = model.objects.filter(pk=row.pk).values(*columns).get()  # type: ignore[attr-defined]
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} SELECT * FROM {table} "
                f'WHERE {table}."tenant_id" = %s AND id = %s '
                "ON CONFLICT (id) DO UPDATE SET "
                + ", ".join(f"{q(c)} = {table}.{q(c)} + 5" for c in columns),
                [tenant.pk, row.pk],
            )
        fives = model.objects.filter(pk=row.pk).values(*columns).get()  # type: ignore[attr-defined]
        nulls = {}
        if nullable:
            model.objects.filter(pk=row.pk).update(**dict.fromkeys(nullable))  # type: ignore[attr-defined]
            nulls = model.objects.filter(pk=row.pk).values(*nullable).get()  # type: ignore[attr-defined]
    assert zeros == dict.fromkeys(columns, 0)
    assert fives == dict.fromkeys(columns, 5)
    assert nulls == dict.fromkeys(nullable)


def test_on_sqlite_a_natural_is_a_positive_integer_with_its_own_check() -> None:
    sqlite = SQLiteWrapper({"NAME": ":memory:", "OPTIONS": {}, "TIME_ZONE": None})
    for natural, positive, domain in (
        (
            NaturalField(default=0),
            models.PositiveIntegerField(default=0),
            NATURAL_DOMAIN,
        ),
        (
            SmallNaturalField(default=0),
            models.PositiveSmallIntegerField(default=0),
            SMALL_NATURAL_DOMAIN,
        ),
    ):
        natural.set_attributes_from_name("value")
        positive.set_attributes_from_name("value")
        assert natural.db_parameters(sqlite) == positive.db_parameters(sqlite)
        assert natural.db_parameters(sqlite)["check"] == '"value" >= 0'
        assert natural.db_parameters(connection) == {"type": domain, "check": None}
