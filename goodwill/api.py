"""REST API of goodwill gestures, mounted under /api/v1/t/<slug>/goodwill/.

Permissions: every member lists and reads pools and the report; agents (write
scope) attach a code to a private reply; admins (write scope: a pool is care
content, like a saved reply) add pools, change them and import codes.
"""

from datetime import timedelta
from typing import Any

from django.http import Http404
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from goodwill.access import access_goodwill_pool
from goodwill.selectors import PoolView, gesture_report, goodwill_pools, pool_counts
from goodwill.services import (
    LOW_WATER_MAX,
    create_goodwill_pool,
    import_goodwill_codes,
    send_goodwill_reply,
    update_goodwill_pool,
)
from helpdesk.access import access_conversation
from helpdesk.models import Message
from tenants.access import access_brand
from tenants.api_fields import BrandIdField
from tenants.models import Membership
from tenants.permissions import TenantScopedApi

ADMIN = Membership.Role.ADMIN


class PoolOutput(serializers.Serializer[Any]):
    id = serializers.IntegerField(source="pool.pk")
    brand_id = serializers.IntegerField(source="pool.brand_id")
    name = serializers.CharField(source="pool.name")
    description = serializers.CharField(source="pool.description")
    low_water_mark = serializers.IntegerField(source="pool.low_water_mark")
    available = serializers.IntegerField(help_text="Codes left to hand out.")
    used = serializers.IntegerField(help_text="Codes that went out in a reply.")
    is_low = serializers.BooleanField(help_text="Fewer codes left than the mark.")
    warning = serializers.CharField(help_text="The low-pool warning, or empty.")


def _pool_view(pool: Any) -> PoolView:
    available, used = pool_counts([pool.pk]).get(pool.pk, (0, 0))
    return PoolView(pool, available, used)


class GoodwillPoolListApi(TenantScopedApi):
    """List the pools with their counts (members); add one (admin role)."""

    write_role = ADMIN

    class PoolFilter(serializers.Serializer[Any]):
        brand = serializers.IntegerField(required=False, min_value=1)

    class PoolCreateInput(serializers.Serializer[Any]):
        brand_id = BrandIdField(source="brand")
        name = serializers.CharField(max_length=80)
        description = serializers.CharField(
            max_length=300, required=False, allow_blank=True, default=""
        )
        low_water_mark = serializers.IntegerField(
            min_value=0, max_value=LOW_WATER_MAX, required=False, default=10
        )

    @extend_schema(parameters=[PoolFilter], responses=PoolOutput(many=True))
    def get(self, request: Request) -> Response:
        filters = self.PoolFilter(data=request.query_params)
        filters.is_valid(raise_exception=True)
        brand_id = filters.validated_data.get("brand")
        brand = access_brand(self.membership, brand_id) if brand_id else None
        pools = goodwill_pools(self.membership, brand=brand)
        return Response(PoolOutput(pools, many=True).data)

    @extend_schema(request=PoolCreateInput, responses={201: PoolOutput})
    def post(self, request: Request) -> Response:
        payload = self.PoolCreateInput(
            data=request.data, context={"membership": self.membership}
        )
        payload.is_valid(raise_exception=True)
        pool = create_goodwill_pool(self.membership, **payload.validated_data)
        return Response(
            PoolOutput(_pool_view(pool)).data, status=status.HTTP_201_CREATED
        )


class GoodwillPoolDetailApi(TenantScopedApi):
    """Read a pool (members); change its description or mark (admin role)."""

    write_role = ADMIN

    class PoolUpdateInput(serializers.Serializer[Any]):
        description = serializers.CharField(
            max_length=300, required=False, allow_blank=True
        )
        low_water_mark = serializers.IntegerField(
            min_value=0, max_value=LOW_WATER_MAX, required=False
        )

    @extend_schema(responses=PoolOutput)
    def get(self, request: Request, pool_id: int) -> Response:
        pool = access_goodwill_pool(self.membership, pool_id)
        return Response(PoolOutput(_pool_view(pool)).data)

    @extend_schema(request=PoolUpdateInput, responses=PoolOutput)
    def patch(self, request: Request, pool_id: int) -> Response:
        pool = access_goodwill_pool(self.membership, pool_id)
        payload = self.PoolUpdateInput(data=request.data)
        payload.is_valid(raise_exception=True)
        updated = update_goodwill_pool(self.membership, pool, **payload.validated_data)
        return Response(PoolOutput(_pool_view(updated)).data)


class GoodwillCodeImportApi(TenantScopedApi):
    """Import codes into a pool, all or nothing (admin role). A malformed or
    duplicate line answers 400 `import_invalid` with details.lines (line, text,
    reason per bad line), and nothing is imported."""

    write_role = ADMIN

    class CodeImportInput(serializers.Serializer[Any]):
        codes = serializers.CharField(
            max_length=1_000_000,
            trim_whitespace=False,
            help_text="One code per line, or a CSV whose first column is the code "
            '(a first line "code" is a header).',
        )

    @extend_schema(
        request=CodeImportInput,
        responses={201: PoolOutput},
    )
    def post(self, request: Request, pool_id: int) -> Response:
        pool = access_goodwill_pool(self.membership, pool_id)
        payload = self.CodeImportInput(data=request.data)
        payload.is_valid(raise_exception=True)
        import_goodwill_codes(
            self.membership, pool, text=payload.validated_data["codes"]
        )
        return Response(
            PoolOutput(_pool_view(pool)).data, status=status.HTTP_201_CREATED
        )


class GestureOutput(serializers.Serializer[Any]):
    message_id = serializers.IntegerField()
    code = serializers.CharField()
    pool = PoolOutput()


class GoodwillReplyCreateApi(TenantScopedApi):
    """One click: queue a private reply with a code of the pool (agents). 409
    `goodwill_private_only` for a public reply, 409 `pool_empty` when no code is
    left, and every refusal of a reply; nothing is claimed then."""

    class GoodwillReplyInput(serializers.Serializer[Any]):
        pool_id = serializers.IntegerField(min_value=1)
        text = serializers.CharField(max_length=10000, trim_whitespace=False)
        visibility = serializers.ChoiceField(
            choices=Message.Visibility.choices, required=False
        )
        confirm = serializers.ListField(
            child=serializers.ChoiceField(choices=["stale_view"]),
            required=False,
            max_length=5,
        )

    @extend_schema(request=GoodwillReplyInput, responses={201: GestureOutput})
    def post(self, request: Request, conversation_id: int) -> Response:
        conversation = access_conversation(self.membership, conversation_id)
        payload = self.GoodwillReplyInput(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        try:
            pool = access_goodwill_pool(self.membership, data["pool_id"])
        except Http404:
            raise serializers.ValidationError(
                {"pool_id": ["No such pool in this workspace."]}
            ) from None
        outcome = send_goodwill_reply(
            conversation,
            membership=self.membership,
            pool=pool,
            text=data["text"],
            visibility=data.get("visibility"),
            confirm=data.get("confirm", []),
        )
        body = {
            "message_id": outcome.reply.message.pk,
            "code": outcome.code.code,
            "pool": PoolOutput(_pool_view(pool)).data,
        }
        return Response(body, status=status.HTTP_201_CREATED)


class GestureReportOutput(serializers.Serializer[Any]):
    since = serializers.DateTimeField()
    until = serializers.DateTimeField()
    total = serializers.IntegerField()
    by_agent = serializers.ListField(child=serializers.DictField())
    by_brand = serializers.ListField(child=serializers.DictField())
    by_band = serializers.ListField(
        child=serializers.DictField(),
        help_text="Per follower band: gestures, conversations opened and gestures "
        "per 100 conversations (null without conversations).",
    )


class GestureReportApi(TenantScopedApi):
    """Goodwill gestures per agent, per brand and per follower band (members)."""

    class GestureReportQuery(serializers.Serializer[Any]):
        days = serializers.IntegerField(min_value=1, max_value=366, default=30)
        brand = serializers.IntegerField(required=False, min_value=1)

    @extend_schema(parameters=[GestureReportQuery], responses=GestureReportOutput)
    def get(self, request: Request) -> Response:
        query = self.GestureReportQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        data = query.validated_data
        brand = None
        if "brand" in data:
            try:
                brand = access_brand(self.membership, data["brand"])
            except Http404:
                raise serializers.ValidationError(
                    {"brand": ["No such brand in this workspace."]}
                ) from None
        until = timezone.now()
        since = until - timedelta(days=data["days"])
        report = gesture_report(self.membership, since=since, until=until, brand=brand)
        return Response(
            {
                "since": since,
                "until": until,
                "total": report.total,
                "by_agent": report.by_agent,
                "by_brand": report.by_brand,
                "by_band": report.by_band,
            }
        )
