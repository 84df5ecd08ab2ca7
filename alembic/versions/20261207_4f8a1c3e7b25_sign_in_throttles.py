"""Sign-in attempts counted atomically per account and per client address

The per-user ``failed_logins`` / ``locked_until`` columns were read, changed and written back:
30 parallel wrong sign-ins were all checked and the counter ended at 4. They also never
slowed down unknown emails. ``sign_in_throttles`` is counted with one upsert per attempt,
before the password check, keyed by email whether or not the account exists.

Revision ID: 4f8a1c3e7b25
Revises: 90d6cf504065
Create Date: 2026-12-07 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import dashboard.models

revision: str = "4f8a1c3e7b25"
down_revision: str | None = "90d6cf504065"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sign_in_throttles",
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=400), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column(
            "window_started_at", dashboard.models.UTCDateTime(timezone=True), nullable=False
        ),
        sa.PrimaryKeyConstraint("key"),
    )
    # ALTER TABLE ... DROP COLUMN (SQLite >= 3.35), not batch mode: batch mode copies users
    # and drops the old table, which on SQLite cascades to every user's sessions.
    op.drop_column("users", "failed_logins")
    op.drop_column("users", "locked_until")


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column("failed_logins", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column("locked_until", dashboard.models.UTCDateTime(timezone=True), nullable=True)
        )
    op.drop_table("sign_in_throttles")
