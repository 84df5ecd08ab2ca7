"""APScheduler's job store table, created by a migration like every other table

Until now APScheduler created ``apscheduler_jobs`` itself on the scheduler's first start,
and the drift checks had to be told to look away. Reflex's own start-up check was not, and
printed "Detected database schema changes. Run reflex db makemigrations" on every start
after the first. The table now belongs to the schema; where APScheduler already made it,
it is kept as it is (same columns).

Revision ID: 9e4b7c2d1a53
Revises: 6a2d9c4e8f17
Create Date: 2026-12-05 23:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "9e4b7c2d1a53"
down_revision: str | None = "6a2d9c4e8f17"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if sa.inspect(op.get_bind()).has_table("apscheduler_jobs"):
        return  # made by APScheduler before this migration existed
    op.create_table(
        "apscheduler_jobs",
        sa.Column("id", sa.Unicode(191), primary_key=True),
        sa.Column("next_run_time", sa.Float(25)),
        sa.Column("job_state", sa.LargeBinary(), nullable=False),
    )
    op.create_index("ix_apscheduler_jobs_next_run_time", "apscheduler_jobs", ["next_run_time"])


def downgrade() -> None:
    # Left in place: APScheduler would make it again on its next start anyway.
    pass
