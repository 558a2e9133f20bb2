"""The read paths' generic plans, on tables nobody has analyzed.

psycopg prepares a statement once it has run DATABASE_PREPARE_THRESHOLD times on
a connection, and from its sixth execution PostgreSQL may keep the statement's
GENERIC plan, made without the parameters' values, for the connection's life.
A condition a partial index needs (`direction = 'out'`) is only provable when the
value is in the SQL: bound as a parameter, the generic plan cannot use the index
and reads every row of the tenant. Each statement below is sent by the app as it
runs, then prepared on a new backend as the runtime role under the tenant's
row-level security and explained with ANALYZE in both plan cache modes; every
scan must read a bounded number of rows (kept or filtered out), whichever plan
the backend keeps.

Where the good plan depends on a value (the SLA sweep's `now`: a few rows of the
due-time index, or all of them), the statement is not prepared at all
(helpdesk.planning); those are checked for never reaching pg_prepared_statements.
"""

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from psycopg import sql as pgsql

from helpdesk.models import Message
from helpdesk.services import breaches, delivery, webhook_delivery
from helpdesk.webhooks.models import WebhookEndpoint
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import Tenant, User
from tests.helpdesk.conftest import make_account
from tests.helpdesk.test_read_plans import never_analyzed, nodes, param_type
from tests.perf.benchdb import fill_with_neighbours
from tests.perf.report import conninfo
from tests.statements import prepared_like

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.sql_audit_exempt]

Sent = tuple[str, Any]

# 12,000 of the tenant's messages (half of them outbound and sent), 1,600 of
# each other tenant's.
TARGET = {"contacts": 2000, "conversations": 3000, "per_conversation": 4}
OTHERS = {"contacts": 400, "conversations": 800, "per_conversation": 2}
# Outbound messages made due for the outbox's statements: scheduled and past
# their time, `sending` with an expired lease, `sending` between attempts.
WAITING = 10
# A scan may read the waiting rows of its kind and what the bounds pass over,
# never the tenant's messages.
BOUND = 100
MODES = ["force_generic_plan", "force_custom_plan"]
MESSAGES = '"helpdesk_message"'
OUTBOX_INDEX = "helpdesk_msg_outbox_ix"
# The outbox's reads of due replies (see outbox_statements). The claim of a
# batch (claim_others) and the updates by id read the tenant's outbound rows or
# all of its rows on fresh tables in custom plans too (the planner takes the
# tenant to hold a row or two); once analyzed they read 30, 10 and 10 rows in
# both plans. They are checked for the index their generic plan can use.
BOUNDED = [
    "stale_deliveries 0",
    "stale_deliveries 2",
    "wake_replies 0",
    "unclaimed_by 0",
]
PICKING = [*BOUNDED, "claim_others 0"]


@pytest.fixture
def filled(tenant: Tenant, owner: User) -> Tenant:
    make_account(tenant)
    fill_with_neighbours(tenant, owner, TARGET, OTHERS, 3)
    now = timezone.now()
    with tenant_context(tenant):
        outbound = Message.objects.filter(direction="out").order_by("id")
        ids = list(outbound.values_list("pk", flat=True)[: 3 * WAITING])
        Message.objects.filter(pk__in=ids[:WAITING]).update(
            delivery_status="scheduled", send_after=now - timedelta(minutes=5)
        )
        Message.objects.filter(pk__in=ids[WAITING : 2 * WAITING]).update(
            delivery_status="sending", claimed_at=now - timedelta(minutes=5)
        )
        Message.objects.filter(pk__in=ids[2 * WAITING :]).update(
            delivery_status="sending", claimed_at=now + timedelta(minutes=5)
        )
    return tenant


def numbered(sql: str, params: Any) -> tuple[str, list[Any]]:
    """`sql` with its placeholders (`%s` or `%(name)s`) numbered for PREPARE, and
    the values in their order."""
    if isinstance(params, dict):
        names: list[str] = []

        def number(match: re.Match[str]) -> str:
            if match.group(1) not in names:
                names.append(match.group(1))
            return f"${names.index(match.group(1)) + 1}"

        text = re.sub(r"%\((\w+)\)s", number, sql)
        values = [params[name] for name in names]
    else:
        counter = iter(range(1, 1000))
        text = re.sub(r"%s", lambda _m: f"${next(counter)}", sql)
        values = list(params or [])
    return text.replace("%%", "%"), values


def explained(tenant: Tenant, statement: Sent, mode: str) -> dict[str, Any]:
    """`statement` prepared on a new backend as the runtime role under the
    tenant's row-level security, explained with ANALYZE in plan_cache_mode `mode`
    (in a transaction rolled back)."""
    text, values = numbered(*statement)
    with psycopg.connect(conninfo("default")) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", [str(tenant.pk)])
        conn.execute(f"SET LOCAL plan_cache_mode = {mode}")
        types = ", ".join(param_type(value, "unknown") for value in values)
        conn.execute(f"PREPARE audited ({types}) AS {text}")
        args = ", ".join(pgsql.Literal(value).as_string(conn) for value in values)
        row = conn.execute(
            f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE audited({args})"
        ).fetchone()
        conn.rollback()
    assert row is not None
    root: dict[str, Any] = row[0][0]["Plan"]
    return root


def rows_read(root: dict[str, Any]) -> list[tuple[int, str]]:
    """The rows each scan of a table read (kept, filtered out or rechecked away,
    over all its loops), with the scan."""
    return [
        (
            (
                node["Actual Rows"]
                + node.get("Rows Removed by Filter", 0)
                + node.get("Rows Removed by Index Recheck", 0)
            )
            * node["Actual Loops"],
            f"{node['Node Type']} of {node['Relation Name']} "
            f"{node.get('Index Name', '')}".strip(),
        )
        for node in nodes(root)
        if "Relation Name" in node
    ]


@contextmanager
def recording() -> Iterator[list[Sent]]:
    """The statements the block sends, with their parameters as given (a list, or
    a mapping for named placeholders)."""
    statements: list[Sent] = []

    def record(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        statements.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        yield statements


def picks(root: dict[str, Any]) -> list[list[str]]:
    """The indexes of each scan of the messages that is not by id (a bitmap
    scan's indexes; a sequential scan's none)."""
    found = []
    for node in nodes(root):
        if (
            node.get("Relation Name") != "helpdesk_message"
            or "Scan" not in node["Node Type"]
        ):
            continue
        condition = node.get("Index Cond", "") + node.get("Recheck Cond", "")
        if re.search(r"\bid = ", condition):
            continue
        found.append(
            sorted(
                child["Index Name"]
                for child in nodes(node)
                if child["Node Type"] == "Bitmap Index Scan"
            )
            if node["Node Type"] == "Bitmap Heap Scan"
            else [node.get("Index Name", node["Node Type"])]
        )
    return found


def sent(tenant: Tenant, run: Callable[[], Any]) -> tuple[Any, list[Sent]]:
    """What `run` answers and the statements it sends on the messages (in the
    tenant's context, in a transaction rolled back), as sent."""
    with tenant_context(tenant), recording() as statements, transaction.atomic():
        answer = run()
        transaction.set_rollback(True)
    return answer, [(sql, params) for sql, params in statements if MESSAGES in sql]


def outbox_statements(tenant: Tenant) -> dict[str, Sent]:
    """The outbox's reads of due replies, by what sends them; each finds the
    waiting rows of its kind."""
    with tenant_context(tenant):
        account = SocialAccount.objects.get().pk
    runs: dict[str, tuple[Callable[[], Any], Callable[[Any], Any]]] = {
        "stale_deliveries": (delivery.stale_deliveries, len),
        "wake_replies": (lambda: delivery.wake_replies([account]), len),
        "claim_others": (
            lambda: delivery._claim_others(tenant.pk, 0, token="audit", room=5),
            len,
        ),
        "unclaimed_by": (lambda: delivery.unclaimed_by(timezone.now()), bool),
    }
    found: dict[str, Sent] = {}
    answers = {}
    for name, (run, summary) in runs.items():
        answer, statements = sent(tenant, run)
        answers[name] = summary(answer)
        found.update({f"{name} {n}": s for n, s in enumerate(statements)})
    # Lost scheduled and expired claims; the replies between attempts; a batch.
    assert answers == {
        "stale_deliveries": 2 * WAITING,
        "wake_replies": WAITING,
        "claim_others": 5,
        "unclaimed_by": True,
    }
    return found


def test_the_outbox_statements_are_the_expected_ones(filled: Tenant) -> None:
    statements = outbox_statements(filled)

    # The sweep's two reads and the stamp of the lost ones; the wake's read and
    # its update; the claim's one statement; the check's one.
    assert sorted(statements) == [
        "claim_others 0",
        "stale_deliveries 0",
        "stale_deliveries 1",
        "stale_deliveries 2",
        "unclaimed_by 0",
        "wake_replies 0",
        "wake_replies 1",
    ]
    assert never_analyzed()["analyzed"] == []


@pytest.mark.parametrize("mode", MODES)
def test_the_outbox_reads_only_its_due_rows(filled: Tenant, mode: str) -> None:
    statements = outbox_statements(filled)

    reads = {
        name: rows_read(explained(filled, statements[name], mode)) for name in BOUNDED
    }

    assert never_analyzed()["analyzed"] == []
    assert all(reads.values())
    over = [
        f"{name}: {rows} {scan}"
        for name, read in reads.items()
        for rows, scan in read
        if rows > BOUND
    ]
    assert over == []


def test_the_outbox_picks_its_rows_through_its_index(filled: Tenant) -> None:
    statements = outbox_statements(filled)

    paths = {
        name: picks(explained(filled, statements[name], "force_generic_plan"))
        for name in PICKING
    }

    assert paths == {name: [[OUTBOX_INDEX]] for name in PICKING}


def test_the_bound_catches_the_direction_as_a_parameter(filled: Tenant) -> None:
    # The sweep's read as it was sent before: the direction bound, not written.
    sql = (
        'SELECT "helpdesk_message"."id" FROM "helpdesk_message" WHERE '
        '("helpdesk_message"."tenant_id" = %s AND "helpdesk_message"."direction" = %s'
        ' AND "helpdesk_message"."delivery_status" = %s'
        ' AND "helpdesk_message"."send_after" < %s) LIMIT 500'
    )
    statement = (sql, [filled.pk, "out", "scheduled", timezone.now()])

    generic = explained(filled, statement, "force_generic_plan")
    custom = explained(filled, statement, "force_custom_plan")

    assert max(rows for rows, _ in rows_read(generic)) > BOUND
    assert picks(generic) != [[OUTBOX_INDEX]]
    assert max(rows for rows, _ in rows_read(custom)) <= BOUND
    assert picks(custom) == [[OUTBOX_INDEX]]
    assert connection.vendor == "postgresql"


# Runs on one connection: past the prepare threshold and PostgreSQL's five custom
# plans, where a prepared statement goes generic.
RUNS = 8


def test_the_sla_sweeps_reads_are_never_prepared(tenant: Tenant) -> None:
    # The breach sweep's generic plan read every due clock of the tenant (module
    # helpdesk.services.breaches, _taken); its two reads are planned each time.
    assert settings.DATABASE_PREPARE_THRESHOLD is not None
    now = timezone.now()
    with tenant_context(tenant):
        for _ in range(RUNS):
            assert breaches.sweep_sla_clocks(tenant, now=now) == (
                breaches.SweepResult()
            )
            list(Message.objects.filter(send_after__lte=now).values_list("pk"))

    assert prepared_like('%FROM "helpdesk_conversation"%SKIP LOCKED%') == []
    assert len(prepared_like('%FROM "helpdesk_message"%"send_after" <= $%')) == 1


@pytest.mark.parametrize("mode", MODES)
def test_the_due_webhook_deliveries_read_only_the_waiting_ones(
    tenant: Tenant, mode: str
) -> None:
    with tenant_context(tenant):
        endpoint = WebhookEndpoint.objects.create(
            tenant=tenant, url="https://example.com/hook", secret_encrypted="x"
        )
    with psycopg.connect(conninfo("migrator")) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", [str(tenant.pk)])
        conn.execute(
            "INSERT INTO helpdesk_webhookdelivery (tenant_id, endpoint_id, uuid,"
            " event_id, event_type, payload, status, attempts, next_attempt_at,"
            " last_error, response_excerpt, created_at)"
            " SELECT %s, %s, gen_random_uuid(), gen_random_uuid(), 'x', '{}',"
            " CASE WHEN g <= %s THEN 'pending' ELSE 'succeeded' END, 1,"
            " now() - interval '1 minute', '', '', now()"
            " FROM generate_series(1, 5000) g",
            [tenant.pk, endpoint.pk, WAITING],
        )
    with tenant_context(tenant), recording() as statements:
        due = webhook_delivery.due_webhook_deliveries()

    [statement] = statements
    read = rows_read(explained(tenant, statement, mode))
    assert len(due) == WAITING
    assert [scan for rows, scan in read if rows > BOUND] == []
