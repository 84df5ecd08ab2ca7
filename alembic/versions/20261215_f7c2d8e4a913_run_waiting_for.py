"""What a waiting run waits for

- ``sync_runs.waiting_for``: "rate_limit", "retry" or "report" (Amazon prepares a report the
  run reads next), so the screens say which instead of calling every wait a rate limit;
- ``sync_runs.waiting_checked_at``: for a report, when the hub last asked Amazon about it.

Revision ID: f7c2d8e4a913
Revises: e3a9c7b1d042
Create Date: 2026-12-15 09:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import dashboard.models

revision: str = "f7c2d8e4a913"
down_revision: str | None = "e3a9c7b1d042"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "sync_runs",
        sa.Column("waiting_for", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    )
    op.add_column(
        "sync_runs",
        sa.Column(
            "waiting_checked_at", dashboard.models.UTCDateTime(timezone=True), nullable=True
        ),
    )


def downgrade() -> None:
    op.drop_column("sync_runs", "waiting_checked_at")
    op.drop_column("sync_runs", "waiting_for")
