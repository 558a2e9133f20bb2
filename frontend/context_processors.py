"""Template context shared by every page: the workspace switcher."""

import functools
from typing import Any

from django.http import HttpRequest

from social.selectors import account_banners
from tenants.selectors import user_workspaces


def workspace(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    tenant = getattr(request, "tenant", None)
    # Both banners come from one query, run only if the page shows them.
    banners = functools.cache(account_banners)
    return {
        "reauth_accounts": (lambda: banners().needing_reauth)
        if tenant is not None
        else None,
        "degraded_accounts": (lambda: banners().degraded)
        if tenant is not None
        else None,
        "current_membership": getattr(request, "membership", None),
        "current_tenant": getattr(request, "tenant", None),
        "my_workspaces": lambda: user_workspaces(user),
    }
