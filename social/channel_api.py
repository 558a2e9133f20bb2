"""REST endpoints of the API channel: open channels, push inbound messages.

Mounted under /api/v1/t/<tenant_slug>/ by the root URLconf.
"""

import re
from typing import Any

import orjson
from django.core.exceptions import RequestDataTooBig
from django.http import HttpResponse
from django.http.request import RawPostDataException
from django.urls import path
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from helpdesk.api_output import json_answer, validated_input
from helpdesk.cache import drop_prefetched
from helpdesk.services.inbound import drop_read_call, inbound_read_call
from social.api_channel import (
    ChannelMessage,
    access_api_channel,
    access_api_channel_for_push,
    create_api_channel,
    record_channel_message,
)
from social.models import Platform, SocialAccount
from tenants.last_write import commit_with_last_write
from tenants.models import ApiToken, Brand, Membership
from tenants.permissions import TenantScopedApi
from tenants.resp import ScriptCall


class ChannelOutput(serializers.ModelSerializer[SocialAccount]):
    name = serializers.CharField(source="handle")

    class Meta:
        model = SocialAccount
        fields = ("id", "name", "brand_id", "status", "created_at")


class ChannelListApi(TenantScopedApi):
    """The workspace's API channels; admins open new ones."""

    write_role = Membership.Role.ADMIN
    write_scope = ApiToken.Scope.ADMIN

    class ChannelCreateInput(serializers.Serializer[Any]):
        brand_id = serializers.IntegerField()
        name = serializers.CharField(max_length=128)

        def validate_brand_id(self, value: int) -> Brand:
            brand = Brand.objects.filter(pk=value).first()
            if brand is None:
                raise serializers.ValidationError("No such brand in this workspace.")
            return brand

    @extend_schema(operation_id="channels_list", responses=ChannelOutput(many=True))
    def get(self, request: Request) -> Response:
        channels = SocialAccount.objects.filter(platform=Platform.API).order_by("id")
        return Response(ChannelOutput(channels, many=True).data)

    @extend_schema(request=ChannelCreateInput, responses={201: ChannelOutput})
    def post(self, request: Request) -> Response:
        payload = self.ChannelCreateInput(data=request.data)
        payload.is_valid(raise_exception=True)
        channel = create_api_channel(
            self.membership,
            brand=payload.validated_data["brand_id"],
            name=payload.validated_data["name"],
        )
        return Response(ChannelOutput(channel).data, status=status.HTTP_201_CREATED)


class ChannelMessageCreateApi(TenantScopedApi):
    """Push one inbound message from a custom source (idempotent by external_id).

    201 when recorded, 200 when that external id was recorded before (nothing new
    happens). Agents' replies come back through the outbound webhooks.
    """

    class ChannelAuthorInput(serializers.Serializer[Any]):
        id = serializers.CharField(max_length=128)
        handle = serializers.CharField(
            max_length=128, required=False, default="", allow_blank=True
        )
        name = serializers.CharField(
            max_length=200, required=False, default="", allow_blank=True
        )
        followers = serializers.IntegerField(
            min_value=0, max_value=2_000_000_000, required=False, default=0
        )

    class ChannelMessageInput(serializers.Serializer[Any]):
        external_id = serializers.CharField(max_length=128)
        text = serializers.CharField(max_length=10_000)
        author = serializers.DictField(required=True)
        visibility = serializers.ChoiceField(
            choices=[("public", "Public"), ("private", "Private")], default="private"
        )
        thread_id = serializers.CharField(
            max_length=128, required=False, default="", allow_blank=True
        )
        created_at = serializers.DateTimeField(required=False, allow_null=True)
        url = serializers.URLField(
            required=False, default="", allow_blank=True, max_length=200
        )

        def validate_author(self, value: dict[str, Any]) -> dict[str, Any]:
            author = validated_input(ChannelMessageCreateApi.ChannelAuthorInput, value)
            return dict(author)

    Output = inline_serializer(
        "ChannelMessageRecorded",
        {
            "message_id": serializers.IntegerField(),
            "conversation_id": serializers.IntegerField(),
            "created": serializers.BooleanField(),
        },
    )

    def throttle_ride_along(self, request: Request) -> ScriptCall | None:
        """The push's cached answers (routing's presence, the incident-rule flag,
        the webhook endpoints) read in the rate limit's round trip
        (tenants.api_auth.ApiRateThrottle): one Redis round trip per push."""
        tenant = getattr(request._request, "tenant", None)
        if tenant is None or request.method != "POST":
            return None
        return inbound_read_call(tenant.pk)

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().dispatch(request, *args, **kwargs)
        finally:
            drop_prefetched()  # answers a refused or replayed push did not use
            drop_read_call()

    @extend_schema(request=ChannelMessageInput, responses={200: Output, 201: Output})
    def post(self, request: Request, account_id: int) -> HttpResponse:
        # A plainly valid push's replay and author lookup go with the channel's
        # statement; any other push is validated after the channel is found
        # (a 404 before any 400, as before).
        data = plain_message_input(plain_json_body(request))
        lookup = None
        if data is None:
            channel = access_api_channel(self.membership, account_id)
            data = validated_input(self.ChannelMessageInput, request.data)
        else:
            channel, lookup = access_api_channel_for_push(
                self.membership,
                account_id,
                external_id=data["external_id"],
                author_id=data["author"]["id"],
            )
        author = data["author"]
        # The push is the request's last write: its statement may take COMMIT
        # with it (tenants.last_write), releasing the workspace's event counter
        # before the answer is built.
        with commit_with_last_write():
            result = record_channel_message(
                self.membership,
                account=channel,
                message=ChannelMessage(
                    external_id=data["external_id"],
                    text=data["text"],
                    author_id=author["id"],
                    author_handle=author["handle"],
                    author_name=author["name"],
                    author_followers=author["followers"],
                    visibility=data["visibility"],
                    thread_id=data["thread_id"],
                    created_at=data.get("created_at"),
                    url=data["url"],
                ),
                lookup=lookup,
            )
            body = {
                "message_id": result.message.pk,
                "conversation_id": result.conversation.pk,
                "created": result.created,
            }
            code = status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
            return json_answer(request, body, code)


# What DRF's CharField refuses besides length and blanks (its validators for
# null characters and surrogates).
_REFUSED_CHARACTERS = re.compile("[\x00\ud800-\udfff]")


def _plain_text(data: dict[str, Any], key: str, limit: int) -> str | None:
    """A required CharField's value (whitespace trimmed, not blank, at most
    `limit`), or None when the serializer must judge it."""
    value = data.get(key)
    if type(value) is not str:
        return None
    value = value.strip()
    if not value or len(value) > limit or _REFUSED_CHARACTERS.search(value):
        return None
    return value


def _plain_optional_text(data: dict[str, Any], key: str, limit: int) -> str | None:
    """An optional blank-allowed CharField's value ("" when absent), or None."""
    if key not in data:
        return ""
    value = data[key]
    if type(value) is not str:
        return None
    value = value.strip()
    if len(value) > limit or _REFUSED_CHARACTERS.search(value):
        return None
    return value


def plain_json_body(request: Request) -> Any:
    """The body of a plain JSON request (`Content-Type: application/json`, no
    parameters) as orjson reads it, for plain_message_input; None (DRF's parser
    then reads it, with its errors) for another content type or a charset, a
    body orjson refuses (it refuses what JSONParser refuses: NaN, invalid UTF-8,
    a BOM; and lone surrogates), too large, or read as a stream already. Where
    the two read a body differently (orjson reads an integer past 64 bits as a
    float), plain_message_input refuses the float or ignores the field. About
    45 us of a create's CPU less than request.data.
    """
    http = request._request
    if http.META.get("CONTENT_TYPE") != "application/json":
        return None
    try:
        return orjson.loads(http.body)
    except (orjson.JSONDecodeError, RawPostDataException, RequestDataTooBig):
        return None


def plain_message_input(data: Any) -> dict[str, Any] | None:
    """ChannelMessageInput's validated data for a plainly valid JSON push, or
    None when anything in it needs the serializer (a value of another type, a
    blank or over-long one, a refused character, `created_at` or `url` given):
    the serializer then validates the whole push, so every error is its own.
    About 0.2 ms of a create's CPU less than the serializer (helpdesk.api_output.
    validated_input); tests/social/test_channel_input.py holds the two equal."""
    if type(data) is not dict:
        return None
    author = data.get("author")
    if type(author) is not dict:
        return None
    if data.get("created_at", None) is not None or data.get("url", "") != "":
        return None
    visibility = data.get("visibility", "private")
    if visibility not in ("public", "private") or type(visibility) is not str:
        return None
    followers = author.get("followers", 0)
    if type(followers) is not int or not 0 <= followers <= 2_000_000_000:
        return None
    external_id = _plain_text(data, "external_id", 128)
    text = _plain_text(data, "text", 10_000)
    thread_id = _plain_optional_text(data, "thread_id", 128)
    author_id = _plain_text(author, "id", 128)
    handle = _plain_optional_text(author, "handle", 128)
    name = _plain_optional_text(author, "name", 200)
    if None in (external_id, text, thread_id, author_id, handle, name):
        return None
    plain: dict[str, Any] = {
        "external_id": external_id,
        "text": text,
        "author": {
            "id": author_id,
            "handle": handle,
            "name": name,
            "followers": followers,
        },
        "visibility": visibility,
        "thread_id": thread_id,
        "url": "",
    }
    if "created_at" in data:
        plain["created_at"] = None
    return plain


urlpatterns = [
    path("channels/", ChannelListApi.as_view(), name="channel-list"),
    path(
        "channels/<int:account_id>/messages/",
        ChannelMessageCreateApi.as_view(),
        name="channel-message-create",
    ),
]
