"""One platform account, one integration: ``integrations.account_key``, unique

A shop or seller could be connected to several integrations, which then competed for one
rate limit. ``account_key`` ("shopify:<shop>", "amazon:<region>:<seller>") is set when an
integration connects and cleared when it is disconnected; its unique index makes the database
refuse a second holder, so two racing OAuth callbacks cannot both connect one account.

Existing rows: each account goes to the integration that connected it first (among those not
pending or disconnected); a duplicate keeps working but holds nothing, so its next reconnect
is refused and names the holder.

Revision ID: b7d3e1a95c40
Revises: b71e3d9a5c20
Create Date: 2026-12-08 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "b7d3e1a95c40"
down_revision: str | None = "b71e3d9a5c20"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "integrations",
        sa.Column("account_key", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True),
    )
    integrations = sa.table(
        "integrations",
        sa.column("id", sa.Uuid()),
        sa.column("platform", sa.String()),
        sa.column("shop_domain", sa.String()),
        sa.column("selling_partner_id", sa.String()),
        sa.column("region", sa.String()),
        sa.column("status", sa.String()),
        sa.column("connected_at", sa.DateTime()),
        sa.column("created_at", sa.DateTime()),
        sa.column("account_key", sa.String()),
    )
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(
            integrations.c.id,
            integrations.c.platform,
            integrations.c.shop_domain,
            integrations.c.selling_partner_id,
            integrations.c.region,
        )
        .where(integrations.c.status.not_in(("pending", "disconnected")))
        .order_by(integrations.c.connected_at, integrations.c.created_at)
    ).all()
    taken: set[str] = set()
    for integration_id, platform, shop, seller, region in rows:
        if platform == "shopify" and shop:
            key = f"shopify:{shop.lower()}"
        elif platform == "amazon" and seller and region:
            key = f"amazon:{region.lower()}:{seller}"
        else:
            continue
        if key in taken:
            continue
        taken.add(key)
        connection.execute(
            sa.update(integrations)
            .where(integrations.c.id == integration_id)
            .values(account_key=key)
        )
    op.create_index(
        op.f("ix_integrations_account_key"), "integrations", ["account_key"], unique=True
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_integrations_account_key"), table_name="integrations")
    # A plain ALTER TABLE ... DROP COLUMN (SQLite >= 3.35), not batch mode: batch mode copies
    # the table and drops the old one, and on SQLite that drop cascades to every stream,
    # run and record of every integration (their foreign keys say ON DELETE CASCADE).
    op.drop_column("integrations", "account_key")
