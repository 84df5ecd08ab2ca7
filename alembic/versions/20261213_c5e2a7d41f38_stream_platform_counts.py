"""Data completeness: the platform's own count of each stream, read as a full pass ended

``stream_configs`` gets ``platform_count`` (Shopify's productsCount/ordersCount/customersCount,
the Amazon listings report's rows), when it was read, and the hub's live count at that moment:
the Streams tab shows them side by side with the drift, and a drift above
HUB_COMPLETENESS_DRIFT_PERCENT opens a ``count_drift`` incident (a string cause: no schema
change for it).

Revision ID: c5e2a7d41f38
Revises: b7d3e1a95c40
Create Date: 2026-12-13 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from dashboard.models import UTCDateTime

revision: str = "c5e2a7d41f38"
down_revision: str | None = "b7d3e1a95c40"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("platform_count", "platform_counted_at", "hub_count_at_pass")


def upgrade() -> None:
    op.add_column("stream_configs", sa.Column("platform_count", sa.Integer(), nullable=True))
    op.add_column("stream_configs", sa.Column("platform_counted_at", UTCDateTime(), nullable=True))
    op.add_column("stream_configs", sa.Column("hub_count_at_pass", sa.Integer(), nullable=True))


def downgrade() -> None:
    # ALTER TABLE ... DROP COLUMN, never batch mode: copying the table on SQLite would cascade
    # its DROP TABLE to every run of every stream.
    for column in reversed(COLUMNS):
        op.drop_column("stream_configs", column)
