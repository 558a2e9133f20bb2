"""The connector registry: `get_connector(platform)`."""

import importlib
import importlib.util

from social.connectors.base import Connector, ConnectorError

_REGISTRY: dict[str, type[Connector]] = {}
# Where each platform's connector lives; imported on first use.
_MODULES = {
    "sandbox": "social.connectors.sandbox",
    "x": "social.connectors.x",
    "facebook": "social.connectors.meta",
    "instagram": "social.connectors.meta",
    "reddit": "social.connectors.reddit",
    "mastodon": "social.connectors.mastodon",
    "bluesky": "social.connectors.bluesky",
    "api": "social.connectors.api",
}


def register_connector(connector: type[Connector]) -> type[Connector]:
    """Register a connector class under its `platform` (usable as a decorator)."""
    _REGISTRY[connector.platform] = connector
    return connector


def unregister_connector(platform: str) -> None:
    _REGISTRY.pop(platform, None)


def get_connector(platform: str) -> Connector:
    """An instance of the platform's connector; ConnectorError when there is none."""
    # A platform whose connector module does not exist yet stays unregistered.
    module = _MODULES.get(platform)
    if (
        platform not in _REGISTRY
        and module is not None
        and importlib.util.find_spec(module) is not None
    ):
        loaded = importlib.import_module(module)
        if platform not in _REGISTRY:
            # Imported earlier and unregistered since (tests swap fakes in and
            # out): a module registers on first import only, so look it up.
            for value in vars(loaded).values():
                if (
                    isinstance(value, type)
                    and issubclass(value, Connector)
                    and value.platform == platform
                ):
                    _REGISTRY[platform] = value
    try:
        return _REGISTRY[platform]()
    except KeyError:
        raise ConnectorError(f"No connector for {platform!r}", permanent=True) from None


def registered_platforms() -> list[str]:
    return sorted(_REGISTRY)


__all__ = ["Connector", "ConnectorError", "get_connector", "register_connector"]
