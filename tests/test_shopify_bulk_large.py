"""The bulk path at the size it exists for: a 50,000-product shop backfills through one bulk
operation, streamed line by line, and equals the sandbox's ground truth."""

from __future__ import annotations

import resource
from typing import Any

import pytest
from sqlmodel import Session

from tests.sandbox_server import running_sandbox
from tests.test_shopify_bulk import connect, engine_for, runs_by_stream, stored_checksums, truth

pytestmark = pytest.mark.slow


async def test_fifty_thousand_products_backfill_through_one_bulk_operation(
    session: Session,
) -> None:
    with running_sandbox(seed=13, time_scale=200) as (base, app):
        shopify: Any = app.state.sandbox.extras["shopify"]
        integration_id = connect(session, base, products=50_000, orders=5, customers=5)
        engine = engine_for(base, threshold=10_000)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        run_ids = await engine.request_sync(integration_id=integration_id, stream="products")
        await engine.wait()
        grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
        run = runs_by_stream(run_ids)["products"]
        assert run.status == "succeeded", run.error
        assert [op.prepared.root for op in shopify.bulk.operations.values()] == ["products"]
        expected, got = truth(base), stored_checksums(integration_id)
        assert got["products"] == expected["products"] and expected["products"]["count"] == 50_000
        assert got["variants"] == expected["variants"]
        # Streamed: the hub and the sandbox together grow by far less than the file's size.
        assert grown_mb < 250, grown_mb
