"""Platform name -> connector class. Adding a platform is its package plus one line here."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

import httpx

from connectors.base import Connector

CONNECTORS: dict[str, str] = {
    "shopify": "connectors.shopify.connector:ShopifyConnector",
    "amazon": "connectors.amazon.connector:AmazonConnector",
}


class UnknownPlatform(LookupError):
    pass


def connector_class(platform: str) -> type[Connector]:
    try:
        module_name, class_name = CONNECTORS[platform].split(":")
    except KeyError:
        raise UnknownPlatform(f"no connector for platform {platform!r}") from None
    cls: type[Connector] = getattr(importlib.import_module(module_name), class_name)
    return cls


def get_connector(
    platform: str,
    settings_values: Mapping[str, Any],
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Connector:
    """A connector configured from the hub's settings (``Settings.model_dump()``)."""
    cls = connector_class(platform)
    factory = getattr(cls, "from_settings", None)
    if factory is None:
        raise TypeError(f"{cls.__name__} lacks from_settings(values, transport=...)")
    connector: Connector = factory(settings_values, transport=transport)
    return connector
