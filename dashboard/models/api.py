"""The Hub API: keys of its clients, the change feed's counters, outgoing change webhooks."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from dashboard.models.columns import json_field, ts


class ApiKey(SQLModel, table=True):
    """A client of ``/api/v1``. The secret is shown once; only its SHA-256 is kept."""

    __tablename__ = "api_keys"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    name: str = Field(max_length=128)
    # The key's public start (``chk_<prefix>_...``): finds the row, and names the key in lists.
    prefix: str = Field(max_length=16, unique=True, index=True)
    secret_hash: str = Field(max_length=64)
    scopes: list[str] = json_field(default_factory=list)
    # Integration ids (text) the key may reach; empty: every integration.
    integration_ids: list[str] = json_field(default_factory=list)
    rate_limit_per_minute: int = Field(default=600, ge=1)
    created_by: str = Field(max_length=320)
    created_at: datetime = ts(nullable=False, default_now=True)
    last_used_at: datetime | None = ts()
    revoked_at: datetime | None = ts()


class ChangeCounter(SQLModel, table=True):
    """The last change sequence number given to an integration's records.

    The transaction that stores records locks this row just before it commits and numbers
    its changed rows after ``last_seq``: sequence numbers therefore become visible in order
    (see dashboard/services/change_feed.py)."""

    __tablename__ = "change_counters"

    integration_id: uuid.UUID = Field(
        foreign_key="integrations.id", primary_key=True, ondelete="CASCADE"
    )
    last_seq: int = Field(default=0, sa_type=sa.BigInteger)
    # The highest number of a tombstone removed after HUB_TOMBSTONE_DAYS: a cursor before it
    # may have missed a deletion (the consumer reads the feed again from the start).
    purged_through: int = Field(
        default=0, sa_type=sa.BigInteger, sa_column_kwargs={"server_default": "0"}
    )


class ChangeWebhook(SQLModel, table=True):
    """A consumer's URL told about changes of one record kind of one integration."""

    __tablename__ = "change_webhooks"
    __table_args__ = (sa.UniqueConstraint("integration_id", "kind", "url"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    integration_id: uuid.UUID = Field(foreign_key="integrations.id", index=True, ondelete="CASCADE")
    kind: str = Field(max_length=32)
    url: str = Field(max_length=1000)
    # The signing secret, encrypted by the vault (shown once when registered).
    secret_key_id: str = Field(max_length=64)
    secret_ciphertext: str = Field(max_length=512)
    # The last sequence number announced: the next notice starts after it.
    announced_seq: int = Field(default=0, sa_type=sa.BigInteger)
    created_by: str = Field(max_length=320)
    created_at: datetime = ts(nullable=False, default_now=True)


class ChangeWebhookDelivery(SQLModel, table=True):
    """One "records changed" notice to a change webhook, and its attempts."""

    __tablename__ = "change_webhook_deliveries"
    __table_args__ = (sa.Index("ix_change_webhook_deliveries_due", "delivered_at", "failed_at"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    webhook_id: uuid.UUID = Field(foreign_key="change_webhooks.id", index=True, ondelete="CASCADE")
    payload: dict[str, Any] = json_field()
    created_at: datetime = ts(nullable=False, default_now=True)
    attempts: int = 0
    next_attempt_at: datetime = ts(nullable=False, default_now=True)
    delivered_at: datetime | None = ts()
    failed_at: datetime | None = ts()
    last_status: int | None = None
    error: str | None = Field(default=None, max_length=500)
