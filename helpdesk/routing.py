"""Websocket routes. The inbox stream (`/ws/t/<slug>/`) arrives with the care core."""

from typing import Any

websocket_urlpatterns: list[Any] = []
