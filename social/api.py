"""REST API of the social layer: connected accounts (read-only, with their status
and what their platform allows) and listening rules (CRUD, and trying a query).

Permissions: every member reads accounts and rules and tries queries (read scope;
trying a query is a POST that changes nothing). Creating, changing and deleting
rules needs the admin role and the admin scope: rules are workspace configuration
that decides what enters the inbox. Connecting and disconnecting accounts stays in
the settings pages (OAuth needs a browser).
"""

from dataclasses import asdict
from datetime import timedelta
from typing import Any, ClassVar, cast

from drf_spectacular.utils import extend_schema, extend_schema_field, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from social.access import access_listening_rule, access_social_account
from social.listening_services import (
    ListeningRuleChanges,
    create_listening_rule,
    delete_listening_rule,
    try_listening_query,
    update_listening_rule,
)
from social.models import ListeningRule, Platform, SocialAccount
from social.selectors import (
    platform_capabilities,
    workspace_accounts,
    workspace_listening_rules,
)
from tenants.api_fields import BrandIdField, BrandRefOutput
from tenants.models import ApiToken, Membership
from tenants.permissions import TenantScopedApi


class CapabilitiesOutput(serializers.Serializer[Any]):
    public_reply = serializers.BooleanField()
    private_message = serializers.BooleanField()
    private_reply_to_public = serializers.BooleanField()
    start_private = serializers.BooleanField()
    private_reply_window_seconds = serializers.IntegerField(
        allow_null=True,
        help_text="How long after the customer's message a private "
        "reply is allowed; null: no limit.",
    )
    max_length = serializers.IntegerField()
    public_reply_needs_mention = serializers.BooleanField()
    webhooks = serializers.BooleanField()
    polling = serializers.BooleanField()
    streaming = serializers.BooleanField()


class SocialAccountOutput(serializers.ModelSerializer[SocialAccount]):
    brand = BrandRefOutput()
    needs_reauth = serializers.SerializerMethodField()
    degraded = serializers.BooleanField(read_only=True)
    capabilities = serializers.SerializerMethodField()

    class Meta:
        model = SocialAccount
        fields: ClassVar[list[str]] = [
            "id",
            "platform",
            "handle",
            "display_name",
            "brand",
            "purpose",
            "status",
            "needs_reauth",
            "degraded",
            "degraded_since",
            "last_error",
            "capabilities",
            "created_at",
        ]

    def get_needs_reauth(self, account: SocialAccount) -> bool:
        return account.status == SocialAccount.Status.NEEDS_REAUTH

    @extend_schema_field(CapabilitiesOutput(allow_null=True))
    def get_capabilities(self, account: SocialAccount) -> dict[str, Any] | None:
        capabilities = platform_capabilities(account.platform)
        if capabilities is None:
            return None
        flags = asdict(capabilities)
        window: timedelta | None = flags.pop("private_reply_window")
        seconds = int(window.total_seconds()) if window is not None else None
        return {**flags, "private_reply_window_seconds": seconds}


class SocialAccountListApi(TenantScopedApi):
    """The workspace's connected accounts by brand, every status included."""

    @extend_schema(responses=SocialAccountOutput(many=True))
    def get(self, request: Request) -> Response:
        accounts = workspace_accounts(self.membership)
        return Response(SocialAccountOutput(accounts, many=True).data)


class SocialAccountDetailApi(TenantScopedApi):
    """One connected account: status (needs_reauth, last error) and capabilities."""

    @extend_schema(responses=SocialAccountOutput)
    def get(self, request: Request, account_id: int) -> Response:
        account = access_social_account(self.membership, account_id)
        return Response(SocialAccountOutput(account).data)


class ListeningRuleOutput(serializers.ModelSerializer[ListeningRule]):
    brand = BrandRefOutput()
    platforms = serializers.ListField(
        child=serializers.ChoiceField(choices=Platform.choices),
        help_text="Empty: every platform.",
    )
    variants = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField())
    )

    class Meta:
        model = ListeningRule
        fields: ClassVar[list[str]] = [
            "id",
            "brand",
            "name",
            "query",
            "platforms",
            "variants",
            "action",
            "enabled",
            "competitor",
            "updated_at",
        ]


class VariantsField(serializers.DictField):
    """Misspellings per term or phrase: at most 50 entries of 20 spellings."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault(
            "help_text",
            'Misspellings per term or phrase, e.g. {"acme air": ["akme air"]}.',
        )
        child = serializers.ListField(
            child=serializers.CharField(max_length=100), max_length=20
        )
        super().__init__(child=child, **kwargs)

    def to_internal_value(self, data: Any) -> dict[str, list[str]]:
        value: dict[str, list[str]] = super().to_internal_value(data)
        if len(value) > 50:
            raise serializers.ValidationError("At most 50 entries.")
        if any(len(key) > 100 or "\x00" in key for key in value):
            raise serializers.ValidationError(
                "Each entry is a term or phrase of at most 100 characters."
            )
        return value


class ListeningRuleFields(serializers.Serializer[Any]):
    """The writable fields of a rule; every one optional (the create input makes
    some required)."""

    brand_id = BrandIdField(source="brand", required=False)
    name = serializers.CharField(required=False, max_length=80)
    query = serializers.CharField(
        required=False,
        max_length=2000,
        help_text='e.g. ("acme air" OR acmeair OR #acmeair) -job; a syntax error '
        "names the character position.",
    )
    platforms = serializers.ListField(
        required=False,
        child=serializers.ChoiceField(choices=Platform.choices),
        max_length=len(Platform.values),
        help_text="Empty: every platform.",
    )
    variants = VariantsField(required=False)
    action = serializers.ChoiceField(
        required=False, choices=ListeningRule.Action.choices
    )
    enabled = serializers.BooleanField(required=False)
    competitor = serializers.BooleanField(
        required=False,
        help_text='A competitor rule (action "feed" only): its matches go to the '
        "competitor feed, never the inbox.",
    )


class ListeningRuleListApi(TenantScopedApi):
    """The workspace's listening rules by brand (members); add one (admin role,
    admin scope)."""

    write_role = Membership.Role.ADMIN
    write_scope = ApiToken.Scope.ADMIN

    class ListeningRuleFilter(serializers.Serializer[Any]):
        brand = serializers.IntegerField(required=False, min_value=1)

    class ListeningRuleCreateInput(ListeningRuleFields):
        brand_id = BrandIdField(source="brand")
        name = serializers.CharField(max_length=80)
        query = serializers.CharField(max_length=2000)

    @extend_schema(
        parameters=[ListeningRuleFilter], responses=ListeningRuleOutput(many=True)
    )
    def get(self, request: Request) -> Response:
        filters = self.ListeningRuleFilter(data=request.query_params)
        filters.is_valid(raise_exception=True)
        rules = workspace_listening_rules(
            self.membership, brand_id=filters.validated_data.get("brand")
        )
        return Response(ListeningRuleOutput(rules, many=True).data)

    @extend_schema(
        request=ListeningRuleCreateInput, responses={201: ListeningRuleOutput}
    )
    def post(self, request: Request) -> Response:
        payload = self.ListeningRuleCreateInput(
            data=request.data, context={"membership": self.membership}
        )
        payload.is_valid(raise_exception=True)
        rule = create_listening_rule(self.membership, **payload.validated_data)
        return Response(ListeningRuleOutput(rule).data, status=status.HTTP_201_CREATED)


class ListeningRuleDetailApi(TenantScopedApi):
    """Read one listening rule (members); change or delete it (admin role, admin
    scope)."""

    write_role = Membership.Role.ADMIN
    write_scope = ApiToken.Scope.ADMIN

    @extend_schema(responses=ListeningRuleOutput)
    def get(self, request: Request, rule_id: int) -> Response:
        rule = access_listening_rule(self.membership, rule_id)
        return Response(ListeningRuleOutput(rule).data)

    @extend_schema(request=ListeningRuleFields, responses=ListeningRuleOutput)
    def patch(self, request: Request, rule_id: int) -> Response:
        rule = access_listening_rule(self.membership, rule_id)
        payload = ListeningRuleFields(
            data=request.data, context={"membership": self.membership}
        )
        payload.is_valid(raise_exception=True)
        changes = cast(ListeningRuleChanges, dict(payload.validated_data))
        updated = update_listening_rule(self.membership, rule, changes=changes)
        return Response(ListeningRuleOutput(updated).data)

    @extend_schema(request=None, responses={204: None})
    def delete(self, request: Request, rule_id: int) -> Response:
        rule = access_listening_rule(self.membership, rule_id)
        delete_listening_rule(self.membership, rule)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ListeningRuleTestApi(TenantScopedApi):
    """Try a query on a sample post, as ingestion would match it. Changes nothing,
    so any member may call it with a read-scope token."""

    write_role = Membership.Role.VIEWER
    write_scope = ApiToken.Scope.READ

    class ListeningTestInput(serializers.Serializer[Any]):
        query = serializers.CharField(max_length=2000)
        text = serializers.CharField(max_length=10000, trim_whitespace=False)
        platform = serializers.ChoiceField(choices=Platform.choices, required=False)
        author = serializers.CharField(
            max_length=128,
            required=False,
            allow_blank=True,
            help_text="The author's handle.",
        )
        lang = serializers.RegexField(
            r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$",
            max_length=35,
            required=False,
            help_text="The post's language, e.g. en or en-GB.",
        )
        variants = VariantsField(required=False, default=dict)

    @extend_schema(
        request=ListeningTestInput,
        responses=inline_serializer(
            "ListeningTestResult",
            {
                "matches": serializers.BooleanField(),
                "terms": serializers.ListField(
                    child=serializers.CharField(),
                    help_text="The query's terms, phrases, #tags and @handles found "
                    "in the text (folded), excluded ones included.",
                ),
            },
        ),
    )
    def post(self, request: Request) -> Response:
        payload = self.ListeningTestInput(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        trial = try_listening_query(
            data["query"],
            text=data["text"],
            platform=data.get("platform", ""),
            author=data.get("author", ""),
            language=data.get("lang", ""),
            variants=data["variants"],
        )
        return Response({"matches": trial.matches, "terms": trial.terms})
