"""The access scopes the hub asks for at install are what its GraphQL documents need, read from
Shopify's own Admin schema (``offline_scopes``: per type and field, the scopes any one of
which grants it): every field the connector queries is granted by the default scopes, and
each default scope is needed by some field (why ``read_locations`` stays: docs/shopify.md)."""

from __future__ import annotations

import functools
import gzip
import json
from typing import Any

from graphql import GraphQLSchema, TypeInfo, build_client_schema, parse, visit
from graphql.language import FieldNode, Visitor
from graphql.utilities import TypeInfoVisitor

from connectors.sandbox.shopify.graphql_api import SCHEMA_PATH
from connectors.shopify import queries
from dashboard.settings import Settings
from tests.test_shopify_queries import PUBLISHED


@functools.cache
def admin_schema() -> tuple[GraphQLSchema, dict[tuple[str, str], frozenset[str]]]:
    with gzip.open(PUBLISHED if PUBLISHED.exists() else SCHEMA_PATH) as handle:
        published: dict[str, Any] = json.load(handle)
    schema = build_client_schema(published["data"])
    schema._validation_errors = []  # type: ignore[attr-defined]  # as the sandbox loads it
    scopes = {
        (item["typeName"], item["fieldName"]): frozenset(item["offlineScopes"])
        for item in published["offline_scopes"]["items"]
        if item["type"] == "field" and item["offlineScopes"]
    }
    return schema, scopes


class _Fields(Visitor):
    def __init__(self, type_info: TypeInfo, found: set[tuple[str, str]]) -> None:
        super().__init__()
        self.type_info, self.found = type_info, found

    def enter_field(self, node: FieldNode, *_: Any) -> None:
        parent = self.type_info.get_parent_type()
        if parent is not None:
            self.found.add((parent.name, node.name.value))


def fields_of(document: str) -> set[tuple[str, str]]:
    schema, _ = admin_schema()
    type_info, found = TypeInfo(schema), set[tuple[str, str]]()
    visit(parse(document), TypeInfoVisitor(type_info, _Fields(type_info, found)))
    return found


def needs(scopes: frozenset[str]) -> dict[tuple[str, str], frozenset[str]]:
    """Each scope-guarded field the connector queries -> the default scopes that grant it."""
    _, required = admin_schema()
    queried = set().union(*(fields_of(d) for d in queries.ALL_DOCUMENTS.values()))
    return {field: required[field] & scopes for field in queried if field in required}


DEFAULT_SCOPES = frozenset(Settings.model_fields["shopify_scopes"].default.split(","))


def test_every_field_the_connector_queries_is_granted_by_the_default_scopes() -> None:
    granted = needs(DEFAULT_SCOPES)
    assert granted, "no scope-guarded field found: the walk is broken"
    assert {field for field, scopes in granted.items() if not scopes} == set()


def test_read_locations_is_needed_for_the_location_names_only() -> None:
    """Location.id is granted by read_inventory too; Location.name is not (2026-10 schema,
    and Shopify's changelog of 2025-03-31): dropping read_locations loses the names."""
    only_by = {
        scope: sorted(field for field, scopes in needs(DEFAULT_SCOPES).items() if scopes == {scope})
        for scope in DEFAULT_SCOPES
    }
    assert only_by["read_locations"] == [("Location", "name")]
    without = needs(DEFAULT_SCOPES - {"read_locations"})
    assert without[("Location", "name")] == frozenset()
    assert without[("Location", "id")] == {"read_inventory"}
    # And every other default scope is the only grant of some field: none is asked for idly.
    assert all(only_by[scope] for scope in DEFAULT_SCOPES)
