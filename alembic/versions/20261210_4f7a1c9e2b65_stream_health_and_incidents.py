"""stream health, live run truth (waiting, stalled, last progress) and incidents

``stream_configs`` gets its health (written when a run ends: state, cause, last success and
failure, consecutive failures) and an optional per-stream stall limit. ``sync_runs`` gets
``progress_at``, ``waiting_until``/``waiting_reason`` and ``stalled_at``/``stall_reason``, so
that pages show a run that waits for a rate-limit window or makes no progress. ``incidents``
holds one open incident per integration and cause (a partial unique index).

Existing streams take their health from their last finished run.

Revision ID: 4f7a1c9e2b65
Revises: 4f8a1c3e7b25
Create Date: 2026-12-10 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import dashboard.models

revision: str = "4f7a1c9e2b65"
down_revision: str | None = "4f8a1c3e7b25"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TS = dashboard.models.UTCDateTime
OPEN = sa.text("status = 'open'")


def upgrade() -> None:
    # Plain ADD COLUMN on both databases (no table rebuild on SQLite).
    op.add_column(
        "stream_configs",
        sa.Column("health", sa.String(length=16), server_default="never_run", nullable=False),
    )
    op.add_column("stream_configs", sa.Column("health_cause", sa.String(length=32)))
    op.add_column("stream_configs", sa.Column("health_detail", sa.String(length=2000)))
    op.add_column("stream_configs", sa.Column("last_success_at", UTC_TS()))
    op.add_column("stream_configs", sa.Column("last_failure_at", UTC_TS()))
    op.add_column(
        "stream_configs",
        sa.Column("consecutive_failures", sa.Integer(), server_default="0", nullable=False),
    )
    op.add_column("stream_configs", sa.Column("stall_minutes", sa.Integer()))
    op.add_column("sync_runs", sa.Column("progress_at", UTC_TS()))
    op.add_column("sync_runs", sa.Column("waiting_until", UTC_TS()))
    op.add_column("sync_runs", sa.Column("waiting_reason", sa.String(length=500)))
    op.add_column("sync_runs", sa.Column("stalled_at", UTC_TS()))
    op.add_column("sync_runs", sa.Column("stall_reason", sa.String(length=500)))
    op.execute(
        """
        UPDATE stream_configs SET health = CASE (
            SELECT r.status FROM sync_runs r
            WHERE r.integration_id = stream_configs.integration_id
              AND r.stream = stream_configs.stream
              AND r.status IN ('succeeded', 'partial', 'failed')
            ORDER BY r.created_at DESC LIMIT 1)
          WHEN 'succeeded' THEN 'healthy' WHEN 'partial' THEN 'degraded'
          WHEN 'failed' THEN 'failing' ELSE 'never_run' END
        """
    )
    op.create_table(
        "incidents",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("integration_id", sa.Uuid(), nullable=False),
        sa.Column("cause", sa.String(length=32), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("title", sa.String(length=500), nullable=False),
        sa.Column("advice", sa.String(length=500), nullable=False),
        sa.Column("latest_error", sa.String(length=2000), nullable=True),
        sa.Column("streams", sa.JSON(), nullable=False),
        sa.Column("occurrences", sa.Integer(), nullable=False),
        sa.Column("opened_at", UTC_TS(), nullable=False),
        sa.Column("last_seen_at", UTC_TS(), nullable=False),
        sa.Column("resolved_at", UTC_TS(), nullable=True),
        sa.Column("resolution", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(["integration_id"], ["integrations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_incidents_integration_id", "incidents", ["integration_id"])
    op.create_index("ix_incidents_status_seen", "incidents", ["status", "last_seen_at"])
    op.create_index(
        "uq_incidents_open_cause",
        "incidents",
        ["integration_id", "cause"],
        unique=True,
        sqlite_where=OPEN,
        postgresql_where=OPEN,
    )


def downgrade() -> None:
    op.drop_table("incidents")
    # ALTER TABLE ... DROP COLUMN (SQLite >= 3.35), not batch mode: batch mode copies the
    # table and drops the old one, which on SQLite cascades to every run's events.
    for column in ("stall_reason", "stalled_at", "waiting_reason", "waiting_until", "progress_at"):
        op.drop_column("sync_runs", column)
    for column in (
        "stall_minutes", "consecutive_failures", "last_failure_at", "last_success_at",
        "health_detail", "health_cause", "health",
    ):  # fmt: skip
        op.drop_column("stream_configs", column)
