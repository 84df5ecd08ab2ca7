"""Stream schedules edited in place: a cron expression instead of the interval

- ``stream_configs.cron``: five-field cron (UTC) the stream runs on when set; NULL keeps the
  interval, which every existing stream uses.

Revision ID: 6c1f0e2b9a47
Revises: 8e41c2d7a9b3
Create Date: 2026-12-15 08:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "6c1f0e2b9a47"
down_revision: str | None = "8e41c2d7a9b3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "stream_configs",
        sa.Column("cron", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("stream_configs", "cron")
