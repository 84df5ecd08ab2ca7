"""Benchmark: records/s through the sync pipeline (parse + normalize + upsert + checkpoint).

A connector serves Shopify-shaped product pages as JSON bytes, as they come off the wire
(no network): the sync engine parses them, normalizes them with the Shopify connector's own
normalizer (a product and its variants per node), and upserts each page with its checkpoint
in one transaction, exactly as in a real sync (each product's variants listed complete, so
variants no longer listed are marked deleted). On a temporary SQLite file and, when it is
reachable, on a throw-away PostgreSQL database. Prints records/s of a first sync (inserts)
and of a full resync (updates), the share of the time spent parsing and normalizing, and
peak RSS. Figures only, no assertions:

    python bench/pipeline.py [--products 5000 --variants 2 --page-size 250 --no-postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `python bench/x.py` puts bench/, not the root, on the path

import sqlalchemy as sa  # noqa: E402
from sqlmodel import SQLModel  # noqa: E402

import dashboard.models  # noqa: E402, F401  registers the tables
from connectors.base import (  # noqa: E402
    Batch,
    ChildrenComplete,
    Connector,
    CredentialStore,
    IntegrationRef,
    RecordKind,
    StreamSpec,
)
from connectors.shopify.streams import normalize_product  # noqa: E402
from dashboard import db  # noqa: E402
from dashboard.db import session_scope  # noqa: E402
from dashboard.models import SyncRun  # noqa: E402
from dashboard.services.integrations import create_integration, mark_connected  # noqa: E402
from dashboard.services.sync import SyncEngine  # noqa: E402
from dashboard.settings import get_settings  # noqa: E402

PG_ADMIN_URL = os.environ.get("HUB_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def product_pages(products: int, variants: int, page_size: int) -> list[bytes]:
    """GraphQL `products` pages as the Admin API returns them, serialized."""
    pages = []
    for first in range(0, products, page_size):
        nodes = []
        for i in range(first, min(first + page_size, products)):
            nodes.append({
                "id": f"gid://shopify/Product/{i}", "title": f"Product {i}",
                "handle": f"product-{i}", "vendor": "Bench", "productType": "Thing",
                "status": "ACTIVE", "createdAt": "2026-01-01T00:00:00Z",
                "updatedAt": f"2026-01-02T00:{i // 60 % 60:02d}:{i % 60:02d}Z",
                "variants": {"nodes": [{
                    "id": f"gid://shopify/ProductVariant/{i}-{v}", "title": f"Size {v}",
                    "sku": f"SKU-{i}-{v}", "barcode": None, "price": "19.90",
                    "inventoryItem": {"id": f"gid://shopify/InventoryItem/{i}-{v}"},
                    "inventoryQuantity": v,
                } for v in range(variants)]},
            })  # fmt: skip
        body = {"data": {"products": {"nodes": nodes, "pageInfo": {"hasNextPage": True}}}}
        pages.append(json.dumps(body).encode())
    return pages


class PagesConnector(Connector):
    """Serves prepared pages; the cursor is the next page's index."""

    platform = "shopify"
    label = "Bench"
    streams = (
        StreamSpec("products", "Products", "bench", (RecordKind.PRODUCT, RecordKind.VARIANT)),
    )

    def __init__(self, pages: list[bytes], products: int) -> None:
        self.pages = pages
        self.products = products
        self.parse_seconds = 0.0

    async def read_stream(
        self,
        integration: IntegrationRef,
        credentials: CredentialStore,
        stream: str,
        cursor: dict[str, Any] | None,
        *,
        full_refresh: bool = False,
    ) -> AsyncIterator[Batch]:
        start = 0 if cursor is None else int(cursor["page"])
        done = 0
        for index in range(start, len(self.pages)):
            began = time.perf_counter()
            nodes = json.loads(self.pages[index])["data"]["products"]["nodes"]
            records = [record for node in nodes for record in normalize_product(node)]
            self.parse_seconds += time.perf_counter() - began
            done += len(nodes)
            complete = ChildrenComplete(RecordKind.VARIANT, tuple(node["id"] for node in nodes))
            yield Batch(
                records=records, cursor={"page": index + 1}, total_hint=self.products, done=done,
                children_complete=complete,
            )  # fmt: skip


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


@contextmanager
def hub_database(url: str | None) -> Iterator[None]:
    """Point the hub at a fresh database (a SQLite file when ``url`` is None)."""
    with tempfile.TemporaryDirectory() as data_dir:
        os.environ["HUB_DATA_DIR"] = data_dir
        os.environ.pop("DATABASE_URL", None)
        if url:
            os.environ["DATABASE_URL"] = url
        get_settings.cache_clear()
        db.reset_engines()
        SQLModel.metadata.create_all(db.get_engine())
        try:
            yield
        finally:
            db.reset_engines()


@contextmanager
def postgres_database() -> Iterator[str | None]:
    """A throw-away PostgreSQL database, or None when the server is not reachable."""
    admin_url = PG_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://")
    try:
        admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
        name = f"hub_bench_{uuid.uuid4().hex[:10]}"
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except Exception as error:
        print(f"PostgreSQL: skipped ({PG_ADMIN_URL} not reachable: {type(error).__name__})")
        yield None
        return
    try:
        yield f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        db.reset_engines()
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


async def sync_once(
    engine: SyncEngine, integration_id: uuid.UUID, *, full_refresh: bool
) -> tuple[float, SyncRun]:
    began = time.perf_counter()
    [run_id] = await engine.request_sync(integration_id=integration_id, full_refresh=full_refresh)
    await engine.wait()
    seconds = time.perf_counter() - began
    with session_scope() as session:
        run = session.get(SyncRun, run_id)
        assert run is not None
    if run.status != "succeeded":
        raise SystemExit(f"the sync did not succeed: {run.status} {run.error}")
    return seconds, run


def bench(label: str, url: str | None, args: argparse.Namespace, pages: list[bytes]) -> None:
    with hub_database(url):
        with session_scope() as session:
            integration = create_integration(
                session=session, platform="shopify", display_name="Bench",
                shop_domain="bench.myshopify.com", streams={"products": 15},
            )  # fmt: skip
            mark_connected(session=session, integration_id=integration.id)
            integration_id = integration.id
        for phase, full_refresh in (("first sync (inserts)", False), ("resync (updates)", True)):
            connector = PagesConnector(pages, args.products)
            engine = SyncEngine(connector_factory=lambda _, c=connector: c, max_concurrency=1)
            seconds, run = asyncio.run(sync_once(engine, integration_id, full_refresh=full_refresh))
            records = run.records_read
            print(
                f"{label:10} {phase:22} {records:>8} records in {seconds:6.2f} s = "
                f"{records / seconds:>8,.0f} records/s  ({run.pages} pages; parse+normalize "
                f"{connector.parse_seconds / seconds:4.0%} of the time)  "
                f"peak RSS {peak_rss_mb():.0f} MB"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--products", type=int, default=5000)
    parser.add_argument("--variants", type=int, default=2, help="variants per product")
    parser.add_argument("--page-size", type=int, default=250, help="products per page")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    pages = product_pages(args.products, args.variants, args.page_size)
    records = args.products * (1 + args.variants)
    print(
        f"{args.products} products x (1 + {args.variants} variants) = {records} records, "
        f"{len(pages)} pages of {args.page_size} products; one core, one run at a time"
    )
    bench("SQLite", None, args, pages)
    if not args.no_postgres:
        with postgres_database() as url:
            if url:
                bench("PostgreSQL", url, args, pages)


if __name__ == "__main__":
    main()
