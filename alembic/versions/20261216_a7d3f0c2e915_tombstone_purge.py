"""Tombstones leave the change feed after HUB_TOMBSTONE_DAYS: ``change_counters.purged_through``
is the highest change number of a deleted record removed from an integration's feed, so that a
consumer whose cursor is older is told to read the feed again instead of missing a deletion;
a partial index on each record table's deleted rows keeps the hourly purge off the live ones.

Revision ID: a7d3f0c2e915
Revises: e41a6c9b2d07
Create Date: 2026-12-16 08:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a7d3f0c2e915"
down_revision: str | None = "e41a6c9b2d07"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


RECORD_TABLES = ("products", "variants", "inventory_levels", "orders", "order_lines", "customers")
DELETED = "deleted_at IS NOT NULL"


def upgrade() -> None:
    op.add_column(
        "change_counters",
        sa.Column("purged_through", sa.BigInteger(), nullable=False, server_default="0"),
    )
    for table in RECORD_TABLES:  # the hourly purge reads only deleted rows
        op.create_index(
            f"ix_{table}_tombstones", table, ["deleted_at"], unique=False,
            postgresql_where=sa.text(DELETED), sqlite_where=sa.text(DELETED),
        )  # fmt: skip


def downgrade() -> None:
    for table in RECORD_TABLES:
        op.drop_index(f"ix_{table}_tombstones", table_name=table)
    op.drop_column("change_counters", "purged_through")
