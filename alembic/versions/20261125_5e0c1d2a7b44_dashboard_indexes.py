"""indexes behind the dashboard: integrations pages in every sort order, unread notifications

The Integrations page sorts by creation, name, last sync or status and ends every order on
the id; with an index per order a page is read off the index instead of sorting the table,
which keeps it smooth with tens of thousands of integrations. The notification bell counts
unread notifications every second on every open page.

Revision ID: 5e0c1d2a7b44
Revises: 2c24ebeb9e73
Create Date: 2026-11-25 14:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "5e0c1d2a7b44"
down_revision: str | None = "2c24ebeb9e73"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INTEGRATION_INDEXES = {
    "ix_integrations_created": ["created_at", "id"],
    "ix_integrations_name": ["display_name", "id"],
    "ix_integrations_last_sync": ["last_sync_at", "id"],
    "ix_integrations_status_created": ["status", "created_at", "id"],
}


def upgrade() -> None:
    for name, columns in INTEGRATION_INDEXES.items():
        op.create_index(name, "integrations", columns)
    op.create_index(
        "ix_notifications_unread", "notifications", ["read_at", "kind", "integration_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_notifications_unread", table_name="notifications")
    for name in reversed(INTEGRATION_INDEXES):
        op.drop_index(name, table_name="integrations")
