"""The demo's spike baseline (`manage.py seed_demo`).

The demo's thirty days of history hold a handful of conversations a day, while its
traffic generator writes about DEMO_RATE inbound messages every five minutes; against
that history every five minutes of the live demo would be a spike. So the demo
brand gets four weeks of five-minute counts drawn around the generator's rate
(seeded, so every demo is the same; no messages stand behind them), and the
counting cursor starts after the seeded messages. The generator's waves
(social.sandbox.waves: dozens of passengers of one cancelled flight within a
minute, every 15 to 25 minutes) are then real spikes against a real-looking
baseline, and the quiet minutes are not.
"""

import math
import random
from datetime import datetime, timedelta

from django.db.models import Max

from helpdesk.models import Message
from spikes.detector import BASELINE_WEEKS, BUCKET, floor_bucket
from spikes.models import SpikeCount, SpikeCursor
from tenants.models import Brand, Tenant

DEMO_RATE = 15  # inbound per five minutes from `serve --traffic 0.05`, about
SEED = 14


def seed_spike_baseline(
    tenant: Tenant, brand: Brand, *, now: datetime, rate: int = DEMO_RATE
) -> int:
    """Write four weeks (and a day) of five-minute counts around `rate` for the
    brand, ending at `now`, unless it has counts already; returns how many cells.

    Call inside the tenant's context. The cursor moves past every message stored
    now, so the rollup counts only what arrives from here on.
    """
    if SpikeCount.objects.filter(tenant=tenant, brand=brand).exists():
        return 0
    rng = random.Random(SEED)  # noqa: S311 - demo data, not security
    end = floor_bucket(now)
    bucket = end - timedelta(weeks=BASELINE_WEEKS, days=1)
    cells = []
    while bucket < end:
        n = max(0, round(rng.gauss(rate, math.sqrt(rate))))
        cells.append(
            SpikeCount(
                tenant=tenant, brand=brand, bucket=bucket, sentiment="neutral", count=n
            )
        )
        bucket += BUCKET
    SpikeCount.objects.bulk_create(cells, batch_size=1000)
    last = Message.objects.filter(tenant=tenant).aggregate(last=Max("pk"))["last"]
    SpikeCursor.objects.update_or_create(
        tenant=tenant, defaults={"last_message_id": last or 0, "updated_at": now}
    )
    return len(cells)
