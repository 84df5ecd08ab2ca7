"""Data completeness: the hub's count of each stream beside the platform's own.

A full pass (a backfill, a reconciliation that listed every live id, a whole listings
report) ends with the platform's count (``Batch.platform_count``: Shopify's
``productsCount``/``ordersCount``/``customersCount``, the listings report's rows). The engine
hands it to ``record_platform_count`` in the pass's last transaction: it is stored on the
stream with the hub's live count at that moment, and a drift above
``HUB_COMPLETENESS_DRIFT_PERCENT`` (default 1 %) opens or updates the integration's
``count_drift`` incident; a pass back within it resolves the stream's part of it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypedDict

from sqlmodel import Session, col, select

from dashboard.models import Integration, StreamConfig
from dashboard.services import incidents
from dashboard.services.records import count_records

# The record kind whose live rows a stream's platform count counts (primary records only).
COUNTED_KINDS = {
    "products": "product",
    "orders": "order",
    "customers": "customer",
    "listings": "product",  # Amazon: one row per listing and marketplace
}


@dataclass(frozen=True)
class Drift:
    hub: int
    platform: int

    @property
    def records(self) -> int:
        """Records the hub holds beyond the platform's count (negative: missing)."""
        return self.hub - self.platform

    @property
    def percent(self) -> float:
        if self.platform == 0:
            return 0.0 if self.hub == 0 else 100.0
        return abs(self.records) * 100.0 / self.platform

    def above(self, threshold_percent: float) -> bool:
        return self.records != 0 and self.percent > threshold_percent


class CompletenessRow(TypedDict):
    hub_count: int
    platform_count: int | None
    counted_at: str
    drift: int
    drift_percent: float
    drift_words: str
    drifting: bool


def record_platform_count(
    *,
    session: Session,
    integration_id: uuid.UUID,
    stream: str,
    platform_count: int,
    threshold_percent: float,
) -> Drift | None:
    """A full pass of ``stream`` ended with the platform's ``platform_count``: store it beside
    the hub's live count and open or resolve the ``count_drift`` incident. None for a stream
    whose records are not counted (e.g. inventory)."""
    kind = COUNTED_KINDS.get(stream)
    config = session.exec(
        select(StreamConfig).where(
            col(StreamConfig.integration_id) == integration_id, StreamConfig.stream == stream
        )
    ).first()
    integration = session.get(Integration, integration_id)
    if kind is None or config is None or integration is None:
        return None
    drift = Drift(
        hub=count_records(session=session, integration_id=integration_id, kind=kind),
        platform=platform_count,
    )
    config.platform_count = platform_count
    config.platform_counted_at = datetime.now(UTC)
    config.hub_count_at_pass = drift.hub
    session.add(config)
    if drift.above(threshold_percent):
        incidents.count_drift(
            session=session, integration=integration, stream=stream, hub=drift.hub,
            platform=drift.platform,
        )  # fmt: skip
    else:
        incidents.count_matches(session=session, integration=integration, stream=stream)
    return drift


def drift_words(drift: Drift, platform_label: str) -> str:
    if drift.records == 0:
        return "complete"
    if drift.records < 0:
        return f"{-drift.records:,} missing ({drift.percent:.1f} %)"
    return f"{drift.records:,} more than {platform_label} ({drift.percent:.1f} %)"


def completeness_row(
    *, config: StreamConfig, hub_count: int, platform: str, threshold_percent: float
) -> CompletenessRow:
    """What the Streams tab shows of one stream: the hub's live count, the platform's count
    of the last full pass and the drift between them (live: the hub's side moves with every
    sync, the platform's with every full pass)."""
    label = incidents.PLATFORM_LABELS.get(platform, platform)
    if config.platform_count is None or config.stream not in COUNTED_KINDS:
        return CompletenessRow(
            hub_count=hub_count, platform_count=None, counted_at="", drift=0,
            drift_percent=0.0, drift_words="", drifting=False,
        )  # fmt: skip
    drift = Drift(hub=hub_count, platform=config.platform_count)
    counted_at = config.platform_counted_at
    return CompletenessRow(
        hub_count=hub_count,
        platform_count=config.platform_count,
        counted_at=counted_at.isoformat() if counted_at else "",
        drift=drift.records,
        drift_percent=round(drift.percent, 1),
        drift_words=drift_words(drift, label),
        drifting=drift.above(threshold_percent),
    )


def stream_completeness(
    *, session: Session, integration_id: uuid.UUID, threshold_percent: float
) -> dict[str, CompletenessRow]:
    """Every counted stream of the integration by name (one count query per stream)."""
    integration = session.get(Integration, integration_id)
    platform = integration.platform if integration else ""
    rows: dict[str, CompletenessRow] = {}
    for config in session.exec(
        select(StreamConfig).where(col(StreamConfig.integration_id) == integration_id)
    ):
        kind = COUNTED_KINDS.get(config.stream)
        if kind is None:
            continue
        hub = count_records(session=session, integration_id=integration_id, kind=kind)
        rows[config.stream] = completeness_row(
            config=config, hub_count=hub, platform=platform, threshold_percent=threshold_percent
        )
    return rows
