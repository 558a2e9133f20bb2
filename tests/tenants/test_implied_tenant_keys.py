"""Tables whose workspace key is implied by a composite key (tenants/implied.py).

These tables have no `FOREIGN KEY (tenant_id) REFERENCES tenants_tenant`: helpdesk
migration 0018 dropped it, because a NOT NULL composite key to a parent of the
same workspace already proves that the workspace exists. The guarantees are
proven here: from the database's own catalogue (every tenant table reaches a
direct workspace key through NOT NULL composite keys), from the models (the same
for every model using `implied_tenant_key()`), and by behaviour: a row naming a
workspace that does not exist, or a parent of another workspace, is refused at
COMMIT and leaves nothing behind, and a workspace that still has rows cannot be
deleted, not even by removing every row that has the direct key first.
"""

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from django.apps import apps
from django.db import DatabaseError, connection
from django.db.models import ForeignKey, Model
from psycopg import errors

from helpdesk.models import (
    CareFact,
    Contact,
    Conversation,
    Identity,
    Message,
    ReportHourlyInbound,
)
from tenants.base import TenantForeignKey, TenantModel
from tenants.context import tenant_context
from tenants.models import Brand, Tenant
from tenants.rls import TenantForeignKeyConstraint
from tests.perf.report import conninfo

pytestmark = pytest.mark.django_db(transaction=True)

IMPLIED = {
    "helpdesk_carefact",
    "helpdesk_conversation",
    "helpdesk_identity",
    "helpdesk_message",
    "helpdesk_reportblockbucket",
    "helpdesk_reportbucket",
    "helpdesk_reportdailyagentrollup",
    "helpdesk_reportdailyrollup",
    "helpdesk_reporthourlyinbound",
    "helpdesk_reportrollup",
}
AT = datetime(2026, 12, 1, 9, tzinfo=UTC)
# Refused by a composite key: the tables under test have no other key to refuse it.
TFK_VIOLATION = r'violates foreign key constraint "helpdesk_\w+_tfk"'


def fetch(sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        return list(cursor.fetchall())


def has_direct_key(model: type[Model]) -> bool:
    """Whether the model's `tenant` field keeps its database constraint."""
    return bool(getattr(model._meta.get_field("tenant"), "db_constraint"))  # noqa: B009


def tenant_tables() -> set[str]:
    return {m._meta.db_table for m in apps.get_models() if issubclass(m, TenantModel)}


def test_the_tables_without_a_direct_workspace_key_are_the_implied_ones() -> None:
    direct = {
        table
        for (table,) in fetch(
            "SELECT conrelid::regclass::text FROM pg_constraint "
            "WHERE contype = 'f' AND confrelid = 'tenants_tenant'::regclass "
            "AND conkey = ARRAY[(SELECT attnum FROM pg_attribute "
            "  WHERE attrelid = conrelid AND attname = 'tenant_id')]"
        )
    }
    assert tenant_tables() - direct == IMPLIED


def test_every_tenant_table_reaches_a_direct_workspace_key_in_the_database() -> None:
    """A table is proven when it has the direct key, or a composite key
    (tenant_id, x) -> parent (tenant_id, id) on a NOT NULL x to a proven parent."""
    direct = {
        table
        for (table,) in fetch(
            "SELECT conrelid::regclass::text FROM pg_constraint "
            "WHERE contype = 'f' AND confrelid = 'tenants_tenant'::regclass"
        )
    }
    composite = fetch(
        "SELECT c.conrelid::regclass::text, c.confrelid::regclass::text, c.conname "
        "FROM pg_constraint c "
        "JOIN pg_attribute t ON t.attrelid = c.conrelid AND t.attnum = c.conkey[1] "
        "JOIN pg_attribute x ON x.attrelid = c.conrelid AND x.attnum = c.conkey[2] "
        "JOIN pg_attribute pt ON pt.attrelid = c.confrelid "
        "  AND pt.attnum = c.confkey[1] "
        "JOIN pg_attribute pid ON pid.attrelid = c.confrelid "
        "  AND pid.attnum = c.confkey[2] "
        "WHERE c.contype = 'f' AND cardinality(c.conkey) = 2 "
        "AND t.attname = 'tenant_id' AND pt.attname = 'tenant_id' "
        "AND pid.attname = 'id' AND x.attnotnull AND t.attnotnull"
    )
    proven = set(direct)
    proofs: dict[str, str] = {}
    while True:
        more = {
            table: name
            for table, parent, name in composite
            if parent in proven and table not in proven
        }
        if not more:
            break
        proven |= more.keys()
        proofs |= more
    assert tenant_tables() - proven == set()
    assert sorted(proofs) == sorted(IMPLIED)
    assert proofs["helpdesk_message"] == "helpdesk_message_conversation_tfk"
    assert proofs["helpdesk_identity"] == "helpdesk_identity_contact_tfk"


def test_every_model_without_the_direct_key_has_a_proving_composite_key() -> None:
    def proven(model: type[Model], seen: frozenset[type[Model]]) -> bool:
        assert isinstance(model._meta.get_field("tenant"), ForeignKey)
        if has_direct_key(model):
            return True
        keys = {
            c.field
            for c in model._meta.constraints
            if isinstance(c, TenantForeignKeyConstraint)
        }
        return any(
            isinstance(field, TenantForeignKey)
            and not field.null
            and field.name in keys
            and field.related_model not in seen
            and proven(field.related_model, seen | {model})
            for field in model._meta.concrete_fields
        )

    models = [m for m in apps.get_models() if issubclass(m, TenantModel)]
    implied = {m._meta.db_table for m in models if not has_direct_key(m)}
    assert implied == IMPLIED
    assert [m._meta.db_table for m in models if not proven(m, frozenset())] == []


# --- behaviour -----------------------------------------------------------------

Parents = dict[str, int]
Builder = Callable[[Parents], Model]


def _identity(p: Parents) -> Model:
    return Identity.objects.create(
        contact_id=p["contact"], platform="sandbox", external_id="planted"
    )


def _conversation(p: Parents) -> Model:
    return Conversation.objects.create(
        brand_id=p["brand"], contact_id=p["contact"], platform="sandbox", origin="api"
    )


def _message(p: Parents) -> Model:
    return Message.objects.create(
        conversation_id=p["conversation"],
        platform="sandbox",
        direction="in",
        visibility="public",
        text="planted",
    )


def _care_fact(p: Parents) -> Model:
    return CareFact.objects.create(
        conversation_id=p["conversation"],
        brand_id=p["brand"],
        kind="opened",
        platform="sandbox",
        origin="api",
        sentiment="neutral",
        follower_band="small",
        lane="normal",
        started_at=AT,
    )


def _hourly_inbound(p: Parents) -> Model:
    return ReportHourlyInbound.objects.create(
        brand_id=p["brand"], hour=AT, platform="sandbox", inbound=1
    )


BUILDERS: dict[str, Builder] = {
    "identity": _identity,
    "conversation": _conversation,
    "message": _message,
    "care_fact": _care_fact,
    "hourly_inbound": _hourly_inbound,
}
MODELS: dict[str, type[Model]] = {
    "identity": Identity,
    "conversation": Conversation,
    "message": Message,
    "care_fact": CareFact,
    "hourly_inbound": ReportHourlyInbound,
}


def parents_of(tenant: Tenant) -> Parents:
    with tenant_context(tenant):
        contact = Contact.objects.create(display_name="Jo")
        conversation = Conversation.objects.create(
            brand=Brand.objects.get(), contact=contact, platform="sandbox", origin="api"
        )
        return {
            "brand": conversation.brand_id,
            "contact": contact.pk,
            "conversation": conversation.pk,
        }


def rows_of(tenant_id: int, model: type[Model]) -> list[int]:
    with tenant_context(tenant_id):
        return sorted(model._default_manager.values_list("pk", flat=True))


def missing_tenant_id() -> int:
    (top,) = fetch("SELECT coalesce(max(id), 0) FROM tenants_tenant")[0]
    return int(top) + 1000


@pytest.mark.parametrize("table", sorted(BUILDERS))
def test_a_row_of_the_open_workspace_with_its_own_parents_is_accepted(
    tenant: Tenant, table: str
) -> None:
    parents = parents_of(tenant)
    before = rows_of(tenant.pk, MODELS[table])
    with tenant_context(tenant):
        row = BUILDERS[table](parents)
    assert rows_of(tenant.pk, MODELS[table]) == sorted([*before, row.pk])


@pytest.mark.parametrize("table", sorted(BUILDERS))
def test_a_row_naming_a_workspace_that_does_not_exist_is_refused(
    tenant: Tenant, table: str
) -> None:
    parents = parents_of(tenant)
    missing = missing_tenant_id()
    before = rows_of(tenant.pk, MODELS[table])
    # The setting names the missing workspace, so RLS's WITH CHECK lets the row in;
    # only a key can refuse it, at COMMIT.
    with (
        pytest.raises(DatabaseError, match=TFK_VIOLATION),
        tenant_context(missing),
    ):
        BUILDERS[table](parents)
    assert rows_of(missing, MODELS[table]) == []
    assert rows_of(tenant.pk, MODELS[table]) == before
    assert not Tenant.objects.filter(pk=missing).exists()


@pytest.mark.parametrize("table", sorted(BUILDERS))
def test_a_row_naming_another_workspaces_parent_is_refused(
    tenant: Tenant, other_tenant: Tenant, table: str
) -> None:
    foreign = parents_of(other_tenant)
    before = rows_of(tenant.pk, MODELS[table])
    theirs = rows_of(other_tenant.pk, MODELS[table])
    with (
        pytest.raises(DatabaseError, match=TFK_VIOLATION),
        tenant_context(tenant),
    ):
        BUILDERS[table](foreign)
    assert rows_of(tenant.pk, MODELS[table]) == before
    assert rows_of(other_tenant.pk, MODELS[table]) == theirs


def _counts(owner: psycopg.Connection[Any], tenant_id: int) -> dict[str, int]:
    with owner.transaction():
        owner.execute(f"SET LOCAL app.tenant_id = {int(tenant_id)}")
        counts = {
            table: owner.execute(
                f'SELECT count(*) FROM "{table}" WHERE tenant_id = %s', [tenant_id]
            ).fetchone()[0]  # type: ignore[index]
            for table in ("helpdesk_conversation", "helpdesk_message", "tenants_brand")
        }
        counts["tenant"] = owner.execute(
            "SELECT count(*) FROM tenants_tenant WHERE id = %s", [tenant_id]
        ).fetchone()[0]  # type: ignore[index]
    return counts


def test_a_workspace_with_rows_cannot_be_deleted(tenant: Tenant) -> None:
    parents = parents_of(tenant)
    with tenant_context(tenant):
        _message(parents)
    with psycopg.connect(conninfo("migrator")) as owner:
        before = _counts(owner, tenant.pk)
        assert before == {
            "helpdesk_conversation": 1,
            "helpdesk_message": 1,
            "tenants_brand": 1,
            "tenant": 1,
        }
        with pytest.raises(errors.ForeignKeyViolation), owner.transaction():
            owner.execute("DELETE FROM tenants_tenant WHERE id = %s", [tenant.pk])
        assert _counts(owner, tenant.pk) == before


def _delete_workspace_and_its_direct_rows(
    owner: psycopg.Connection[Any], tenant_id: int, tables: list[str]
) -> None:
    with owner.transaction():
        owner.execute(f"SET LOCAL app.tenant_id = {int(tenant_id)}")
        for table in tables:
            owner.execute(f'DELETE FROM "{table}" WHERE tenant_id = %s', [tenant_id])
        owner.execute(
            "DELETE FROM social_channelroute WHERE tenant_id = %s", [tenant_id]
        )
        owner.execute("DELETE FROM tenants_tenant WHERE id = %s", [tenant_id])


def test_deleting_every_directly_keyed_row_does_not_orphan_the_implied_ones(
    tenant: Tenant,
) -> None:
    """The owner removes the workspace and every row that has the direct key,
    leaving only rows of the implied tables: their composite keys refuse it."""
    parents = parents_of(tenant)
    with tenant_context(tenant):
        _message(parents)
        _care_fact(parents)
        _hourly_inbound(parents)
    direct = sorted(tenant_tables() - IMPLIED)
    with psycopg.connect(conninfo("migrator")) as owner:
        before = _counts(owner, tenant.pk)
        with pytest.raises(errors.ForeignKeyViolation) as refused:
            _delete_workspace_and_its_direct_rows(owner, tenant.pk, direct)
        assert refused.value.diag.table_name in IMPLIED
        assert str(refused.value.diag.constraint_name).endswith("_tfk")
        assert _counts(owner, tenant.pk) == before
