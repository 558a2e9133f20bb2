"""The report tables' counters are never negative, and the database says so
(migration 0019): on PostgreSQL through the domain `helpdesk_counter`, on SQLite
through each column's own CHECK, as before."""

from datetime import UTC, date, datetime
from typing import Any

import pytest
from django.db import IntegrityError, connection, models, transaction
from django.db.backends.sqlite3.base import DatabaseWrapper as SQLiteWrapper

from helpdesk.models import (
    ReportBlockBucket,
    ReportBucket,
    ReportDailyAgentRollup,
    ReportDailyRollup,
    ReportHourlyInbound,
    ReportRollup,
)
from helpdesk.models.performance import COUNTER_DOMAIN, CounterField
from helpdesk.services import rollups
from tenants.context import tenant_context
from tenants.models import Brand, Tenant
from tests.helpdesk.report_support import first_brand

HOUR = datetime(2026, 3, 2, 9, tzinfo=UTC)
DAY = date(2026, 3, 2)
REPORT_MODELS: tuple[type[models.Model], ...] = (
    ReportRollup,
    ReportDailyRollup,
    ReportDailyAgentRollup,
    ReportHourlyInbound,
    ReportBucket,
    ReportBlockBucket,
)
CONSTRAINT = f"{COUNTER_DOMAIN}_not_negative"
REFUSED = (
    "23514",
    f'value for domain {COUNTER_DOMAIN} violates check constraint "{CONSTRAINT}"',
    CONSTRAINT,
)


def counters(model: type[models.Model]) -> list[str]:
    return [
        field.attname
        for field in model._meta.concrete_fields
        if isinstance(field, CounterField)
    ]


def fetch(sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        return list(cursor.fetchall())


def dims(tenant: Tenant, brand: Brand) -> dict[str, Any]:
    return {
        "tenant_id": tenant.pk,
        "hour": HOUR,
        "brand_id": brand.pk,
        "account_id": 0,
        "platform": "x",
        "origin": "mention",
        "sentiment": "neutral",
        "agent_id": 0,
        "follower_band": "small",
    }


def tables(tenant: Tenant) -> dict[str, list[dict[str, Any]]]:
    """Every row of the tenant's report tables, without ids."""
    with tenant_context(tenant):
        return {
            model._meta.db_table: sorted(
                (
                    {k: v for k, v in row.items() if k != "id"}
                    for row in model.objects.values()  # type: ignore[attr-defined]
                ),
                key=repr,
            )
            for model in REPORT_MODELS
        }


def refused(error: pytest.ExceptionInfo[IntegrityError]) -> tuple[str, str, str]:
    diag = error.value.__cause__.diag  # type: ignore[union-attr]
    return diag.sqlstate, diag.message_primary, diag.constraint_name


@pytest.mark.django_db
def test_every_counter_column_is_of_the_domain_and_has_no_check_of_its_own() -> None:
    names = [model._meta.db_table for model in REPORT_MODELS]
    typed = fetch(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_name = ANY(%s) AND domain_name = %s",
        [names, COUNTER_DOMAIN],
    )
    expected = {
        (model._meta.db_table, column)
        for model in REPORT_MODELS
        for column in counters(model)
    }
    assert len(expected) == 18 + 18 + 4 + 1 + 1 + 1
    assert set(typed) == expected
    assert len(typed) == len(expected)
    checks = fetch(
        "SELECT conrelid::regclass::text, pg_get_constraintdef(oid) "
        "FROM pg_constraint WHERE conrelid = ANY(%s::regclass[]) AND contype = 'c'",
        [names],
    )
    # The block span is a dimension and keeps its own.
    assert checks == [("helpdesk_reportblockbucket", "CHECK ((span >= 0))")]
    domain = fetch(
        "SELECT format_type(t.typbasetype, NULL), t.typnotnull, c.conname, "
        "pg_get_constraintdef(c.oid), c.convalidated FROM pg_type t "
        "JOIN pg_constraint c ON c.contypid = t.oid WHERE t.typname = %s",
        [COUNTER_DOMAIN],
    )
    assert domain == [
        (
            "integer",
            False,
            f"{COUNTER_DOMAIN}_not_negative",
            "CHECK ((VALUE >= 0))",
            True,
        )
    ]


@pytest.mark.django_db
def test_a_new_cell_with_a_negative_counter_is_refused(tenant: Tenant) -> None:
    brand = first_brand(tenant)
    before = tables(tenant)
    with (
        tenant_context(tenant),
        pytest.raises(IntegrityError) as error,
        transaction.atomic(),
    ):
        rollups.upsert_rollup(dims(tenant, brand), {"inbound": -1})
    assert refused(error) == REFUSED
    assert tables(tenant) == before
    assert all(rows == [] for rows in before.values())


@pytest.mark.django_db
def test_an_upsert_that_would_take_a_counter_below_zero_is_refused(
    tenant: Tenant,
) -> None:
    brand = first_brand(tenant)
    with tenant_context(tenant):
        rollups.upsert_rollup(dims(tenant, brand), {"inbound": 1, "opened": 1})
    before = tables(tenant)
    with (
        tenant_context(tenant),
        pytest.raises(IntegrityError) as error,
        transaction.atomic(),
    ):
        rollups.upsert_rollup(dims(tenant, brand), {"inbound": -2})
    assert refused(error) == REFUSED
    assert tables(tenant) == before
    (hourly,) = before["helpdesk_reportrollup"]
    (daily,) = before["helpdesk_reportdailyrollup"]
    (inbound,) = before["helpdesk_reporthourlyinbound"]
    assert (hourly["inbound"], hourly["opened"]) == (1, 1)
    assert (daily["inbound"], daily["opened"]) == (1, 1)
    assert inbound["inbound"] == 1


def _one_row(model: type[models.Model], brand: Brand) -> models.Model:
    cell: dict[str, Any] = {"brand": brand, "platform": "x"}
    if model in (ReportRollup, ReportBucket):
        cell.update(hour=HOUR, origin="mention", sentiment="neutral")
        cell["follower_band"] = "small"
    if model is ReportDailyRollup:
        cell.update(day=DAY, origin="mention", sentiment="neutral")
    if model is ReportDailyAgentRollup:
        cell.update(day=DAY, follower_band="small")
    if model is ReportHourlyInbound:
        cell.update(hour=HOUR)
    if model is ReportBucket:
        cell.update(metric="first_raw", key=7)
    if model is ReportBlockBucket:
        del cell["platform"]
        cell.update(metric="first_raw", span=4, day=DAY, key=7)
    values = dict.fromkeys(counters(model), 3)
    row: models.Model = model.objects.create(**cell, **values)  # type: ignore[attr-defined]
    return row


@pytest.mark.django_db
@pytest.mark.parametrize("model", REPORT_MODELS, ids=lambda m: m.__name__)
def test_no_counter_of_a_report_table_can_be_set_below_zero(
    tenant: Tenant, model: type[models.Model]
) -> None:
    brand = first_brand(tenant)
    with tenant_context(tenant):
        row = _one_row(model, brand)
    before = tables(tenant)
    outcomes = []
    for column in counters(model):
        with (
            tenant_context(tenant),
            pytest.raises(IntegrityError) as error,
            transaction.atomic(),
        ):
            model.objects.filter(pk=row.pk).update(  # type: ignore[attr-defined]
                **{column: models.F(column) - 4}
            )
        outcomes.append(refused(error))
    assert outcomes == [REFUSED] * len(counters(model))
    assert tables(tenant) == before
    (stored,) = before[model._meta.db_table]
    assert [stored[column] for column in counters(model)] == [3] * len(counters(model))


def test_on_sqlite_a_counter_is_a_positive_integer_with_its_own_check() -> None:
    sqlite = SQLiteWrapper({"NAME": ":memory:", "OPTIONS": {}, "TIME_ZONE": None})
    counter = ReportRollup._meta.get_field("inbound")
    positive = models.PositiveIntegerField(default=0)
    positive.set_attributes_from_name("inbound")
    assert counter.db_parameters(sqlite) == positive.db_parameters(sqlite)
    assert counter.db_parameters(sqlite)["check"] == '"inbound" >= 0'
    assert counter.db_parameters(connection) == {
        "type": COUNTER_DOMAIN,
        "check": None,
    }
