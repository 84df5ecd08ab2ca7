"""The Connector interface and the unified records every platform produces.

A sync is: the engine asks a connector for one stream of one integration, starting at a
checkpoint; the connector yields ``Batch``es of ``UnifiedRecord``s, each with the checkpoint
*after* it; the engine upserts a batch and stores its checkpoint in one transaction.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Protocol

import httpx


class RecordKind(StrEnum):
    """Kinds of unified records; values name tables in ``dashboard.models.RECORD_TABLES``."""

    PRODUCT = "product"
    VARIANT = "variant"
    INVENTORY_LEVEL = "inventory_level"
    ORDER = "order"
    ORDER_LINE = "order_line"
    CUSTOMER = "customer"


@dataclass(slots=True)
class UnifiedRecord:
    """One record in the hub's unified shape.

    ``fields`` holds the kind's table columns (see ``dashboard.models``: e.g. ``title``,
    ``sku`` for products); ``raw`` is the platform's JSON as received, less ``protected``:
    personal data (an Amazon buyer's name, a shipping address) taken out of it, which the
    engine stores only encrypted (orders; ``dashboard.services.personal_data``).
    """

    kind: RecordKind
    external_id: str
    fields: dict[str, Any]
    raw: dict[str, Any]
    remote_updated_at: datetime | None = None
    deleted: bool = False
    protected: dict[str, Any] | None = None


@dataclass(slots=True)
class RecordError:
    """A record that could not be normalized: logged and skipped, never fatal."""

    external_id: str | None
    message: str
    raw: Any = None


@dataclass(frozen=True, slots=True)
class SnapshotComplete:
    """The stream has now delivered *every* live record of ``kind`` whose external id ends
    with ``id_suffix``, all stored since ``started_at``: the ones not stored since are gone
    on the platform (a full listings report is such a snapshot)."""

    kind: RecordKind
    started_at: datetime
    id_suffix: str = ""


@dataclass(frozen=True, slots=True)
class SeenIds:
    """Records of ``kind`` the platform still lists, read by id alone (a cheap snapshot):
    the engine notes the stored ones as seen (``synced_at``) without changing their columns,
    so the ``SnapshotComplete`` ending the pass keeps them."""

    kind: RecordKind
    external_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ChildrenComplete:
    """The batch's records of ``kind`` under each of ``parent_ids`` are *all* of that parent's
    children on the platform (a product's variants, an order's line items, an inventory item's
    levels): the engine marks the parent's other live children of ``kind`` deleted.

    Name a parent only when its nested list was read to the end; never for a list that may
    be cut short (a first page of a connection, a partial export)."""

    kind: RecordKind
    parent_ids: tuple[str, ...]


@dataclass(slots=True)
class Batch:
    records: list[UnifiedRecord]
    cursor: dict[str, Any] | None
    """Checkpoint after this batch (JSON-serialisable); resuming from it loses nothing."""
    total_hint: int | None = None
    """Total records the stream expects, when the platform tells (for progress)."""
    errors: list[RecordError] = field(default_factory=list)
    pages: int = 1
    done: int | None = None
    """Primary records read so far in this stream (the unit of ``total_hint``)."""
    snapshot: SnapshotComplete | None = None
    """Set on the batch that completes a full snapshot: the engine marks the rest deleted."""
    seen: SeenIds | None = None
    """Ids listed by an id-only snapshot on this page (applied before ``snapshot``)."""
    children_complete: ChildrenComplete | None = None
    """Parents in this batch that came with every child of a kind (the rest are gone)."""
    platform_count: int | None = None
    """Set on the last batch of a *full pass* (a backfill, a reconciliation, a full report):
    how many primary records the platform itself counts for the stream, read as the pass
    ended (Shopify's ``productsCount``, the listings report's rows). The engine stores it
    beside its own count: data completeness."""


@dataclass(frozen=True, slots=True)
class StreamSpec:
    name: str
    label: str
    description: str
    record_kinds: tuple[RecordKind, ...]
    default_interval_minutes: int = 15
    incremental: bool = True


@dataclass(frozen=True, slots=True)
class IntegrationRef:
    """What a connector needs to know about an integration (no database objects)."""

    id: str
    platform: str
    shop_domain: str | None = None
    selling_partner_id: str | None = None
    region: str | None = None
    marketplaces: tuple[str, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class StoredCredential:
    kind: str
    secret: str
    scopes: list[str] = field(default_factory=list)
    expires_at: datetime | None = None


class CredentialStore(Protocol):
    """Where a connector reads and saves an integration's secrets (the vault behind it)."""

    async def get(self, kind: str) -> StoredCredential | None: ...

    async def save(self, *credentials: StoredCredential) -> None:
        """Store these credentials together (all or none): a refreshed access token and
        the refresh token that replaced the one just spent."""
        ...

    async def delete(self, kind: str) -> None: ...

    def refresh_lock(self, name: str) -> AbstractAsyncContextManager[None]:
        """A lock held across processes while a token is refreshed (one refresh at a time)."""
        ...


class MemoryCredentialStore:
    """A ``CredentialStore`` in memory, for one process: scripts, benchmarks and tests that
    exercise a connector without the hub's vault. ``locks`` counts refresh-lock entries."""

    def __init__(self, *credentials: StoredCredential) -> None:
        self.items: dict[str, StoredCredential] = {c.kind: c for c in credentials}
        self.locks = 0
        self._lock = asyncio.Lock()

    async def get(self, kind: str) -> StoredCredential | None:
        return self.items.get(kind)

    async def save(self, *credentials: StoredCredential) -> None:
        self.items.update((c.kind, c) for c in credentials)

    async def delete(self, kind: str) -> None:
        self.items.pop(kind, None)

    @contextlib.asynccontextmanager
    async def refresh_lock(self, name: str) -> AsyncIterator[None]:
        async with self._lock:  # one refresh at a time, within this process
            self.locks += 1
            yield


TransportFactory = Callable[[], httpx.AsyncBaseTransport | None]


class Connector(abc.ABC):
    """A platform. Subclasses live in their own package and register in ``registry``."""

    platform: ClassVar[str]
    label: ClassVar[str]
    streams: ClassVar[tuple[StreamSpec, ...]]

    def stream(self, name: str) -> StreamSpec:
        for spec in self.streams:
            if spec.name == name:
                return spec
        raise KeyError(f"{self.platform} has no stream {name!r}")

    @abc.abstractmethod
    def read_stream(
        self,
        integration: IntegrationRef,
        credentials: CredentialStore,
        stream: str,
        cursor: dict[str, Any] | None,
        *,
        full_refresh: bool = False,
    ) -> AsyncIterator[Batch]:
        """Yield batches of the stream from ``cursor`` (None or full_refresh: from the start).

        Raises ``connectors.errors`` types: AuthRevoked/AuthError, RateLimited,
        TransientError, PlatformError.
        """

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release pooled connections."""
