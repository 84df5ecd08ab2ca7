"""record tables: indexes on synced_at, of every integration and of one

The Records page lists records newest stored first, of every integration or of one, and
while syncs run it counts the ones stored since the list was read. Without an index each of
those sorted or scanned the whole table (~50 ms a page with 200,000 products on SQLite, and
again every second while a sync writes). ``(synced_at)`` and ``(integration_id, synced_at)``
make both a short index range. The single-column ``integration_id`` index goes: the unique
``(integration_id, external_id)`` and the new pair both lead with the column.

Revision ID: 6a2d9c4e8f17
Revises: 3b7e5f0a9c12
Create Date: 2026-12-05 22:30:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "6a2d9c4e8f17"
down_revision: str | None = "3b7e5f0a9c12"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RECORD_TABLES = ("products", "variants", "inventory_levels", "orders", "order_lines", "customers")


def upgrade() -> None:
    for table in RECORD_TABLES:
        op.create_index(f"ix_{table}_synced_at", table, ["synced_at"])
        op.create_index(f"ix_{table}_integration_synced", table, ["integration_id", "synced_at"])
        op.drop_index(f"ix_{table}_integration_id", table_name=table)


def downgrade() -> None:
    for table in RECORD_TABLES:
        op.create_index(f"ix_{table}_integration_id", table, ["integration_id"])
        op.drop_index(f"ix_{table}_integration_synced", table_name=table)
        op.drop_index(f"ix_{table}_synced_at", table_name=table)
