"""Webhook subscription checks: when a hub process last listed a shop's subscriptions

- ``integrations.webhooks_checked_at``: the claim that lets one process list each Shopify
  shop's webhook subscriptions per HUB_SHOPIFY_WEBHOOK_CHECK_MINUTES (and re-create the ones
  removed); NULL until the first check.

Revision ID: e3a9c7b1d042
Revises: 0d0513500d61
Create Date: 2026-12-15 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import dashboard.models

revision: str = "e3a9c7b1d042"
down_revision: str | None = "0d0513500d61"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "integrations",
        sa.Column(
            "webhooks_checked_at", dashboard.models.UTCDateTime(timezone=True), nullable=True
        ),
    )


def downgrade() -> None:
    op.drop_column("integrations", "webhooks_checked_at")
