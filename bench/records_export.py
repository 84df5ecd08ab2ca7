"""The Records page's CSV export (GET /api/records.csv) over catalogs of growing size: rows
per second and the export's peak Python memory, which should not grow with the catalog (the
rows are read in keyset batches and streamed, never held).

    python bench/records_export.py [--sizes 5000,50000] [--variants 2]

Prints, per size: rows, seconds, rows/s and peak traced memory (tracemalloc) while the
response is streamed through the hub's real route (httpx over ASGI, a signed-in session).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import tracemalloc
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def seed(products: int, variants: int) -> tuple[str, dict[str, str]]:
    import sqlalchemy as sa

    from dashboard.db import session_scope
    from dashboard.models import Integration, Product, Role, Variant
    from dashboard.services.auth import create_session, create_user

    now = datetime.now(UTC)
    with session_scope() as session:
        integration = Integration(platform="shopify", display_name="Bench store",
                                  shop_domain="bench.myshopify.com")  # fmt: skip
        session.add(integration)
        session.flush()
        for start in range(0, products, 20_000):
            numbers = range(start, min(start + 20_000, products))
            session.execute(sa.insert(Product), [
                {"id": uuid.uuid4(), "integration_id": integration.id,
                 "external_id": f"gid://shopify/Product/{n}", "raw": {"id": n},
                 "title": f"Product {n:07d}", "status": "ACTIVE",
                 "synced_at": now - timedelta(seconds=n), "first_synced_at": now}
                for n in numbers
            ])  # fmt: skip
            session.execute(sa.insert(Variant), [
                {"id": uuid.uuid4(), "integration_id": integration.id,
                 "external_id": f"gid://shopify/ProductVariant/{n}-{v}",
                 "product_external_id": f"gid://shopify/Product/{n}", "raw": {},
                 "sku": f"SKU-{n:07d}-{v}", "synced_at": now, "first_synced_at": now}
                for n in numbers for v in range(variants)
            ])  # fmt: skip
        user, _ = create_user(session=session, email="bench@example.com", role=Role.VIEWER)
        token = create_session(session=session, user=user)
        return str(integration.id), {"hub_session": token}


async def export(integration_id: str, cookies: dict[str, str]) -> tuple[int, float, int]:
    """Drive the hub's ASGI app directly (httpx's ASGI transport would buffer the body)."""
    from urllib.parse import urlencode

    from starlette.applications import Starlette

    from dashboard.api import build_api

    app = build_api(Starlette())
    cookie = "; ".join(f"{name}={value}" for name, value in cookies.items())
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": "/api/records.csv", "raw_path": b"/api/records.csv",
        "query_string": urlencode({"kind": "product", "integration": integration_id}).encode(),
        "root_path": "", "headers": [(b"host", b"hub.bench"), (b"cookie", cookie.encode())],
        "client": ("127.0.0.1", 1), "server": ("hub.bench", 80),
    }  # fmt: skip
    lines = 0
    status = 0

    requested = False
    finished = asyncio.Event()

    async def receive() -> dict[str, object]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await finished.wait()  # the client stays until the response ends
        return {"type": "http.disconnect"}

    async def send(message: dict[str, object]) -> None:
        nonlocal lines, status
        if message["type"] == "http.response.start":
            status = int(message["status"])  # type: ignore[call-overload]
        elif message["type"] == "http.response.body":
            lines += bytes(message.get("body", b"")).count(b"\n")  # type: ignore[call-overload]

    tracemalloc.start()
    started = time.perf_counter()
    await app(scope, receive, send)
    finished.set()
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert status == 200, status
    return lines - 1, elapsed, peak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="5000,50000")
    parser.add_argument("--variants", type=int, default=2)
    args = parser.parse_args()
    print("records export (SQLite, products with variant SKUs):")
    for size in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as data_dir:
            os.environ["HUB_DATA_DIR"] = data_dir
            os.environ.setdefault("HUB_ENV", "test")
            from sqlmodel import SQLModel

            import dashboard.models  # noqa: F401  registers the tables
            from dashboard import db
            from dashboard.settings import get_settings

            get_settings.cache_clear()
            db.reset_engines()
            SQLModel.metadata.create_all(db.get_engine())
            integration_id, cookies = seed(size, args.variants)
            rows, seconds, peak = asyncio.run(export(integration_id, cookies))
            print(f"  {rows:>9,} rows  {seconds:6.1f} s  {rows / seconds:9,.0f} rows/s  "
                  f"peak {peak / 2**20:6.1f} MiB")  # fmt: skip
            db.reset_engines()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
