"""The demo's spike baseline: four weeks around the traffic generator's rate, so
its usual traffic is no spike and a wave of one cancelled flight is."""

from datetime import UTC, datetime

import pytest

from spikes.demo import DEMO_RATE, seed_spike_baseline
from spikes.detector import Verdict
from spikes.models import SpikeCount, SpikeCursor
from spikes.services import read_brand
from tenants.context import tenant_context
from tenants.models import Brand, Tenant

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 7, 10, 2, tzinfo=UTC)


def test_usual_traffic_is_normal_and_a_wave_is_a_spike(tenant: Tenant) -> None:
    with tenant_context(tenant):
        brand = Brand.objects.get()
        assert seed_spike_baseline(tenant, brand, now=NOW) == 29 * 288
        assert seed_spike_baseline(tenant, brand, now=NOW) == 0
        assert SpikeCursor.objects.get().last_message_id == 0
        reading = read_brand(brand, now=NOW)
        live = reading.live
        assert live.weeks == 4
        assert abs(live.median - DEMO_RATE) <= 2
        assert 30 <= live.threshold <= 40
        now_cell = SpikeCount.objects.create(
            brand=brand, bucket=NOW.replace(minute=0), sentiment="negative", count=20
        )
        assert read_brand(brand, now=NOW).live.verdict is Verdict.NORMAL
        now_cell.count = 55
        now_cell.save(update_fields=["count"])
        assert read_brand(brand, now=NOW).live.verdict is Verdict.SPIKE
