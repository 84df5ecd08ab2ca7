"""Shopify's API search syntax (the ``query:`` argument of connections), as published at
https://shopify.dev/docs/api/usage/search-syntax:

    Query      = Term { [ whitespace Connective ] whitespace Term }
    Connective = "AND" | "OR"                 (no connective between two terms: AND)
    Term       = [ Modifier ] ( "(" Query ")" | [ name Comparator ] value )
    Modifier   = "-" | "NOT" whitespace
    Comparator = ":" | ":<" | ":>" | ":<=" | ":>="
    value      = a name, or a string in single or double quotes (dates must be quoted)

The published grammar gives no precedence between the connectives; the sandbox binds AND
tighter than OR (``a OR b c`` is ``a OR (b AND c)``), and parentheses group explicitly.

A parsed query is evaluated against a resource through ``lookup(field) -> value | None``:
terms on a field the resource does not filter by, and free-text terms (no field), are
ignored, as Shopify ignores search fields a resource does not support.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

OPERATORS = ("<=", ">=", "<", ">", "")


class SearchSyntaxError(ValueError):
    """A query string the grammar does not accept."""


@dataclass(frozen=True)
class Term:
    field: str | None  # None: a free-text term
    operator: str  # "", "<", ">", "<=", ">="
    value: str


@dataclass(frozen=True)
class Not:
    child: Node


@dataclass(frozen=True)
class All:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Any_:
    children: tuple[Node, ...]


Node = Term | Not | All | Any_

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<open>\()|(?P<close>\))
      | (?P<term>-?(?:[A-Za-z_][\w.]*:(?:<=|>=|<|>)?\s*)?
            (?:'[^']*'|"[^"]*"|[^\s()'"]+))
    )""",
    re.VERBOSE,
)
_FIELD = re.compile(
    r"(?P<neg>-)?(?:(?P<field>[A-Za-z_][\w.]*):(?P<op><=|>=|<|>)?\s*)?(?P<value>.*)", re.DOTALL
)


def _tokens(query: str) -> list[str | Term | tuple[str, Term]]:
    out: list[Any] = []
    position = 0
    text = query.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise SearchSyntaxError(
                f"Invalid search query near: {text[position : position + 20]!r}"
            )
        position = match.end()
        if match.group("open"):
            out.append("(")
        elif match.group("close"):
            out.append(")")
        else:
            raw = match.group("term")
            if raw in ("AND", "OR", "NOT"):
                out.append(raw)
                continue
            parts = _FIELD.fullmatch(raw)
            assert parts is not None
            value = parts.group("value")
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            term = Term(parts.group("field"), parts.group("op") or "", value)
            out.append(("-", term) if parts.group("neg") else term)
    return out


class _Parser:
    def __init__(self, tokens: list[Any]) -> None:
        self.tokens = tokens
        self.at = 0

    def peek(self) -> Any:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self) -> Any:
        token = self.peek()
        self.at += 1
        return token

    def query(self) -> Node:
        alternatives = [self.conjunction()]
        while self.peek() == "OR":
            self.take()
            alternatives.append(self.conjunction())
        return alternatives[0] if len(alternatives) == 1 else Any_(tuple(alternatives))

    def conjunction(self) -> Node:
        terms = [self.term()]
        while self.peek() not in (None, ")", "OR"):
            if self.peek() == "AND":
                self.take()
            terms.append(self.term())
        return terms[0] if len(terms) == 1 else All(tuple(terms))

    def term(self) -> Node:
        item = self.take()
        if item == "NOT":
            return Not(self.term())
        if item == "(":
            inner = self.query()
            if self.take() != ")":
                raise SearchSyntaxError("Unbalanced parentheses in search query")
            return inner
        if isinstance(item, Term):
            return item
        if isinstance(item, tuple):
            return Not(item[1])
        raise SearchSyntaxError(f"Unexpected {item!r} in search query")


def parse(query: str | None) -> Node | None:
    """The query's syntax tree, or None for an empty query (which matches everything)."""
    if query is None or not query.strip():
        return None
    text = re.sub(r"(^|[\s(])-\(", r"\1NOT (", query)  # "-(a OR b)": a negated group
    parser = _Parser(_tokens(text))
    tree = parser.query()
    if parser.peek() is not None:
        raise SearchSyntaxError("Unbalanced parentheses in search query")
    return tree


def parse_moment(value: str) -> datetime:
    """A search timestamp: ISO 8601 with ``T`` or a space, optional offset or ``Z``, or a
    date; without an offset it is read as UTC (the sandbox shop's API clock)."""
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as error:
        raise SearchSyntaxError(f"Invalid date in search query: {value!r}") from error
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def compare(left: Any, operator: str, right: Any) -> bool:
    if operator == "<":
        return bool(left < right)
    if operator == "<=":
        return bool(left <= right)
    if operator == ">":
        return bool(left > right)
    if operator == ">=":
        return bool(left >= right)
    return bool(left == right)


def evaluate(tree: Node | None, term: Callable[[Term], bool | None]) -> bool:
    """Whether a resource matches; ``term`` decides one term, None when it does not apply."""
    result = _evaluate(tree, term) if tree is not None else None
    return True if result is None else result


def _evaluate(node: Node, term: Callable[[Term], bool | None]) -> bool | None:
    if isinstance(node, Term):
        return term(node)
    if isinstance(node, Not):
        inner = _evaluate(node.child, term)
        return None if inner is None else not inner
    results = [r for r in (_evaluate(c, term) for c in node.children) if r is not None]
    if not results:
        return None
    return all(results) if isinstance(node, All) else any(results)


def conjuncts(tree: Node | None) -> list[Term]:
    """The terms that every match must satisfy (the top-level AND), for index narrowing."""
    if isinstance(tree, Term):
        return [tree]
    if isinstance(tree, All):
        return [c for c in tree.children if isinstance(c, Term)]
    return []


def field_matcher(
    fields: dict[str, Callable[[str], Any]], values: Callable[[str], Any]
) -> Callable[[Term], bool | None]:
    """A term decider over typed fields: ``fields`` parses a term's value for a field name,
    ``values`` gives the resource's own value of that field."""

    def decide(term: Term) -> bool | None:
        if term.field is None or term.field not in fields:
            return None
        right = fields[term.field](term.value)
        left = values(term.field)
        if isinstance(right, datetime) and len(term.value.strip()) == 10 and term.operator == "":
            return bool(left.date() == right.date())  # a date: the whole day
        return compare(left, term.operator, right)

    return decide
