"""Amazon buyer data kept encrypted, the LWA client secret set from Settings, incidents of the
app itself

- ``orders.personal_key_id`` / ``orders.personal_data``: an order's buyer and recipient
  (HUB_AMAZON_BUYER_DATA=encrypted), sealed by the vault; never in plain text.
- ``amazon_lwa_secrets.key_id`` / ``ciphertext`` / ``switch_confirmed_at``: a secret an admin
  entered in Settings (sealed), and whether the switch from the one before is confirmed.
- ``incidents.integration_id`` becomes nullable: the LWA secret's incident concerns the app,
  not each integration; ``uq_incidents_open_app_cause`` keeps one open per cause. Open
  per-integration ``lwa_secret_expiring`` incidents are resolved: the sweep opens the app's.

Revision ID: 8e41c2d7a9b3
Revises: f7c2d8e4a913
Create Date: 2026-12-15 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import dashboard.models

revision: str = "8e41c2d7a9b3"
down_revision: str | None = "f7c2d8e4a913"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TS = dashboard.models.UTCDateTime
OPEN = sa.text("status = 'open'")
OPEN_APP = sa.text("status = 'open' AND integration_id IS NULL")


def _integration_id_nullable(nullable: bool) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("incidents", "integration_id", existing_type=sa.Uuid(), nullable=nullable)
        return
    # SQLite cannot alter a column: batch mode copies the table. Nothing references
    # incidents, so dropping the old copy cascades nowhere; its partial unique index is
    # dropped first and made again (a batch copy would not keep its WHERE).
    op.drop_index("uq_incidents_open_cause", table_name="incidents")
    with op.batch_alter_table("incidents", recreate="always") as batch:
        batch.alter_column("integration_id", existing_type=sa.Uuid(), nullable=nullable)
    op.create_index(
        "uq_incidents_open_cause", "incidents", ["integration_id", "cause"], unique=True,
        sqlite_where=OPEN, postgresql_where=OPEN,
    )  # fmt: skip


def upgrade() -> None:
    op.add_column(
        "orders",
        sa.Column("personal_key_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    )
    op.add_column("orders", sa.Column("personal_data", sa.Text(), nullable=True))
    op.add_column(
        "amazon_lwa_secrets",
        sa.Column("key_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    )
    op.add_column("amazon_lwa_secrets", sa.Column("ciphertext", sa.Text(), nullable=True))
    op.add_column(
        "amazon_lwa_secrets",
        sa.Column("switch_confirmed_at", UTC_TS(timezone=True), nullable=True),
    )
    incidents = sa.table(
        "incidents",
        sa.column("cause", sa.String()),
        sa.column("status", sa.String()),
        sa.column("resolution", sa.String()),
        sa.column("resolved_at", UTC_TS(timezone=True)),
    )
    op.execute(
        incidents.update()
        .where(incidents.c.cause == "lwa_secret_expiring", incidents.c.status == "open")
        .values(status="resolved", resolution="replaced by one incident for the Amazon app",
                resolved_at=sa.func.current_timestamp())
    )  # fmt: skip
    _integration_id_nullable(True)
    op.create_index(
        "uq_incidents_open_app_cause", "incidents", ["cause"], unique=True,
        sqlite_where=OPEN_APP, postgresql_where=OPEN_APP,
    )  # fmt: skip


def downgrade() -> None:
    op.drop_index("uq_incidents_open_app_cause", table_name="incidents")
    op.execute(sa.text("DELETE FROM incidents WHERE integration_id IS NULL"))
    _integration_id_nullable(False)
    # ALTER TABLE ... DROP COLUMN, not batch mode: a batch copy's DROP TABLE would cascade.
    op.drop_column("amazon_lwa_secrets", "switch_confirmed_at")
    op.drop_column("amazon_lwa_secrets", "ciphertext")
    op.drop_column("amazon_lwa_secrets", "key_id")
    op.drop_column("orders", "personal_data")
    op.drop_column("orders", "personal_key_id")
