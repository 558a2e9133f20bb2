"""The Sandbox's HTTP API, as a platform would expose it: OAuth 2.0 with PKCE, bearer
tokens, posts, private messages, mention polling with cursors, idempotency keys,
a rate limit that answers 429 with Retry-After, and an outage switch (429s and
5xx for a while: social.sandbox.outage)."""

import base64
import hashlib
import json
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from social.sandbox import network
from social.sandbox.models import App, AuthCode, Grant, Person, Post
from social.sandbox.outage import guarded
from tenants.ratelimit import fixed_window_wait

ApiView = Callable[..., HttpResponse]


def error(status: int, message: str, **extra: Any) -> JsonResponse:
    return JsonResponse({"error": message, **extra}, status=status)


def _rate_limited(token: str) -> int | None:
    """Seconds to wait when this token used up its minute, else None."""
    return fixed_window_wait(
        "sandbox", token, limit=settings.SANDBOX_RATE_LIMIT_PER_MINUTE
    )


def bearer(view: ApiView) -> ApiView:
    """Refuse calls during an outage (social.sandbox.outage), authenticate the
    bearer token, apply the rate limit, pass the Grant."""

    @wraps(view)
    @guarded
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        header = request.headers.get("Authorization", "")
        token = (
            header.removeprefix("Bearer ").strip()
            if header.startswith("Bearer ")
            else ""
        )
        grant = network.grant_for_token(token) if token else None
        if grant is None:
            return error(401, "invalid or expired access token")
        wait = _rate_limited(token)
        if wait is not None:
            response = error(429, "rate limit exceeded")
            response["Retry-After"] = str(wait)
            return response
        return view(request, grant, *args, **kwargs)

    return wrapped


def _json_body(request: HttpRequest) -> dict[str, Any] | None:
    try:
        data = json.loads(request.body or b"{}")
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


@csrf_exempt
@require_http_methods(["POST"])
@guarded
def token(request: HttpRequest) -> HttpResponse:
    """Exchange an authorization code (with the PKCE verifier) or a refresh token."""
    form = request.POST
    app = App.objects.filter(client_id=form.get("client_id", "")).first()
    if app is None or app.client_secret != form.get("client_secret"):
        return error(401, "invalid client")
    grant_type = form.get("grant_type")
    if grant_type == "authorization_code":
        code = AuthCode.objects.filter(
            app=app, code=form.get("code", ""), used=False
        ).first()
        if code is None or code.expires_at < timezone.now():
            return error(400, "invalid or expired code")
        if code.redirect_uri != form.get("redirect_uri"):
            return error(400, "redirect_uri does not match")
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        if challenge.decode().rstrip("=") != code.code_challenge:
            return error(400, "code_verifier does not match the code_challenge")
        code.used = True
        code.save(update_fields=["used"])
        grant = network.issue_grant(None, app=app, person=code.person)
    elif grant_type == "refresh_token":
        existing = Grant.objects.filter(
            app=app, refresh_token=form.get("refresh_token", ""), revoked=False
        ).first()
        if existing is None:
            return error(400, "invalid refresh token")
        grant = network.issue_grant(existing)
    else:
        return error(400, "unsupported grant_type")
    return JsonResponse(
        {
            "access_token": grant.access_token,
            "refresh_token": grant.refresh_token,
            "token_type": "bearer",
            "expires_in": 3600,
            "account": network.person_json(grant.person),
        }
    )


@csrf_exempt
@require_http_methods(["POST"])
def revoke(request: HttpRequest) -> HttpResponse:
    """Revoke the grant of an access or refresh token (RFC 7009: an unknown token
    is not an error). The app authenticates with its client id and secret."""
    form = request.POST
    app = App.objects.filter(client_id=form.get("client_id", "")).first()
    if app is None or app.client_secret != form.get("client_secret"):
        return error(401, "invalid client")
    token = form.get("token", "")
    revoked = Grant.objects.filter(app=app, access_token=token).update(
        revoked=True
    ) + Grant.objects.filter(app=app, refresh_token=token).update(revoked=True)
    return JsonResponse({"revoked": bool(revoked)})


@csrf_exempt
@require_http_methods(["GET"])
@bearer
def me(request: HttpRequest, grant: Grant) -> HttpResponse:
    return JsonResponse(network.person_json(grant.person))


@csrf_exempt
@require_http_methods(["GET", "POST"])
@bearer
def posts(request: HttpRequest, grant: Grant) -> HttpResponse:
    """POST: publish as the account (a reply with `in_reply_to`). GET: own posts by
    idempotency key (what a client checks after a crash)."""
    if request.method == "GET":
        key = request.GET.get("idempotency_key", "")
        found = (
            Post.objects.filter(author=grant.person, idempotency_key=key) if key else []
        )
        return JsonResponse({"data": [network.post_json(p) for p in found]})
    data = _json_body(request)
    if data is None:
        return error(400, "body must be a JSON object")
    text = str(data.get("text", "")).strip()
    if not text:
        return error(400, "text is required", field="text")
    if len(text) > 500:
        return error(400, "text is longer than 500 characters", field="text")
    parent_id = None
    if data.get("in_reply_to"):
        # The publish reads the parent itself: one statement fewer per reply.
        parent_id = network.post_id_of(str(data["in_reply_to"]))
        if parent_id is None:
            return _no_parent()
    key = request.headers.get("Idempotency-Key", "")[:64]
    try:
        post, created = network.create_post(
            grant.person, text, in_reply_to_id=parent_id, idempotency_key=key
        )
    except network.NoSuchPost:
        return _no_parent()
    network.answer_delay()
    return JsonResponse(network.post_json(post), status=201 if created else 200)


def _no_parent() -> JsonResponse:
    return error(404, "the post you reply to does not exist", field="in_reply_to")


@csrf_exempt
@require_http_methods(["POST"])
@bearer
def messages(request: HttpRequest, grant: Grant) -> HttpResponse:
    """Send a private message as the account."""
    data = _json_body(request)
    if data is None:
        return error(400, "body must be a JSON object")
    text = str(data.get("text", "")).strip()
    recipient_id = str(data.get("recipient_id", ""))
    if not text:
        return error(400, "text is required", field="text")
    recipient = (
        Person.objects.filter(pk=recipient_id).first()
        if recipient_id.isdigit()
        else None
    )
    if recipient is None:
        return error(404, "no such recipient", field="recipient_id")
    key = request.headers.get("Idempotency-Key", "")[:64]
    message, created = network.send_message(
        grant.person, recipient, text, idempotency_key=key
    )
    return JsonResponse(network.message_json(message), status=201 if created else 200)


@csrf_exempt
@require_http_methods(["GET"])
@bearer
def mentions(request: HttpRequest, grant: Grant) -> HttpResponse:
    """Posts that mention the account, oldest first after `since_id`, paginated."""
    since = request.GET.get("since_id", "0")
    since_id = int(since) if since.isdigit() else 0
    limit = min(int(request.GET.get("limit", "50") or 50), 100)
    handle = grant.person.handle
    candidates = (
        Post.objects.select_related("author")
        .filter(pk__gt=since_id, text__icontains=f"@{handle}")
        .exclude(author=grant.person)
        .order_by("pk")
    )
    found = [post for post in candidates[: 5 * (limit + 1)] if handle in post.mentions]
    found = found[: limit + 1]
    page, more = found[:limit], len(found) > limit
    return JsonResponse(
        {
            "data": [network.post_json(p) for p in page],
            "next_since_id": str(page[-1].pk) if page else str(since_id),
            "has_more": more,
        }
    )


LOOKUP_LIMIT = 100


@csrf_exempt
@require_http_methods(["GET"])
@bearer
def lookup(request: HttpRequest, grant: Grant) -> HttpResponse:
    """The public metrics of up to LOOKUP_LIMIT posts: `?ids=1,2,3` (like X's
    `GET /2/tweets?ids=`). Posts that do not exist are listed under `errors`."""
    raw = [part for part in request.GET.get("ids", "").split(",") if part]
    if not raw:
        return error(400, "ids is required", field="ids")
    if len(raw) > LOOKUP_LIMIT:
        return error(400, f"at most {LOOKUP_LIMIT} ids per call", field="ids")
    if not all(part.isdigit() and len(part) <= 18 for part in raw):
        return error(400, "ids are post ids separated by commas", field="ids")
    ids = [int(part) for part in raw]
    data = network.engagement_json(ids)
    shown = {item["id"] for item in data}
    missing = [
        {"id": str(pk), "title": "Not Found"}
        for pk in dict.fromkeys(ids)
        if str(pk) not in shown
    ]
    body: dict[str, Any] = {"data": data}
    if missing:
        body["errors"] = missing
    return JsonResponse(body)
