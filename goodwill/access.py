"""The gate of the goodwill app: interface code gets a pool only through it."""

from django.http import Http404

from goodwill.models import GoodwillPool
from tenants.models import Membership


def access_goodwill_pool(membership: Membership, pool_id: int) -> GoodwillPool:
    """A pool of the member's workspace, or 404. Any member passes."""
    pool = GoodwillPool.objects.select_related("brand").filter(pk=pool_id).first()
    if pool is None:
        raise Http404("No such pool")
    if pool.tenant_id != membership.tenant_id:
        raise Http404("No such pool")
    return pool
