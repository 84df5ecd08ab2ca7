"""Connection pagination (cursors, ``first``) and the ``query:`` filters of the sandbox's
Admin GraphQL API."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from connectors.sandbox.shopify.bulk import unbounded_first
from connectors.sandbox.shopify.data import ShopData, iso

MAX_FIRST = 250


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
