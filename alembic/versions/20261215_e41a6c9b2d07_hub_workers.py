"""Worker liveness: ``hub_workers``, one row per process running the sync engine, beaten
every few seconds, so a process killed on another host is noticed in seconds (its runs and
the scheduler lease are taken over) rather than after the runs' two-minute staleness.

Revision ID: e41a6c9b2d07
Revises: e4a1c9b27f50
Create Date: 2026-12-15 08:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import dashboard.models

revision: str = "e41a6c9b2d07"
down_revision: str | None = "e4a1c9b27f50"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TS = dashboard.models.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "hub_workers",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("host", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("running", sa.Integer(), nullable=False),
        sa.Column("started_at", UTC_TS(timezone=True), nullable=False),
        sa.Column("heartbeat_at", UTC_TS(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("hub_workers")
