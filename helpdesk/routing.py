"""Websocket routes: the inbox stream of one workspace."""

from typing import Any

from django.urls import path

from helpdesk.consumers import InboxConsumer

websocket_urlpatterns: list[Any] = [
    path("ws/t/<slug:tenant_slug>/", InboxConsumer.as_asgi(), name="inbox-stream"),
]
