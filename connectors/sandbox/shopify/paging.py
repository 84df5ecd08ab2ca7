"""Connection pagination (cursors, ``first``) and the ``query:`` filters of the sandbox's
Admin GraphQL API."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from connectors.sandbox.shopify import search
from connectors.sandbox.shopify.bulk import unbounded_first
from connectors.sandbox.shopify.data import ID_BASE, ShopData, iso
from connectors.sandbox.shopify.search import SearchSyntaxError, parse_moment

MAX_FIRST = 250


# --- pagination and search ---------------------------------------------------------------------


def _number(value: str) -> int:
    try:
        return int(value.rsplit("/", 1)[-1])
    except ValueError as error:
        raise SearchSyntaxError(f"Invalid id in query: {value}") from error


# The fields the sandbox filters products, orders and customers by, typed as Shopify reads them.
RESOURCE_FIELDS: dict[str, Callable[[str], Any]] = {
    "updated_at": parse_moment,
    "created_at": parse_moment,
    "id": _number,
}


def resource_filter(shop: ShopData, kind: str, query: str | None) -> Callable[[int], bool]:
    """Whether the live resource ``kind`` at ``index`` matches the search ``query``."""
    tree = search.parse(query)
    if tree is None:
        return lambda index: True

    def predicate(index: int) -> bool:
        def value(field: str) -> Any:
            if field == "updated_at":
                return shop.updated_at(kind, index)
            if field == "created_at":
                return shop.created_at(kind, index)
            return ID_BASE[kind] + index

        return search.evaluate(tree, search.field_matcher(RESOURCE_FIELDS, value))

    return predicate


def updated_window(query: str | None) -> tuple[tuple[datetime, int] | None, datetime | None]:
    """From the terms every match must satisfy: the (updated_at, index) position to start
    after, and the updated_at past which no match lies (the index walks updated_at upward)."""
    start: tuple[datetime, int] | None = None
    stop: datetime | None = None
    for term in search.conjuncts(search.parse(query)):
        if term.field != "updated_at" or term.operator == "":
            continue
        moment = parse_moment(term.value)
        if term.operator in (">", ">="):
            bound = (moment, 10**12) if term.operator == ">" else (moment, -1)
            start = max(start, bound) if start else bound
        else:
            stop = min(stop, moment) if stop else moment
    return start, stop


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
    """Live indices by (updated_at, index) after the cursor, matching the search query."""
    start = decode_cursor(after) if after else None
    floor, stop = updated_window(query)
    if floor is not None:
        start = max(start, floor) if start else floor
    matches = resource_filter(shop, kind, query)
    for index in shop.ordered(kind, start):
        if stop is not None and shop.updated_at(kind, index) > stop:
            return
        if matches(index):
            yield index
