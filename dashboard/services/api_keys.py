"""API keys of the Hub API: created, listed and revoked by admins; checked on each request.

A key reads ``chk_<prefix>_<secret>``: the prefix finds its row, and only the SHA-256 of the
whole key is stored. The secret is 256 random bits, so no dictionary or brute force can
reach it from the hash: a slow hash (argon2, as for passwords) would add nothing but ~50 ms
of CPU to every API request, and a pepper nothing either. Session and connect-link tokens
are stored the same way (one way to do it).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from connectors.ratelimit import shared_store
from connectors.shared_limits import RedisLimits
from dashboard.models import ApiKey, Integration
from dashboard.services.audit import record_audit
from dashboard.services.changefeed import API_KEYS, get_feed, tell_at_commit

SCOPES = ("records:read", "integrations:read", "integrations:write", "syncs:write")
KEY_START = "chk_"
DEFAULT_RATE_LIMIT = 600  # requests per minute per key
# last_used_at is written at most this often per key and process: not one write per request.
TOUCH_EVERY = timedelta(seconds=60)


class ApiKeyInvalid(ValueError):
    """What was asked for a key cannot be: the message says what to fix."""


@dataclass(frozen=True)
class ApiClient:
    """The key a request presented, as the API checks it."""

    key_id: uuid.UUID
    name: str
    prefix: str
    scopes: frozenset[str]
    integration_ids: frozenset[str]  # empty: every integration
    rate_limit_per_minute: int

    def may_reach(self, integration_id: uuid.UUID | str) -> bool:
        return not self.integration_ids or str(integration_id) in self.integration_ids

    @property
    def actor(self) -> str:
        """How the audit log names this client."""
        return f"api key {self.name} ({self.prefix})"


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(
    *,
    session: Session,
    name: str,
    scopes: Iterable[str],
    actor: str,
    integration_ids: Iterable[uuid.UUID | str] = (),
    rate_limit_per_minute: int = DEFAULT_RATE_LIMIT,
) -> tuple[ApiKey, str]:
    """A new key; returns (row, the key itself, to show once). Raises ApiKeyInvalid."""
    name = name.strip()
    if not name:
        raise ApiKeyInvalid("give the key a name (who or what uses it)")
    chosen = sorted(set(scopes))
    unknown = set(chosen) - set(SCOPES)
    if unknown:
        raise ApiKeyInvalid(f"unknown scopes {', '.join(sorted(unknown))}; known: {SCOPES}")
    if not chosen:
        raise ApiKeyInvalid("choose at least one scope")
    if not 1 <= rate_limit_per_minute <= 100_000:
        raise ApiKeyInvalid("the rate limit is 1 to 100000 requests per minute")
    allowed: list[str] = []
    for given in integration_ids:
        try:
            allowed.append(str(uuid.UUID(str(given))))
        except ValueError:
            raise ApiKeyInvalid(f"{given!r} is not an integration id") from None
    if allowed:
        known = set(
            session.exec(
                select(Integration.id).where(
                    col(Integration.id).in_([uuid.UUID(i) for i in allowed])
                )
            ).all()
        )
        missing = sorted(set(allowed) - {str(i) for i in known})
        if missing:
            raise ApiKeyInvalid(f"no integration {', '.join(missing)}")
    prefix = secrets.token_hex(4)
    key = f"{KEY_START}{prefix}_{secrets.token_urlsafe(32)}"
    row = ApiKey(
        name=name[:128],
        prefix=prefix,
        secret_hash=_hash(key),
        scopes=chosen,
        integration_ids=sorted(set(allowed)),
        rate_limit_per_minute=rate_limit_per_minute,
        created_by=actor[:320],
    )
    session.add(row)
    record_audit(
        session=session,
        actor=actor,
        action="apikey.create",
        target=str(row.id),
        context={
            "name": row.name,
            "prefix": prefix,
            "scopes": chosen,
            "integrations": row.integration_ids,
        },
    )
    session.flush()
    return row, key


def list_api_keys(*, session: Session, include_revoked: bool = True) -> list[ApiKey]:
    statement = select(ApiKey).order_by(col(ApiKey.created_at).desc())
    if not include_revoked:
        statement = statement.where(col(ApiKey.revoked_at).is_(None))
    return list(session.exec(statement).all())


def find_api_key(*, session: Session, key_id_or_prefix: str) -> ApiKey | None:
    """A key by its id or its prefix (what lists show)."""
    try:
        return session.get(ApiKey, uuid.UUID(key_id_or_prefix))
    except ValueError:
        return session.exec(select(ApiKey).where(ApiKey.prefix == key_id_or_prefix)).first()


def revoke_api_key(*, session: Session, key_id: uuid.UUID, actor: str) -> ApiKey:
    """Revoke at once (the next request with it is refused); raises LookupError."""
    row = session.get(ApiKey, key_id)
    if row is None:
        raise LookupError("no such API key")
    if row.revoked_at is None:
        row.revoked_at = datetime.now(UTC)
        session.add(row)
        record_audit(
            session=session,
            actor=actor,
            action="apikey.revoke",
            target=str(row.id),
            context={"name": row.name, "prefix": row.prefix},
        )
        tell_at_commit(session, API_KEYS)  # every process forgets the keys it checked
    _CACHE.forget(row.prefix)
    return row


def authenticate(*, session: Session, presented: str) -> ApiClient | None:
    """The live key ``presented`` is, or None (unknown, malformed or revoked)."""
    if not presented.startswith(KEY_START) or len(presented) > 100:
        return None
    prefix = presented[len(KEY_START) :].partition("_")[0]
    row = session.exec(select(ApiKey).where(ApiKey.prefix == prefix)).first()
    if row is None or row.revoked_at is not None:
        return None
    if not hmac.compare_digest(row.secret_hash, _hash(presented)):
        return None
    now = datetime.now(UTC)
    if row.last_used_at is None or now - row.last_used_at >= TOUCH_EVERY:
        session.execute(sa.update(ApiKey).where(col(ApiKey.id) == row.id).values(last_used_at=now))
    return ApiClient(
        key_id=row.id,
        name=row.name,
        prefix=row.prefix,
        scopes=frozenset(row.scopes),
        integration_ids=frozenset(row.integration_ids),
        rate_limit_per_minute=row.rate_limit_per_minute,
    )


class _ClientCache:
    """Checked keys for a few seconds per process: the feed's clients poll in loops, and a
    database round trip per request would cost more than serving a small page. A revocation
    empties it in this process at once, and in the others as soon as the change feed
    (``changefeed.API_KEYS``, over Redis or PostgreSQL) tells them; a notification lost on
    the way costs at most ``TTL``."""

    TTL = 5.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # prefix -> (cached at, hash of the key, client, revocations seen before the check)
        self._entries: dict[str, tuple[float, str, ApiClient, int]] = {}

    def get(self, presented: str, revocations: int) -> ApiClient | None:
        prefix = presented[len(KEY_START) :].partition("_")[0]
        with self._lock:
            entry = self._entries.get(prefix)
        if entry is None or time.monotonic() - entry[0] > self.TTL or entry[3] != revocations:
            return None
        return entry[2] if hmac.compare_digest(entry[1], _hash(presented)) else None

    def put(self, presented: str, client: ApiClient, revocations: int) -> None:
        with self._lock:
            self._entries[client.prefix] = (time.monotonic(), _hash(presented), client, revocations)

    def forget(self, prefix: str) -> None:
        with self._lock:
            self._entries.pop(prefix, None)


_CACHE = _ClientCache()


def revocations_seen() -> int:
    """How many revocations this process has heard of (any process's); read it before
    checking a key in the database and hand it to ``remember_client``. Call in the loop."""
    return get_feed().version(API_KEYS)


def cached_client(presented: str) -> ApiClient | None:
    """The client of ``presented`` when checked in the last few seconds and no key was
    revoked since (no database)."""
    return _CACHE.get(presented, revocations_seen())


def remember_client(presented: str, client: ApiClient, revocations: int) -> None:
    """Cache ``client``, checked after ``revocations`` (``revocations_seen``) revocations."""
    _CACHE.put(presented, client, revocations)


class RateLimiter:
    """A token bucket per key: ``rate_limit_per_minute`` requests a minute, with bursts up to
    that many. With ``REDIS_URL`` (the shared limit store of ``platform_clients``) the bucket
    lives in Redis, one for every worker and host, changed atomically by the ``TOKENS``
    script; otherwise, or while Redis is unreachable, in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[uuid.UUID, tuple[float, float]] = {}  # key -> (tokens, at)

    async def retry_after(self, client: ApiClient) -> float:
        """0 when the request may go (one token taken), else seconds until it may."""
        store = shared_store()
        if isinstance(store, RedisLimits):
            capacity = client.rate_limit_per_minute
            bucket = store.own_bucket(f"apikey:{client.key_id}", capacity / 60.0, capacity)
            wait = await bucket.spend()
            if wait is not None:
                return wait
        return self.local_retry_after(client)

    def local_retry_after(self, client: ApiClient, now: float | None = None) -> float:
        """``retry_after`` with this process's bucket."""
        now = time.monotonic() if now is None else now
        capacity = float(client.rate_limit_per_minute)
        per_second = capacity / 60.0
        with self._lock:
            tokens, at = self._buckets.get(client.key_id, (capacity, now))
            tokens = min(capacity, tokens + (now - at) * per_second)
            if tokens >= 1.0:
                self._buckets[client.key_id] = (tokens - 1.0, now)
                return 0.0
            self._buckets[client.key_id] = (tokens, now)
            return (1.0 - tokens) / per_second


RATE_LIMITER = RateLimiter()
