"""Integrations, credentials, connect links and OAuth state."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from dashboard.models.columns import json_field, ts
from dashboard.models.enums import (
    ConnectPurpose,
    IntegrationStatus,
)


class Integration(SQLModel, table=True):
    __tablename__ = "integrations"
    # The Integrations page reads a page straight off one of these (its sort key, then the id),
    # however many integrations there are.
    __table_args__ = (
        sa.Index("ix_integrations_created", "created_at", "id"),
        sa.Index("ix_integrations_name", "display_name", "id"),
        sa.Index("ix_integrations_last_sync", "last_sync_at", "id"),
        sa.Index("ix_integrations_status_created", "status", "created_at", "id"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    platform: str = Field(max_length=16, index=True)
    display_name: str = Field(max_length=200)
    shop_domain: str | None = Field(default=None, max_length=255, index=True)
    selling_partner_id: str | None = Field(default=None, max_length=64, index=True)
    region: str | None = Field(default=None, max_length=8)
    # The platform account this integration holds ("shopify:<shop>", "amazon:<region>:<seller>"),
    # from its first consent until it is disconnected or deleted, whatever its status meanwhile.
    # Unique, so that two callbacks racing for one account cannot both connect it.
    account_key: str | None = Field(default=None, max_length=300, unique=True, index=True)
    marketplaces: list[str] = json_field(default_factory=list)
    status: str = Field(default=IntegrationStatus.PENDING.value, max_length=16, index=True)
    status_detail: str | None = Field(default=None, max_length=2000)
    shop_info: dict[str, Any] = json_field()  # name, plan, currency, timezone
    created_by: uuid.UUID | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    created_at: datetime = ts(nullable=False, default_now=True)
    updated_at: datetime = ts(nullable=False, default_now=True)
    connected_at: datetime | None = ts()
    # When the seller last authorized the app (Amazon: the yearly re-authorization counts
    # from here); set by every completed Amazon consent, first or renewal.
    authorized_at: datetime | None = ts()
    last_sync_at: datetime | None = ts()
    # When a hub process last listed the shop's webhook subscriptions (Shopify): the claim
    # that lets one process check each shop per HUB_SHOPIFY_WEBHOOK_CHECK_MINUTES.
    webhooks_checked_at: datetime | None = ts()


class Credential(SQLModel, table=True):
    """A secret of an integration, encrypted by the vault; ``key_id`` names the key."""

    __tablename__ = "credentials"
    __table_args__ = (sa.UniqueConstraint("integration_id", "kind"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    integration_id: uuid.UUID = Field(foreign_key="integrations.id", index=True, ondelete="CASCADE")
    kind: str = Field(max_length=32, description="access_token, refresh_token, ...")
    ciphertext: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    key_id: str = Field(max_length=64)
    scopes: list[str] = json_field(default_factory=list)
    expires_at: datetime | None = ts()
    refreshed_at: datetime | None = ts()
    created_at: datetime = ts(nullable=False, default_now=True)


class EncryptionKey(SQLModel, table=True):
    """A key id the vault has used, with a fingerprint of its material (never the key): a
    host whose key under the same id differs (it generated its own ``local1``) is refused."""

    __tablename__ = "encryption_keys"

    key_id: str = Field(primary_key=True, max_length=64)
    fingerprint: str = Field(max_length=32)
    registered_at: datetime = ts(nullable=False, default_now=True)


class ConnectLink(SQLModel, table=True):
    """A no-login link a merchant opens to approve access. Only the token's hash is kept."""

    __tablename__ = "connect_links"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True, index=True)
    integration_id: uuid.UUID = Field(foreign_key="integrations.id", index=True, ondelete="CASCADE")
    purpose: str = Field(default=ConnectPurpose.CONNECT.value, max_length=16)
    created_by: uuid.UUID | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    created_at: datetime = ts(nullable=False, default_now=True)
    expires_at: datetime = ts(nullable=False)
    used_at: datetime | None = ts()
    revoked_at: datetime | None = ts()
    declined_at: datetime | None = ts()


class OAuthState(SQLModel, table=True):
    """A single-use OAuth ``state``: bound to the integration, the shop and its origin."""

    __tablename__ = "oauth_states"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    state_hash: str = Field(max_length=64, unique=True, index=True)
    platform: str = Field(max_length=16)
    integration_id: uuid.UUID = Field(foreign_key="integrations.id", index=True, ondelete="CASCADE")
    shop_domain: str | None = Field(default=None, max_length=255)
    connect_link_id: uuid.UUID | None = Field(
        default=None, foreign_key="connect_links.id", ondelete="SET NULL"
    )
    user_id: uuid.UUID | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    created_at: datetime = ts(nullable=False, default_now=True)
    expires_at: datetime = ts(nullable=False)
    used_at: datetime | None = ts()


class AppstoreState(SQLModel, table=True):
    """A single-use ``state`` for an authorization the seller started in Amazon's Selling
    Partner Appstore (the app's Login URI): bound to the seller and region Amazon named, not
    to an integration, which is found or created only once the code exchange proves them."""

    __tablename__ = "amazon_appstore_states"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    state_hash: str = Field(max_length=64, unique=True, index=True)
    region: str = Field(max_length=8)
    selling_partner_id: str = Field(max_length=64)
    marketplace_id: str = Field(max_length=32)  # of the Seller Central host Amazon came from
    created_at: datetime = ts(nullable=False, default_now=True)
    expires_at: datetime = ts(nullable=False)
    used_at: datetime | None = ts()


class LwaClientSecret(SQLModel, table=True):
    """An LWA client secret the hub has used, by fingerprint (never the secret): when it was
    set, so the hub warns before Amazon's 180-day rotation deadline."""

    __tablename__ = "amazon_lwa_secrets"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    fingerprint: str = Field(max_length=64, unique=True, index=True)
    set_at: datetime = ts(nullable=False)
    retired_at: datetime | None = ts()
    # A secret an admin entered in Settings: sealed by the vault (one from the environment
    # has none). Erased once a later one's switch is confirmed.
    key_id: str | None = Field(default=None, max_length=64)
    ciphertext: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    # Entered in Settings: the one before stays the fallback until an admin confirms the
    # switch (Amazon keeps an old secret working seven days after a rotation).
    switch_confirmed_at: datetime | None = ts()
