"""alert outbox: alerts for the alert webhook are stored, then sent after commit

Until now ``notify`` started the webhook POST at once, inside the transaction that raised
the alert: a transaction that then rolled back had still sent its alert. ``alert_outbox``
rows are written in that transaction and delivered by a loop in every hub process once it
committed, claimed per attempt and retried with backoff.

Revision ID: 90d6cf504065
Revises: 9e4b7c2d1a53
Create Date: 2026-12-06 05:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import dashboard.models

revision: str = "90d6cf504065"
down_revision: str | None = "9e4b7c2d1a53"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    utc = dashboard.models.UTCDateTime(timezone=True)
    op.create_table(
        "alert_outbox",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("notification_id", sa.Uuid(), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", utc, nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", utc, nullable=False),
        sa.Column("delivered_at", utc, nullable=True),
        sa.Column("failed_at", utc, nullable=True),
        sa.Column("error", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.ForeignKeyConstraint(["notification_id"], ["notifications.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_alert_outbox_next_attempt_at", "alert_outbox", ["next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_alert_outbox_next_attempt_at", table_name="alert_outbox")
    op.drop_table("alert_outbox")
