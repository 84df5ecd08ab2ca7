"""People and sign-in."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlmodel import Field, SQLModel

from dashboard.models.columns import json_field, ts
from dashboard.models.enums import (
    Role,
)


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    email: str = Field(max_length=320, unique=True, index=True)
    password_hash: str = Field(max_length=512)
    role: str = Field(default=Role.VIEWER.value, max_length=16)
    disabled: bool = False
    created_at: datetime = ts(nullable=False, default_now=True)
    last_login_at: datetime | None = ts()


class UserSession(SQLModel, table=True):
    """A signed-in browser. Only the SHA-256 of the token is stored."""

    __tablename__ = "user_sessions"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True, index=True)
    user_id: uuid.UUID = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    created_at: datetime = ts(nullable=False, default_now=True)
    expires_at: datetime = ts(nullable=False)
    revoked_at: datetime | None = ts()


class SignInThrottle(SQLModel, table=True):
    """Sign-in attempts per key ("account:<email>" or "address:<ip>") in the current window.

    Counted with one atomic upsert before any password is checked, so parallel guesses cannot
    all pass a read-then-write check. Keyed by email whether or not the account exists.
    """

    __tablename__ = "sign_in_throttles"

    key: str = Field(primary_key=True, max_length=400)
    attempts: int = 0
    window_started_at: datetime = ts(nullable=False)


class AuditLog(SQLModel, table=True):
    __tablename__ = "audit_log"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    actor: str = Field(max_length=320, description="user email, 'system' or 'merchant'")
    action: str = Field(max_length=64, index=True)
    target: str = Field(default="", max_length=255)
    context: dict[str, Any] = json_field()
    at: datetime = ts(nullable=False, index=True, default_now=True)
