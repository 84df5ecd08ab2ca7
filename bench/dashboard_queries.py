"""What one dashboard tab costs the database: an Integrations page in each sort order (first
and last page, search, status filter) with N integrations, the integration filter's
search-as-you-type, the queries each live page runs every second (Runs page with its
count, notification bell, overview with records per hour), and the Records page over a
catalog of N products (a page, a search, and the check for records changed since it was read).

    python bench/dashboard_queries.py [--integrations 10000] [--runs 50000] \
        [--products 200000] [--postgres URL]

Prints the median and p95 of each query in milliseconds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def seed(session: Any, integrations: int, runs: int) -> None:
    import sqlalchemy as sa

    from dashboard.models import Integration, Notification, SyncRun

    now = datetime.now(UTC)
    ids = [uuid.uuid4() for _ in range(integrations)]
    session.execute(
        sa.insert(Integration),
        [
            {
                "id": integration_id,
                "platform": "amazon" if index % 3 == 0 else "shopify",
                "display_name": f"Store {index:06d}",
                "shop_domain": f"store-{index:06d}.myshopify.com",
                "status": ("connected", "paused", "needs_reauth", "pending")[index % 4],
                "marketplaces": [],
                "shop_info": {},
                "created_at": now - timedelta(minutes=index),
                "updated_at": now,
                "last_sync_at": now - timedelta(seconds=index * 7 % 86_400),
            }
            for index, integration_id in enumerate(ids)
        ],
    )
    session.execute(
        sa.insert(SyncRun),
        [
            {
                "id": uuid.uuid4(),
                "integration_id": ids[index % integrations],
                "stream": "orders",
                "status": "failed" if index % 50 == 0 else "succeeded",
                "records_read": index % 500,
                "created_at": now - timedelta(seconds=index * 3),
            }
            for index in range(runs)
        ],
    )
    session.execute(
        sa.insert(Notification),
        [
            {
                "id": uuid.uuid4(),
                "kind": "run_failed",
                "message": f"failure {index}",
                "integration_id": ids[index % integrations],
                "created_at": now - timedelta(seconds=index),
                "read_at": None if index % 10 else now,
            }
            for index in range(integrations)
        ],
    )


def seed_products(session: Any, products: int) -> str:
    """``products`` products over the first ten integrations; returns the first one's id."""
    import sqlalchemy as sa

    from dashboard.models import Integration, Product

    ids = [row[0] for row in session.execute(sa.select(Integration.id).limit(10)).all()]
    now = datetime.now(UTC)
    chunk = 20_000
    for start in range(0, products, chunk):
        session.execute(
            sa.insert(Product),
            [
                {
                    "id": uuid.uuid4(),
                    "integration_id": ids[index % len(ids)],
                    "external_id": f"gid://shopify/Product/{index}",
                    "raw": {"id": index},
                    "title": f"Product {index:07d}",
                    "sku": f"SKU-{index:07d}",
                    "status": "ACTIVE",
                    # A catalog synced over the last day, the newest a minute ago.
                    "synced_at": now - timedelta(seconds=60 + index * 86_400 // products),
                    "first_synced_at": now - timedelta(days=1),
                }
                for index in range(start, min(start + chunk, products))
            ],
        )
    return str(ids[0])


def measure(label: str, query: Callable[[], object], repeat: int = 30) -> None:
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        query()
        timings.append((time.perf_counter() - started) * 1000)
    timings.sort()
    p95 = timings[int(len(timings) * 0.95) - 1]
    print(f"  {label:<44} median {statistics.median(timings):7.2f} ms   p95 {p95:7.2f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--integrations", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=50_000)
    parser.add_argument("--products", type=int, default=200_000)
    parser.add_argument("--postgres", help="a database URL to use instead of a SQLite file")
    args = parser.parse_args()

    os.environ["HUB_DATA_DIR"] = tempfile.mkdtemp(prefix="hub-bench-")
    if args.postgres:
        os.environ["DATABASE_URL"] = args.postgres
    from dashboard import db, migrations
    from dashboard.services import incidents, overview, records_view, runs

    migrations.upgrade_head()
    with db.session_scope() as session:
        seed(session, args.integrations, args.runs)
        first_integration = seed_products(session, args.products)
    engine = db.get_engine().url.get_backend_name()
    print(
        f"{args.integrations:,} integrations, {args.runs:,} runs, "
        f"{args.products:,} products on {engine}"
    )

    last_page = (args.integrations - 1) // 25 * 25
    with db.session_scope() as session:
        for sort in ("created_at", "name", "status", "last_sync"):
            for label, offset in (("first", 0), ("last", last_page)):
                measure(
                    f"integrations: {sort}, {label} page",
                    lambda sort=sort, offset=offset: overview.list_integrations(
                        session=session, sort=sort, offset=offset, limit=25
                    ),
                )
        measure(
            "integrations: search 'store-0042'",
            lambda: overview.list_integrations(session=session, search="store-0042"),
        )
        measure(
            "integrations: status paused, newest",
            lambda: overview.list_integrations(session=session, status="paused"),
        )
        measure(
            "integration filter: 20 matches of 'store-00'",
            lambda: overview.integration_matches(session=session, search="store-00"),
        )
        last_runs_page = (args.runs - 1) // 50 * 50
        for label, filters, offset in (
            ("runs: first page + count (every s)", {}, 0),
            ("runs: last page + count (every s)", {}, last_runs_page),
            ("runs: platform amazon, first page + count", {"platform": "amazon"}, 0),
            ("runs: status failed, first page + count", {"status": "failed"}, 0),
        ):
            measure(
                label,
                lambda filters=filters, offset=offset: (
                    runs.count_runs(session=session, **filters),
                    runs.list_runs(session=session, offset=offset, limit=50, **filters),
                ),
            )
        measure(
            "bell: open incidents count + latest 20 (every s)",
            lambda: (
                incidents.open_count(session=session),
                incidents.list_incidents(session=session, limit=20),
            ),
        )
        measure(
            "overview: records per hour, 24 h, uncached",
            lambda: overview.records_per_hour(session=session),
        )
        measure(
            "overview: records per hour, 24 h (every s)",
            lambda: overview.live_records_per_hour(session=session),
        )
        measure(
            "overview: integrations watermark (every s)",
            lambda: overview.integrations_watermark(session=session),
        )
        measure(
            "overview: health cards (when the watermark moves, >= every 30 s)",
            lambda: overview.health_cards(session=session),
        )
        measure(
            "integrations: filtered by health 'failing', first page",
            lambda: overview.list_integrations(session=session, health_is="failing"),
        )
        a_while_ago = datetime.now(UTC) - timedelta(seconds=5)
        for label, integration_id in (("all", ""), ("one integration", first_integration)):
            measure(
                f"records: products, {label}, first page",
                lambda integration_id=integration_id: records_view.browse(
                    session=session, kind="product", integration_id=integration_id
                ),
            )
            measure(
                f"records: products, {label}, changed (syncing)",
                lambda integration_id=integration_id: records_view.changed_since(
                    session=session, kind="product", since=a_while_ago,
                    integration_id=integration_id,
                ),
            )  # fmt: skip
        measure(
            "records: products, search 'sku-00420'",
            lambda: records_view.browse(session=session, kind="product", search="sku-00420"),
            repeat=5,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
