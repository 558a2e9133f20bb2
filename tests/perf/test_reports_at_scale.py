"""The report selectors at scale: a 90-day report for one brand of a tenant holding
100k conversations and 1M messages over a year (with their care facts), among
1,000 tenants, read from the rollups as the runtime role under RLS; beside it, the
same summary computed from conversations and messages directly (the baseline).

The data set is built once into its own database (`earshot_bench_reports`, reused
by later runs; bump DATASET to rebuild): rows set-based as the table owner with
INSERT ... SELECT generate_series (each tenant under its own `app.tenant_id`),
the rollups by `rebuild_rollups` per tenant as the runtime role.
Budget (issue 11): p95 < 50 ms for the summary, < 150 ms for the full page's data.
"""

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from time import perf_counter
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from helpdesk.models import (
    CareFact,
    Conversation,
    Message,
    ReportBlockBucket,
    ReportBucket,
    ReportDailyAgentRollup,
    ReportDailyRollup,
    ReportHourlyInbound,
    ReportRollup,
)
from helpdesk.reports import (
    ReportFilters,
    report_agents,
    report_fairness,
    report_heatmap,
    report_summary,
    report_timeseries,
)
from helpdesk.services.rollups import rebuild_rollups
from social.crypto import encrypt_credentials
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.dbroles import RolePlan, ensure_roles_and_database
from tenants.models import Brand, Membership, Tenant
from tests.factories import add_member, make_brand, make_user, make_workspace
from tests.perf import benchdb
from tests.perf.report import (
    Figure,
    conninfo,
    latency_figures,
    machine_facts,
    print_report,
)

pytestmark = [pytest.mark.bench, pytest.mark.sql_audit_exempt]

BENCH_DB = "earshot_bench_reports"
DATASET = "reports-v2"
# The rollup schema the cached data set's rollups were built for: a change
# (bump it) rebuilds every tenant's rollups without refilling the data.
ROLLUPS = "rollups-v6-written-in-read-order"
TENANTS = 1000
TARGET = {"conversations": 100_000, "per_conversation": 10}
OTHERS = {"conversations": 100, "per_conversation": 2}
AGENTS = 10
OWNER_EMAIL = "owner@bench-reports.example"
RUNS, WARMUP = 300, 20
DAYS = 90

# Attributes of conversation g (deterministic): its start, dimensions, fate and
# the durations its facts record. fate: 0 "no reply needed", 1 unanswered, else
# answered; 40% of the answered get a next response, 70% a resolution.
FILL_FUNCTION = """
CREATE FUNCTION pg_temp.bench_fill(
    t bigint, convs int, per_conv int, brands bigint[], accounts bigint[],
    platforms text[], agents bigint[]
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    b bigint;
    a bigint;
    cs bigint;
BEGIN
    PERFORM set_config('app.tenant_id', t::text, true);
    IF brands IS NULL THEN
        BRAND_INSERT
        RETURNING id INTO b;
        ACCOUNT_INSERT
        RETURNING id INTO a;
        brands := ARRAY[b];
        accounts := ARRAY[a, a, a];
        platforms := ARRAY['x', 'x', 'x'];
        agents := ARRAY[0];
    END IF;
    INSERT INTO helpdesk_contact (tenant_id, display_name, email, external_crm_id,
        notes, created_at)
    VALUES (t, 'Customers', '', '', '', now()) RETURNING id INTO cs;
    DROP TABLE IF EXISTS bench_attrs;
    CREATE TEMP TABLE bench_attrs AS
    SELECT g, at, brand_id, account_id, platform, origin, sentiment, band, fate,
        agent_id, raw, off_hours,
        CASE WHEN off_hours THEN raw / 3 ELSE raw END AS business,
        CASE WHEN fate >= 2 AND g % 5 IN (2, 3) THEN 60 + (g::bigint * 40503) % 5000
        END AS next_raw,
        CASE WHEN fate >= 2 AND g % 10 < 7 THEN raw + 3600 * (1 + g % 24)
        END AS resolution_raw
    FROM (
        SELECT g, at,
            brands[CASE WHEN g % 5 = 0 AND array_length(brands, 1) > 1 THEN 2
                   ELSE 1 END] AS brand_id,
            accounts[(ARRAY[1, 1, 2, 3])[1 + g % 4]] AS account_id,
            platforms[(ARRAY[1, 1, 2, 3])[1 + g % 4]] AS platform,
            (ARRAY['mention', 'mention', 'comment', 'direct_message', 'mention',
                   'comment', 'review', 'direct_message', 'mention', 'mention'])
                [1 + (g / 3) % 10] AS origin,
            (ARRAY['neutral', 'neutral', 'neutral', 'negative', 'positive',
                   'neutral', 'negative', 'neutral', 'neutral', 'positive'])
                [1 + (g / 7) % 10] AS sentiment,
            CASE WHEN g % 50 = 0 THEN 'large' WHEN g % 50 < 10 THEN 'medium'
                 ELSE 'small' END AS band,
            (g / 5) % 20 AS fate,
            NULLIF(agents[1 + (g / 11) % array_length(agents, 1)], 0) AS agent_id,
            30 + floor(-ln(1 - ((g * 2654435761) % 1000003) / 1000003.0 * 0.999)
                * 1500)::int AS raw,
            extract(hour FROM at AT TIME ZONE 'UTC') NOT BETWEEN 9 AND 16
                AS off_hours
        FROM (SELECT g, date_trunc('second', now())
                  - g * (interval '365 days' / convs) AS at
              FROM generate_series(1, convs) g) s
    ) x;
    INSERT INTO helpdesk_conversation (tenant_id, brand_id, social_account_id,
        contact_id, platform, origin, public_thread_ref, private_thread_ref,
        channel_state, awaiting_private, mentions_account, public_reply_count,
        customer_message_count, status, priority, sentiment, team, preview,
        assignee_id, first_customer_message_at, last_customer_message_at,
        first_response_at, resolved_at, last_activity_at, created_at,
        follower_band, no_reply_reason, no_reply_at, no_reply_by_id, sla_kind,
        sla_lane, sla_used_seconds, engagement_total, engagement_per_hour)
    SELECT t, brand_id, account_id, cs, platform, origin, 'post-' || g, '',
        'public', false, origin = 'mention', 0, per_conv / 2,
        CASE WHEN resolution_raw IS NOT NULL THEN 'resolved' ELSE 'open' END,
        0, sentiment, '', 'My bag did not arrive, flight ' || g, agent_id, at, at,
        CASE WHEN fate >= 2 THEN at + raw * interval '1 second' END,
        at + resolution_raw * interval '1 second', at, at, band,
        CASE WHEN fate = 0 THEN 'thanks' ELSE '' END,
        CASE WHEN fate = 0 THEN at + interval '5 minutes' END,
        CASE WHEN fate = 0 THEN agent_id END, '', 'normal', 0, 0, 0
    FROM bench_attrs;
    -- Answered conversations alternate customer messages and agent replies (the
    -- first reply at the first response); the others hold customer messages only.
    INSERT INTO helpdesk_message (tenant_id, conversation_id, account_id, platform,
        direction, visibility, kind, author_agent_id, external_id, external_url,
        in_reply_to_external_id, text, delivery_status, counts_toward_limit,
        attempts, last_error, client_ref, claim_token, seq, created_at)
    SELECT c.tenant_id, c.id, c.social_account_id, c.platform,
        CASE WHEN reply THEN 'out' ELSE 'in' END,
        CASE WHEN c.origin = 'direct_message' THEN 'private' ELSE 'public' END,
        CASE WHEN reply THEN 'reply' ELSE 'customer' END,
        CASE WHEN reply THEN x.agent_id END,
        'bm-' || c.id || '-' || k, '', '', 'Message ' || k || ' about ' || c.id,
        CASE WHEN reply THEN 'sent' ELSE 'received' END, false, 0, '',
        gen_random_uuid(), '', 0,
        CASE WHEN reply THEN x.at + (x.raw + (k - 2) * 600) * interval '1 second'
             ELSE x.at + (k / 2) * interval '20 minutes' END
    FROM helpdesk_conversation c
    JOIN bench_attrs x ON c.public_thread_ref = 'post-' || x.g
    CROSS JOIN generate_series(1, per_conv) k
    CROSS JOIN LATERAL (SELECT x.fate >= 2 AND k % 2 = 0 AS reply) r
    WHERE c.tenant_id = t;
    INSERT INTO helpdesk_carefact (tenant_id, conversation_id, kind, brand_id,
        account_id, platform, origin, sentiment, follower_band, lane, agent_id,
        visibility, reason, started_at, at, raw_seconds, business_seconds,
        target_seconds, breached, off_hours)
    SELECT c.tenant_id, c.id, f.kind, x.brand_id, x.account_id, x.platform,
        x.origin, x.sentiment, x.band, 'normal',
        CASE WHEN f.kind IN ('opened', 'breach') THEN NULL ELSE x.agent_id END,
        CASE WHEN f.kind IN ('first_response', 'next_response') THEN
            CASE WHEN x.origin = 'direct_message' THEN 'private' ELSE 'public' END
        ELSE '' END,
        CASE WHEN f.kind = 'no_reply' THEN 'thanks' ELSE '' END,
        CASE WHEN f.kind = 'next_response' THEN x.at + interval '2 hours'
             ELSE x.at END,
        x.at + coalesce(f.seconds, 0) * interval '1 second',
        f.seconds,
        CASE WHEN f.kind = 'first_response' THEN x.business
             WHEN f.kind = 'next_response' THEN x.next_raw
             WHEN f.kind = 'resolution' THEN x.resolution_raw / 2 END,
        3600, coalesce(f.seconds > 3600 AND f.kind <> 'resolution', false),
        x.off_hours
    FROM helpdesk_conversation c
    JOIN bench_attrs x ON c.public_thread_ref = 'post-' || x.g
    CROSS JOIN LATERAL (VALUES
        ('opened', NULL::int, true),
        ('no_reply', NULL, x.fate = 0),
        ('first_response', x.raw, x.fate >= 2),
        ('breach', NULL, x.fate >= 2 AND x.raw > 3600),
        ('next_response', x.next_raw, x.next_raw IS NOT NULL),
        ('resolution', x.resolution_raw, x.resolution_raw IS NOT NULL)
    ) f(kind, seconds, present)
    WHERE c.tenant_id = t AND f.present;
END $$;
""".replace(
    "BRAND_INSERT", benchdb.insert_with_defaults(Brand, benchdb.BRAND_VALUES)
).replace(
    "ACCOUNT_INSERT",
    benchdb.insert_with_defaults(
        SocialAccount,
        {
            "tenant_id": "t",
            "brand_id": "b",
            "platform": "'x'",
            "external_id": "'acct-' || t",
            "handle": "'brand' || t",
            "credentials": "'{}'",
        },
    ),
)

# The same summary from conversations and messages (what a report without facts
# or rollups reads): per conversation its first agent reply from the messages.
BASELINE_SQL = """
WITH conv AS (
    SELECT c.id, c.origin, c.no_reply_reason, c.first_customer_message_at AS started,
        c.resolved_at,
        (SELECT min(m.created_at) FROM helpdesk_message m
         WHERE m.tenant_id = c.tenant_id AND m.conversation_id = c.id
           AND m.direction = 'out' AND m.kind IN ('reply', 'private_invite')
        ) AS first_out
    FROM helpdesk_conversation c
    WHERE c.tenant_id = %(t)s AND c.brand_id = %(b)s
      AND c.first_customer_message_at >= %(start)s
      AND c.first_customer_message_at < %(end)s
), timed AS (
    SELECT *, extract(epoch FROM first_out - started) AS first_seconds,
        extract(epoch FROM resolved_at - started) AS resolution_seconds
    FROM conv
)
SELECT count(*) AS conversations,
    count(*) FILTER (WHERE no_reply_reason <> '') AS no_reply,
    count(first_out) FILTER (WHERE no_reply_reason = '') AS answered,
    count(first_out) FILTER (WHERE no_reply_reason = ''
        AND origin <> 'direct_message') AS answered_public,
    count(first_out) FILTER (WHERE no_reply_reason = ''
        AND origin = 'direct_message') AS answered_private,
    count(*) FILTER (WHERE first_seconds <= 3600) AS answered_1h,
    count(*) FILTER (WHERE first_seconds <= 86400) AS answered_24h,
    percentile_disc(0.5) WITHIN GROUP (ORDER BY first_seconds) AS first_p50,
    percentile_disc(0.9) WITHIN GROUP (ORDER BY first_seconds) AS first_p90,
    percentile_disc(0.5) WITHIN GROUP (ORDER BY resolution_seconds) AS res_p50,
    percentile_disc(0.9) WITHIN GROUP (ORDER BY resolution_seconds) AS res_p90,
    (SELECT count(*) FROM helpdesk_message m
     JOIN helpdesk_conversation c ON c.tenant_id = m.tenant_id
        AND c.id = m.conversation_id
     WHERE m.tenant_id = %(t)s AND c.brand_id = %(b)s AND m.direction = 'in'
       AND m.created_at >= %(start)s AND m.created_at < %(end)s) AS inbound
FROM timed
"""


def owner_conninfo() -> str:
    return benchdb.owner_conninfo(BENCH_DB)


def dataset_facts() -> dict[str, Any] | None:
    return benchdb.dataset_facts(BENCH_DB, DATASET)


def bench_database() -> AbstractContextManager[None]:
    return benchdb.bench_database(BENCH_DB)


def make_target() -> tuple[Tenant, list[int], list[int], list[str], list[int]]:
    """The target workspace: two brands, three accounts, ten agents."""
    owner = make_user(OWNER_EMAIL)
    tenant = make_workspace("Bench Reports", owner=owner)
    make_brand(tenant, "Second")
    agents = [owner.pk]
    for n in range(AGENTS - 1):
        user = make_user(f"agent{n}@bench-reports.example", display_name=f"Agent {n}")
        add_member(tenant, user, Membership.Role.AGENT)
        agents.append(user.pk)
    platforms = ["x", "facebook", "instagram"]
    with tenant_context(tenant):
        brands = list(Brand.objects.order_by("id").values_list("id", flat=True))
        accounts = [
            SocialAccount.objects.create(
                brand_id=brands[0],
                platform=platform,
                external_id=f"bench-{platform}",
                handle=f"acme-{platform}",
                credentials=encrypt_credentials(tenant.pk, {"access_token": "t"}),
            ).pk
            for platform in platforms
        ]
    return tenant, brands, accounts, platforms, agents


def build_dataset() -> dict[str, Any]:
    started = perf_counter()
    default, owner = settings.DATABASES["default"], settings.DATABASES["migrator"]
    plan = RolePlan(
        superuser_url=benchdb.SUPERUSER_URL,
        database=BENCH_DB,
        owner=owner["USER"],
        app=default["USER"],
    )
    ensure_roles_and_database(plan, recreate=True)
    call_command("migrate", database="migrator", verbosity=0)
    connections["migrator"].close()
    target, brands, accounts, platforms, agents = make_target()
    with psycopg.connect(owner_conninfo()) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute("SET work_mem = '256MB'")
        conn.execute(FILL_FUNCTION)
        conn.execute(
            "INSERT INTO tenants_tenant (name, slug, status, status_reason, plan, "
            "created_at) SELECT 'Bench tenant ' || g, 'bench-' || g, 'active', '', "
            "'standard', now() FROM generate_series(1, %s) g",
            [TENANTS - 1],
        )
        conn.execute(
            "SELECT pg_temp.bench_fill(id, %s, %s, NULL, NULL, NULL, NULL) "
            "FROM tenants_tenant WHERE id <> %s",
            [*OTHERS.values(), target.pk],
        ).fetchall()
        conn.commit()
        conn.execute(
            "SELECT pg_temp.bench_fill(%s, %s, %s, %s, %s, %s, %s)",
            [target.pk, *TARGET.values(), brands, accounts, platforms, agents],
        )
        conn.commit()
        conn.execute("ANALYZE")
        conn.commit()
    filled = perf_counter()
    rebuild_all()
    rebuilt = perf_counter()
    with psycopg.connect(owner_conninfo(), autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE bench_dataset (name text PRIMARY KEY, facts jsonb NOT NULL)"
        )
        facts = {
            "tenants": TENANTS,
            "target_tenant_id": target.pk,
            "target_brand_id": brands[0],
            "other_tenants_conversations": (TENANTS - 1) * OTHERS["conversations"],
            "fill_seconds": round(filled - started, 1),
            "rebuild_rollups_seconds_all_tenants": round(rebuilt - filled, 1),
            "rollups": ROLLUPS,
        }
        conn.execute(
            "INSERT INTO bench_dataset (name, facts) VALUES (%s, %s)",
            [DATASET, json.dumps(facts)],
        )
    return facts


def rebuild_all() -> None:
    """Rebuild every tenant's rollups as the runtime role, then VACUUM ANALYZE.

    Without the role's statement timeout (30 s, tenants.dbroles) for the
    rebuild: the target tenant's hourly INSERT ... SELECT over its 1M messages
    took longer than that on a loaded machine and the build failed half done."""
    with connection.cursor() as cursor:
        cursor.execute("SET statement_timeout = 0")
    try:
        for tenant_id in Tenant.objects.order_by("id").values_list("id", flat=True):
            rebuild_rollups(tenant_id)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET statement_timeout")
    with psycopg.connect(owner_conninfo(), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def refresh_rollups(facts: dict[str, Any]) -> dict[str, Any]:
    """Rebuild the cached data set's rollups when they predate ROLLUPS."""
    if facts.get("rollups") == ROLLUPS:
        return facts
    started = perf_counter()
    rebuild_all()
    facts = {
        **facts,
        "rebuild_rollups_seconds_all_tenants": round(perf_counter() - started, 1),
        "rollups": ROLLUPS,
    }
    with psycopg.connect(owner_conninfo(), autocommit=True) as conn:
        conn.execute(
            "UPDATE bench_dataset SET facts = %s WHERE name = %s",
            [json.dumps(facts), DATASET],
        )
    return facts


def timed(
    fn: Callable[[], object], runs: int, budget: float = 20.0, minimum: int = 20
) -> list[float]:
    """Up to `runs` timings; after `minimum`, stop once `budget` seconds are spent."""
    seconds: list[float] = []
    while len(seconds) < runs and (len(seconds) < minimum or sum(seconds) < budget):
        begun = perf_counter()
        fn()
        seconds.append(perf_counter() - begun)
    return seconds


def test_reports_at_scale(django_db_blocker: Any) -> None:
    with django_db_blocker.unblock(), bench_database():
        facts = dataset_facts()
        reused = facts is not None
        if facts is None:
            facts = build_dataset()
        else:
            call_command("migrate", database="migrator", verbosity=0)
            connections["migrator"].close()
            facts = refresh_rollups(facts)
        tenant = Tenant.objects.get(pk=facts["target_tenant_id"])
        with tenant_context(tenant):
            membership = Membership.objects.select_related("user", "tenant").get(
                user__email=OWNER_EMAIL
            )
            figures, notes = measure(membership, facts["target_brand_id"])

    print_report(
        "report selectors at scale (runtime role, RLS, Postgres)",
        machine_facts(conninfo(dbname=BENCH_DB)),
        [
            f"data set {DATASET} ({'reused' if reused else 'built now'}): "
            + ", ".join(f"{key}={value}" for key, value in facts.items()),
            *notes,
        ],
        figures,
    )


SCANS = ("Seq Scan", "Index Scan", "Index Only Scan", "Bitmap Heap Scan")


def rows_read(queries: list[dict[str, str]]) -> int:
    """The rows the table scans of `queries` returned (EXPLAIN ANALYZE)."""

    def scanned(node: dict[str, Any]) -> int:
        own = int(node["Actual Rows"] * node["Actual Loops"])
        below = sum(scanned(child) for child in node.get("Plans", []))
        return (own if node["Node Type"] in SCANS else 0) + below

    total = 0
    with connection.cursor() as cursor:
        for query in queries:
            if not query["sql"].lstrip().upper().startswith("SELECT"):
                continue
            cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + query["sql"])
            plan = cursor.fetchone()[0]
            total += scanned(
                (plan if isinstance(plan, list) else json.loads(plan))[0]["Plan"]
            )
    return total


def measure(membership: Membership, brand_id: int) -> tuple[list[Figure], list[str]]:
    """Time the summary, the full page and the baseline inside the tenant."""
    today = timezone.now().astimezone(UTC).date()
    filters = ReportFilters(
        start=today - timedelta(days=DAYS - 1), end=today, brand_id=brand_id
    )

    def summary() -> object:
        return report_summary(membership, filters)

    def page() -> object:
        return (
            report_summary(membership, filters),
            report_timeseries(membership, filters),
            report_agents(membership, filters),
            report_fairness(membership, filters),
            report_heatmap(membership, filters),
        )

    def baseline() -> list[Any]:
        results: list[Any] = []
        for period in (filters, filters.previous()):
            start = datetime.combine(period.start, datetime.min.time(), tzinfo=UTC)
            end = datetime.combine(
                period.end + timedelta(days=1), datetime.min.time(), tzinfo=UTC
            )
            with connection.cursor() as cursor:
                cursor.execute(
                    BASELINE_SQL,
                    {
                        "t": membership.tenant_id,
                        "b": brand_id,
                        "start": start,
                        "end": end,
                    },
                )
                results.append(cursor.fetchone())
        return results

    sizes = {
        "conversations": Conversation.objects.count(),
        "messages": Message.objects.count(),
        "facts": CareFact.objects.count(),
        "rollup_rows": ReportRollup.objects.count(),
        "histogram_cells": ReportBucket.objects.count(),
        "daily_rows": ReportDailyRollup.objects.count(),
        "daily_agent_rows": ReportDailyAgentRollup.objects.count(),
        "hourly_inbound_rows": ReportHourlyInbound.objects.count(),
        "block_cells": ReportBlockBucket.objects.count(),
        "hourly_rows_in_both_periods": ReportRollup.objects.filter(
            brand_id=brand_id,
            hour__gte=datetime.combine(
                filters.previous().start, datetime.min.time(), tzinfo=UTC
            ),
        ).count(),
    }
    with CaptureQueriesContext(connection) as captured:
        summary()
    summary_queries = len(captured.captured_queries)
    summary_rows = rows_read(captured.captured_queries)
    with CaptureQueriesContext(connection) as captured:
        page()
    page_queries = len(captured.captured_queries)
    page_rows = rows_read(captured.captured_queries)
    fast = report_summary(membership, filters)["period"]
    slow = baseline()[0]
    notes = [
        "target tenant: " + ", ".join(f"{k}={v}" for k, v in sizes.items()),
        f"90-day report ({filters.start} .. {filters.end}) for brand {brand_id}, "
        f"compared with the 90 days before; up to {RUNS} runs (20 s) per variant "
        f"after {WARMUP} warm-up (the baseline: at least 5 runs after 1)",
        f"queries: summary {summary_queries}, full page {page_queries} "
        "(summary + timeseries + agents + fairness + heatmap); rows their table "
        f"scans read: summary {summary_rows}, full page {page_rows}",
        "rollups say: "
        + ", ".join(
            f"{key}={fast[key]}"
            for key in (
                "conversations",
                "no_reply",
                "answered",
                "first_response_p50",
                "first_response_p90",
                "resolution_p50",
                "inbound",
            )
        ),
        f"baseline says: conversations={slow[0]}, no_reply={slow[1]}, "
        f"answered={slow[2]}, first_response_p50={slow[7]}, "
        f"first_response_p90={slow[8]}, resolution_p50={slow[9]}, inbound={slow[11]}",
    ]
    figures: list[Figure] = []
    for label, run, target, minimum in (
        ("report_summary, 90 days, one brand", summary, {95: 50.0}, 20),
        ("full page data (5 selectors)", page, {95: 150.0}, 20),
        # Seconds per run: a few samples say enough.
        ("baseline: summary from messages", baseline, None, 5),
    ):
        timed(run, WARMUP if minimum == 20 else 1, minimum=1)
        figures.extend(
            figure
            for figure in latency_figures(
                label, timed(run, RUNS, minimum=minimum), target
            )
            if figure.name.endswith(("p50", "p95", "p99"))
        )
    notes.append(prepared_note())
    return figures, notes


def prepared_note() -> str:
    """Whether report statements were prepared on the connection after the runs:
    the rows above come from EXPLAIN of the logged SQL with its values (custom
    plans), which does not show a generic plan the prepared statements got."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), coalesce(sum(generic_plans), 0), "
            "coalesce(sum(custom_plans), 0) FROM pg_prepared_statements "
            "WHERE NOT from_sql AND statement LIKE %s",
            ["%helpdesk_report%"],
        )
        prepared, generic, custom = cursor.fetchone()
    return (
        f"report statements prepared on this connection after the runs: {prepared} "
        f"({generic} generic and {custom} custom plans)"
    )
