"""The issue's acceptance: a consumer written only from /api/v1/openapi.json follows the demo
shop's orders from empty to current, deletions included, while the demo runs (the sandbox's
change loop places orders, and this test has it delete some, each with its webhook).

No browser: it starts its own hub (`hub serve` with the demo) like the browser tests do, so
it runs with them. At the end the consumer's copy must equal the hub's orders table up to the
consumer's cursor (the demo keeps changing orders, so later changes are for the next read)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser.conftest import running_hub

pytestmark = pytest.mark.browser
SHOP = "demo-outdoor.myshopify.com"


def follow(
    client: httpx.Client, path: str, copy: dict[str, Any], cursor: str | None
) -> tuple[str | None, int]:
    """Every page there is now, applied to ``copy``; the cursor and how many tombstones."""
    tombstones = 0
    while True:
        page = client.get(path, params={"limit": 200, **({"since": cursor} if cursor else {})})
        page.raise_for_status()
        body = page.json()
        for record in body["records"]:
            if record["deleted"]:
                copy.pop(record["id"], None)
                tombstones += 1
            else:
                copy[record["id"]] = record["fields"]["total_price"]
        cursor = body["next_cursor"]
        if not body["has_more"]:
            return cursor, tombstones


def test_a_consumer_follows_the_demo_orders_with_deletions(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    base: Path = tmp_path_factory.mktemp("api-demo-hub")
    env = {"HUB_SANDBOX_DEMO": "true", "HUB_SANDBOX_TIME_SCALE": "10"}
    with running_hub(base, extra_env=env) as demo:
        key = demo.cli(
            "apikeys", "create", "--name", "consumer", "--scope", "records:read",
            "--scope", "integrations:read",
        ).stdout.strip()  # fmt: skip
        document = httpx.get(f"{demo.url}/api/v1/openapi.json").json()
        api = demo.url + document["servers"][0]["url"]
        # Only what the document says: the list operation and the orders feed's template.
        [list_path] = [p for p in document["paths"] if p == "/integrations"]
        [orders_path] = [p for p in document["paths"] if p.endswith("/records/orders")]
        client = httpx.Client(base_url=api, headers={"Authorization": f"Bearer {key}"}, timeout=60)
        deadline = time.monotonic() + 180
        shop = None
        while shop is None and time.monotonic() < deadline:
            listed = client.get(list_path).json()["integrations"]
            shop = next((i for i in listed if i["shop_domain"] == SHOP and i["connected_at"]), None)
            time.sleep(1)
        assert shop is not None, "the demo shop never connected"
        path = orders_path.replace("{integration_id}", shop["id"])
        copy: dict[str, Any] = {}
        cursor: str | None = None
        seen_deletions = 0
        control = f"{demo.url}/sandbox/_sandbox/shopify/shops/{SHOP}/mutate"
        rounds, deadline = 0, time.monotonic() + 240
        # Until the feed has shown deletions (webhooks are applied within seconds; on a
        # loaded machine later), for at least a minute of the demo's own changes.
        while (rounds < 12 or not seen_deletions) and time.monotonic() < deadline:
            if rounds % 3 == 1:  # orders deleted on the platform, announced by webhooks
                httpx.post(
                    control, json={"new_orders": 2, "delete_orders": 2},
                    headers=demo.sandbox_headers(), timeout=30,
                ).raise_for_status()  # fmt: skip
            cursor, tombstones = follow(client, path, copy, cursor)
            seen_deletions += tombstones
            rounds += 1
            time.sleep(5)
        cursor, tombstones = follow(client, path, copy, cursor)
        seen_deletions += tombstones
        from dashboard.services.change_feed import decode_cursor

        upto = decode_cursor(cursor or "").seq
        with sqlite3.connect(demo.data_dir / "hub.db") as database:
            rows = database.execute(
                "SELECT external_id, total_price, deleted_at, change_seq FROM orders "
                "WHERE integration_id = ?", (shop["id"].replace("-", ""),),
            ).fetchall()  # fmt: skip
        client.close()
    assert rows and copy and seen_deletions >= 1
    expected = {eid: price for eid, price, deleted, seq in rows if seq <= upto and deleted is None}
    settled = {eid for eid, _, _, seq in rows if seq <= upto}
    assert {eid: price for eid, price in copy.items() if eid in settled} == expected
    assert set(copy) <= {eid for eid, *_ in rows}  # nothing the hub does not hold
