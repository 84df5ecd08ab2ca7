"""Batch upsert of unified records into the record tables.

One statement per record kind per batch (INSERT ... ON CONFLICT DO UPDATE on the unique
(integration, external id)), so replaying a batch after a crash changes nothing. A batch that
lists some parents' children complete (``ChildrenComplete``) then marks those parents' other
live children deleted: one UPDATE per chunk of parents.
"""

from __future__ import annotations

import functools
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from pydantic_core import PydanticUndefined
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from connectors.base import ChildrenComplete, RecordError, UnifiedRecord
from dashboard.db import json_text
from dashboard.models import (
    RECORD_TABLES,
    InventoryLevel,
    Order,
    OrderLine,
    RecordColumns,
    Variant,
)
from dashboard.services import metrics, personal_data

_CHUNK = 500  # rows per statement: well under SQLite's bound-parameter limit
# A child kind -> the column naming its parent (the parent ids ``ChildrenComplete`` lists).
# An inventory item is no record of its own: its levels are children all the same.
_PARENT_COLUMN: dict[str, str] = {
    "variant": "product_external_id",
    "order_line": "order_external_id",
    "inventory_level": "inventory_item_id",
}
# A child kind -> the kind of its parent, where the parent is a record of its own.
_PARENT_KIND = {"variant": "product", "order_line": "order"}
# Deleting a parent deletes its children: kind -> (child table, column naming the parent).
_CHILDREN: dict[str, tuple[type[RecordColumns], str]] = {
    "product": (Variant, _PARENT_COLUMN["variant"]),
    "order": (OrderLine, _PARENT_COLUMN["order_line"]),
}
_PROTECTED = {"id", "integration_id", "external_id", "first_synced_at"}
# Kinds whose deletion retires variants, and with them their inventory items' levels.
_HOLDS_VARIANTS = {"product", "variant"}


@dataclass
class UpsertResult:
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    errors: list[RecordError] = field(default_factory=list)


_SET_BY_US = {
    "id",
    "integration_id",
    "external_id",
    "raw",
    "remote_updated_at",
    "deleted_at",
    "first_synced_at",
    "synced_at",
    *personal_data.COLUMNS,  # from the record's ``protected`` part, sealed here
}


@dataclass(frozen=True)
class _TableShape:
    columns: frozenset[str]
    defaults: dict[str, Any]
    required: frozenset[str]
    sealed: bool = False  # the table keeps a record's personal data (sealed) beside it


@functools.cache
def _shape(table: type[RecordColumns]) -> _TableShape:
    """Columns a connector may fill, their defaults, and those it must fill."""
    defaults: dict[str, Any] = {}
    required = set()
    for name, info in table.model_fields.items():
        if name in _SET_BY_US:
            continue
        if info.default is not PydanticUndefined:
            defaults[name] = info.default
        else:
            required.add(name)
    return _TableShape(
        frozenset(defaults) | frozenset(required),
        defaults,
        frozenset(required),
        sealed=table is Order,
    )


def _row(
    record: UnifiedRecord, integration_id: uuid.UUID, now: datetime, shape: _TableShape
) -> dict[str, Any]:
    if not record.external_id or not isinstance(record.external_id, str):
        raise ValueError("record without an external id")
    unknown = set(record.fields) - shape.columns
    if unknown:
        raise ValueError(f"unknown fields {sorted(unknown)}")
    missing = shape.required - set(record.fields)
    if missing:
        raise ValueError(f"missing fields {sorted(missing)}")
    row = dict(shape.defaults)
    row.update(record.fields)
    row.update(
        integration_id=integration_id,
        external_id=record.external_id[:255],
        raw=record.raw,
        remote_updated_at=record.remote_updated_at,
        deleted_at=None,
        synced_at=now,
        id=uuid.uuid4(),
        first_synced_at=now,
    )
    if shape.sealed:
        row.update(
            personal_data.seal(
                record.protected, integration_id=integration_id, external_id=row["external_id"]
            )
        )
    elif record.protected:
        raise ValueError("personal data is kept for orders only")
    return row


def upsert_records(
    *,
    session: Session,
    integration_id: uuid.UUID,
    records: list[UnifiedRecord],
    children_complete: ChildrenComplete | None = None,
) -> UpsertResult:
    """Insert or update ``records``; a record that cannot be stored is reported, not fatal.

    ``children_complete``: parents whose children of a kind are all among ``records``; their
    other live children of that kind are marked deleted (counted in ``deleted``).
    """
    result = UpsertResult()
    unstored: dict[str, list[str]] = defaultdict(list)  # kind -> ids that could not be stored
    all_new: dict[str, set[str]] = {}  # kind -> its ids, when this upsert inserted every one
    now = datetime.now(UTC)
    by_kind: dict[str, list[UnifiedRecord]] = defaultdict(list)
    for record in records:
        by_kind[str(record.kind)].append(record)
    dialect = session.get_bind().dialect.name
    for kind, kind_records in by_kind.items():
        table = RECORD_TABLES.get(kind)
        if table is None:
            result.errors += [
                RecordError(r.external_id, f"unknown record kind {kind!r}") for r in kind_records
            ]
            continue
        deleted = [r.external_id for r in kind_records if r.deleted and r.external_id]
        if deleted:
            result.deleted += mark_deleted(
                session=session, integration_id=integration_id, kind=kind, external_ids=deleted
            )
            kind_records = [r for r in kind_records if not r.deleted]
        shape = _shape(table)
        rows: dict[str, dict[str, Any]] = {}
        for record in kind_records:
            try:
                # The last version of a record in a batch wins (overlap windows repeat rows).
                rows[record.external_id] = _row(record, integration_id, now, shape)
            except (ValueError, TypeError) as error:
                result.errors.append(RecordError(record.external_id, str(error), record.raw))
                unstored[kind].append(record.external_id)
        if not rows:
            continue
        table_obj: sa.Table = table.__table__  # type: ignore[attr-defined]
        values = list(rows.values())
        if dialect == "postgresql":
            inserted = _upsert_postgresql(session, table_obj, values)
        else:
            statement = _upsert_statement(table_obj, dialect, tuple(values[0]))
            # One cached statement executed for all rows (executemany): nothing is compiled
            # per batch, and there is no bound-parameter limit to chunk for.
            session.execute(statement, values)
            inserted = _inserted_now(session, table_obj, integration_id, now)
        result.inserted += inserted
        result.updated += len(rows) - inserted
        metrics.count_records(kind, inserted=inserted, updated=len(rows) - inserted)
        if inserted == len(rows):
            all_new[kind] = set(rows)
    if children_complete is not None and children_complete.parent_ids:
        kind = str(children_complete.kind)
        # A parent new to the hub has no earlier children to retire: a first sync, all new
        # parents, skips the statement (and on SQLite holds the write lock that much less).
        first_seen = all_new.get(_PARENT_KIND.get(kind, ""), set())
        parents = tuple(p for p in children_complete.parent_ids if p not in first_seen)
        if parents:
            result.deleted += _mark_unlisted_children_deleted(
                session=session,
                integration_id=integration_id,
                kind=kind,
                parent_ids=parents,
                stored_at=now,
                keep=unstored.get(kind, []),
            )
    return result


def _mark_unlisted_children_deleted(
    *,
    session: Session,
    integration_id: uuid.UUID,
    kind: str,
    parent_ids: tuple[str, ...],
    stored_at: datetime,
    keep: list[str],
) -> int:
    """Mark deleted the live children of ``parent_ids`` that this upsert did not store.

    Every child the batch listed was just stored with ``synced_at = stored_at``, so the others
    are found by that column, with no list of the listed ids to send. ``keep``: listed ones
    that could not be stored (a bad field) are still on the platform. Returns how many.
    """
    if kind not in _PARENT_COLUMN:
        raise ValueError(f"{kind!r} records have no parent")
    table: sa.Table = RECORD_TABLES[kind].__table__  # type: ignore[attr-defined]
    parent = table.c[_PARENT_COLUMN[kind]]
    postgres = session.get_bind().dialect.name == "postgresql"
    # The parent column's index finds the few children. The planners would rather take an
    # index leading with integration_id, which hands them every row of the integration (SQLite
    # always, and PostgreSQL's generic plan of a prepared statement, or any plan before the
    # table has statistics): wrapped, that column matches no index.
    # On PostgreSQL the parents travel as one array, which the generic plan looks up by index.
    same_integration = sa.func.coalesce(table.c.integration_id, None) == integration_id
    marked = 0
    for start in range(0, len(parent_ids), _CHUNK):
        chunk = list(parent_ids[start : start + _CHUNK])
        conditions = [
            same_integration,
            parent == sa.any_(sa.cast(chunk, postgresql.ARRAY(sa.Text))) if postgres
            else parent.in_(chunk),
            table.c.deleted_at.is_(None),
            table.c.synced_at != stored_at,
        ]  # fmt: skip
        if keep:
            conditions.append(table.c.external_id.not_in(keep))
        outcome = session.execute(
            sa.update(table).where(*conditions).values(deleted_at=stored_at, synced_at=stored_at)
        )
        marked += int(getattr(outcome, "rowcount", 0) or 0)
    if marked and kind in _HOLDS_VARIANTS:
        _retire_levels_of_variants(
            session=session, integration_id=integration_id, retired_at=stored_at
        )
    metrics.count_records(kind, deleted=marked)
    return marked


@functools.cache
def _upsert_statement(table: sa.Table, dialect: str, columns: tuple[str, ...]) -> Any:
    """INSERT ... ON CONFLICT (integration, external id) DO UPDATE, compiled once per shape."""
    statement = sqlite.insert(table)
    update = {name: statement.excluded[name] for name in columns if name not in _PROTECTED}
    return statement.on_conflict_do_update(
        index_elements=["integration_id", "external_id"], set_=update
    )


def _upsert_postgresql(session: Session, table: sa.Table, rows: list[dict[str, Any]]) -> int:
    """Upsert ``rows`` in one statement whose parameters are one array per column; returns how
    many were inserted (the rest were updated).

    A multi-row VALUES list made psycopg split a megabyte of SQL text on every batch (three
    quarters of the time); this statement's text is the same for every batch, so it is parsed
    once and the arrays travel as parameters.
    """
    columns = tuple(rows[0])
    statement = _postgresql_upsert_sql(table, columns)
    arrays: list[list[Any]] = []
    for name in columns:
        column = [row[name] for row in rows]
        if isinstance(table.c[name].type, sa.JSON):
            column = [None if value is None else json_text(value) for value in column]
        arrays.append(column)
    outcome = session.connection().exec_driver_sql(statement, tuple(arrays))
    return sum(1 for (inserted,) in outcome if inserted)


@functools.cache
def _postgresql_upsert_sql(table: sa.Table, columns: tuple[str, ...]) -> str:
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    element_types = []
    for name in columns:
        column_type = table.c[name].type
        # JSON travels as text (json_text, as the engine's serializer) and is cast per element.
        element = "json" if isinstance(column_type, sa.JSON) else column_type.compile(dialect)
        element_types.append(f"%b::{element}[]")  # %b: binary, no escaping
    quoted = ", ".join(f'"{name}"' for name in columns)
    updates = ", ".join(
        f'"{name}" = excluded."{name}"' for name in columns if name not in _PROTECTED
    )
    # Names come from our own table metadata, never from input; values are parameters.
    return (
        f'INSERT INTO "{table.name}" ({quoted}) '  # noqa: S608
        f"SELECT * FROM unnest({', '.join(element_types)}) "
        f"ON CONFLICT (integration_id, external_id) DO UPDATE SET {updates} "
        "RETURNING (xmax = 0)"
    )


def mark_deleted(
    *,
    session: Session,
    integration_id: uuid.UUID,
    kind: str,
    external_ids: list[str],
    now: datetime | None = None,
) -> int:
    """Mark live records (and their children) deleted; only ``deleted_at`` changes, so the
    last known state stays readable. Returns how many records were live."""
    now = now or datetime.now(UTC)
    table: sa.Table = RECORD_TABLES[kind].__table__  # type: ignore[attr-defined]
    child = _CHILDREN.get(kind)
    marked = 0
    for start in range(0, len(external_ids), _CHUNK):
        chunk = external_ids[start : start + _CHUNK]
        outcome = session.execute(
            sa.update(table)
            .where(
                table.c.integration_id == integration_id,
                table.c.external_id.in_(chunk),
                table.c.deleted_at.is_(None),
            )
            .values(deleted_at=now, synced_at=now)
        )
        marked += int(getattr(outcome, "rowcount", 0) or 0)
        if child is not None:
            child_table: sa.Table = child[0].__table__  # type: ignore[attr-defined]
            session.execute(
                sa.update(child_table)
                .where(
                    child_table.c.integration_id == integration_id,
                    child_table.c[child[1]].in_(chunk),
                    child_table.c.deleted_at.is_(None),
                )
                .values(deleted_at=now, synced_at=now)
            )
    if kind in _HOLDS_VARIANTS:
        _retire_levels_of_variants(session=session, integration_id=integration_id, retired_at=now)
    metrics.count_records(kind, deleted=marked)
    return marked


def mark_missing_deleted(
    *,
    session: Session,
    integration_id: uuid.UUID,
    kind: str,
    stored_since: datetime,
    id_suffix: str = "",
) -> int:
    """After a complete snapshot: live records (ending in ``id_suffix``) that the snapshot did
    not store again since ``stored_since`` no longer exist on the platform."""
    table: sa.Table = RECORD_TABLES[kind].__table__  # type: ignore[attr-defined]
    now = datetime.now(UTC)
    conditions = [
        table.c.integration_id == integration_id,
        table.c.deleted_at.is_(None),
        table.c.synced_at < stored_since,
    ]
    if id_suffix:
        escaped = id_suffix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        conditions.append(table.c.external_id.like(f"%{escaped}", escape="\\"))
    child = _CHILDREN.get(kind)
    if child is not None:  # children first: their parents still match the conditions
        child_table: sa.Table = child[0].__table__  # type: ignore[attr-defined]
        session.execute(
            sa.update(child_table)
            .where(
                child_table.c.integration_id == integration_id,
                child_table.c.deleted_at.is_(None),
                child_table.c[child[1]].in_(sa.select(table.c.external_id).where(*conditions)),
            )
            .values(deleted_at=now, synced_at=now)
        )
    outcome = session.execute(
        sa.update(table).where(*conditions).values(deleted_at=now, synced_at=now)
    )
    if kind in _HOLDS_VARIANTS:
        _retire_levels_of_variants(session=session, integration_id=integration_id, retired_at=now)
    marked = int(getattr(outcome, "rowcount", 0) or 0)
    metrics.count_records(kind, deleted=marked)
    return marked


def _retire_levels_of_variants(
    *, session: Session, integration_id: uuid.UUID, retired_at: datetime
) -> None:
    """A variant deleted at ``retired_at`` takes its inventory item, and so the item's levels,
    with it (on Shopify the item exists only with its variant, and is never read again)."""
    variants: sa.Table = Variant.__table__  # type: ignore[attr-defined]
    levels: sa.Table = InventoryLevel.__table__  # type: ignore[attr-defined]
    just_deleted = sa.select(variants.c.inventory_item_id).where(
        variants.c.integration_id == integration_id,
        variants.c.synced_at == retired_at,  # the (integration_id, synced_at) index
        variants.c.deleted_at == retired_at,
        variants.c.inventory_item_id.is_not(None),
    )
    session.execute(
        sa.update(levels)
        .where(
            levels.c.integration_id == integration_id,
            levels.c.deleted_at.is_(None),
            levels.c.inventory_item_id.in_(just_deleted),
        )
        .values(deleted_at=retired_at, synced_at=retired_at)
    )


def mark_seen(
    *, session: Session, integration_id: uuid.UUID, kind: str, external_ids: list[str]
) -> int:
    """An id-only snapshot listed these records: note them as seen (``synced_at``) and change
    nothing else, so ``mark_missing_deleted`` after the snapshot keeps them."""
    table: sa.Table = RECORD_TABLES[kind].__table__  # type: ignore[attr-defined]
    now = datetime.now(UTC)
    seen = 0
    for start in range(0, len(external_ids), _CHUNK):
        outcome = session.execute(
            sa.update(table)
            .where(
                table.c.integration_id == integration_id,
                table.c.external_id.in_(external_ids[start : start + _CHUNK]),
                table.c.deleted_at.is_(None),
            )
            .values(synced_at=now)
        )
        seen += int(getattr(outcome, "rowcount", 0) or 0)
    return seen


def _inserted_now(
    session: Session, table: sa.Table, integration_id: uuid.UUID, now: datetime
) -> int:
    """How many rows the upsert stamped ``now`` inserted: every row it wrote has
    ``synced_at = now``, and only the new ones also ``first_synced_at = now`` (an update
    keeps the first). A range of the (integration_id, synced_at) index: this batch's rows."""
    return int(
        session.execute(
            sa.select(sa.func.count())
            .select_from(table)
            .where(
                table.c.integration_id == integration_id,
                table.c.synced_at == now,
                table.c.first_synced_at == now,
            )
        ).scalar_one()
    )


def count_records(*, session: Session, integration_id: uuid.UUID, kind: str) -> int:
    table: sa.Table = RECORD_TABLES[kind].__table__  # type: ignore[attr-defined]
    statement = (
        sa.select(sa.func.count())
        .select_from(table)
        .where(table.c.integration_id == integration_id, table.c.deleted_at.is_(None))
    )
    return int(session.execute(statement).scalar_one())
