"""`tenant_view`: the gate for Django views under `/t/<tenant_slug>/`."""

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse

from tenants.access import require_role
from tenants.http import TenantRequest
from tenants.models import Membership

View = Callable[..., HttpResponse]


def tenant_view(
    role: Membership.Role = Membership.Role.VIEWER,
) -> Callable[[View], View]:
    """Require the middleware's membership and at least `role`; drop `tenant_slug`.

    The middleware has already opened the tenant and checked membership (404 for
    outsiders); this checks the role (403) and hands the view a `TenantRequest`.
    """

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapped(
            request: HttpRequest, tenant_slug: str, *args: Any, **kwargs: Any
        ) -> HttpResponse:
            membership = getattr(request, "membership", None)
            if membership is None:
                raise Http404("No such workspace")
            if membership.tenant.slug != tenant_slug:
                raise Http404("No such workspace")
            require_role(membership, role)
            tenant_request: TenantRequest = request  # type: ignore[assignment]
            return view(tenant_request, *args, **kwargs)

        return wrapped

    return decorator
