"""Open the tenant of `/t/<slug>/...` requests around the whole view.

The middleware owns the request transaction: `open_tenant_context` begins it and
its first statement resolves the workspace, applies the tenant setting (SET LOCAL)
and checks the session's membership or the bearer token (tenants/opening.py); only
then is the view called, so the view and the template rendering run in that one
transaction (reference/tenancy.md P6). BEGIN, that statement and COMMIT are the
whole fixed cost of a request. A 5xx response rolls the transaction back.
"""

import copy
import re
from collections.abc import Callable
from functools import lru_cache
from types import ModuleType
from typing import Any

from django.conf import settings
from django.contrib.auth.middleware import (
    AuthenticationMiddleware as DjangoAuthenticationMiddleware,
)
from django.contrib.auth.models import AnonymousUser
from django.contrib.auth.views import redirect_to_login
from django.contrib.messages.middleware import (
    MessageMiddleware as DjangoMessageMiddleware,
)
from django.contrib.sessions.middleware import (
    SessionMiddleware as DjangoSessionMiddleware,
)
from django.core.exceptions import PermissionDenied
from django.db import connection, transaction
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseForbidden,
    JsonResponse,
)
from django.middleware.csp import (
    ContentSecurityPolicyMiddleware as DjangoContentSecurityPolicyMiddleware,
)
from django.middleware.csp import get_nonce
from django.middleware.csrf import CsrfViewMiddleware as DjangoCsrfViewMiddleware
from django.template.response import TemplateResponse
from django.urls import Resolver404, path, resolve
from django.utils.csp import CSP, build_policy

from tenants.access import open_tenant_for_member
from tenants.api_tokens import open_tenant_with_token
from tenants.context import open_tenant_context
from tenants.models import Tenant
from tenants.opening import Lateral, LateralRoute, OpenedTenant, lateral_route

TENANT_PATH = re.compile(r"^/t/(?P<slug>[-a-zA-Z0-9_]+)/")
API_PATH = re.compile(r"^/api/v\d+/t/(?P<slug>[-a-zA-Z0-9_]+)/")
TENANT_ADMIN_PATH = re.compile(r"^/t/(?P<slug>[-a-zA-Z0-9_]+)/admin/")


@lru_cache(maxsize=512)
def tenant_admin_urlconf(slug: str) -> Any:
    """A URLconf with the tenant admin mounted at `/t/<slug>/admin/`.

    The admin reverses its own URLs without a tenant argument, so each workspace
    gets a URLconf where the prefix is fixed (set as `request.urlconf`).
    """
    from django.utils.module_loading import import_string

    root = import_string(f"{settings.ROOT_URLCONF}.urlpatterns")
    site = import_string("tenants.admin.tenant_admin_site")
    urlconf = ModuleType(f"tenant_admin_urls_{slug}")
    urlconf.urlpatterns = [path(f"t/{slug}/admin/", site.urls), *root]  # type: ignore[attr-defined]
    return urlconf


class TenantMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        api = API_PATH.match(request.path_info)
        if api is not None:
            return self.api(request, api["slug"])
        match = TENANT_PATH.match(request.path_info)
        if match is None:
            return self.get_response(request)
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        user, slug = request.user, match["slug"]
        with open_tenant_context(lambda: open_tenant_for_member(user, slug)) as opened:
            tenant = opened.tenant
            request.tenant = tenant  # type: ignore[attr-defined]
            request.membership = opened.membership  # type: ignore[attr-defined]
            if tenant.status == Tenant.Status.SUSPENDED:
                return self.suspended(request, tenant)
            if TENANT_ADMIN_PATH.match(request.path_info):
                request.urlconf = tenant_admin_urlconf(tenant.slug)
            response = self.get_response(request)
            if response.status_code >= 500:
                transaction.set_rollback(True)
        return response

    def api(self, request: HttpRequest, slug: str) -> HttpResponse:
        """`/api/v1/t/<slug>/...`: a bearer token of this workspace, or the session.

        Failures answer in the API's error body instead of HTML: no credentials is
        401; an unknown workspace, a non-member, or a token of another workspace
        is 404.
        """
        bearer = _bearer(request)
        if bearer is None and not request.user.is_authenticated:
            return api_error(401, "not_authenticated", "Send a token or log in.")
        try:
            with open_tenant_context(self.api_opener(request, slug, bearer)) as opened:
                if opened.token is not None:
                    request.user = opened.membership.user
                    request.api_token = opened.token  # type: ignore[attr-defined]
                request.tenant = opened.tenant  # type: ignore[attr-defined]
                request.membership = opened.membership  # type: ignore[attr-defined]
                if opened.tenant.status == Tenant.Status.SUSPENDED:
                    return api_error(
                        403, "workspace_suspended", "This workspace is suspended."
                    )
                response = self.get_response(request)
                # A refused API call changes nothing, even when a view ran several
                # services before one refused.
                if response.status_code >= 400:
                    transaction.set_rollback(True)
                return response
        except Http404:
            return api_error(
                404, "not_found", "No such workspace, or it is not open to you."
            )
        except PermissionDenied as error:
            return api_error(403, "permission_denied", str(error))

    @staticmethod
    def api_opener(
        request: HttpRequest, slug: str, bearer: str | None
    ) -> Callable[[], OpenedTenant]:
        """The bearer token's opener when one is sent (the session is then not
        read), else the session's. A token request to a route that carries a
        Lateral (the reply's row lock) reads it in the same statement."""
        if bearer is not None:
            if request.method != "POST":
                return lambda: open_tenant_with_token(slug, bearer)
            # Inside the opener: the read is made in the request's transaction.
            return lambda: open_tenant_with_token(
                slug, bearer, lateral=_lateral(request)
            )
        user = request.user
        return lambda: open_tenant_for_member(user, slug)

    def suspended(self, request: HttpRequest, tenant: Tenant) -> HttpResponse:
        response = TemplateResponse(
            request, "frontend/suspended.html", {"tenant": tenant}, status=403
        )
        response.render()
        return response


def _lateral(request: HttpRequest) -> Lateral | None:
    """The Lateral of the route a token API request takes (tenants.opening),
    with the role and scope its view requires of a write, or None (always on
    SQLite, where the opening is ordinary queries)."""
    api = API_PATH.match(request.path_info)
    if api is None or connection.vendor != "postgresql":
        return None
    found = lateral_route(request.method or "", request.path_info[api.end() :])
    if found is None:
        return None
    route, groups = found
    view = _routed_view(route, api.start("slug"), request.path_info)
    if view is None:
        return None
    role, scope = view
    return route.lateral(groups, role, scope)


_ROUTED_VIEWS: dict[tuple[LateralRoute, str], tuple[str, str] | None] = {}


def _routed_view(
    route: LateralRoute, slug_at: int, path_info: str
) -> tuple[str, str] | None:
    """The role and scope the view of `route` requires of a write, read from
    the view the URLconf gives `path_info`; None when that is not the route's
    view (another API version) or not a workspace API view. Once per route and
    version prefix: resolving costs about 60 us."""
    key = (route, path_info[:slug_at])
    if key in _ROUTED_VIEWS:
        return _ROUTED_VIEWS[key]
    from tenants.permissions import TenantScopedApi  # imports DRF's views

    known = None
    try:
        match = resolve(path_info)
    except Resolver404:
        match = None
    view = None if match is None else getattr(match.func, "view_class", None)
    if (
        match is not None
        and match.view_name == route.view_name
        and isinstance(view, type)
        and issubclass(view, TenantScopedApi)
    ):
        known = (str(view.write_role), str(view.write_scope))
    _ROUTED_VIEWS[key] = known
    return known


def _bearer(request: HttpRequest) -> str | None:
    # META rather than request.headers: the same value, without building the
    # request's whole header mapping (no one else on a token call needs it).
    header: str = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() not in {"bearer", "token"}:
        return None
    return credentials.strip() or None


def api_error(status: int, code: str, message: str) -> JsonResponse:
    """The API's one error body, for answers given before a view runs."""
    return JsonResponse(
        {"code": code, "message": message, "fields": {}, "details": {}}, status=status
    )


# --- The token lane ------------------------------------------------------------------
# A request to `/api/vN/t/<slug>/` with `Authorization: Bearer ...` (or `Token ...`)
# is answered from the token alone: TenantMiddleware.api never reads the session
# for it, ApiTokenAuthentication authenticates it before SessionAuthentication
# could, and its views are DRF's (CSRF-exempt; DRF checks CSRF only for session
# callers). The browser's middleware below has nothing to do for it, so these
# subclasses (in MIDDLEWARE in place of Django's) pass it straight through. Any
# other request, including a session-authenticated API call, runs them as before.


def token_api_request(request: HttpRequest) -> bool:
    """Whether `request` is a workspace API call that carries a token."""
    known: bool | None = getattr(request, "_earshot_token_api", None)
    if known is None:
        known = (
            API_PATH.match(request.path_info) is not None
            and _bearer(request) is not None
        )
        request._earshot_token_api = known  # type: ignore[attr-defined]
    return known


class SessionMiddleware(DjangoSessionMiddleware):
    """Django's, except for token API calls (no session is loaded or saved)."""

    def __call__(self, request: HttpRequest) -> Any:
        if token_api_request(request):
            return self.get_response(request)
        return super().__call__(request)


class CsrfViewMiddleware(DjangoCsrfViewMiddleware):
    """Django's, except for token API calls (their views are CSRF-exempt, and no
    CSRF cookie is read or set for them)."""

    def __call__(self, request: HttpRequest) -> Any:
        if token_api_request(request):
            return self.get_response(request)
        return super().__call__(request)

    def process_view(
        self,
        request: HttpRequest,
        callback: Callable[..., Any],
        callback_args: Any,
        callback_kwargs: Any,
    ) -> HttpResponseForbidden | None:
        if token_api_request(request):
            return None
        return super().process_view(request, callback, callback_args, callback_kwargs)


class AuthenticationMiddleware(DjangoAuthenticationMiddleware):
    """Django's, except that a token API call starts as anonymous: TenantMiddleware
    sets the token's user, and the session is not read."""

    def __call__(self, request: HttpRequest) -> Any:
        if token_api_request(request):
            request.user = AnonymousUser()
            return self.get_response(request)
        return super().__call__(request)


class MessageMiddleware(DjangoMessageMiddleware):
    """Django's, except for token API calls (no flash messages to keep)."""

    def __call__(self, request: HttpRequest) -> Any:
        if token_api_request(request):
            return self.get_response(request)
        return super().__call__(request)


class ContentSecurityPolicyMiddleware(DjangoContentSecurityPolicyMiddleware):
    """Django's, with the policy of a response that used no nonce built once.

    Without a nonce the header is the same string for every response of one
    configuration (every API response; most pages use the nonce): Django built
    it again each time, about 25 us of CPU per request on the bench machine. A
    response whose nonce was used goes to Django's code unchanged.
    """

    def process_response(
        self, request: HttpRequest, response: HttpResponse
    ) -> HttpResponse:
        if get_nonce(request):
            return super().process_response(request, response)
        sentinel = object()
        if (config := getattr(response, "_csp_config", sentinel)) is sentinel:
            config = settings.SECURE_CSP
        if (ro_config := getattr(response, "_csp_ro_config", sentinel)) is sentinel:
            ro_config = settings.SECURE_CSP_REPORT_ONLY
        for header, chosen in (
            (CSP.HEADER_ENFORCE, config),
            (CSP.HEADER_REPORT_ONLY, ro_config),
        ):
            if chosen and header not in response:
                response.headers[str(header)] = _policy_without_nonce(chosen)
        return response


# id(config) -> (a copy of config, its policy); a config is cached while it is
# equal to the copy, so one changed in place is built afresh. Settings' configs
# and views' few own ones: a handful of entries.
_policies: dict[int, tuple[Any, Any, str]] = {}


def _policy_without_nonce(config: Any) -> str:
    cached = _policies.get(id(config))
    if cached is not None and cached[0] is config and cached[1] == config:
        return cached[2]
    policy: str = build_policy(config, None)
    if len(_policies) < 64:
        _policies[id(config)] = (config, copy.deepcopy(config), policy)
    return policy
