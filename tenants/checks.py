"""System checks: refuse to run when the runtime connection would bypass RLS, or
when a composite tenant key is left without an index that serves it."""

from collections.abc import Iterable, Sequence
from typing import Any

from django.apps import AppConfig, apps
from django.core.checks import CheckMessage, Error, Tags, register
from django.db import DatabaseError, models
from django.db.models import Q

from tenants.rls import TenantForeignKeyConstraint, runtime_role_problems


@register(Tags.database)
def check_runtime_role(
    app_configs: Sequence[AppConfig] | None = None,
    databases: Sequence[str] | None = None,
    **kwargs: Any,
) -> list[CheckMessage]:
    """tenants.E001: `default` must connect as a NOSUPERUSER NOBYPASSRLS non-owner."""
    if not databases or "default" not in databases:
        return []
    try:
        problems = runtime_role_problems("default")
    except DatabaseError as exc:
        return [Error(f"cannot inspect the runtime role: {exc}", id="tenants.E002")]
    return [
        Error(
            f"Row-level security would be bypassed: {problem}.",
            hint="Connect DATABASE_URL as the restricted runtime role "
            "(see `manage.py create_db_roles`); migrate with MIGRATOR_DATABASE_URL.",
            id="tenants.E001",
        )
        for problem in problems
    ]


def _declared_indexes(
    model: type[models.Model],
) -> dict[str, models.Index | models.UniqueConstraint]:
    """The model's Meta indexes and unique constraints, by name."""
    declared: dict[str, models.Index | models.UniqueConstraint] = {
        index.name: index for index in model._meta.indexes
    }
    for constraint in model._meta.constraints:
        if isinstance(constraint, models.UniqueConstraint):
            declared[constraint.name] = constraint
    return declared


def _why_not_covering(
    model: type[models.Model],
    index: models.Index | models.UniqueConstraint,
    key: TenantForeignKeyConstraint,
) -> str | None:
    """Why `index` cannot serve every lookup by `key`'s columns; None when it can.

    It must be an index on columns (no expressions) whose first two columns are
    `tenant_id` and the key's column, and cover every row whose key is set: no
    condition, or `<key> IS NOT NULL` (a lookup by key implies it; a partial index
    serves only the lookups whose predicate implies its own).
    """
    if index.condition is not None and index.condition != Q(
        **{f"{key.field}__isnull": False}
    ):
        return f"is partial, other than {key.field} IS NOT NULL"
    if index.expressions or not index.fields:
        return "is on expressions"
    leading = [
        str(model._meta.get_field(name.removeprefix("-")).column)  # type: ignore[union-attr]
        for name in index.fields[:2]
    ]
    key_columns = ["tenant_id", str(model._meta.get_field(key.field).column)]  # type: ignore[union-attr]
    if leading != key_columns:
        return f"starts with ({', '.join(leading)}), not ({', '.join(key_columns)})"
    return None


def tenant_key_index_problems(
    tenant_models: Iterable[type[models.Model]],
) -> list[str]:
    """Composite tenant keys whose `indexed_by` names no index that serves them."""
    problems = []
    for model in tenant_models:
        declared = _declared_indexes(model)
        for key in model._meta.constraints:
            if not isinstance(key, TenantForeignKeyConstraint) or not key.indexed_by:
                continue
            index = declared.get(key.indexed_by)
            why = (
                "is not an index or unique constraint of its Meta"
                if index is None
                else _why_not_covering(model, index, key)
            )
            if why:
                problems.append(
                    f"{model._meta.label}: {key.name} is indexed by "
                    f"{key.indexed_by}, which {why}"
                )
    return problems


def redundant_tenant_key_indexes(
    tenant_models: Iterable[type[models.Model]],
) -> dict[str, str]:
    """Composite tenant keys that still create their own index although an index
    of their Meta serves them: the key's name and that index's."""
    redundant = {}
    for model in tenant_models:
        declared = _declared_indexes(model)
        for key in model._meta.constraints:
            if not isinstance(key, TenantForeignKeyConstraint) or key.indexed_by:
                continue
            for name, index in sorted(declared.items()):
                if _why_not_covering(model, index, key) is None:
                    redundant[key.name] = name
                    break
    return redundant


@register(Tags.models)
def check_tenant_key_indexes(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """tenants.E003: a composite tenant key without its own index (`indexed_by`)
    names an index of its model that starts with (tenant_id, <key column>)."""
    configs = app_configs if app_configs is not None else apps.get_app_configs()
    return [
        Error(
            f"{problem}: PostgreSQL would look the key up without an index "
            "when a parent row is deleted.",
            hint="Name an index of the Meta that starts with the tenant and the "
            "key, or drop indexed_by so the key creates its own.",
            id="tenants.E003",
        )
        for problem in tenant_key_index_problems(
            model for config in configs for model in config.get_models()
        )
    ]
