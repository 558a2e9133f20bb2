"""rebuild_rollups writes each table's rows of a tenant in the order its report
reads use (brand, then time; the block cells in their key's order), so a
brand's period lies on few pages: at the bench's 100k conversations the rows of
a rebuild in the order of a hash aggregate put nearly every cell a report read
on a page of its own (13,386 cells on 13,532 pages for the 90-day time
series)."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection

from helpdesk.models import (
    ReportBlockBucket,
    ReportBucket,
    ReportDailyAgentRollup,
    ReportDailyRollup,
    ReportHourlyInbound,
    ReportRollup,
)
from helpdesk.services.rollups import BLOCK_KEY, rebuild_rollups
from tenants.context import tenant_context
from tenants.models import Tenant, User
from tests.factories import make_brand
from tests.helpdesk.report_support import (
    first_brand,
    make_conversation,
    make_fact,
    make_message,
)

pytestmark = pytest.mark.django_db

START = datetime(2026, 3, 2, 1, tzinfo=UTC)
# Each table and the columns its rows are written in the order of.
ORDERS: dict[type[Any], tuple[str, ...]] = {
    ReportRollup: ("brand_id", "hour"),
    ReportBucket: ("brand_id", "metric", "hour"),
    ReportDailyRollup: ("brand_id", "day"),
    ReportDailyAgentRollup: ("brand_id", "day"),
    ReportHourlyInbound: ("brand_id", "hour"),
    ReportBlockBucket: BLOCK_KEY[1:],  # its unique key's order, after the tenant
}


def _physical(tenant: Tenant, model: type[Any], columns: tuple[str, ...]) -> list[Any]:
    """The tenant's rows' `columns`, in the order they lie in the table."""
    table = model._meta.db_table
    with tenant_context(tenant), connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(columns)} FROM {table} "
            f'WHERE "{table}"."tenant_id" = %s ORDER BY ctid',
            [tenant.pk],
        )
        rows: list[Any] = cursor.fetchall()
        return rows


def test_a_rebuild_writes_rows_in_the_order_reports_read_them(
    tenant: Tenant, agent: User, admin: User
) -> None:
    brands = [first_brand(tenant), make_brand(tenant, "Second")]
    brands.append(make_brand(tenant, "Third"))
    for n in range(60):
        started = START + timedelta(hours=7 * n)
        conversation = make_conversation(
            tenant,
            brand=brands[(n * 7) % 3],
            platform=("x", "facebook", "instagram")[n % 3],
            origin=("mention", "comment", "direct_message")[(n // 3) % 3],
            follower_band=("small", "medium", "large")[(n // 2) % 3],
        )
        responder = (agent, admin)[n % 2]
        make_fact(conversation, "opened", started, apply=False)
        make_fact(
            conversation,
            "first_response",
            started,
            apply=False,
            agent=responder,
            visibility="public",
            raw_seconds=60 + 997 * n % 9000,
            business_seconds=30 + 331 * n % 4000,
        )
        make_fact(
            conversation,
            "resolution",
            started,
            apply=False,
            agent=responder,
            raw_seconds=3600 + 4111 * n,
        )
        make_message(conversation, started, apply=False)
        make_message(
            conversation,
            started + timedelta(minutes=5),
            kind="reply",
            agent_id=responder.pk,
            apply=False,
        )

    rebuild_rollups(tenant)

    for model, columns in ORDERS.items():
        rows = _physical(tenant, model, columns)
        assert len(rows) > 20, model
        assert rows == sorted(rows), model
        assert len({row[0] for row in rows}) == 3, model
