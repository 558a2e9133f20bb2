"""REST API of the workspace itself: brands, members and API tokens (SLA
policies and holidays: `tenants.api_sla`).

Permissions (role of the member, scope of the token when a token is used):
- brands: every member reads (read scope); admins add and change them (admin
  scope: workspace configuration);
- members: every member reads (read scope);
- API tokens: any member lists their own tokens, creates tokens for themselves and
  revokes their own; admins see and revoke everyone's. A token caller needs the
  admin scope for all of it, reads included, so a leaked read or write token can
  neither mint tokens nor list them.
"""

from typing import Any, ClassVar, cast

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from tenants.access import access_api_token, access_brand
from tenants.api_tokens import create_api_token, revoke_api_token
from tenants.brand_rules import BRAND_LIMITS, BrandSettings
from tenants.models import ApiToken, Brand, Membership
from tenants.permissions import TenantScopedApi
from tenants.selectors import workspace_api_tokens, workspace_brands, workspace_members
from tenants.services import add_brand, update_brand

Role = Membership.Role
Scope = ApiToken.Scope


class PingOutput(serializers.Serializer[Any]):
    ok = serializers.BooleanField(help_text="Always true.")


class WorkspacePingApi(TenantScopedApi):
    """Answer a constant once the caller is authenticated in the workspace.

    The baseline of the benchmarks: the framework, the tenant opening, the token and
    membership check, the role and scope check and the rate limit, and no work.
    Any member passes (read scope).
    """

    @extend_schema(responses=PingOutput)
    def get(self, request: Request) -> Response:
        return Response({"ok": True})


class BrandOutput(serializers.ModelSerializer[Brand]):
    class Meta:
        model = Brand
        fields: ClassVar[list[str]] = [
            "id",
            "name",
            "slug",
            "timezone",
            "business_hours",
            "public_reply_limit",
            "send_hold_seconds",
            "private_first_allowed",
            "signature_rules",
            "auto_assign",
            "pause_while_pending",
            "queue_window_minutes",
            "spreading_threshold",
            "publish_badge",
            "sla_digest",
            "spike_alerts",
            "spike_threshold",
            "spike_min_count",
            "created_at",
        ]


def _bounded(field: str, **kwargs: Any) -> serializers.IntegerField:
    low, high = BRAND_LIMITS[field]
    return serializers.IntegerField(min_value=low, max_value=high, **kwargs)


class BrandSettingsInput(serializers.Serializer[Any]):
    """The brand settings a client may set; the service checks them again (time
    zone, business hours shape, signature placeholders)."""

    timezone = serializers.CharField(
        required=False, max_length=64, help_text="An IANA time zone, e.g. Europe/Paris."
    )
    business_hours = serializers.DictField(
        required=False,
        child=serializers.ListField(
            child=serializers.ListField(
                child=serializers.CharField(max_length=5), min_length=2, max_length=2
            ),
            max_length=8,
        ),
        help_text='Per weekday (mon … sun), [["09:00", "17:00"], ...]; a day left out '
        "or empty is closed.",
    )
    public_reply_limit = _bounded("public_reply_limit", required=False)
    send_hold_seconds = _bounded("send_hold_seconds", required=False)
    private_first_allowed = serializers.BooleanField(required=False)
    signature_rules = serializers.DictField(
        required=False,
        child=serializers.CharField(
            max_length=100, allow_blank=True, trim_whitespace=False
        ),
        help_text='Per platform (or "default"), a template with {initials}, '
        '{first_name} or {agent_name}, e.g. {"x": " ^{initials}"}.',
    )
    auto_assign = serializers.BooleanField(required=False)
    pause_while_pending = serializers.BooleanField(
        required=False,
        help_text="Waiting on the customer (pending) stops the SLA clock.",
    )
    queue_window_minutes = _bounded(
        "queue_window_minutes",
        required=False,
        help_text="How far reach or sentiment may move a conversation up the queue "
        "(never past one that is breached or would breach first).",
    )
    spreading_threshold = _bounded(
        "spreading_threshold",
        required=False,
        help_text="Engagement per hour (reposts, likes, replies, quotes of the "
        "customer's public post) from which a conversation is flagged spreading "
        "and moves to the urgent lane (R13).",
    )
    publish_badge = serializers.BooleanField(
        required=False,
        help_text="Publish response rate and time on the public status page and badge.",
    )
    sla_digest = serializers.BooleanField(
        required=False,
        help_text="Email the brand's admins yesterday's figures each morning.",
    )
    spike_alerts = serializers.BooleanField(
        required=False, help_text="Alert (app, email, webhook) when inbound spikes."
    )
    spike_threshold = _bounded(
        "spike_threshold",
        required=False,
        help_text="How far above the usual volume for the hour of the week a "
        "five-minute count must be, in robust deviations (median and MAD).",
    )
    spike_min_count = _bounded(
        "spike_min_count",
        required=False,
        help_text="Never alert below this many messages in five minutes (the "
        "floor for quiet brands).",
    )


class BrandListApi(TenantScopedApi):
    """List the workspace's brands (members); add one (admin role, admin scope)."""

    write_role = Role.ADMIN
    write_scope = Scope.ADMIN

    class BrandCreateInput(BrandSettingsInput):
        name = serializers.CharField(max_length=120)

    @extend_schema(responses=BrandOutput(many=True))
    def get(self, request: Request) -> Response:
        brands = workspace_brands(self.membership)
        return Response(BrandOutput(brands, many=True).data)

    @extend_schema(request=BrandCreateInput, responses={201: BrandOutput})
    def post(self, request: Request) -> Response:
        payload = self.BrandCreateInput(data=request.data)
        payload.is_valid(raise_exception=True)
        data = dict(payload.validated_data)
        name = data.pop("name")
        brand = add_brand(
            self.membership,
            name=name,
            timezone_name=data.pop("timezone", "UTC"),
            changes=cast(BrandSettings, data),
        )
        return Response(BrandOutput(brand).data, status=status.HTTP_201_CREATED)


class BrandDetailApi(TenantScopedApi):
    """Read one brand (members); change its name or settings (admins, admin scope)."""

    write_role = Role.ADMIN
    write_scope = Scope.ADMIN

    class BrandUpdateInput(BrandSettingsInput):
        name = serializers.CharField(required=False, max_length=120)

    @extend_schema(responses=BrandOutput)
    def get(self, request: Request, brand_id: int) -> Response:
        brand = access_brand(self.membership, brand_id)
        return Response(BrandOutput(brand).data)

    @extend_schema(request=BrandUpdateInput, responses=BrandOutput)
    def patch(self, request: Request, brand_id: int) -> Response:
        brand = access_brand(self.membership, brand_id)
        payload = self.BrandUpdateInput(data=request.data)
        payload.is_valid(raise_exception=True)
        changes = cast(BrandSettings, dict(payload.validated_data))
        updated = update_brand(self.membership, brand, changes=changes)
        return Response(BrandOutput(updated).data)


class MemberOutput(serializers.ModelSerializer[Membership]):
    user_id = serializers.IntegerField(
        help_text="The id used for assignees (conversations' assignee_id)."
    )
    name = serializers.CharField(source="user.public_name")
    email = serializers.EmailField(source="user.email")
    languages = serializers.ListField(
        child=serializers.CharField(),
        help_text="ISO 639-1 codes this member answers in (auto-assign prefers them).",
    )

    class Meta:
        model = Membership
        fields: ClassVar[list[str]] = [
            "id",
            "user_id",
            "name",
            "email",
            "role",
            "languages",
        ]


class MemberListApi(TenantScopedApi):
    """The workspace's members, owners first (read-only)."""

    @extend_schema(responses=MemberOutput(many=True))
    def get(self, request: Request) -> Response:
        members = workspace_members(self.membership)
        return Response(MemberOutput(members, many=True).data)


class ApiTokenOutput(serializers.ModelSerializer[ApiToken]):
    member = MemberOutput(source="membership")

    class Meta:
        model = ApiToken
        fields: ClassVar[list[str]] = [
            "id",
            "name",
            "prefix",
            "scope",
            "member",
            "created_at",
            "last_used_at",
            "revoked_at",
        ]


class ApiTokenCreatedOutput(ApiTokenOutput):
    token = serializers.CharField(
        help_text="The token itself (esk_...). Shown this once; only a digest is kept."
    )

    class Meta(ApiTokenOutput.Meta):
        fields: ClassVar[list[str]] = [*ApiTokenOutput.Meta.fields, "token"]


class ApiTokenListApi(TenantScopedApi):
    """The caller's API tokens (admins: everyone's), newest first, revoked ones
    included; create a token for the caller. Token callers need the admin scope."""

    write_role = Role.VIEWER
    read_scope = Scope.ADMIN
    write_scope = Scope.ADMIN

    class ApiTokenCreateInput(serializers.Serializer[Any]):
        name = serializers.CharField(max_length=80)
        scope = serializers.ChoiceField(
            choices=Scope.choices,
            help_text="read < write < admin. Write needs the agent role, admin the "
            "admin role (403 otherwise).",
        )

    @extend_schema(responses=ApiTokenOutput(many=True))
    def get(self, request: Request) -> Response:
        tokens = workspace_api_tokens(self.membership)
        return Response(ApiTokenOutput(tokens, many=True).data)

    @extend_schema(request=ApiTokenCreateInput, responses={201: ApiTokenCreatedOutput})
    def post(self, request: Request) -> Response:
        payload = self.ApiTokenCreateInput(data=request.data)
        payload.is_valid(raise_exception=True)
        token, raw = create_api_token(self.membership, **payload.validated_data)
        body = {**ApiTokenOutput(token).data, "token": raw}
        return Response(body, status=status.HTTP_201_CREATED)


class ApiTokenRevokeApi(TenantScopedApi):
    """Revoke a token at once (idempotent): the caller's own, or any for admins.
    Token callers need the admin scope."""

    write_role = Role.VIEWER
    write_scope = Scope.ADMIN

    @extend_schema(request=None, responses=ApiTokenOutput)
    def post(self, request: Request, token_id: int) -> Response:
        token = access_api_token(self.membership, token_id)
        revoked = revoke_api_token(self.membership, token=token)
        return Response(ApiTokenOutput(revoked).data)
