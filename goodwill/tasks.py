"""Tasks of the goodwill app."""

from django.core.mail import send_mail

from goodwill.models import GoodwillPool
from goodwill.selectors import available_codes
from helpdesk.services.digest import digest_recipients
from tenants.context import tenant_context
from tenants.models import Tenant
from tenants.tasks import tenant_task


@tenant_task(name="goodwill.send_low_pool_email", atomic=False)
def send_low_pool_email(tenant: Tenant, pool_id: int) -> int:
    """Email the workspace's owners and admins that a pool runs low (read, then
    send). Returns how many were emailed."""
    with tenant_context(tenant):
        pool = GoodwillPool.objects.select_related("brand").filter(pk=pool_id).first()
        if pool is None:
            return 0
        left = available_codes(pool).count()
        recipients = digest_recipients()
    if not recipients:
        return 0
    send_mail(
        subject=f"[Earshot] {pool.brand.name}: goodwill pool “{pool.name}” is low",
        message=(
            f"The goodwill pool “{pool.name}” of {pool.brand.name} has {left} code"
            f"{'' if left == 1 else 's'} left (the warning is below "
            f"{pool.low_water_mark}).\n\nImport more codes in Settings → Goodwill "
            f"of {tenant.name}.\n"
        ),
        from_email=None,
        recipient_list=recipients,
    )
    return len(recipients)
