"""Template context shared by every page: the workspace switcher."""

from typing import Any

from django.http import HttpRequest

from social.selectors import accounts_needing_reauth, degraded_accounts
from tenants.selectors import user_workspaces


def workspace(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    tenant = getattr(request, "tenant", None)
    return {
        "reauth_accounts": (lambda: accounts_needing_reauth())
        if tenant is not None
        else None,
        "degraded_accounts": (lambda: degraded_accounts())
        if tenant is not None
        else None,
        "current_membership": getattr(request, "membership", None),
        "current_tenant": getattr(request, "tenant", None),
        "my_workspaces": lambda: user_workspaces(user),
    }
