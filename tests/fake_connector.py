"""A deterministic connector for engine tests: N products in pages, with injectable faults."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.base import (
    Batch,
    Connector,
    CredentialStore,
    IntegrationRef,
    RecordError,
    RecordKind,
    StreamSpec,
    UnifiedRecord,
)
from connectors.errors import AuthRevoked, TransientError

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


class FakeConnector(Connector):
    platform = "shopify"
    label = "Fake"
    streams = (StreamSpec("products", "Products", "fake products", (RecordKind.PRODUCT,)),)

    def __init__(self, *, total: int = 50, page_size: int = 10) -> None:
        self.total = total
        self.announced_total: int | None = None  # the count it gives, when not ``total``
        self.page_size = page_size
        self.fail_transient_at: set[int] = set()  # page numbers that fail once
        self.revoked = False
        self.bad_ids: set[int] = set()
        self.pages_served = 0
        self.on_page: Any = None  # async hook(page_number) for cancellation tests

    async def read_stream(
        self,
        integration: IntegrationRef,
        credentials: CredentialStore,
        stream: str,
        cursor: dict[str, Any] | None,
        *,
        full_refresh: bool = False,
    ) -> AsyncIterator[Batch]:
        start = 0 if cursor is None else int(cursor["next"])
        for first in range(start, self.total, self.page_size):
            page = first // self.page_size
            if self.revoked:
                raise AuthRevoked("401 invalid token")
            if page in self.fail_transient_at:
                self.fail_transient_at.discard(page)
                raise TransientError("503 from the platform")
            if self.on_page:
                await self.on_page(page)
            records, errors = [], []
            for i in range(first, min(first + self.page_size, self.total)):
                if i in self.bad_ids:
                    errors.append(RecordError(f"p{i}", "price is not a number", {"id": i}))
                    continue
                records.append(UnifiedRecord(
                    kind=RecordKind.PRODUCT, external_id=f"p{i}",
                    fields={"title": f"Product {i}", "sku": f"SKU-{i}"}, raw={"id": i},
                    remote_updated_at=EPOCH + timedelta(minutes=i),
                ))  # fmt: skip
            self.pages_served += 1
            yield Batch(
                records=records,
                errors=errors,
                cursor={"next": first + self.page_size},
                total_hint=self.announced_total or self.total,
            )
