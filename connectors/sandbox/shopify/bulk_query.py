"""What a bulk query may be, and how the sandbox rewrites it for the export: Shopify's limits
on connections and their nesting (2026-10), fragments inlined, paging arguments on the
top-level connection, nested connections unbounded, private aliases for ids and page info.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    get_named_type,
    parse,
    validate,
)
from graphql.error import GraphQLSyntaxError
from graphql.language import (
    ArgumentNode,
    IntValueNode,
    NamedTypeNode,
    NameNode,
    NonNullTypeNode,
    VariableDefinitionNode,
    VariableNode,
)

MAX_CONNECTIONS = 5
MAX_NESTING = 2  # connection levels, the top-level connection included
UNBOUNDED = 2_147_483_647  # `first` of nested connections: bulk exports read every node
ROOTS = (
    "products",
    "orders",
    "customers",
    "productVariants",
    "inventoryItems",
    "locations",
)  # what the sandbox can export
PAGE_INFO_KEY = "_bulkPageInfo"
ID_KEY = "_bulkId"


class BulkQueryError(Exception):
    """A bulk query Shopify refuses (answered as a userError with code INVALID)."""


# --- what a query's result looks like: which keys are connections -----------------------------


@dataclass
class Shape:
    """Response keys of one selection that hold connections or objects (scalars omitted)."""

    fields: dict[str, FieldShape] = field(default_factory=dict)

    def merge(self, other: Shape) -> None:
        for key, spec in other.fields.items():
            mine = self.fields.get(key)
            if mine is None:
                self.fields[key] = spec
            elif mine.shape is not None and spec.shape is not None:
                mine.shape.merge(spec.shape)


@dataclass
class FieldShape:
    connection: bool
    shape: Shape | None


@dataclass
class Prepared:
    document: DocumentNode  # the query rewritten for paging through the whole root connection
    root: str  # the top-level field, e.g. products
    key: str  # its response key (an alias, when the query gives one)
    node_shape: Shape  # shape of one top-level node


def _name(value: str) -> NameNode:
    return NameNode(value=value)


def _is_connection(named: Any) -> bool:
    return named.name.endswith("Connection") and hasattr(named, "fields")


class _Rewriter:
    """Rewrites a validated bulk query: paging arguments on the root connection, unbounded
    nested connections, fragments inlined, private aliases for ids and pageInfo; and checks
    Shopify's limits on the number and nesting of connections on the way."""

    def __init__(self, schema: GraphQLSchema, fragments: dict[str, FragmentDefinitionNode]):
        self.schema = schema
        self.fragments = fragments
        self.connections = 0

    def selection(
        self, selection: SelectionSetNode, parent: Any, level: int
    ) -> tuple[SelectionSetNode, Shape]:
        shape = Shape()
        selections: list[Any] = []
        has_connection = False
        for node in selection.selections:
            if isinstance(node, FragmentSpreadNode):
                fragment = self.fragments[node.name.value]
                node = InlineFragmentNode(
                    type_condition=fragment.type_condition,
                    directives=node.directives,
                    selection_set=fragment.selection_set,
                )
            if isinstance(node, InlineFragmentNode):
                condition = (
                    self.schema.get_type(node.type_condition.name.value)
                    if node.type_condition
                    else parent
                )
                sub, sub_shape = self.selection(node.selection_set, condition, level)
                shape.merge(sub_shape)
                has_connection = has_connection or any(
                    s.connection for s in sub_shape.fields.values()
                )
                selections.append(
                    InlineFragmentNode(
                        type_condition=node.type_condition,
                        directives=node.directives,
                        selection_set=sub,
                    )
                )
                continue
            assert isinstance(node, FieldNode)
            definition = getattr(parent, "fields", {}).get(node.name.value)
            if definition is None or node.selection_set is None:  # scalars, __typename
                selections.append(node)
                continue
            named = get_named_type(definition.type)
            key = node.alias.value if node.alias else node.name.value
            if _is_connection(named):
                has_connection = True
                rewritten, node_shape = self.connection(node, named, level + 1)
                selections.append(rewritten)
                shape.fields[key] = FieldShape(True, node_shape)
            else:
                sub, sub_shape = self.selection(node.selection_set, named, level)
                selections.append(self._with_selection(node, sub))
                shape.fields[key] = FieldShape(False, sub_shape)
        if has_connection and "id" in getattr(parent, "fields", {}):
            # Children name their parent by id, whether or not the query selects it.
            selections.append(FieldNode(alias=_name(ID_KEY), name=_name("id")))
        return SelectionSetNode(selections=tuple(selections)), shape

    def connection(self, node: FieldNode, named: Any, level: int) -> tuple[FieldNode, Shape]:
        self.connections += 1
        if self.connections > MAX_CONNECTIONS:
            raise BulkQueryError(
                f"Invalid bulk query: it cannot contain more than {MAX_CONNECTIONS} connections."
            )
        if level > MAX_NESTING:
            raise BulkQueryError(
                f"Invalid bulk query: connections cannot nest more than {MAX_NESTING} levels deep."
            )
        node_shape = Shape()
        selections: list[Any] = []
        node_type = get_named_type(named.fields["nodes"].type) if "nodes" in named.fields else None
        assert node.selection_set is not None
        for sub in node.selection_set.selections:
            if not isinstance(sub, FieldNode) or sub.selection_set is None:
                selections.append(sub)
                continue
            if sub.name.value == "nodes" and node_type is not None:
                inner, inner_shape = self.selection(sub.selection_set, node_type, level)
                node_shape.merge(inner_shape)
                selections.append(self._with_selection(sub, inner))
            elif sub.name.value == "edges":
                edge_type = get_named_type(named.fields["edges"].type)
                edge_selections: list[Any] = []
                for edge_field in sub.selection_set.selections:
                    if (
                        isinstance(edge_field, FieldNode)
                        and edge_field.name.value == "node"
                        and edge_field.selection_set is not None
                    ):
                        inner_type = get_named_type(edge_type.fields["node"].type)
                        inner, inner_shape = self.selection(
                            edge_field.selection_set, inner_type, level
                        )
                        node_shape.merge(inner_shape)
                        edge_selections.append(self._with_selection(edge_field, inner))
                    else:
                        edge_selections.append(edge_field)
                selections.append(
                    self._with_selection(sub, SelectionSetNode(selections=tuple(edge_selections)))
                )
            else:
                selections.append(sub)
        arguments = [
            a
            for a in node.arguments or ()
            if a.name.value not in ("first", "last", "after", "before")
        ]
        if level == 1:  # the top-level connection pages through variables
            arguments += [
                ArgumentNode(name=_name("first"), value=VariableNode(name=_name("bulkFirst"))),
                ArgumentNode(name=_name("after"), value=VariableNode(name=_name("bulkAfter"))),
            ]
            selections.append(
                FieldNode(
                    alias=_name(PAGE_INFO_KEY),
                    name=_name("pageInfo"),
                    selection_set=SelectionSetNode(
                        selections=(
                            FieldNode(name=_name("hasNextPage")),
                            FieldNode(name=_name("endCursor")),
                        )
                    ),
                )
            )
        else:
            arguments.append(
                ArgumentNode(name=_name("first"), value=IntValueNode(value=str(UNBOUNDED)))
            )
        rewritten = FieldNode(
            alias=node.alias,
            name=node.name,
            arguments=tuple(arguments),
            directives=node.directives,
            selection_set=SelectionSetNode(selections=tuple(selections)),
        )
        return rewritten, node_shape

    @staticmethod
    def _with_selection(node: FieldNode, selection: SelectionSetNode) -> FieldNode:
        return FieldNode(
            alias=node.alias,
            name=node.name,
            arguments=node.arguments,
            directives=node.directives,
            selection_set=selection,
        )


def prepare(query: str, schema: GraphQLSchema) -> Prepared:
    """Validate a bulk query as Shopify does and rewrite it for export; BulkQueryError if not."""
    try:
        document = parse(query)
    except GraphQLSyntaxError as error:
        raise BulkQueryError(f"Invalid bulk query: {error.message}") from error
    errors = validate(schema, document)
    if errors:
        raise BulkQueryError(f"Invalid bulk query: {errors[0].message}")
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if len(operations) != 1 or operations[0].operation != OperationType.QUERY:
        raise BulkQueryError("Invalid bulk query: it must hold exactly one query operation.")
    operation = operations[0]
    if operation.variable_definitions:
        raise BulkQueryError("Invalid bulk query: bulk queries cannot use variables.")
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    tops = [
        s
        for s in operation.selection_set.selections
        if not (isinstance(s, FieldNode) and s.name.value == "__typename")
    ]
    if len(tops) != 1 or not isinstance(tops[0], FieldNode):
        raise BulkQueryError("Invalid bulk query: it must select exactly one top-level field.")
    top = tops[0]
    query_type = schema.query_type
    assert query_type is not None
    named = get_named_type(query_type.fields[top.name.value].type)
    if top.name.value in ("node", "nodes") or not _is_connection(named):
        raise BulkQueryError(
            "Invalid bulk query: the top-level field must be a connection "
            "(`node` and `nodes` cannot be used)."
        )
    if top.name.value not in ROOTS:
        raise BulkQueryError(
            f"Invalid bulk query: the sandbox exports only {', '.join(ROOTS)} "
            f"(not {top.name.value})."
        )
    rewriter = _Rewriter(schema, fragments)
    field_node, node_shape = rewriter.connection(top, named, 1)
    rewritten = OperationDefinitionNode(
        operation=OperationType.QUERY,
        name=operation.name,
        variable_definitions=(
            VariableDefinitionNode(
                variable=VariableNode(name=_name("bulkFirst")),
                type=NonNullTypeNode(type=NamedTypeNode(name=_name("Int"))),
            ),
            VariableDefinitionNode(
                variable=VariableNode(name=_name("bulkAfter")),
                type=NamedTypeNode(name=_name("String")),
            ),
        ),
        directives=operation.directives,
        selection_set=SelectionSetNode(selections=(field_node,)),
    )
    return Prepared(
        document=DocumentNode(definitions=(rewritten,)),
        root=top.name.value,
        key=top.alias.value if top.alias else top.name.value,
        node_shape=node_shape,
    )
