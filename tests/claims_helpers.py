"""Shops with queued runs, for the claim tests (``test_claims``, ``test_claims_hand_on``)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from dashboard.db import session_scope
from dashboard.models import Integration, SyncRun
from dashboard.services.integrations import create_integration, mark_connected
from dashboard.services.sync_queue import _queue_runs

SHOPIFY_STREAMS = {"products": 15, "inventory": 15, "orders": 15, "customers": 60}


def queue_shop(name: str, streams: dict[str, int], *, queued_at: datetime) -> list[uuid.UUID]:
    """A connected shop with every stream queued for any process at ``queued_at`` (a second
    apart, in stream order)."""
    with session_scope() as s:
        integration = create_integration(
            session=s, platform="shopify", display_name=name,
            shop_domain=f"{name.lower().replace(' ', '-')}.myshopify.com", streams=streams,
        )  # fmt: skip
        mark_connected(session=s, integration_id=integration.id)
        run_ids = _queue_runs(s, integration.id, None, "schedule", False)
        for index, run_id in enumerate(run_ids):
            set_queued_at(s, run_id, queued_at + timedelta(seconds=index))
    return run_ids


def set_queued_at(session: Session, run_id: uuid.UUID, at: datetime) -> None:
    """Move a run's queue time (``created_at``): claims go by it."""
    session.execute(
        sa.update(SyncRun.__table__)  # type: ignore[attr-defined]
        .where(SyncRun.__table__.c.id == run_id)  # type: ignore[attr-defined]
        .values(created_at=at)
    )


def shop_of(run_ids: list[uuid.UUID]) -> list[str]:
    with session_scope() as s:
        names = dict(
            s.exec(
                select(SyncRun.id, Integration.display_name)
                .join(Integration, col(Integration.id) == col(SyncRun.integration_id))
                .where(col(SyncRun.id).in_(run_ids))
            ).all()
        )
    return [names[run_id] for run_id in run_ids]
