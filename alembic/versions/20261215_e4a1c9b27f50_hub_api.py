"""Hub API: API keys, the change feed's sequence, outgoing change webhooks

- ``api_keys``: clients of /api/v1 (SHA-256 of the secret only, scopes, integration
  allow-list, rate limit, last use, revocation).
- ``change_counters`` and ``<record table>.change_seq``: every stored change of a record is
  numbered per integration just before its transaction commits (the change feed). Existing
  rows are numbered here, oldest stored first, so a first read of the feed returns them all.
- ``change_webhooks`` and ``change_webhook_deliveries``: consumers told about changes.

Revision ID: e4a1c9b27f50
Revises: 6c1f0e2b9a47
Create Date: 2026-12-15 08:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import dashboard.models

revision: str = "e4a1c9b27f50"
down_revision: str | None = "6c1f0e2b9a47"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TS = dashboard.models.UTCDateTime
RECORD_TABLES = ("products", "variants", "inventory_levels", "orders", "order_lines", "customers")


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("prefix", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("secret_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("integration_ids", sa.JSON(), nullable=False),
        sa.Column("rate_limit_per_minute", sa.Integer(), nullable=False),
        sa.Column("created_by", sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
        sa.Column("created_at", UTC_TS(timezone=True), nullable=False),
        sa.Column("last_used_at", UTC_TS(timezone=True), nullable=True),
        sa.Column("revoked_at", UTC_TS(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_api_keys_prefix", "api_keys", ["prefix"], unique=True)
    op.create_table(
        "change_counters",
        sa.Column("integration_id", sa.Uuid(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["integration_id"], ["integrations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("integration_id"),
    )
    op.create_table(
        "change_webhooks",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("integration_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("url", sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
        sa.Column("secret_key_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column(
            "secret_ciphertext", sqlmodel.sql.sqltypes.AutoString(length=512), nullable=False
        ),
        sa.Column("announced_seq", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
        sa.Column("created_at", UTC_TS(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["integration_id"], ["integrations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("integration_id", "kind", "url"),
    )
    op.create_index(
        "ix_change_webhooks_integration_id", "change_webhooks", ["integration_id"], unique=False
    )
    op.create_table(
        "change_webhook_deliveries",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("webhook_id", sa.Uuid(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", UTC_TS(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTC_TS(timezone=True), nullable=False),
        sa.Column("delivered_at", UTC_TS(timezone=True), nullable=True),
        sa.Column("failed_at", UTC_TS(timezone=True), nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("error", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.ForeignKeyConstraint(["webhook_id"], ["change_webhooks.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_change_webhook_deliveries_webhook_id",
        "change_webhook_deliveries",
        ["webhook_id"],
        unique=False,
    )
    op.create_index(
        "ix_change_webhook_deliveries_due",
        "change_webhook_deliveries",
        ["delivered_at", "failed_at"],
        unique=False,
    )
    for table in RECORD_TABLES:
        op.add_column(table, sa.Column("change_seq", sa.BigInteger(), nullable=True))
        op.create_index(f"ix_{table}_change_seq", table, ["integration_id", "change_seq"])
        # Number the rows already stored after the integration's counter, then move it on.
        op.execute(
            f"UPDATE {table} SET change_seq = numbered.seq FROM ("  # noqa: S608
            "SELECT r.id AS id, COALESCE((SELECT c.last_seq FROM change_counters c "
            "WHERE c.integration_id = r.integration_id), 0) + row_number() OVER "
            "(PARTITION BY r.integration_id ORDER BY r.synced_at, r.id) AS seq "
            f"FROM {table} r) AS numbered WHERE {table}.id = numbered.id"
        )
        op.execute(
            "INSERT INTO change_counters (integration_id, last_seq) "  # noqa: S608
            f"SELECT integration_id, MAX(change_seq) FROM {table} WHERE true "
            "GROUP BY integration_id "
            "ON CONFLICT (integration_id) DO UPDATE SET last_seq = excluded.last_seq"
        )


def downgrade() -> None:
    for table in RECORD_TABLES:
        op.drop_index(f"ix_{table}_change_seq", table_name=table)
        op.drop_column(table, "change_seq")
    op.drop_index("ix_change_webhook_deliveries_due", table_name="change_webhook_deliveries")
    op.drop_index("ix_change_webhook_deliveries_webhook_id", table_name="change_webhook_deliveries")
    op.drop_table("change_webhook_deliveries")
    op.drop_index("ix_change_webhooks_integration_id", table_name="change_webhooks")
    op.drop_table("change_webhooks")
    op.drop_table("change_counters")
    op.drop_index("ix_api_keys_prefix", table_name="api_keys")
    op.drop_table("api_keys")
