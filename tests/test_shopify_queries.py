"""Every GraphQL document the connector sends is one Shopify's published Admin schema accepts,
and costs no more than Shopify's 1,000-point single-query limit at the page sizes we use."""

from __future__ import annotations

import ast
import functools
import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from graphql import GraphQLSchema, OperationDefinitionNode, build_client_schema, parse, validate
from graphql.error import GraphQLSyntaxError

from connectors.sandbox.shopify.graphql_api import (
    MAX_FIRST,
    MAX_QUERY_COST,
    SCHEMA_PATH,
    document_cost,
)
from connectors.shopify import queries
from connectors.shopify.streams import STREAM_QUERIES

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = ROOT.parent / "shared/platform-specs/shopify" / f"admin_{queries.API_VERSION}.json.gz"
CONNECTOR_SOURCES = sorted((ROOT / "connectors/shopify").glob("*.py"))

# The page size the connector sends as ``$first`` for each paginated document.
PAGE_SIZE_OF = {spec.query_name: queries.PAGE_SIZES[s] for s, spec in STREAM_QUERIES.items()}
# Values of the other variables do not change a document's cost.
SAMPLE_VARIABLES: dict[str, Any] = {
    "query": "updated_at:>='2026-01-01T00:00:00Z'",
    "after": None,
    "id": "gid://shopify/Product/1",
    "topic": "PRODUCTS_UPDATE",
    "uri": "https://hub.example/api/webhooks/shopify",
}


@functools.cache
def published_schema() -> GraphQLSchema:
    """Shopify's Admin schema as published (shared/platform-specs); where that folder is not
    checked out, the sandbox's vendored copy, which a sandbox test proves byte-identical."""
    path = PUBLISHED if PUBLISHED.exists() else SCHEMA_PATH
    with gzip.open(path) as handle:
        schema = build_client_schema(json.load(handle)["data"])
    # Shopify's schema breaks a few of graphql-core's strictest type-system rules (deprecated
    # fields implementing non-deprecated interface fields); Shopify validates documents
    # against it as is, and so do we (the sandbox's loader does the same).
    schema._validation_errors = []  # type: ignore[attr-defined]
    return schema


def schema_errors(document: str) -> list[str]:
    return [error.message for error in validate(published_schema(), parse(document))]


def operations(document: str) -> list[OperationDefinitionNode]:
    return [d for d in parse(document).definitions if isinstance(d, OperationDefinitionNode)]


def variables_for(name: str, document: str) -> dict[str, Any]:
    (operation,) = operations(document)
    names = [v.variable.name.value for v in operation.variable_definitions or ()]
    values = {n: SAMPLE_VARIABLES[n] for n in names if n in SAMPLE_VARIABLES}
    if "first" in names:
        values["first"] = PAGE_SIZE_OF[name]
    return values


def graphql_literals(path: Path) -> list[str]:
    """Every string literal of a module that parses as a GraphQL operation."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
            continue
        text = node.value.strip()
        if not text.startswith(("query", "mutation", "subscription", "{")):
            continue
        try:
            document = parse(text)
        except GraphQLSyntaxError:
            continue  # prose that happens to start with "query"
        if any(isinstance(d, OperationDefinitionNode) for d in document.definitions):
            found.append(node.value)
    return found


DOCUMENTS = sorted(queries.ALL_DOCUMENTS.items())


def test_every_document_the_connector_holds_is_checked() -> None:
    """A document written anywhere in connectors/shopify but left out of ALL_DOCUMENTS would
    escape validation: there must be none."""
    known = set(queries.ALL_DOCUMENTS.values())
    stray = {
        path.name: literal
        for path in CONNECTOR_SOURCES
        for literal in graphql_literals(path)
        if literal not in known
    }
    assert stray == {}
    assert len(graphql_literals(ROOT / "connectors/shopify/queries.py")) == len(known)


@pytest.mark.parametrize(("name", "document"), DOCUMENTS, ids=[n for n, _ in DOCUMENTS])
def test_document_validates_against_shopifys_admin_schema(name: str, document: str) -> None:
    assert schema_errors(document) == []


@pytest.mark.parametrize(("name", "document"), DOCUMENTS, ids=[n for n, _ in DOCUMENTS])
def test_document_is_one_named_operation(name: str, document: str) -> None:
    """The client logs and learns costs by name: the name must be the operation's own."""
    assert [o.name.value if o.name else None for o in operations(document)] == [name]


@pytest.mark.parametrize(("name", "document"), DOCUMENTS, ids=[n for n, _ in DOCUMENTS])
def test_requested_cost_stays_within_shopifys_single_query_limit(name: str, document: str) -> None:
    variables = variables_for(name, document)
    cost = document_cost(parse(document), variables)
    assert 0 < cost <= MAX_QUERY_COST, f"{name} requests {cost} points with {variables}"


@pytest.mark.parametrize("kind", sorted(queries.NODES_BY_IDS))
def test_a_full_batch_of_ids_stays_within_the_limit_even_priced_per_id(kind: str) -> None:
    """``nodes(ids:)`` of a webhook batch: priced as that many ``product(id:)`` / ``order(id:)``
    of the same fields, it still requests at most 1,000 points."""
    name, document, per_query = queries.NODES_BY_IDS[kind]
    fields = document.split(f"... on {kind.capitalize()} {{", 1)[1].rsplit("}", 3)[0]
    single = f"query One($id: ID!) {{ {kind}(id: $id) {{ {fields} }} }}"
    assert schema_errors(single) == []
    per_id = document_cost(parse(single), {"id": SAMPLE_VARIABLES["id"]})
    assert per_id > 10  # the fields were found: a product or order with a page of children
    assert per_id * per_query <= MAX_QUERY_COST, f"{name}: {per_query} x {per_id} points"


def test_page_sizes_are_within_shopifys_maximum() -> None:
    assert all(0 < size <= MAX_FIRST for size in queries.PAGE_SIZES.values())
    assert set(PAGE_SIZE_OF) <= set(queries.ALL_DOCUMENTS)


# --- the checks above can fail ------------------------------------------------------------


def test_a_bogus_field_is_refused() -> None:
    broken = queries.SHOP.replace("currencyCode", "currencyCode favouriteColour")
    errors = schema_errors(broken)
    assert errors and "favouriteColour" in errors[0]


def test_a_wrong_argument_and_an_undeclared_variable_are_refused() -> None:
    broken = queries.PRODUCTS.replace("sortKey: UPDATED_AT", "sortKey: NEWEST, limit: $limit")
    errors = " | ".join(schema_errors(broken))
    assert "NEWEST" in errors and "limit" in errors


def test_an_oversized_page_exceeds_the_cost_limit() -> None:
    cost = document_cost(parse(queries.ORDERS), {"first": MAX_FIRST})
    assert cost > MAX_QUERY_COST


def test_a_stray_document_outside_queries_is_found(tmp_path: Path) -> None:
    module = tmp_path / "sneaky.py"
    module.write_text('LOOKUP = """query Sneaky { shop { name } }"""\n"""query the shop."""\n')
    assert graphql_literals(module) == ["query Sneaky { shop { name } }"]


# --- nothing deprecated ---------------------------------------------------------------------


def deprecated_uses(document: str) -> list[str]:
    """Every deprecated field, argument, input field and enum value ``document`` uses, as
    ``Type.field``, ``Type.field(argument)``, ``Input.field`` or ``Enum.VALUE`` with Shopify's
    reason. Shopify removes deprecated parts in a later API version: a document using one
    breaks at an upgrade."""
    from graphql import (
        ArgumentNode,
        EnumValueNode,
        FieldNode,
        ObjectFieldNode,
        TypeInfo,
        TypeInfoVisitor,
        Visitor,
        get_named_type,
        visit,
    )

    schema = published_schema()
    type_info = TypeInfo(schema)
    found: list[str] = []

    class Deprecations(Visitor):
        def enter_field(self, node: FieldNode, *_: object) -> None:
            field, parent = type_info.get_field_def(), type_info.get_parent_type()
            if field is not None and field.deprecation_reason is not None:
                found.append(f"{parent}.{node.name.value}: {field.deprecation_reason}")

        def enter_argument(
            self, node: ArgumentNode, _key: object, _parent: object, _path: object, ancestors: Any
        ) -> None:
            argument = type_info.get_argument()
            if argument is not None and argument.deprecation_reason is not None:
                field = next(a for a in reversed(ancestors) if isinstance(a, FieldNode))
                found.append(
                    f"{type_info.get_parent_type()}.{field.name.value}({node.name.value}): "
                    f"{argument.deprecation_reason}"
                )

        def enter_object_field(self, node: ObjectFieldNode, *_: object) -> None:
            parent = get_named_type(type_info.get_parent_input_type())
            fields = getattr(parent, "fields", {})
            input_field = fields.get(node.name.value)
            if input_field is not None and input_field.deprecation_reason is not None:
                found.append(f"{parent}.{node.name.value}: {input_field.deprecation_reason}")

        def enter_enum_value(self, node: EnumValueNode, *_: object) -> None:
            enum = get_named_type(type_info.get_input_type())
            value = getattr(enum, "values", {}).get(node.value)
            if value is not None and value.deprecation_reason is not None:
                found.append(f"{enum}.{node.value}: {value.deprecation_reason}")

    visit(parse(document), TypeInfoVisitor(type_info, Deprecations()))
    return found


@pytest.mark.parametrize(("name", "document"), DOCUMENTS, ids=[n for n, _ in DOCUMENTS])
def test_document_uses_nothing_deprecated(name: str, document: str) -> None:
    assert deprecated_uses(document) == []


def test_webhook_topics_sent_as_variables_are_not_deprecated() -> None:
    """Topics travel as a variable, outside any document: checked against the enum here."""
    topics = published_schema().get_type("WebhookSubscriptionTopic")
    values = getattr(topics, "values", {})
    assert {t: values[t].deprecation_reason for t in queries.WEBHOOK_TOPICS} == dict.fromkeys(
        queries.WEBHOOK_TOPICS
    )


def test_a_deprecated_field_argument_or_enum_value_is_found() -> None:
    old_plan = queries.SHOP.replace("publicDisplayName", "displayName")
    assert deprecated_uses(old_plan) == ["ShopPlan.displayName: Use `publicDisplayName` instead."]
    deprecated_argument = """query Hooks {
  webhookSubscriptions(first: 5, callbackUrl: "https://hub.example/api/webhooks/shopify") {
    nodes { id }
  }
}"""
    assert deprecated_uses(deprecated_argument) == [
        "QueryRoot.webhookSubscriptions(callbackUrl): Use `uri` instead."
    ]
    deprecated_enum_value = """query Definitions {
  metafieldDefinitions(first: 5, ownerType: MEDIA_IMAGE) { nodes { id } }
}"""
    assert deprecated_uses(deprecated_enum_value) == [
        "MetafieldOwnerType.MEDIA_IMAGE: `MEDIA_IMAGE` is deprecated."
    ]
