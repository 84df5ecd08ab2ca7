"""What a signed Shopify webhook body must look like for the topic its (unsigned) header names.

The HMAC covers the body only: ``X-Shopify-Topic`` and ``X-Shopify-Shop-Domain`` are not
signed, so a genuine body can be re-sent under another topic or shop. A body is acted on only
when its shape is the one Shopify publishes for that topic and the shop it names (where it
names one) is the header's shop. Shapes, from Shopify's webhook reference:

- ``customers/data_request``: ``shop_id``, ``shop_domain``, ``customer`` {id, email, phone},
  ``orders_requested``, ``data_request`` {id};
- ``customers/redact``: ``shop_id``, ``shop_domain``, ``customer``, ``orders_to_redact``;
- ``shop/redact``: ``shop_id`` and ``shop_domain`` only (sent 48 h after an uninstall);
- ``app/uninstalled``: the Shop object (``id``, ``myshopify_domain``, ``domain``, ``name`` ...);
- ``products/*``, ``orders/*``, ``customers/*``: the REST resource, whose
  ``admin_graphql_api_id`` is the resource's GID; ``*/delete`` bodies carry the id (and, for
  customers, the GID) and nothing of the deleted record;
- ``inventory_levels/update``: ``inventory_item_id``, ``location_id``, ``available``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Payload = Mapping[str, Any]
Check = Callable[[Payload], str | None]

SHOP_REDACT = "shop/redact"
APP_UNINSTALLED = "app/uninstalled"
COMPLIANCE_TOPICS = frozenset({"customers/data_request", "customers/redact", SHOP_REDACT})
# Topics that erase or disconnect: acted on only once the shop's access is confirmed gone.
DESTRUCTIVE_TOPICS = frozenset({APP_UNINSTALLED, SHOP_REDACT})


def _is_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _ids(value: object) -> bool:
    return isinstance(value, list) and all(_is_id(item) for item in value)


def _compliance(required: dict[str, Callable[[object], bool]], forbidden: set[str]) -> Check:
    def check(payload: Payload) -> str | None:
        if not _is_id(payload.get("shop_id")) or not isinstance(payload.get("shop_domain"), str):
            return "no shop_id and shop_domain"
        for key, valid in required.items():
            if not valid(payload.get(key)):
                return f"{key} missing or malformed"
        extra = forbidden & set(payload)
        return f"fields of another topic: {', '.join(sorted(extra))}" if extra else None

    return check


def _customer(value: object) -> bool:
    return isinstance(value, dict) and _is_id(value.get("id"))


def _shop_redact(payload: Payload) -> str | None:
    if set(payload) != {"shop_id", "shop_domain"}:
        return "a shop/redact body has shop_id and shop_domain only"
    if not _is_id(payload["shop_id"]) or not isinstance(payload["shop_domain"], str):
        return "shop_id or shop_domain malformed"
    return None


def _shop_object(payload: Payload) -> str | None:
    if not _is_id(payload.get("id")) or not isinstance(payload.get("myshopify_domain"), str):
        return "not a Shop object (id, myshopify_domain)"
    if {"shop_domain", "customer", "admin_graphql_api_id"} & set(payload):
        return "fields of another topic"
    return None


def _resource(kind: str, *, deleted: bool) -> Check:
    def check(payload: Payload) -> str | None:
        number = payload.get("id")
        if not _is_id(number):
            return "no numeric id"
        gid = payload.get("admin_graphql_api_id")
        if gid is not None and gid != f"gid://shopify/{kind}/{number}":
            return f"admin_graphql_api_id is not the {kind} {number}"
        if not deleted and gid is None:
            return "no admin_graphql_api_id"
        # A delete names the record and nothing of it: an update body re-sent as a delete
        # would carry the record's fields.
        if deleted and set(payload) - DELETE_FIELDS:
            return "fields a delete does not carry"
        return None

    return check


DELETE_FIELDS = frozenset({
    "id", "admin_graphql_api_id", "phone", "addresses", "tax_exemptions",
    "email_marketing_consent", "sms_marketing_consent",
})  # fmt: skip


def _inventory_level(payload: Payload) -> str | None:
    if not _is_id(payload.get("inventory_item_id")) or not _is_id(payload.get("location_id")):
        return "no inventory_item_id and location_id"
    return None


SHAPES: dict[str, Check] = {
    "customers/data_request": _compliance(
        {"customer": _customer, "orders_requested": _ids}, {"orders_to_redact"}
    ),
    "customers/redact": _compliance(
        {"customer": _customer, "orders_to_redact": _ids}, {"orders_requested", "data_request"}
    ),
    SHOP_REDACT: _shop_redact,
    APP_UNINSTALLED: _shop_object,
    "inventory_levels/update": _inventory_level,
}
# The resource topics the hub subscribes to (``queries.WEBHOOK_TOPICS``) and their GID type.
RESOURCE_TOPICS = {
    "products/create": "Product", "products/update": "Product", "products/delete": "Product",
    "orders/create": "Order", "orders/updated": "Order", "orders/cancelled": "Order",
    "orders/delete": "Order", "customers/create": "Customer", "customers/update": "Customer",
    "customers/delete": "Customer",
}  # fmt: skip
SHAPES.update(
    {topic: _resource(kind, deleted=topic.endswith("/delete"))
     for topic, kind in RESOURCE_TOPICS.items()}
)  # fmt: skip


def shape_problem(topic: str, payload: object) -> str | None:
    """Why ``payload`` is not a body Shopify sends for ``topic``; None when it is."""
    check = SHAPES.get(topic)
    if check is None:
        return f"topic {topic!r} is not one the hub subscribes to"
    if not isinstance(payload, dict):
        return "the body is not a JSON object"
    return check(payload)


def signed_shop(topic: str, payload: Payload) -> str | None:
    """The shop the signed body names (lower-case), for the topics whose body names one."""
    key = "myshopify_domain" if topic == APP_UNINSTALLED else "shop_domain"
    shop = payload.get(key) if topic in COMPLIANCE_TOPICS | {APP_UNINSTALLED} else None
    return shop.lower() if isinstance(shop, str) else None
