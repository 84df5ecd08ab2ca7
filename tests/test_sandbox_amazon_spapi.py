"""The Amazon sandbox's Selling Partner API follows Amazon's models: every served response
validates against its operation's schema, the static-sandbox examples are answered as Amazon
answers them, and rate limits, the 2-minute rule, paging, reports, faults and seeds behave
as documented. Consent and LWA tokens: tests/test_sandbox_amazon_oauth.py."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from connectors.sandbox.amazon import spec
from tests.sandbox_amazon_helpers import (
    AUTH,
    CA,
    SELLER,
    US,
    access_token,
    amazon,
    sandbox_app,
    validate,
)

__all__ = ["amazon"]  # the seller's client fixture, imported for this module's tests

SHARED = Path(__file__).resolve().parents[1].parent / "shared/platform-specs/amazon-sp-api"


@pytest.mark.skipif(not SHARED.exists(), reason="../shared/platform-specs is not on this machine")
def test_vendored_models_are_amazons_unedited() -> None:
    for name in spec.MODEL_FILES:
        ours = (spec.MODELS_DIR / name).read_bytes()
        theirs = (SHARED / "models" / name).read_bytes()
        assert hashlib.sha256(ours).digest() == hashlib.sha256(theirs).digest(), name


async def test_every_served_operation_answers_in_its_model_shape(amazon) -> None:
    orders = await amazon.get(
        "/amazon/sp/na/orders/2026-01-01/orders",
        params={"lastUpdatedAfter": "2020-01-01T00:00:00Z", "maxResultsPerPage": "20"},
    )
    body = validate("searchOrders", "2026", orders)
    assert len(body["orders"]) == 20 and body["pagination"]["nextToken"]
    # Datasets come only when asked for with includedData, as in Amazon's model.
    assert "proceeds" not in body["orders"][0] and "fulfillment" not in body["orders"][0]
    detailed = await amazon.get(
        "/amazon/sp/na/orders/2026-01-01/orders",
        params={"lastUpdatedAfter": "2020-01-01T00:00:00Z", "maxResultsPerPage": "1",
                "includedData": "PROCEEDS,FULFILLMENT"},
    )  # fmt: skip
    first = validate("searchOrders", "2026", detailed)["orders"][0]
    assert (
        first["proceeds"]["grandTotal"]["currencyCode"]
        and first["fulfillment"]["fulfillmentStatus"]
    )
    assert float(orders.headers["x-amzn-RateLimit-Limit"]) == pytest.approx(0.0056 * 1000)
    order_id = body["orders"][0]["orderId"]
    validate(
        "getOrder", "2026", await amazon.get(f"/amazon/sp/na/orders/2026-01-01/orders/{order_id}")
    )
    v0 = await amazon.get(
        "/amazon/sp/na/orders/v0/orders",
        params={"MarketplaceIds": f"{US},{CA}", "LastUpdatedAfter": "2020-01-01T00:00:00Z"},
    )
    assert validate("getOrders", "V0", v0)["payload"]["Orders"]
    items = await amazon.get(f"/amazon/sp/na/orders/v0/orders/{order_id}/orderItems")
    assert validate("getOrderItems", "V0", items)["payload"]["AmazonOrderId"] == order_id
    created = await amazon.post(
        "/amazon/sp/na/reports/2021-06-30/reports",
        json={"reportType": "GET_MERCHANT_LISTINGS_ALL_DATA", "marketplaceIds": [US]},
    )
    assert created.status_code == 202
    report_id = validate("createReport", "reports", created)["reportId"]
    await asyncio.sleep(0.06)  # ~60 platform seconds: processing done
    report = validate(
        "getReport",
        "reports",
        await amazon.get(f"/amazon/sp/na/reports/2021-06-30/reports/{report_id}"),
    )
    assert report["processingStatus"] == "DONE"
    listed = await amazon.get(
        "/amazon/sp/na/reports/2021-06-30/reports",
        params={"reportTypes": "GET_MERCHANT_LISTINGS_ALL_DATA", "processingStatuses": "DONE"},
    )
    assert [r["reportId"] for r in validate("getReports", "reports", listed)["reports"]] == [
        report_id
    ]
    document = await amazon.get(
        f"/amazon/sp/na/reports/2021-06-30/documents/{report['reportDocumentId']}"
    )
    assert validate("getReportDocument", "reports", document)["compressionAlgorithm"] == "GZIP"
    listings = await amazon.get(
        f"/amazon/sp/na/listings/2021-08-01/items/{SELLER}", params={"marketplaceIds": US}
    )
    sku = validate("searchListingsItems", "listings", listings)["items"][0]["sku"]
    one = await amazon.get(
        f"/amazon/sp/na/listings/2021-08-01/items/{SELLER}/{quote(sku)}",
        params={"marketplaceIds": US},
    )
    assert validate("getListingsItem", "listings", one)["sku"] == sku
    inventory = await amazon.get(
        "/amazon/sp/na/fba/inventory/v1/summaries",
        params={"granularityType": "Marketplace", "granularityId": US, "marketplaceIds": US,
                "details": "true"},
    )  # fmt: skip
    assert validate("getInventorySummaries", "fba", inventory)["payload"]["inventorySummaries"]
    sellers = await amazon.get("/amazon/sp/na/sellers/v1/marketplaceParticipations")
    assert {
        p["marketplace"]["id"]
        for p in validate("getMarketplaceParticipations", "sellers", sellers)["payload"]
    } == {US, CA}
    # Errors use the models' error list, for the statuses the operation declares.
    missing = await amazon.get("/amazon/sp/na/orders/2026-01-01/orders/999-0000000-0000000")
    assert missing.status_code == 404
    validate("getOrder", "2026", missing)


async def test_report_document_is_gzip_cp1252_tsv_behind_a_short_lived_url(amazon) -> None:
    created = await amazon.post(
        "/amazon/sp/na/reports/2021-06-30/reports",
        json={"reportType": "GET_MERCHANT_LISTINGS_ALL_DATA", "marketplaceIds": [US]},
    )
    report_id = created.json()["reportId"]
    report = (await amazon.get(f"/amazon/sp/na/reports/2021-06-30/reports/{report_id}")).json()
    assert report["processingStatus"] == "IN_QUEUE"
    await asyncio.sleep(0.03)
    report = (await amazon.get(f"/amazon/sp/na/reports/2021-06-30/reports/{report_id}")).json()
    assert report["processingStatus"] == "IN_PROGRESS"
    await asyncio.sleep(0.04)
    report = (await amazon.get(f"/amazon/sp/na/reports/2021-06-30/reports/{report_id}")).json()
    document = (
        await amazon.get(f"/amazon/sp/na/reports/2021-06-30/documents/{report['reportDocumentId']}")
    ).json()
    download = await amazon.get(document["url"], headers={"x-amz-access-token": ""})
    assert download.status_code == 200 and "Cp1252" in download.headers["content-type"]
    lines = gzip.decompress(download.content).decode("cp1252").splitlines()
    assert lines[0].split("\t")[:4] == ["item-name", "item-description", "listing-id", "seller-sku"]
    assert len(lines) == 1 + 60  # half of 120 listings live in the US marketplace
    forged = document["url"].replace("signature=", "signature=0")
    assert (await amazon.get(forged)).status_code == 403
    await asyncio.sleep(0.31)  # the pre-signed URL lives 5 platform minutes
    expired = await amazon.get(document["url"])
    assert expired.status_code == 403 and "expired" in expired.text


async def test_rate_limit_bucket_then_quota_exceeded() -> None:
    # A clock 40x real time: one token comes back after 1/0.016 platform seconds = 1.6 s, so
    # the burst is spent long before it, however busy the machine (at the other tests' 1000x
    # a token came back every 62 ms, sooner than a loaded machine sends 15 requests).
    transport = httpx.ASGITransport(app=sandbox_app(seed=3, time_scale=40))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://sandbox", headers=AUTH
    ) as amazon:
        created = await amazon.post(
            "/_sandbox/amazon/sellers", json={"selling_partner_id": SELLER, "orders": 1}
        )
        assert created.status_code == 201
        amazon.headers["x-amz-access-token"] = await access_token(amazon)
        path = "/amazon/sp/na/sellers/v1/marketplaceParticipations"  # 0.016/s, burst 15
        statuses = [(await amazon.get(path)).status_code for _ in range(15)]
        assert statuses == [200] * 15
        throttled = await amazon.get(path)
        assert throttled.status_code == 429
        assert throttled.json()["errors"][0]["code"] == "QuotaExceeded"
        assert "x-amzn-RateLimit-Limit" not in throttled.headers  # never on 429
        await asyncio.sleep(1.7)  # one token back after 1/0.016 platform seconds
        assert (await amazon.get(path)).status_code == 200


async def test_two_minute_rule_and_one_of_the_after_dates(amazon) -> None:
    path = "/amazon/sp/na/orders/2026-01-01/orders"
    late = await amazon.get(
        path,
        params={
            "lastUpdatedAfter": "2020-01-01T00:00:00Z",
            "lastUpdatedBefore": "2100-01-01T00:00:00Z",
        },
    )
    assert late.status_code == 400 and "2 minutes" in late.json()["errors"][0]["message"]
    both = await amazon.get(
        path,
        params={"lastUpdatedAfter": "2020-01-01T00:00:00Z", "createdAfter": "2020-01-01T00:00:00Z"},
    )
    assert both.status_code == 400
    bad_token = await amazon.get(
        path, params={"lastUpdatedAfter": "2020-01-01T00:00:00Z", "paginationToken": "%%%"}
    )
    assert bad_token.status_code == 400 and "decode" in bad_token.json()["errors"][0]["message"]


async def test_pagination_walks_every_visible_order_once(amazon) -> None:
    seen: list[str] = []
    params = {"lastUpdatedAfter": "2020-01-01T00:00:00Z", "maxResultsPerPage": "100"}
    while True:
        body = (await amazon.get("/amazon/sp/na/orders/2026-01-01/orders", params=params)).json()
        seen += [o["orderId"] for o in body["orders"]]
        token = (body.get("pagination") or {}).get("nextToken")
        if not token:
            break
        params = {"lastUpdatedAfter": "2020-01-01T00:00:00Z", "maxResultsPerPage": "100",
                  "paginationToken": token}  # fmt: skip
    truth = (await amazon.get(f"/_sandbox/amazon/sellers/{SELLER}/truth")).json()["streams"]
    assert len(seen) == len(set(seen)) == truth["orders"]["count"] == 230


async def test_faults_are_injected_per_seller(amazon) -> None:
    await amazon.put(f"/_sandbox/faults/amazon/{SELLER}", json={"error_rate": 1.0})
    failed = await amazon.get("/amazon/sp/na/sellers/v1/marketplaceParticipations")
    assert (
        failed.status_code in (500, 502, 503)
        and failed.json()["errors"][0]["code"] == "InternalFailure"
    )
    await amazon.put(f"/_sandbox/faults/amazon/{SELLER}", json={"malformed_rate": 1.0})
    truncated = await amazon.get("/amazon/sp/na/sellers/v1/marketplaceParticipations")
    with pytest.raises(json.JSONDecodeError):
        truncated.json()
    await amazon.put(f"/_sandbox/faults/amazon/{SELLER}", json={"throttle_rate": 1.0})
    assert (
        await amazon.get("/amazon/sp/na/sellers/v1/marketplaceParticipations")
    ).status_code == 429


async def test_same_seed_same_data_other_seed_other_data() -> None:
    async def checksums(seed: int) -> dict[str, Any]:
        app = sandbox_app(seed=seed, time_scale=1.0)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://s", headers=AUTH
        ) as c:
            await c.post(
                "/_sandbox/amazon/sellers", json={"selling_partner_id": SELLER, "orders": 50}
            )
            return (await c.get(f"/_sandbox/amazon/sellers/{SELLER}/truth")).json()["streams"]

    first, again, other = await checksums(1), await checksums(1), await checksums(2)
    assert first == again and first["orders"]["checksum"] != other["orders"]["checksum"]


def _example_request(operation: spec.Operation, parameters: dict[str, Any]) -> dict[str, Any]:
    path, query, headers, body = operation.path, {}, {}, None
    declared = {p.get("name"): p for p in operation.parameters}
    for name, holder in parameters.items():
        value = holder.get("value")
        where = "body" if name == "body" else (declared.get(name) or {}).get("in", "query")
        if where == "path":
            path = path.replace("{" + name + "}", quote(str(value), safe=""))
        elif where == "body":
            body = value
        elif where == "header":
            headers[name] = str(value)
        elif isinstance(value, list):
            query[name] = ",".join(str(v) for v in value)
        elif isinstance(value, bool):
            query[name] = str(value).lower()
        else:
            query[name] = str(value)
    # Path parameters an example leaves open match any value, as query parameters do.
    path = re.sub(r"\{\w+\}", "ANY1234", path)
    return {"path": path, "params": query, "headers": headers, "body": body}


async def test_static_sandbox_answers_every_model_example() -> None:
    app = sandbox_app(seed=1)
    answered = 0
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as c:
        for operation in spec.operations():
            asked: set[str] = set()
            for status, parameters, response in operation.static_examples():
                request = _example_request(operation, parameters)
                key = json.dumps(request, sort_keys=True)
                if key in asked:
                    continue  # the same request as an earlier example: the first answers
                asked.add(key)
                reply = await c.request(
                    operation.method.upper(),
                    f"/amazon/sp-sandbox/na{request['path']}",
                    params=request["params"],
                    headers=request["headers"],
                    json=request["body"],
                )
                assert reply.status_code == status, (operation.operation_id, parameters)
                if response is not None:
                    assert reply.json() == response, operation.operation_id
                answered += 1
    assert answered == 90  # the 91 examples of the models, one request being the same twice
