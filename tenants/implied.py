"""The tenant key of a row whose workspace another key already proves.

`TenantModel.tenant` is a foreign key to `tenants_tenant`, and Django gives it a
deferred database constraint: at COMMIT, one query per written row, each taking
FOR KEY SHARE on the workspace's row (the one row every write of the workspace
shares). A row with a NOT NULL composite key `(tenant_id, x_id) -> parent
(tenant_id, id)` (`TenantForeignKeyConstraint`) cannot commit unless a parent row
with the same `tenant_id` exists, and the parent's own `tenant_id` is held by a
constraint (its direct key, or the same argument one level up), so the workspace
exists: the direct check proves nothing more. The same chain refuses deleting a
workspace that still has rows (the parent is in the way), and a `tenant_id` can
only change together with the composite key, which is checked again.

`implied_tenant_key()` is TenantModel's field without the database constraint.
Everything else stays: Django's PROTECT on delete, the RLS policy on `tenant_id`,
stamping and the managers. tests/tenants/test_implied_tenant_keys.py proves, from
the models and from the database, that every table without the direct constraint
has such a key.
"""

from typing import Any

from django.db import models


def implied_tenant_key() -> "models.ForeignKey[Any, Any]":
    """TenantModel's `tenant` field, with the constraint left to a composite key."""
    return models.ForeignKey(
        "tenants.Tenant",
        on_delete=models.PROTECT,
        editable=False,
        db_index=False,
        related_name="+",
        db_constraint=False,
    )
