"""The demo's goodwill pools (seed_demo): one roomy pool and one about to run low,
so the composer shows both the one-click send and the low-pool warning."""

from goodwill.models import GoodwillPool
from goodwill.services import create_goodwill_pool, import_goodwill_codes
from tenants.models import Brand, Membership

DEMO_POOLS = (
    (
        "10% off next flight",
        "A discount on the customer's next booking.",
        10,
        "TENOFF",
        40,
    ),
    ("Lounge pass", "One free lounge visit; for long delays.", 5, "LOUNGE", 5),
)


def seed_goodwill_pools(membership: Membership, brand: Brand) -> int:
    """Create the demo pools with their codes once; returns how many were made.
    Call in the tenant's context with an owner's or admin's membership."""
    made = 0
    for name, description, mark, prefix, count in DEMO_POOLS:
        if GoodwillPool.objects.filter(brand=brand, name=name).exists():
            continue
        pool = create_goodwill_pool(
            membership,
            brand=brand,
            name=name,
            description=description,
            low_water_mark=mark,
        )
        codes = "\n".join(f"{prefix}-{n:04d}" for n in range(1, count + 1))
        import_goodwill_codes(membership, pool, text=codes)
        made += 1
    return made
