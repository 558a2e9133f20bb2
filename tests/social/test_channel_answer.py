"""The push's answer: the same status, bytes and headers as DRF's Response.

social.channel_api answers with helpdesk.api_output.json_answer, which writes the
body with orjson when the request negotiated DRF's JSONRenderer plainly; these
tests hold its answers equal to the Response it replaces, and show that anything
else still gets that Response."""

from typing import Any

import pytest
from rest_framework.response import Response
from rest_framework.test import APIClient

from helpdesk.models import Message
from social import channel_api
from tenants.context import tenant_context
from tenants.models import Tenant, User
from tests.social.test_api_channel import client_for, open_channel

pytestmark = pytest.mark.django_db(transaction=True)

# Headers that differ from one request to the next whatever answers them.
_PER_REQUEST = {"x-request-id", "date"}


def _push(client: APIClient, tenant: Tenant, channel: int, n: int, **extra: Any) -> Any:
    return client.post(
        f"/api/v1/t/{tenant.slug}/channels/{channel}/messages/",
        {
            "external_id": f"answer-{n}",
            "text": f"Order {n} is late",
            "author": {"id": f"cust-{n}", "name": f"Customer {n}"},
        },
        format="json",
        **extra,
    )


def _answer(response: Any) -> tuple[int, bytes, list[tuple[str, str]]]:
    headers = [
        (name.lower(), value)
        for name, value in response.items()
        if name.lower() not in _PER_REQUEST
    ]
    return response.status_code, response.content, headers


def _drf_answer(request: Any, body: dict[str, Any], code: int) -> Response:
    return Response(body, status=code)


def test_a_push_is_answered_as_drf_answered_it(
    tenant: Tenant, owner: User, agent: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    channel = open_channel(tenant, owner)
    client = client_for(tenant, agent, "write")
    fast = [_push(client, tenant, channel, 1), _push(client, tenant, channel, 1)]
    monkeypatch.setattr(channel_api, "json_answer", _drf_answer)
    drf = [_push(client, tenant, channel, 2), _push(client, tenant, channel, 2)]
    fast_answers = [_answer(response) for response in fast]
    drf_answers = [_answer(response) for response in drf]

    assert [status for status, _, _ in fast_answers] == [201, 200]
    assert type(fast[0]) is not Response  # the fast path answered
    assert type(drf[0]) is Response
    # The same headers in the same order; the bodies differ only by the ids.
    assert [headers for _, _, headers in fast_answers] == [
        headers for _, _, headers in drf_answers
    ]
    with tenant_context(tenant):
        ids = {m.external_id: (m.pk, m.conversation_id) for m in Message.objects.all()}
    for n, answers in ((1, fast_answers), (2, drf_answers)):
        message_id, conversation_id = ids[f"answer-{n}"]
        assert [content for _, content, _ in answers] == [
            b'{"message_id":%d,"conversation_id":%d,"created":%s}'
            % (message_id, conversation_id, created)
            for created in (b"true", b"false")
        ]


def test_an_accept_with_parameters_still_gets_drfs_response(
    tenant: Tenant, owner: User, agent: User
) -> None:
    """`indent` is the renderer's to apply: such a request is answered by DRF."""
    channel = open_channel(tenant, owner)
    client = client_for(tenant, agent, "write")

    response = _push(
        client, tenant, channel, 3, HTTP_ACCEPT="application/json; indent=2"
    )

    assert response.status_code == 201
    assert type(response) is Response
    assert response["Content-Type"] == "application/json"
    assert response.content.startswith(b'{\n  "message_id": ')
