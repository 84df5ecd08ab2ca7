"""Amazon credential lifecycle: Appstore-initiated authorization, LWA secret age, yearly
re-authorization

- ``amazon_appstore_states``: the single-use state of an authorization a seller starts in the
  Selling Partner Appstore (the app's Login URI), bound to the seller and region Amazon named;
  the integration is found or created only once the code exchange proves the seller.
- ``amazon_lwa_secrets``: when each LWA client secret was set, by fingerprint (never the
  secret), for the incident before Amazon's 180-day rotation deadline.
- ``integrations.authorized_at``: when the seller last authorized the app (a year later it
  must be renewed); existing Amazon integrations start from ``connected_at``.

Revision ID: 0d0513500d61
Revises: c5e2a7d41f38
Create Date: 2026-12-14 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import dashboard.models

revision: str = "0d0513500d61"
down_revision: str | None = "c5e2a7d41f38"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TS = dashboard.models.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "amazon_appstore_states",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("state_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("region", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column(
            "selling_partner_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False
        ),
        sa.Column("marketplace_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("created_at", UTC_TS(timezone=True), nullable=False),
        sa.Column("expires_at", UTC_TS(timezone=True), nullable=False),
        sa.Column("used_at", UTC_TS(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_amazon_appstore_states_state_hash",
        "amazon_appstore_states",
        ["state_hash"],
        unique=True,
    )
    op.create_table(
        "amazon_lwa_secrets",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("fingerprint", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("set_at", UTC_TS(timezone=True), nullable=False),
        sa.Column("retired_at", UTC_TS(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_amazon_lwa_secrets_fingerprint", "amazon_lwa_secrets", ["fingerprint"], unique=True
    )
    op.add_column("integrations", sa.Column("authorized_at", UTC_TS(timezone=True), nullable=True))
    integrations = sa.table(
        "integrations",
        sa.column("platform", sa.String()),
        sa.column("connected_at", UTC_TS(timezone=True)),
        sa.column("authorized_at", UTC_TS(timezone=True)),
    )
    op.execute(
        integrations.update()
        .where(integrations.c.platform == "amazon")
        .values(authorized_at=integrations.c.connected_at)
    )


def downgrade() -> None:
    # ALTER TABLE ... DROP COLUMN, not batch mode: a batch copy's DROP TABLE would cascade.
    op.drop_column("integrations", "authorized_at")
    op.drop_index("ix_amazon_lwa_secrets_fingerprint", table_name="amazon_lwa_secrets")
    op.drop_table("amazon_lwa_secrets")
    op.drop_index("ix_amazon_appstore_states_state_hash", table_name="amazon_appstore_states")
    op.drop_table("amazon_appstore_states")
