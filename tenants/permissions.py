"""The DRF side of the workspace gate.

`TenantMiddleware.api` has already resolved `/api/v1/t/<slug>/`, opened the tenant
and checked membership (404 for outsiders, and for tokens of other workspaces).
`TenantScopedApi` re-checks that the view runs for that workspace and applies the
view's role and token scope, so every endpoint states what it needs in two class
attributes.
"""

from typing import Any, ClassVar

from django.http import Http404
from rest_framework import exceptions, permissions
from rest_framework.request import Request
from rest_framework.views import APIView

from tenants.access import require_role
from tenants.models import ApiToken, Membership, Tenant


class TenantScopedApi(APIView):
    """Base class of every `/api/v1/t/<slug>/` endpoint.

    Reads (GET, HEAD, OPTIONS) need `read_role` and a token with `read_scope`;
    writes need `write_role` and `write_scope`. Both are checked in `initial()`,
    before the handler runs; services check roles again. Handlers receive the URL
    kwargs without `tenant_slug`.
    """

    read_role: ClassVar[Membership.Role] = Membership.Role.VIEWER
    read_scope: ClassVar[ApiToken.Scope] = ApiToken.Scope.READ
    write_role: ClassVar[Membership.Role] = Membership.Role.AGENT
    write_scope: ClassVar[ApiToken.Scope] = ApiToken.Scope.WRITE
    permission_classes = [permissions.IsAuthenticated]

    membership: Membership
    tenant: Tenant

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        membership: Membership | None = getattr(request._request, "membership", None)
        if membership is None:
            raise Http404("No such workspace")
        if membership.tenant.slug != self.tenant_slug:
            raise Http404("No such workspace")
        reading = request.method in permissions.SAFE_METHODS
        require_role(membership, self.read_role if reading else self.write_role)
        scope = self.read_scope if reading else self.write_scope
        token: ApiToken | None = getattr(request._request, "api_token", None)
        if token is not None and not token.allows(scope):
            raise TokenScopeMissing(scope)
        self.membership = membership
        self.tenant = membership.tenant

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        self.tenant_slug: str | None = kwargs.pop("tenant_slug", None)
        return super().dispatch(request, *args, **kwargs)


class TokenScopeMissing(exceptions.PermissionDenied):
    default_code = "scope_missing"

    def __init__(self, scope: str) -> None:
        super().__init__(f"This token lacks the {scope} scope.", code="scope_missing")
