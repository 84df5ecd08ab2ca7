"""The Admin GraphQL API of a sandbox shop: Shopify's real 2026-10 schema run by graphql-core,
with resolvers for what the hub reads, and Shopify's calculated query cost.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import re
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    build_client_schema,
    get_named_type,
    value_from_ast,
)
from graphql.execution import ExecutionResult, execute
from graphql.language import parse
from graphql.validation import validate

from connectors.sandbox.shopify.bulk import unbounded_first
from connectors.sandbox.shopify.data import ID_BASE, ShopData, gid, iso

API_VERSION = "2026-10"
# A verbatim copy of Shopify's published schema (shared/platform-specs/shopify, ISC licence),
# so the sandbox runs on a fresh machine; a test checks it still matches the published file.
SCHEMA_PATH = Path(__file__).resolve().parent / "schema" / f"admin_{API_VERSION}.json.gz"
MAX_FIRST = 250
MAX_QUERY_COST = 1000


_schemas: list[GraphQLSchema] = []
_schema_lock = threading.Lock()


def admin_schema() -> GraphQLSchema:
    """Shopify's Admin schema, built once (a second or more of CPU): by the sandbox's lifespan
    in a thread at start (``warm_up``), so that the first query does not block the event
    loop; a caller that comes first builds it, and one that comes meanwhile waits for it."""
    if not _schemas:
        with _schema_lock:
            if not _schemas:
                _schemas.append(_build_schema())
    return _schemas[0]


async def warm_up() -> None:
    await asyncio.to_thread(admin_schema)


def _build_schema() -> GraphQLSchema:
    with gzip.open(SCHEMA_PATH) as handle:
        schema = build_client_schema(json.load(handle)["data"])
    # Shopify's own schema breaks a few of graphql-core's strictest type-system rules
    # (deprecated fields implementing non-deprecated interface fields). Shopify serves it as
    # is, so accept it as is: documents are still validated against it.
    schema._validation_errors = []  # type: ignore[attr-defined]
    _attach_resolvers(schema)
    return schema


class QueryError(Exception):
    """A document Shopify would refuse before running it (with its error body)."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(errors[0]["message"])
        self.errors = errors


# --- cost --------------------------------------------------------------------------------------


def _fields(
    selection: SelectionSetNode | None, parent: GraphQLObjectType, fragments: dict[str, Any]
) -> Iterator[tuple[FieldNode, Any]]:
    if selection is None:
        return
    for node in selection.selections:
        if isinstance(node, FieldNode):
            if node.name.value.startswith("__"):
                continue
            field = parent.fields.get(node.name.value) if hasattr(parent, "fields") else None
            if field is not None:
                yield node, field
        elif isinstance(node, InlineFragmentNode):
            yield from _fields(node.selection_set, parent, fragments)
        elif isinstance(node, FragmentSpreadNode):
            fragment = fragments.get(node.name.value)
            if fragment is not None:
                yield from _fields(fragment.selection_set, parent, fragments)


def _argument(node: FieldNode, name: str, field: Any, variables: dict[str, Any]) -> Any:
    for argument in node.arguments or ():
        if argument.name.value == name:
            return value_from_ast(argument.value, field.args[name].type, variables)
    return None


def selection_cost(
    selection: SelectionSetNode | None,
    parent: Any,
    fragments: dict[str, Any],
    variables: dict[str, Any],
    data: Any = None,
    actual: bool = False,
) -> int:
    """Shopify's calculated cost: scalars 0, objects 1, connections 2 + first x node cost.

    With ``actual`` the connection multiplies by the nodes returned instead of ``first``.
    """
    if not isinstance(parent, GraphQLObjectType) and not hasattr(parent, "fields"):
        return 0
    total = 0
    for node, field in _fields(selection, parent, fragments):
        named = get_named_type(field.type)
        key = node.alias.value if node.alias else node.name.value
        value = data.get(key) if isinstance(data, dict) else None
        if named.name.endswith("Connection") and hasattr(named, "fields"):
            first = (
                _argument(node, "first", field, variables)
                or _argument(node, "last", field, variables)
                or 0
            )
            node_type = (
                get_named_type(named.fields["nodes"].type) if "nodes" in named.fields else None
            )
            inner = 0
            items: list[Any] = []
            for sub, sub_field in _fields(node.selection_set, named, fragments):
                if sub.name.value == "nodes" and node_type is not None:
                    items = (
                        (value or {}).get(sub.alias.value if sub.alias else "nodes") or []
                        if actual
                        else []
                    )
                    inner += _per_node(sub, node_type, fragments, variables, items, actual, first)
                elif sub.name.value == "edges":
                    edge_type = get_named_type(sub_field.type)
                    for edge_sub, edge_field in _fields(sub.selection_set, edge_type, fragments):
                        if edge_sub.name.value == "node":
                            edges = (
                                (value or {}).get(sub.alias.value if sub.alias else "edges") or []
                                if actual
                                else []
                            )
                            items = [e.get("node") for e in edges if isinstance(e, dict)]
                            inner += _per_node(
                                edge_sub,
                                get_named_type(edge_field.type),
                                fragments,
                                variables,
                                items,
                                actual,
                                first,
                            )
            total += 2 + inner
        elif hasattr(named, "fields"):
            is_list = isinstance(field.type, GraphQLList) or (
                isinstance(field.type, GraphQLNonNull)
                and isinstance(field.type.of_type, GraphQLList)
            )
            if is_list and actual and isinstance(value, list):
                total += sum(
                    1
                    + selection_cost(node.selection_set, named, fragments, variables, item, actual)
                    for item in value
                )
            else:
                total += 1 + selection_cost(
                    node.selection_set, named, fragments, variables, value, actual
                )
    return total


def _per_node(
    node: FieldNode,
    node_type: Any,
    fragments: dict[str, Any],
    variables: dict[str, Any],
    items: list[Any],
    actual: bool,
    first: int,
) -> int:
    if actual:
        return sum(
            1 + selection_cost(node.selection_set, node_type, fragments, variables, item, True)
            for item in items
        )
    return first * (1 + selection_cost(node.selection_set, node_type, fragments, variables))


def document_cost(
    document: DocumentNode, variables: dict[str, Any], data: Any = None, actual: bool = False
) -> int:
    schema = admin_schema()
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    total = 0
    for definition in document.definitions:
        if not isinstance(definition, OperationDefinitionNode):
            continue
        if definition.operation.value == "mutation":
            total += 10 * len(definition.selection_set.selections)
            continue
        total += selection_cost(
            definition.selection_set, schema.query_type, fragments, variables, data, actual
        )
    return total


# --- execution ----------------------------------------------------------------------------


def run_query(
    shop: ShopData,
    query: str,
    variables: dict[str, Any] | None,
    context: dict[str, Any],
    *,
    charge: Callable[[int], bool],
) -> dict[str, Any]:
    """Validate, price, charge, execute; returns the JSON body Shopify would send."""
    variables = variables or {}
    try:
        document = parse(query)
    except Exception as error:
        return {"errors": [{"message": str(error), "extensions": {"code": "PARSE_ERROR"}}]}
    errors = validate(admin_schema(), document)
    if errors:
        return {"errors": [e.formatted for e in errors]}
    requested = document_cost(document, variables)
    if requested > MAX_QUERY_COST:
        return {"errors": [{
            "message": f"Query cost is {requested}, which exceeds the single query max cost "
                       f"limit ({MAX_QUERY_COST}).",
            "extensions": {"code": "MAX_COST_EXCEEDED", "cost": requested,
                           "maxCost": MAX_QUERY_COST},
        }], "_cost": (requested, 0)}  # fmt: skip
    if not charge(requested):
        return {
            "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
            "_cost": (requested, None),
        }
    result: ExecutionResult = execute(  # type: ignore[assignment]
        admin_schema(), document, variable_values=variables,
        context_value={**context, "shop": shop},
    )  # fmt: skip
    body: dict[str, Any] = {"data": _strip_private(result.data)}
    if result.errors:
        body["errors"] = [e.formatted for e in result.errors]
    actual = document_cost(document, variables, body["data"], actual=True)
    body["_cost"] = (requested, min(actual, requested))
    return body


def _strip_private(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_private(v) for k, v in value.items() if not k.startswith("_")}
    if isinstance(value, list):
        return [_strip_private(v) for v in value]
    return value


# --- pagination and search ---------------------------------------------------------------------

_UPDATED = re.compile(r"updated_at\s*:\s*(>=|>|<=|<)?\s*'?\"?([0-9T:\-\.Z+]+)'?\"?")


def parse_updated_filter(query: str | None) -> tuple[str, datetime] | None:
    if not query:
        return None
    match = _UPDATED.search(query)
    if not match:
        return None
    operator = match.group(1) or ">="
    moment = datetime.fromisoformat(match.group(2).replace("Z", "+00:00"))
    return operator, moment


def encode_cursor(moment: datetime, index: int) -> str:
    return base64.urlsafe_b64encode(json.dumps([iso(moment), index]).encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        moment, index = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return datetime.fromisoformat(moment.replace("Z", "+00:00")), int(index)
    except (ValueError, TypeError) as error:
        raise ValueError("Invalid cursor") from error


def _connection(
    items: Iterator[Any],
    first: int | None,
    node: Callable[[Any], dict[str, Any]],
    key: Callable[[Any], tuple[datetime, int]],
) -> dict[str, Any]:
    if first is None or first < 0:
        raise ValueError("you must provide one of first or last")
    if first > MAX_FIRST and not unbounded_first.get():  # bulk exports read every node
        raise ValueError(f"The 'first' argument must be at most {MAX_FIRST}")
    taken: list[Any] = []
    has_next = False
    for item in items:
        if len(taken) == first:
            has_next = True
            break
        taken.append(item)
    nodes = [node(item) for item in taken]
    cursors = [encode_cursor(*key(item)) for item in taken]
    return {
        "nodes": nodes,
        "edges": [{"cursor": c, "node": n} for c, n in zip(cursors, nodes, strict=True)],
        "pageInfo": {
            "hasNextPage": has_next,
            "hasPreviousPage": False,
            "startCursor": cursors[0] if cursors else None,
            "endCursor": cursors[-1] if cursors else None,
        },
    }


def _ordered(shop: ShopData, kind: str, after: str | None, query: str | None) -> Iterator[int]:
    start = decode_cursor(after) if after else None
    window = parse_updated_filter(query)
    if window is not None:
        operator, moment = window
        if operator in (">", ">="):
            bound = (moment, 10**12) if operator == ">" else (moment, -1)
            start = max(start, bound) if start else bound
    for index in shop.ordered(kind, start):
        if window is not None and window[0] in ("<", "<="):
            updated = shop.updated_at(kind, index)
            if updated > window[1] or (window[0] == "<" and updated == window[1]):
                continue
        yield index


# --- node builders with nested connections --------------------------------------------------


def product(shop: ShopData, index: int) -> dict[str, Any]:
    node = shop.product_node(index)
    node["variants"] = lambda info, first=None, after=None, **_: _connection(
        (v for v in shop.variant_ids(index) if after is None or v > decode_cursor(after)[1]),
        first,
        lambda v: variant(shop, index, v),
        lambda v: (shop.updated_at("product", index), v),
    )
    return node


def variant(shop: ShopData, product_index: int, variant_index: int) -> dict[str, Any]:
    node = shop.variant_node(product_index, variant_index)
    node["inventoryItem"] = inventory_item(shop, product_index, variant_index)
    node["product"] = lambda info, **_: product(shop, product_index)
    return node


def inventory_item(shop: ShopData, product_index: int, variant_index: int) -> dict[str, Any]:
    number = shop.inventory_item_number(variant_index)
    updated = shop.updated_at("product", product_index)
    return {
        "__typename": "InventoryItem",
        "id": gid("inventory_item", number),
        "legacyResourceId": str(number),
        "sku": f"SKU-{product_index:06d}-{variant_index % shop.variants_per_product}",
        "tracked": True,
        "createdAt": iso(shop.created_at("product", product_index)),
        "updatedAt": iso(updated),
        "inventoryLevels": lambda info, first=None, after=None, **_: _connection(
            (
                loc
                for loc in range(shop.locations)
                if after is None or loc > decode_cursor(after)[1]
            ),
            first,
            lambda loc: inventory_level(shop, product_index, variant_index, loc),
            lambda loc: (updated, loc),
        ),
        "variant": lambda info, **_: variant(shop, product_index, variant_index),
    }


def inventory_level(
    shop: ShopData, product_index: int, variant_index: int, location: int
) -> dict[str, Any]:
    available = shop.quantity(variant_index, location)

    def quantities(info: Any, names: list[str] | None = None, **_: Any) -> list[dict[str, Any]]:
        values = {
            "available": available,
            "on_hand": available + 2,
            "committed": 2,
            "incoming": 0,
            "reserved": 0,
        }
        return [
            {"name": n, "quantity": values.get(n, 0), "updatedAt": None}
            for n in (names or ["available"])
        ]

    return {
        "__typename": "InventoryLevel",
        "id": shop.inventory_level_id(variant_index, location),
        "location": shop.location_node(location),
        "quantities": quantities,
        "createdAt": iso(shop.created_at("product", product_index)),
        "updatedAt": iso(shop.updated_at("product", product_index)),
        "canDeactivate": False,
        "item": lambda info, **_: inventory_item(shop, product_index, variant_index),
    }


def order(shop: ShopData, index: int) -> dict[str, Any]:
    node = shop.order_node(index)
    customer_index = node["_customer"]
    node["customer"] = (
        customer(shop, customer_index) if shop.is_live("customer", customer_index) else None
    )
    lines = shop.lines(index)
    node["lineItems"] = lambda info, first=None, after=None, **_: _connection(
        (k for k in lines if after is None or k > decode_cursor(after)[1]),
        first,
        lambda k: line_item(shop, index, k),
        lambda k: (shop.updated_at("order", index), k),
    )
    return node


def line_item(shop: ShopData, order_index: int, line: int) -> dict[str, Any]:
    node = shop.line_node(order_index, line)
    product_index, variant_index = node["_product"], node["_variant"]
    node["product"] = (
        product(shop, product_index) if shop.is_live("product", product_index) else None
    )
    node["variant"] = (
        variant(shop, product_index, variant_index)
        if shop.is_live("product", product_index)
        else None
    )
    return node


def customer(shop: ShopData, index: int) -> dict[str, Any]:
    return shop.customer_node(index)


# --- root resolvers ------------------------------------------------------------------------------


def _shop_of(info: Any) -> ShopData:
    return info.context["shop"]


def _resolve_shop(_: Any, info: Any) -> dict[str, Any]:
    shop = _shop_of(info)
    from connectors.sandbox.shopify.data import PLANS

    display = PLANS.get(shop.plan, PLANS["standard"])[0]
    return {
        "__typename": "Shop",
        "id": f"gid://shopify/Shop/{shop.shop_id}",
        "name": shop.shop.split(".")[0].replace("-", " ").title(),
        "email": f"owner@{shop.shop}",
        "myshopifyDomain": shop.shop,
        "currencyCode": "USD",
        "ianaTimezone": "America/New_York",
        "timezoneAbbreviation": "EST",
        "plan": {
            "displayName": display,
            "partnerDevelopment": False,
            "shopifyPlus": shop.plan in ("plus", "enterprise"),
            "publicDisplayName": display,
        },
    }


def _id_bounds(kind: str, query: str | None) -> tuple[int, int]:
    """The index range (inclusive) that the query's ``id`` terms allow (numeric or gid ids)."""
    low, high = 0, 2**62
    for name, operator, value in _TERM.findall(query or ""):
        if name != "id":
            continue
        try:
            index = int(value.rsplit("/", 1)[-1]) - ID_BASE[kind]
        except ValueError as error:
            raise ValueError(f"Invalid id in query: {value}") from error
        if operator in (">", ">=", ""):
            low = max(low, index + (operator == ">"))
        if operator in ("<", "<=", ""):
            high = min(high, index - (operator == "<"))
    return low, high


def _by_id(shop: ShopData, kind: str, after: str | None, query: str | None) -> Iterator[int]:
    """Live indices in ascending id order (``sortKey: ID``), within the query's id and
    updated_at terms."""
    low, high = _id_bounds(kind, query)
    if after:
        low = max(low, decode_cursor(after)[1] + 1)
    window = parse_updated_filter(query)
    for index in range(low, min(high + 1, shop.total(kind))):
        if not shop.is_live(kind, index):
            continue
        if window is not None:
            operator, moment = window
            updated = shop.updated_at(kind, index)
            if not {">": updated > moment, ">=": updated >= moment, "<": updated < moment,
                    "<=": updated <= moment}[operator]:  # fmt: skip
                continue
        yield index


def _root_connection(kind: str, build: Callable[[ShopData, int], dict[str, Any]]) -> Callable:
    def resolve(
        _: Any,
        info: Any,
        first: int | None = None,
        after: str | None = None,
        query: str | None = None,
        sortKey: str | None = None,
        **__: Any,
    ) -> dict[str, Any]:
        shop = _shop_of(info)
        items = (
            _by_id(shop, kind, after, query)
            if sortKey == "ID"
            else _ordered(shop, kind, after, query)
        )
        return _connection(
            items,
            first,
            lambda i: build(shop, i),
            lambda i: (shop.updated_at(kind, i), i),
        )

    return resolve


def _resolve_inventory_items(
    _: Any,
    info: Any,
    first: int | None = None,
    after: str | None = None,
    query: str | None = None,
    **__: Any,
) -> dict[str, Any]:
    """Items in the order of their product's updated_at, variants within a product."""
    shop = _shop_of(info)
    start = decode_cursor(after) if after else None
    per = max(1, shop.variants_per_product)

    def items() -> Iterator[tuple[int, int]]:
        product_after = None
        if start is not None:
            product_after = (start[0], start[1] // per - 1)
        for index in (
            _ordered(shop, "product", None, query)
            if start is None
            else shop.ordered("product", product_after)
        ):
            for v in shop.variant_ids(index):
                if start is not None and (shop.updated_at("product", index), v) <= start:
                    continue
                yield index, v

    return _connection(
        items(),
        first,
        lambda pv: inventory_item(shop, *pv),
        lambda pv: (shop.updated_at("product", pv[0]), pv[1]),
    )


def _resolve_locations(_: Any, info: Any, first: int | None = None, **__: Any) -> dict[str, Any]:
    shop = _shop_of(info)
    epoch = shop.base_time("product", 0)
    return _connection(
        iter(range(shop.locations)), first, shop.location_node, lambda loc: (epoch, loc)
    )


def _count(kind: str) -> Callable:
    def resolve(
        _: Any, info: Any, query: str | None = None, limit: int | None = 10_000, **__: Any
    ) -> dict[str, Any]:
        shop = _shop_of(info)
        total = sum(1 for _ in _ordered(shop, kind, None, query))
        if limit is not None and total > limit:
            return {"count": limit, "precision": "AT_LEAST"}
        return {"count": total, "precision": "EXACT"}

    return resolve


def _resolve_variants_count(
    _: Any, info: Any, query: str | None = None, limit: int | None = 10_000, **__: Any
) -> dict[str, Any]:
    shop = _shop_of(info)
    total = sum(len(shop.variant_ids(i)) for i in _ordered(shop, "product", None, query))
    if limit is not None and total > limit:
        return {"count": limit, "precision": "AT_LEAST"}
    return {"count": total, "precision": "EXACT"}


# --- events: the sandbox records one, `destroy` of a product ---------------------------------

EVENT_BASE = 10_000_000
_TERM = re.compile(r"(\w+):(>=|<=|>|<)?\s*'?\"?([^'\"\s]+)'?\"?")


def _product_events(shop: ShopData) -> list[dict[str, Any]]:
    """A BasicEvent per deleted product, numbered in the order of deletion."""
    events = []
    for ordinal, ((kind, index), moment) in enumerate(list(shop.deleted.items())):
        if kind != "product":
            continue
        title = shop.product_title(index)
        events.append({
            "__typename": "BasicEvent", "id": f"gid://shopify/BasicEvent/{EVENT_BASE + ordinal}",
            "action": "destroy", "message": f"{title} was deleted.", "secondaryMessage": None,
            "createdAt": iso(moment), "subjectId": gid("product", ID_BASE["product"] + index),
            "subjectType": "PRODUCT", "subject": None, "appTitle": None, "author": None,
            "attributeToApp": False, "attributeToUser": True, "criticalAlert": False,
            "hasAdditionalContent": False, "additionalContent": None, "additionalData": None,
            "arguments": [title], "_number": EVENT_BASE + ordinal,
            "_moment": moment.replace(microsecond=0),  # what createdAt shows
        })  # fmt: skip
    return events


def _event_matches(event: dict[str, Any], query: str | None) -> bool:
    """Shopify's events search terms: action, subject_type, created_at, id (comments ignored)."""
    for name, operator, value in _TERM.findall(query or ""):
        if name == "action" and event["action"] != value:
            return False
        if name == "subject_type" and event["subjectType"] != value.upper():
            return False
        if name in ("created_at", "id"):
            if name == "id":
                left: Any = event["_number"]
                right: Any = int(value.rsplit("/", 1)[-1])
            else:
                left = event["_moment"]
                right = datetime.fromisoformat(value.replace("Z", "+00:00"))
                if right.tzinfo is None:
                    right = right.replace(tzinfo=left.tzinfo)
            ok = {">": left > right, ">=": left >= right, "<": left < right,
                  "<=": left <= right, "": left == right}[operator]  # fmt: skip
            if not ok:
                return False
    return True


def _resolve_events(
    _: Any,
    info: Any,
    first: int | None = None,
    after: str | None = None,
    query: str | None = None,
    sortKey: str = "ID",
    reverse: bool = False,
    **__: Any,
) -> dict[str, Any]:
    shop = _shop_of(info)
    events = [e for e in _product_events(shop) if _event_matches(e, query)]
    if sortKey == "CREATED_AT":
        events.sort(key=lambda e: (e["_moment"], e["_number"]))
    if reverse:
        events.reverse()
    if after:
        _, number = decode_cursor(after)
        position = next((i for i, e in enumerate(events) if e["_number"] == number), -1)
        events = events[position + 1 :]
    return _connection(iter(events), first, dict, lambda e: (e["_moment"], e["_number"]))


def _resolve_events_count(_: Any, info: Any, query: str | None = None, **__: Any) -> dict:
    events = [e for e in _product_events(_shop_of(info)) if _event_matches(e, query)]
    return {"count": len(events), "precision": "EXACT"}


def _resolve_node_by_id(kind: str) -> Callable:
    def resolve(_: Any, info: Any, id: str) -> dict[str, Any] | None:
        shop = _shop_of(info)
        try:
            index = int(id.rsplit("/", 1)[1]) - ID_BASE[kind]
        except (ValueError, IndexError):
            return None
        if not shop.is_live(kind, index):
            return None
        return {"product": product, "order": order, "customer": customer}[kind](shop, index)

    return resolve


def _resolve_inventory_item(_: Any, info: Any, id: str) -> dict[str, Any] | None:
    shop = _shop_of(info)
    try:
        variant_index = int(id.rsplit("/", 1)[1]) - ID_BASE["inventory_item"]
    except (ValueError, IndexError):
        return None
    product_index = variant_index // max(1, shop.variants_per_product)
    if variant_index < 0 or not shop.is_live("product", product_index):
        return None
    if variant_index in shop.removed_variants:  # deleted with its variant
        return None
    return inventory_item(shop, product_index, variant_index)


def _attach_resolvers(schema: GraphQLSchema) -> None:
    query = schema.query_type
    assert query is not None
    query.fields["shop"].resolve = _resolve_shop
    query.fields["products"].resolve = _root_connection("product", product)
    query.fields["orders"].resolve = _root_connection("order", order)
    query.fields["customers"].resolve = _root_connection("customer", customer)
    query.fields["inventoryItems"].resolve = _resolve_inventory_items
    query.fields["locations"].resolve = _resolve_locations
    query.fields["productsCount"].resolve = _count("product")
    query.fields["ordersCount"].resolve = _count("order")
    query.fields["customersCount"].resolve = _count("customer")
    query.fields["productVariantsCount"].resolve = _resolve_variants_count
    query.fields["events"].resolve = _resolve_events
    query.fields["eventsCount"].resolve = _resolve_events_count
    query.fields["product"].resolve = _resolve_node_by_id("product")
    query.fields["order"].resolve = _resolve_node_by_id("order")
    query.fields["customer"].resolve = _resolve_node_by_id("customer")
    query.fields["inventoryItem"].resolve = _resolve_inventory_item
    from connectors.sandbox.shopify import bulk, webhooks_api

    webhooks_api.attach(schema)
    bulk.attach(schema)
