"""`TenantModel`: the base of every tenant-owned row, and its fail-closed managers.

- `objects` (the default manager) filters by the open tenant and raises
  `TenantContextMissing` when none is open.
- The base manager (used by Django internals: forward FK access, deletion, saves)
  adds the same filter when a tenant is open, so every statement carries
  `tenant_id = <literal>` for the SQL auditor and for Citus routing; with no tenant
  open it stays plain, and PostgreSQL RLS shows it nothing.
- `save()` stamps the tenant from the context and refuses to move a row to
  another tenant; `bulk_create` stamps too.
- `tenant_constraints()` builds the Meta constraints every tenant model needs.
"""

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django.db import models
from django.db.models.constraints import BaseConstraint

from tenants.context import current_tenant_id
from tenants.exceptions import TenantContextMissing, TenantMismatch
from tenants.rls import TenantForeignKeyConstraint, TenantRLS


def _require_tenant_id() -> int:
    tenant_id = current_tenant_id()
    if tenant_id is None:
        raise TenantContextMissing(
            "no tenant is open: use tenant_context(tenant) at the edge (middleware, "
            "@tenant_task, tenant_db)"
        )
    return tenant_id


class TenantQuerySet[M: models.Model](models.QuerySet[M]):
    def bulk_create(self, objs: Iterable[M], *args: Any, **kwargs: Any) -> list[M]:
        tenant_id = _require_tenant_id()
        objs = list(objs)
        for obj in objs:
            stamp_tenant(obj, tenant_id)
        return super().bulk_create(objs, *args, **kwargs)


class TenantManager[M: models.Model](models.Manager[M]):
    """Default manager: only the open tenant's rows; raises when no tenant is open."""

    _queryset_class = TenantQuerySet

    def get_queryset(self) -> models.QuerySet[M]:
        tenant_id = _require_tenant_id()
        return super().get_queryset().filter(tenant_id=tenant_id)

    def unscoped(self) -> models.QuerySet[M]:
        """All tenants' rows; only modules on tests/unscoped_allowlist.txt call it."""
        return super().get_queryset()


class TenantBaseManager[M: models.Model](models.Manager[M]):
    """Base manager for Django internals: scoped when a tenant is open, else plain."""

    _queryset_class = TenantQuerySet

    def get_queryset(self) -> models.QuerySet[M]:
        queryset = super().get_queryset()
        tenant_id = current_tenant_id()
        if tenant_id is not None:
            queryset = queryset.filter(tenant_id=tenant_id)
        return queryset


def stamp_tenant(obj: models.Model, tenant_id: int) -> None:
    existing = getattr(obj, "tenant_id", None)
    if existing is None:
        obj.tenant_id = tenant_id  # type: ignore[attr-defined]
    elif existing != tenant_id:
        raise TenantMismatch(
            f"{type(obj).__name__} of tenant {existing} written in tenant {tenant_id}"
        )


class TenantModel(models.Model):
    tenant = models.ForeignKey(
        "tenants.Tenant",
        on_delete=models.PROTECT,
        editable=False,
        db_index=False,
        related_name="+",
    )

    objects = TenantManager()
    scoped_base = TenantBaseManager()

    class Meta:
        abstract = True
        base_manager_name = "scoped_base"
        default_manager_name = "objects"

    def save(self, *args: Any, **kwargs: Any) -> None:
        stamp_tenant(self, _require_tenant_id())
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and "tenant" in update_fields:
            raise TenantMismatch("the tenant of a row never changes")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        if self.tenant_id != _require_tenant_id():
            raise TenantMismatch("a row is deleted only inside its own tenant")
        return super().delete(*args, **kwargs)


class TenantForeignKey(models.ForeignKey):  # type: ignore[type-arg]
    """A FK between tenant tables; pair it with `TenantForeignKeyConstraint`.

    The database key is the composite one from `tenant_constraints(fks=...)`; the
    single-column Django constraint and index are dropped in its favour.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("db_constraint", False)
        kwargs.setdefault("db_index", False)
        super().__init__(*args, **kwargs)


def tenant_constraints(
    *,
    fks: Sequence[str] = (),
    own_rows_column: str | None = None,
    indexed_by: Mapping[str, str] | None = None,
) -> list[BaseConstraint]:
    """The constraints every tenant model declares in its Meta.

    `UNIQUE (tenant_id, id)` (the target of composite keys and the future Citus
    primary key), row-level security, and one composite FK per tenant relation,
    each with its `(tenant_id, <fk>_id)` index unless `indexed_by` maps the FK to
    an index of the Meta that starts with those columns (tenants.E003 checks it).
    """
    indexed_by = indexed_by or {}
    if unknown := set(indexed_by) - set(fks):
        raise ValueError(f"indexed_by names keys not in fks: {sorted(unknown)}")
    constraints: list[BaseConstraint] = [
        models.UniqueConstraint(
            fields=["tenant", "id"], name="%(app_label)s_%(class)s_tenant_id_uniq"
        ),
        TenantRLS(name="%(app_label)s_%(class)s_rls", own_rows_column=own_rows_column),
    ]
    constraints.extend(
        TenantForeignKeyConstraint(
            field=fk,
            name=f"%(app_label)s_%(class)s_{fk}_tfk",
            indexed_by=indexed_by.get(fk),
        )
        for fk in fks
    )
    return constraints
