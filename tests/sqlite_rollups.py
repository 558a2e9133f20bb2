"""Rollups on SQLite (the demo's database) equal their rebuild.

Run by tests/test_sqlite_demo.py in a subprocess (the suite's own settings are
PostgreSQL): `python -m tests.sqlite_rollups` with DATABASE_URL set to a
sqlite:/// file. Migrates, writes a week of history through the services
(helpdesk.demo_history: inbound, replies, moves to private, no-reply marks,
resolutions), snapshots every rollup table, runs `rebuild_rollups`, snapshots
again and prints one JSON line: the row counts per table and the tables whose
rows differ.
"""

import json
import sys
from typing import Any

import django


def _snapshot(models: list[Any]) -> dict[str, list[tuple[str, ...]]]:
    tables = {}
    for model in models:
        fields = [f.attname for f in model._meta.fields if f.attname != "id"]
        rows = model.objects.values_list(*fields)
        tables[model.__name__] = sorted(tuple(map(str, row)) for row in rows)
    return tables


def main() -> None:
    django.setup()
    from django.apps import apps
    from django.core.management import call_command

    from helpdesk.demo_history import seed_history
    from helpdesk.services.rollups import rebuild_rollups
    from social.sandbox.setup import connect_demo_account
    from tenants.context import tenant_context
    from tenants.models import Brand, Membership, User
    from tenants.services import create_workspace

    call_command("migrate", verbosity=0)
    owner = User.objects.create_user("owner@sqlite.example", "pw")
    tenant = create_workspace(owner=owner, name="Lite Air").tenant
    models = [
        model
        for model in apps.get_app_config("helpdesk").get_models()
        if model.__name__.startswith("Report")
    ]
    with tenant_context(tenant):
        membership = Membership.objects.select_related("user").get(user=owner)
        membership.tenant = tenant
        brand = Brand.objects.get()
        account = connect_demo_account(membership, brand, "liteair")
        written = seed_history([account], [membership], days=7, per_day=6, seed=11)
        before = _snapshot(models)
        rebuild_rollups(tenant)
        after = _snapshot(models)
    outcome = {
        "conversations": written,
        "rows": {name: len(rows) for name, rows in before.items()},
        "differ": sorted(name for name in before if before[name] != after[name]),
    }
    sys.stdout.write(json.dumps(outcome) + "\n")


if __name__ == "__main__":
    main()
