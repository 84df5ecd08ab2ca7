"""Key ids carry a fingerprint of their key material

A second host started with its own data dir generated a different key under the same id
``local1``; nothing noticed until every sync failed to decrypt. ``encryption_keys`` records a
short hash of each key id's material (never the key) the first time a hub holds it, and a
hub whose key under a known id differs refuses to start. Existing credentials need nothing:
a key id without a row is registered at the next start, after a credential under it
decrypted with the configured key.

Revision ID: b71e3d9a5c20
Revises: 4f7a1c9e2b65
Create Date: 2026-12-08 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import dashboard.models

revision: str = "b71e3d9a5c20"
down_revision: str | None = "4f7a1c9e2b65"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "encryption_keys",
        sa.Column("key_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("fingerprint", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("registered_at", dashboard.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key_id"),
    )


def downgrade() -> None:
    op.drop_table("encryption_keys")
