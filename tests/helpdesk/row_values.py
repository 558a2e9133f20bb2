"""Rows as comparable values: two write paths that should store the same rows."""

from collections.abc import Iterable
from datetime import datetime
from typing import Any
from uuid import UUID

from django.db.models import Model


def comparable_rows(
    rows: Iterable[Model], leave_out: set[str]
) -> dict[str, dict[str, Any]]:
    """Each row's column values by model name, without the `leave_out` columns,
    times and UUIDs (they differ between two runs of the same write)."""
    found = {}
    for row in rows:
        values = {f.attname: getattr(row, f.attname) for f in row._meta.concrete_fields}
        found[type(row).__name__] = {
            name: value
            for name, value in values.items()
            if name not in leave_out and not isinstance(value, datetime | UUID)
        }
    return found
