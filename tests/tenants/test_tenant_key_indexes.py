"""The indexes of the composite tenant keys (tenants.rls.TenantForeignKeyConstraint).

A key indexes `(tenant_id, <key>_id)` unless `indexed_by` names an index of its
model that starts with those columns and serves the same lookups (PostgreSQL's
check when a parent row is deleted, Django's cascade). The system check
tenants.E003 refuses a key left without such an index; the keys that still keep an
index another one already serves are listed here, so a new one fails a test.
"""

from collections.abc import Iterator
from typing import Any, cast

import pytest
from django.apps import AppConfig, apps
from django.db import connection, models
from django.db.backends.utils import truncate_name
from django.db.models import Q
from django.db.models.functions import Lower
from django.test.utils import isolate_apps

from helpdesk.models import CareFact
from tenants.base import TenantForeignKey, TenantModel, tenant_constraints
from tenants.checks import (
    check_tenant_key_indexes,
    redundant_tenant_key_indexes,
    tenant_key_index_problems,
)
from tenants.rls import TenantForeignKeyConstraint

# The keys that keep no index of their own, and the index that serves each.
INDEXED_BY = {
    "helpdesk_carefact_conversation_tfk": "helpdesk_fact_conv_ix",
    "helpdesk_carefact_brand_tfk": "helpdesk_fact_brand_ix",
    "helpdesk_message_conversation_tfk": "helpdesk_msg_thread_ix",
    "helpdesk_conversation_social_account_tfk": "helpdesk_conv_thread_ix",
}
# Keys whose own index another index of the table already serves (it starts with
# the same two columns), each with that index. Each is written on every insert for
# nothing; to drop one, give its key `indexed_by` in a migration (as helpdesk
# 0020) and take it off this list.
STILL_REDUNDANT = {
    "advocacy_advocateevidence_contact_tfk": "advocacy_evidence_contact_ix",
    "advocacy_advocateevidence_message_tfk": "advocacy_evidence_message_uniq",
    "advocacy_advocatesuggestion_contact_tfk": "advocacy_suggestion_contact_uniq",
    "advocacy_competitormention_rule_tfk": "advocacy_mention_item_uniq",
    "goodwill_goodwillcode_message_tfk": "goodwill_code_message_ix",
    "goodwill_goodwillcode_pool_tfk": "goodwill_code_pool_uniq",
    "goodwill_goodwillpool_brand_tfk": "goodwill_pool_name_uniq",
    "helpdesk_conversationtag_conversation_tfk": "helpdesk_convtag_uniq",
    "helpdesk_reportblockbucket_brand_tfk": "helpdesk_block_cell_uniq",
    "helpdesk_reportbucket_brand_tfk": "helpdesk_bucket_ix",
    "helpdesk_reportdailyagentrollup_brand_tfk": "helpdesk_daily_agent_ix",
    "helpdesk_reportdailyrollup_brand_tfk": "helpdesk_daily_cell_uniq",
    "helpdesk_reporthourlyinbound_brand_tfk": "helpdesk_hourly_inbound_uniq",
    "helpdesk_reportrollup_brand_tfk": "helpdesk_rollup_ix",
    "helpdesk_webhookdelivery_endpoint_tfk": "helpdesk_whdelivery_event_uniq",
    "incidents_incidententry_incident_tfk": "incidents_entry_ix",
    "incidents_incidentlink_conversation_tfk": "incidents_link_conv_ix",
    "incidents_incidentlink_incident_tfk": "incidents_link_uniq",
    "incidents_incidentupdate_incident_tfk": "incidents_update_key_uniq",
    "incidents_updaterecipient_update_tfk": "incidents_recipient_ix",
    "social_postengagement_account_tfk": "social_post_engagement_uniq",
    "social_waitingitem_account_tfk": "social_waiting_thread_ix",
    "spikes_spikecount_brand_tfk": "spikes_count_cell_uniq",
    "tenants_apitoken_membership_tfk": "tenants_apitoken_member_ix",
    "tenants_holiday_brand_tfk": "tenants_holiday_ix",
    "tenants_slapolicy_brand_tfk": "tenants_slapolicy_brand_uniq",
}
# The indexes a key's index may be replaced by, and the ones it may not.
CANDIDATES: dict[str, models.Index | models.UniqueConstraint] = {
    "node_serves_ix": models.Index(
        fields=["tenant", "parent", "created_at"], name="node_serves_ix"
    ),
    "node_serves_uniq": models.UniqueConstraint(
        fields=["tenant", "parent", "name"], name="node_serves_uniq"
    ),
    "node_set_keys_ix": models.Index(
        fields=["tenant", "parent"],
        condition=Q(parent__isnull=False),
        name="node_set_keys_ix",
    ),
    "node_partial_ix": models.Index(
        fields=["tenant", "parent"], condition=Q(name="x"), name="node_partial_ix"
    ),
    "node_order_ix": models.Index(fields=["parent", "tenant"], name="node_order_ix"),
    "node_tenant_ix": models.Index(
        fields=["tenant", "created_at", "parent"], name="node_tenant_ix"
    ),
    "node_lower_ix": models.Index(Lower("name"), name="node_lower_ix"),
}


def tenant_models() -> list[type[models.Model]]:
    return [m for m in apps.get_models() if issubclass(m, TenantModel)]


@pytest.fixture
def isolated() -> Iterator[Any]:
    with isolate_apps("tenants") as registry:
        yield registry


def node_model(index: str, **key: str) -> type[models.Model]:
    """A tenant model with a key to itself and the index CANDIDATES[index];
    `key` is passed to tenant_constraints (indexed_by)."""
    indexed_by = {"parent": key["indexed_by"]} if key else None
    candidate = CANDIDATES[index]
    is_index = isinstance(candidate, models.Index)

    class Meta:
        app_label = "tenants"
        constraints = [
            *tenant_constraints(fks=["parent"], indexed_by=indexed_by),
            *([] if is_index else [candidate]),
        ]
        indexes = [candidate] if is_index else []

    attrs = {
        "__module__": __name__,
        "Meta": Meta,
        "parent": TenantForeignKey("self", on_delete=models.CASCADE, null=True),
        "name": models.CharField(max_length=20),
        "created_at": models.DateTimeField(),
    }
    return cast(type[models.Model], type(f"Node_{index}", (TenantModel,), attrs))


def test_every_key_without_an_index_of_its_own_names_one_that_serves_it() -> None:
    declared = {
        key.name: key.indexed_by
        for model in tenant_models()
        for key in model._meta.constraints
        if isinstance(key, TenantForeignKeyConstraint) and key.indexed_by
    }

    assert declared == INDEXED_BY
    assert tenant_key_index_problems(tenant_models()) == []
    assert check_tenant_key_indexes() == []


def test_the_check_refuses_an_index_that_does_not_serve_the_key(isolated: Any) -> None:
    refused = {
        name: node_model(name, indexed_by=name)
        for name in CANDIDATES
        if name not in ("node_serves_ix", "node_serves_uniq", "node_set_keys_ix")
    }
    unknown = node_model("node_serves_ix", indexed_by="node_gone_ix")
    key = "tenants_node_{}_parent_tfk"

    problems = tenant_key_index_problems([*refused.values(), unknown])
    errors = check_tenant_key_indexes(
        app_configs=[cast(AppConfig, isolated.get_app_config("tenants"))]
    )

    assert problems == [
        f"tenants.Node_node_partial_ix: {key.format('node_partial_ix')} is indexed"
        " by node_partial_ix, which is partial, other than parent IS NOT NULL",
        f"tenants.Node_node_order_ix: {key.format('node_order_ix')} is indexed"
        " by node_order_ix, which starts with (parent_id, tenant_id), not"
        " (tenant_id, parent_id)",
        f"tenants.Node_node_tenant_ix: {key.format('node_tenant_ix')} is indexed"
        " by node_tenant_ix, which starts with (tenant_id, created_at), not"
        " (tenant_id, parent_id)",
        f"tenants.Node_node_lower_ix: {key.format('node_lower_ix')} is indexed"
        " by node_lower_ix, which is on expressions",
        f"tenants.Node_node_serves_ix: {key.format('node_serves_ix')} is indexed"
        " by node_gone_ix, which is not an index or unique constraint of its Meta",
    ]
    assert [error.id for error in errors] == ["tenants.E003"] * 5
    assert [error.msg.split(": PostgreSQL")[0] for error in errors] == problems


def test_an_index_or_unique_key_that_starts_with_the_key_serves_it(
    isolated: Any,
) -> None:
    served = [
        node_model("node_serves_ix", indexed_by="node_serves_ix"),
        node_model("node_serves_uniq", indexed_by="node_serves_uniq"),
        node_model("node_set_keys_ix", indexed_by="node_set_keys_ix"),
    ]

    assert tenant_key_index_problems(served) == []
    assert redundant_tenant_key_indexes(served) == {}


def test_a_key_that_keeps_an_index_another_serves_is_listed(isolated: Any) -> None:
    keeping = [node_model(name) for name in CANDIDATES]

    assert redundant_tenant_key_indexes(keeping) == {
        "tenants_node_node_serves_ix_parent_tfk": "node_serves_ix",
        "tenants_node_node_serves_uniq_parent_tfk": "node_serves_uniq",
        "tenants_node_node_set_keys_ix_parent_tfk": "node_set_keys_ix",
    }
    assert tenant_key_index_problems(keeping) == []


def test_the_keys_that_still_keep_a_redundant_index() -> None:
    assert redundant_tenant_key_indexes(tenant_models()) == STILL_REDUNDANT


def test_indexed_by_names_only_keys_of_the_model() -> None:
    with pytest.raises(
        ValueError, match=r"indexed_by names keys not in fks: \['brand'\]"
    ):
        tenant_constraints(fks=["conversation"], indexed_by={"brand": "some_ix"})


def test_a_key_indexed_by_another_index_creates_and_drops_no_index() -> None:
    def sql(model: type[models.Model], name: str) -> tuple[list[str], str]:
        [key] = [c for c in model._meta.constraints if c.name == name]
        with connection.schema_editor(collect_sql=True, atomic=False) as editor:
            assert key.create_sql(model, editor) is None
            removed = key.remove_sql(model, editor)
            created = [str(statement) for statement in editor.deferred_sql]
        assert removed is not None
        return created, str(removed)

    served = sql(CareFact, "helpdesk_carefact_brand_tfk")
    own = sql(CareFact, "helpdesk_carefact_account_tfk")

    assert served == (
        [
            'ALTER TABLE "helpdesk_carefact" ADD CONSTRAINT'
            ' "helpdesk_carefact_brand_tfk" FOREIGN KEY (tenant_id, "brand_id")'
            ' REFERENCES "tenants_brand" (tenant_id, id) DEFERRABLE INITIALLY DEFERRED'
        ],
        'ALTER TABLE "helpdesk_carefact" DROP CONSTRAINT IF EXISTS'
        ' "helpdesk_carefact_brand_tfk"',
    )
    assert own == (
        [
            'ALTER TABLE "helpdesk_carefact" ADD CONSTRAINT'
            ' "helpdesk_carefact_account_tfk" FOREIGN KEY (tenant_id, "account_id")'
            ' REFERENCES "social_socialaccount" (tenant_id, id)'
            " DEFERRABLE INITIALLY DEFERRED",
            'CREATE INDEX "helpdesk_carefact_account_tfk_ix" ON "helpdesk_carefact"'
            ' (tenant_id, "account_id")',
        ],
        'ALTER TABLE "helpdesk_carefact" DROP CONSTRAINT IF EXISTS'
        ' "helpdesk_carefact_account_tfk"; DROP INDEX IF EXISTS'
        ' "helpdesk_carefact_account_tfk_ix"',
    )


@pytest.mark.django_db
def test_every_composite_key_in_the_database_has_an_index_that_serves_it() -> None:
    # Each key's columns lead an index that covers every row with the key set:
    # no predicate, or `<column> IS NOT NULL` (migration 0016's message indexes).
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.conname, t.relname, a.attname,
                array_agg(i.relname ORDER BY i.relname) FILTER (
                    WHERE ix.indkey[0] = c.conkey[1] AND ix.indkey[1] = c.conkey[2]
                    AND (ix.indpred IS NULL OR pg_get_expr(ix.indpred, ix.indrelid)
                         = '(' || a.attname || ' IS NOT NULL)')
                )
            FROM pg_constraint c
            JOIN pg_class t ON t.oid = c.conrelid
            JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[2]
            LEFT JOIN pg_index ix ON ix.indrelid = c.conrelid
            LEFT JOIN pg_class i ON i.oid = ix.indexrelid
            WHERE c.contype = 'f' AND c.conname LIKE '%\\_tfk'
                AND t.relnamespace = 'public'::regnamespace
            GROUP BY c.conname, t.relname, a.attname
            """
        )
        keys = {name: (table, column, found) for name, table, column, found in cursor}
    declared = {
        key.name: key
        for model in tenant_models()
        for key in model._meta.constraints
        if isinstance(key, TenantForeignKeyConstraint)
    }

    assert set(keys) == set(declared)
    assert {name for name, (*_key, found) in keys.items() if not found} == set()
    # The keys that keep no index of their own: only the named index serves them.
    assert {name: keys[name][2] for name in INDEXED_BY} == {
        name: [index] for name, index in INDEXED_BY.items()
    }
    # The others are served by their own index (and perhaps another).
    assert {
        name
        for name, (*_key, found) in keys.items()
        if name not in INDEXED_BY and truncate_name(f"{name}_ix", 63) not in found
    } == set()
