"""The cached data sets of the at-scale benchmarks.

Each benchmark keeps its data in a database of its own that later runs reuse; a
`bench_dataset(name, facts)` table in it says which data set it holds (bump the
benchmark's DATASET name to rebuild).
"""

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import psycopg
from django.conf import settings
from django.db import connections
from django.db.models import Model

from social.models import SocialAccount
from tenants.models import Brand
from tests.perf.report import conninfo

SUPERUSER_URL: str = getattr(settings, "TEST_PG_SUPERUSER_URL")  # noqa: B009

# Fills one tenant as the table owner: a brand and an account when it has none, then
# `contacts` contacts, `convs` conversations (a fifth of them open, the rest pending,
# snoozed or resolved; every one with a due time) and `per_conv` messages each.
FILL_FUNCTION = """
CREATE FUNCTION pg_temp.bench_fill(
    t bigint, contacts int, convs int, per_conv int, agent bigint
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    b bigint;
    a bigint;
    cs bigint[];
BEGIN
    PERFORM set_config('app.tenant_id', t::text, true);
    SELECT id INTO b FROM tenants_brand WHERE tenant_id = t ORDER BY id LIMIT 1;
    IF b IS NULL THEN
        BRAND_INSERT
        RETURNING id INTO b;
    END IF;
    SELECT id INTO a FROM social_socialaccount WHERE tenant_id = t ORDER BY id LIMIT 1;
    IF a IS NULL THEN
        ACCOUNT_INSERT
        RETURNING id INTO a;
    END IF;
    INSERT INTO helpdesk_contact (tenant_id, display_name, email, external_crm_id,
        notes, created_at)
    SELECT t, 'Customer ' || g, '', '', '', now() FROM generate_series(1, contacts) g;
    SELECT array_agg(id ORDER BY id) INTO cs FROM helpdesk_contact WHERE tenant_id = t;
    INSERT INTO helpdesk_conversation (tenant_id, brand_id, social_account_id,
        contact_id, platform, origin, public_thread_ref, private_thread_ref,
        channel_state, awaiting_private, mentions_account, public_reply_count,
        customer_message_count, status, priority, sentiment, team, preview,
        assignee_id, first_customer_message_at, last_customer_message_at,
        sla_due_at, queue_at, last_activity_at, created_at, sla_lane, sla_kind,
        sla_used_seconds, follower_band, no_reply_reason, engagement_total,
        engagement_per_hour)
    SELECT t, b, a, cs[1 + g % array_length(cs, 1)], 'sandbox', 'mention',
        'post-' || g, '', 'public', false, true, 0, per_conv / 2 + 1,
        (ARRAY['open', 'open', 'pending', 'snoozed', 'resolved', 'resolved',
               'resolved', 'resolved', 'resolved', 'resolved'])[1 + g % 10],
        g % 4, 'neutral', '', 'My bag did not arrive, flight ' || g,
        CASE WHEN g % 5 = 0 THEN agent END, at, at,
        at + interval '60 minutes',
        at + interval '60 minutes' - (g % 300) * interval '1 second',
        at + (g % 50) * interval '1 minute', at, 'normal', 'first', 0, 'small', '',
        0, 0
    FROM (SELECT g, now() - g * interval '37 seconds' AS at
          FROM generate_series(1, convs) g) s;
    INSERT INTO helpdesk_message (tenant_id, conversation_id, account_id, platform,
        direction, visibility, kind, external_id, external_url,
        in_reply_to_external_id, text, delivery_status, counts_toward_limit,
        attempts, last_error, client_ref, claim_token, seq, created_at)
    SELECT c.tenant_id, c.id, a, 'sandbox',
        CASE WHEN k % 2 = 1 THEN 'in' ELSE 'out' END, 'public',
        CASE WHEN k % 2 = 1 THEN 'customer' ELSE 'reply' END,
        'bm-' || c.id || '-' || k, '', '', 'Message ' || k || ' about ' || c.id,
        CASE WHEN k % 2 = 1 THEN 'received' ELSE 'sent' END, k % 2 = 0, 0, '',
        gen_random_uuid(), '', 0, c.created_at + k * interval '1 minute'
    FROM helpdesk_conversation c CROSS JOIN generate_series(1, per_conv) k
    WHERE c.tenant_id = t;
END $$;
"""


def insert_with_defaults(model: type[Model], given: dict[str, str]) -> str:
    """An `INSERT INTO ... VALUES (...)` of one `model` row for a fill function.

    The columns in `given` take its SQL expressions; every other NOT NULL column
    takes the model's default, so a column added later cannot break the fills.
    """
    columns, values = list(given), list(given.values())
    for field in model._meta.concrete_fields:
        column = field.column
        if field.primary_key or column is None or column in given or field.null:
            continue
        columns.append(column)
        values.append(_sql_literal(field.get_default()))
    return (
        f"INSERT INTO {model._meta.db_table} ({', '.join(columns)}) "
        f"VALUES ({', '.join(values)})"
    )


def _sql_literal(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, str):
        return "'" + str(value).replace("'", "''") + "'"
    if isinstance(value, dict | list):
        return _sql_literal(json.dumps(value)) + "::jsonb"
    if isinstance(value, datetime):
        return "now()"
    raise TypeError(f"no SQL literal for the default {value!r}")


BRAND_VALUES = {
    "tenant_id": "t",
    "name": "'Brand'",
    "slug": "'brand'",
    "business_hours": "'{}'",
    "auto_assign": "false",
}
FILL_FUNCTION = FILL_FUNCTION.replace(
    "BRAND_INSERT", insert_with_defaults(Brand, BRAND_VALUES)
).replace(
    "ACCOUNT_INSERT",
    insert_with_defaults(
        SocialAccount,
        {
            "tenant_id": "t",
            "brand_id": "b",
            "platform": "'sandbox'",
            "external_id": "'acct-' || t",
            "handle": "'brand' || t",
            "credentials": "'{}'",
        },
    ),
)


def fill_beside(
    conn: psycopg.Connection[Any],
    target: tuple[int, dict[str, int], int],
    neighbours: list[int],
    neighbour_sizes: dict[str, int],
) -> None:
    """FILL_FUNCTION's rows on `conn` (the table owner's): for each neighbour
    tenant at `neighbour_sizes` (nobody assigned), then for the target
    `(tenant id, sizes, agent id)`. Sizes are `{"contacts", "conversations",
    "per_conversation"}` in that order."""
    conn.execute(FILL_FUNCTION)
    for other in neighbours:
        conn.execute(
            "SELECT pg_temp.bench_fill(%s, %s, %s, %s, NULL)",
            [other, *neighbour_sizes.values()],
        )
    tenant_id, sizes, agent_id = target
    conn.execute(
        "SELECT pg_temp.bench_fill(%s, %s, %s, %s, %s)",
        [tenant_id, *sizes.values(), agent_id],
    )


def fill_with_neighbours(
    tenant: Any,
    agent: Any,
    sizes: dict[str, int],
    neighbour_sizes: dict[str, int],
    neighbours: int,
) -> list[Any]:
    """`fill_beside` in the test database, as its owner: `tenant` (a Tenant) with
    `agent`'s conversations, beside that many new workspaces ("Other 0", ...),
    which it returns."""
    from tests.factories import make_workspace

    others = [make_workspace(f"Other {n}") for n in range(neighbours)]
    with psycopg.connect(conninfo("migrator")) as conn:
        fill_beside(
            conn,
            (tenant.pk, sizes, agent.pk),
            [other.pk for other in others],
            neighbour_sizes,
        )
    return others


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
