"""System check: refuse to run when the runtime connection would bypass RLS."""

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.core.checks import CheckMessage, Error, Tags, register
from django.db import DatabaseError

from tenants.rls import runtime_role_problems


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
