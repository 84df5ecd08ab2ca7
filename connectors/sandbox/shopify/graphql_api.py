"""The Admin GraphQL API of a sandbox shop: Shopify's real 2026-10 schema run by graphql-core,
with resolvers for what the hub reads, and Shopify's calculated query cost.
"""

from __future__ import annotations

import asyncio
import gc
import gzip
import json
import threading
from collections.abc import Callable, Iterator
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

from connectors.sandbox.shopify.data import ShopData
from connectors.sandbox.shopify.paging import MAX_FIRST
from connectors.sandbox.shopify.resolvers import attach_resolvers

API_VERSION = "2026-10"
# A verbatim copy of Shopify's published schema (shared/platform-specs/shopify, ISC licence),
# so the sandbox runs on a fresh machine; a test checks it still matches the published file.
SCHEMA_PATH = Path(__file__).resolve().parent / "schema" / f"admin_{API_VERSION}.json.gz"
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
                # The schema is ~100,000 objects that live as long as the process: out of the
                # collector's sight, a full collection no longer walks them (~0.1 s each, on
                # the event loop, several times a minute while the sandbox serves syncs).
                gc.collect()
                gc.freeze()
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
    attach_resolvers(schema)
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
        return {
            k: _strip_private(v)
            for k, v in value.items()
            if not k.startswith("_") or k == "__typename"
        }
    if isinstance(value, list):
        return [_strip_private(v) for v in value]
    return value


__all__ = [
    "API_VERSION",
    "MAX_FIRST",
    "MAX_QUERY_COST",
    "SCHEMA_PATH",
    "admin_schema",
    "document_cost",
    "run_query",
]
