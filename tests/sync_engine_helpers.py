"""What the sync engine's tests share: an engine around a fake connector, and the rows to read
back (``test_sync_engine``, ``test_sync_processes``, ``test_run_log``, ``test_sync_uninstall``;
their shops are the ``integration_id`` and ``shared_integration`` fixtures of conftest)."""

from __future__ import annotations

import uuid

from sqlmodel import func, select

from dashboard.db import session_scope
from dashboard.models import Product, SyncRun
from dashboard.services.sync import SyncEngine
from tests.fake_connector import FakeConnector


def engine_with(connector: FakeConnector) -> SyncEngine:
    return SyncEngine(
        max_concurrency=4, connector_factory=lambda _: connector, retry_delays=(0.01, 0.01)
    )


def run_row(run_id: uuid.UUID) -> SyncRun:
    with session_scope() as s:
        run = s.get(SyncRun, run_id)
        assert run is not None
        return run


def product_count(integration_id: uuid.UUID) -> int:
    with session_scope() as s:
        return s.exec(
            select(func.count())
            .select_from(Product)
            .where(Product.integration_id == integration_id)
        ).one()
