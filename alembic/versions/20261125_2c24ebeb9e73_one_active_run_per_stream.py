"""one active run per stream, enforced by the database

Several processes (hub workers, `hub sync`) share the database; a partial unique index on
(integration_id, stream) over queued and running runs makes a second active run of a stream
impossible. Older databases may hold such duplicates (the guard used to be per process): all
but the newest active run of a stream become `interrupted` first.

Revision ID: 2c24ebeb9e73
Revises: c43da89e036d
Create Date: 2026-11-25 12:00:00.000000
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import dashboard.models

revision: str = "2c24ebeb9e73"
down_revision: str | None = "c43da89e036d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTIVE = sa.text("status IN ('queued', 'running')")

runs = sa.table(
    "sync_runs",
    sa.column("id", sa.Uuid()),
    sa.column("integration_id", sa.Uuid()),
    sa.column("stream", sa.String()),
    sa.column("status", sa.String()),
    sa.column("error", sa.Text()),
    sa.column("created_at", dashboard.models.UTCDateTime()),
    sa.column("finished_at", dashboard.models.UTCDateTime()),
)


def upgrade() -> None:
    connection = op.get_bind()
    active = connection.execute(
        sa.select(runs.c.id, runs.c.integration_id, runs.c.stream)
        .where(runs.c.status.in_(("queued", "running")))
        .order_by(runs.c.created_at.desc(), runs.c.id.desc())
    ).all()
    seen: set[tuple[object, str]] = set()
    superseded = []
    for run_id, integration_id, stream in active:
        if (integration_id, stream) in seen:
            superseded.append(run_id)
        seen.add((integration_id, stream))
    if superseded:
        connection.execute(
            runs.update()
            .where(runs.c.id.in_(superseded))
            .values(
                status="interrupted",
                error="superseded by a newer run of the same stream",
                finished_at=datetime.now(UTC),
            )
        )
    with op.batch_alter_table("sync_runs", schema=None) as batch_op:
        batch_op.create_index(
            "uq_sync_runs_active_stream",
            ["integration_id", "stream"],
            unique=True,
            sqlite_where=ACTIVE,
            postgresql_where=ACTIVE,
        )


def downgrade() -> None:
    with op.batch_alter_table("sync_runs", schema=None) as batch_op:
        batch_op.drop_index("uq_sync_runs_active_stream")
