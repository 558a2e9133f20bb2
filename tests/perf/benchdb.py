"""The cached data sets of the at-scale benchmarks.

Each benchmark keeps its data in a database of its own that later runs reuse; a
`bench_dataset(name, facts)` table in it says which data set it holds (bump the
benchmark's DATASET name to rebuild).
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from django.conf import settings
from django.db import connections

from tests.perf.report import conninfo

SUPERUSER_URL: str = getattr(settings, "TEST_PG_SUPERUSER_URL")  # noqa: B009


def owner_conninfo(bench_db: str) -> str:
    """libpq conninfo of `bench_db` as the owner (migrator) role."""
    return conninfo("migrator", dbname=bench_db)


def dataset_facts(bench_db: str, dataset: str) -> dict[str, Any] | None:
    """What `bench_db` holds of `dataset`, or None when it must be (re)built."""
    with psycopg.connect(SUPERUSER_URL, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [bench_db]
        ).fetchone()
    if not exists:
        return None
    with psycopg.connect(owner_conninfo(bench_db), autocommit=True) as conn:
        table = conn.execute("SELECT to_regclass('bench_dataset')").fetchone()
        if table is None or table[0] is None:
            return None
        row = conn.execute(
            "SELECT facts FROM bench_dataset WHERE name = %s", [dataset]
        ).fetchone()
    return dict(row[0]) if row else None


@contextmanager
def bench_database(bench_db: str) -> Iterator[None]:
    """Point the `default` and `migrator` connections at `bench_db` for the block."""
    aliases = ("default", "migrator")
    saved = {alias: settings.DATABASES[alias]["NAME"] for alias in aliases}

    def reset() -> None:
        # A psycopg pool keeps the database it was opened on: drop it as well.
        connections.close_all()
        for alias in aliases:
            close_pool = getattr(connections[alias], "close_pool", None)
            if close_pool is not None:
                close_pool()

    reset()
    for alias in aliases:
        settings.DATABASES[alias]["NAME"] = bench_db
        connections[alias].settings_dict["NAME"] = bench_db
    try:
        yield
    finally:
        reset()
        for alias, name in saved.items():
            settings.DATABASES[alias]["NAME"] = name
            connections[alias].settings_dict["NAME"] = name
