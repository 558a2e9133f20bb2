"""The connector registry: `get_connector(platform)`."""

from social.connectors.base import Connector, ConnectorError

_REGISTRY: dict[str, type[Connector]] = {}


def register_connector(connector: type[Connector]) -> type[Connector]:
    """Register a connector class under its `platform` (usable as a decorator)."""
    _REGISTRY[connector.platform] = connector
    return connector


def unregister_connector(platform: str) -> None:
    _REGISTRY.pop(platform, None)


def get_connector(platform: str) -> Connector:
    """An instance of the platform's connector; ConnectorError when there is none."""
    try:
        return _REGISTRY[platform]()
    except KeyError:
        raise ConnectorError(f"No connector for {platform!r}", permanent=True) from None


def registered_platforms() -> list[str]:
    return sorted(_REGISTRY)


__all__ = ["Connector", "ConnectorError", "get_connector", "register_connector"]
