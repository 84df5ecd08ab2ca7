"""SP-API client, tokens and reports at the HTTP boundary (respx): rate-limit math, token
caching and a single refresh under concurrency, typed errors, report charset decoding."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncGenerator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import respx

from connectors.amazon import reports
from connectors.amazon.client import USAGE_PLANS, BucketRegistry, SpApiClient
from connectors.amazon.connector import AmazonConfig, AmazonConnector
from connectors.amazon.streams import StreamOptions, read_listings
from connectors.base import IntegrationRef, MemoryCredentialStore, StoredCredential
from connectors.errors import AuthError, AuthRevoked, PlatformError, RateLimited
from connectors.ratelimit import TokenBucket
from connectors.sandbox.amazon import spec

BASE = "https://sellingpartnerapi-na.amazon.com"
LWA = "https://api.amazon.com/auth/o2/token"


def client(
    token: str = "Atza|one",  # noqa: S107 - a fake token
    buckets: BucketRegistry | None = None,
) -> SpApiClient:
    """A seller's client whose stored access token ``token`` is good for another hour."""
    store = MemoryCredentialStore(
        StoredCredential("access_token", token, [], datetime.now(UTC) + timedelta(hours=1)),
        StoredCredential("refresh_token", "Atzr|abc"),
    )
    seller = IntegrationRef("i1", "amazon", selling_partner_id="A1SELLER", region="na")
    return connector(buckets).client(seller, store)


def connector(buckets: BucketRegistry | None = None) -> AmazonConnector:
    return AmazonConnector(
        AmazonConfig("amzn1.sp.solution.x", "client", "secret", None),
        buckets=buckets or BucketRegistry(),
    )


def errors(code: str, details: str = "") -> dict[str, object]:
    return {"errors": [{"code": code, "message": "Access denied.", "details": details}]}


def test_usage_plans_are_the_models_own() -> None:
    for operation, plan in USAGE_PLANS.items():
        found = {(op.rate, op.burst) for op in spec.operations() if op.operation_id == operation}
        assert found == {plan}, operation


async def test_bucket_waits_for_a_token_instead_of_spending_a_429() -> None:
    now = [0.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    bucket = TokenBucket(0.5, 2, clock=lambda: now[0], sleep=sleep)
    assert await bucket.acquire() == 0 and await bucket.acquire() == 0  # the burst
    assert await bucket.acquire() == pytest.approx(2.0)  # then one per 1/rate seconds
    bucket.set_rate(2.0)  # x-amzn-RateLimit-Limit said the seller may go faster
    assert await bucket.acquire() == pytest.approx(0.5)
    bucket.drain()
    assert bucket.wait_time() == pytest.approx(0.5)


class Clock:
    """Time that moves only when a wait, a token refresh or the network says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


@respx.mock
async def test_a_full_amazon_bucket_overflows_until_the_first_call_arrives() -> None:
    """The demo seller's FBA inventory: the first page's call takes its token, then waits
    60 ms for an access token; Amazon's bucket (2/s, burst 2), full, overflows meanwhile.
    Counting its refill from the take, the client sent the third page (the second
    prefetch) early and met one 429 every run."""
    clock = Clock()
    plan = USAGE_PLANS["getInventorySummaries"]
    amazon: list[TokenBucket] = []  # Amazon's bucket, created full by the first call

    def answer(_: httpx.Request) -> httpx.Response:
        clock.now += 0.005  # the network
        if not amazon:
            amazon.append(TokenBucket(*plan, clock=clock))
        if not amazon[0].try_take():
            return httpx.Response(429, json=errors("QuotaExceeded"))
        return httpx.Response(200, json={"payload": {}}, headers={"x-amzn-RateLimit-Limit": "2"})

    respx.get(f"{BASE}/fba/inventory/v1/summaries").mock(side_effect=answer)
    buckets = BucketRegistry()
    buckets.buckets[("A1SELLER", "na", "getInventorySummaries")] = TokenBucket(
        *plan, clock=clock, sleep=clock.sleep
    )

    class FirstTokenFromLwa(httpx.Auth):
        fetched = False

        async def async_auth_flow(
            self, request: httpx.Request
        ) -> AsyncGenerator[httpx.Request, httpx.Response]:
            if not self.fetched:
                await clock.sleep(0.06)  # LWA: the access token is fetched on first use
                self.fetched = True
            request.headers["x-amz-access-token"] = "Atza|one"
            yield request

    sp = SpApiClient(seller_id="A1SELLER", region="na", base_url=BASE, auth=FirstTokenFromLwa(),
                     buckets=buckets)  # fmt: skip
    for _ in range(4):
        await sp.call("getInventorySummaries", "GET", "/fba/inventory/v1/summaries")
    await sp.aclose()
    assert buckets.throttled == 0


def test_a_call_taken_from_a_full_bucket_restarts_its_refill_when_answered() -> None:
    clock = Clock()
    bucket = TokenBucket(2.0, 2, clock=clock)
    assert bucket.try_take()
    take = bucket.last_take
    assert take is not None and take.from_full
    clock.now = 0.1  # answered 100 ms later: Amazon may have received it just now
    bucket.arrived(take)
    assert bucket.tokens == pytest.approx(1.0)  # not 1.2: that refill overflowed there
    assert bucket.try_take()
    second = bucket.last_take
    assert second is not None and not second.from_full
    clock.now = 1.0
    bucket.arrived(second)  # not from a full bucket: nothing to correct
    assert bucket.wait_time() == 0.0 and bucket.tokens == pytest.approx(1.8)


@respx.mock
async def test_rate_header_updates_the_bucket_and_429_slows_it() -> None:
    buckets = BucketRegistry()
    route = respx.get(f"{BASE}/fba/inventory/v1/summaries").mock(
        side_effect=[
            httpx.Response(429, json={"errors": [{"code": "QuotaExceeded", "message": "x"}]}),
            httpx.Response(200, json={"payload": {}}, headers={"x-amzn-RateLimit-Limit": "40"}),
        ]
    )
    sp = client(buckets=buckets)
    assert await sp.call("getInventorySummaries", "GET", "/fba/inventory/v1/summaries") == {
        "payload": {}
    }
    bucket = buckets.get("A1SELLER", "na", "getInventorySummaries")
    assert route.call_count == 2 and buckets.throttled == 1 and bucket.rate == 40.0
    assert route.calls[0].request.headers["x-amz-access-token"] == "Atza|one"
    assert "ConnectorHub" in route.calls[0].request.headers["user-agent"]


@respx.mock
async def test_endless_429_gives_rate_limited(monkeypatch: pytest.MonkeyPatch) -> None:
    respx.get(f"{BASE}/sellers/v1/marketplaceParticipations").mock(
        return_value=httpx.Response(
            429, json={"errors": [{"code": "QuotaExceeded", "message": "x"}]}
        )
    )
    buckets = BucketRegistry()
    bucket = buckets.get("A1SELLER", "na", "getMarketplaceParticipations")
    bucket.rate = 1000.0  # keep the test fast: the waits are what TokenBucket tests cover
    monkeypatch.setattr("connectors.amazon.client.SLOWDOWN", 1.0)
    with pytest.raises(RateLimited):
        await client(buckets=buckets).call(
            "getMarketplaceParticipations", "GET", "/sellers/v1/marketplaceParticipations"
        )


@respx.mock
async def test_expired_token_is_refreshed_once_then_revoked_is_typed() -> None:
    expired = errors("Unauthorized", "The access token you provided has expired.")
    route = respx.get(f"{BASE}/sellers/v1/marketplaceParticipations").mock(
        side_effect=[httpx.Response(403, json=expired), httpx.Response(200, json={"payload": []})]
    )
    lwa = respx.post(LWA).mock(
        return_value=httpx.Response(200, json={"access_token": "Atza|two", "expires_in": 3600})
    )
    await client().call(
        "getMarketplaceParticipations", "GET", "/sellers/v1/marketplaceParticipations"
    )
    assert [c.request.headers["x-amz-access-token"] for c in route.calls] == [
        "Atza|one",
        "Atza|two",
    ]
    assert lwa.call_count == 1

    revoked = errors(
        "Unauthorized", "The access token you provided is revoked, malformed or invalid"
    )
    respx.get(f"{BASE}/orders/2026-01-01/orders").mock(
        return_value=httpx.Response(403, json=revoked)
    )
    with pytest.raises(AuthRevoked):
        await client().call("searchOrders", "GET", "/orders/2026-01-01/orders")
    no_role = {"errors": [{"code": "Unauthorized", "message": "denied", "details": ""}]}
    respx.get(f"{BASE}/fba/inventory/v1/summaries").mock(
        return_value=httpx.Response(403, json=no_role)
    )
    with pytest.raises(AuthError, match="role"):
        await client().call("getInventorySummaries", "GET", "/fba/inventory/v1/summaries")
    bad = {"errors": [{"code": "InvalidInput", "message": "Invalid createdAfter"}]}
    respx.get(f"{BASE}/orders/v0/orders").mock(return_value=httpx.Response(400, json=bad))
    with pytest.raises(PlatformError, match="InvalidInput"):
        await client().call("getOrders", "GET", "/orders/v0/orders")


@respx.mock
async def test_server_errors_and_truncated_bodies_are_retried() -> None:
    route = respx.get(f"{BASE}/sellers/v1/marketplaceParticipations").mock(
        side_effect=[
            httpx.Response(503, json={"errors": []}),
            httpx.Response(200, content=b'{"payload": [{"marke'),
            httpx.Response(200, json={"payload": []}),
        ]
    )
    body = await client().call(
        "getMarketplaceParticipations", "GET", "/sellers/v1/marketplaceParticipations"
    )
    assert body == {"payload": []} and route.call_count == 3


@respx.mock
async def test_access_token_cached_and_refreshed_once_under_concurrency() -> None:
    calls = 0

    async def lwa(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        form = dict(x.split("=") for x in request.content.decode().split("&"))
        assert form["grant_type"] == "refresh_token" and form["refresh_token"] == "Atzr%7Cabc"
        await asyncio.sleep(0.05)
        return httpx.Response(200, json={"access_token": f"Atza|{calls}", "expires_in": 3600})

    respx.post(LWA).mock(side_effect=lwa)
    store = MemoryCredentialStore(StoredCredential("refresh_token", "Atzr|abc"))
    amazon = connector()
    flows = [amazon.token_flow(store) for _ in range(10)]  # ten clients of one seller
    tokens = await asyncio.gather(*(flow.access_token() for flow in flows))
    assert set(tokens) == {"Atza|1"} and calls == 1
    assert store.items["access_token"].secret == "Atza|1"  # saved for the other processes
    assert await flows[0].access_token() == "Atza|1" and calls == 1  # cached
    # Close to expiry: refreshed a minute ahead, again exactly once.
    store.items["access_token"].expires_at = datetime.now(UTC) + timedelta(seconds=30)
    assert await amazon.token_flow(store).access_token() == "Atza|2" and calls == 2


@respx.mock
async def test_invalid_grant_means_reconnect() -> None:
    respx.post(LWA).mock(
        return_value=httpx.Response(
            400, json={"error": "invalid_grant", "error_description": "revoked"}
        )
    )
    store = MemoryCredentialStore(StoredCredential("refresh_token", "Atzr|gone"))
    with pytest.raises(AuthRevoked):
        await connector().token_flow(store).access_token()


@pytest.mark.parametrize(
    ("content_type", "codec", "title"),
    [
        ("text/plain;charset=Cp1252", "cp1252", "Crème Brûlée Mug"),
        ("text/plain; charset=windows-31j", "cp932", "抹茶 急須"),
        ("text/plain;charset=Shift_JIS", "shift_jis", "和紙 ノート"),
        ("text/plain", "latin-1", "Señor Lamp"),
    ],
)
@respx.mock
async def test_listings_report_rows_decoded_in_their_charset(content_type, codec, title) -> None:
    header = "item-name\tseller-sku\tprice\tquantity\tasin1\tstatus\n"
    rows = "".join(f"{title} {i}\tSKU-{i}\t9.99\t{i}\tB0{i:08d}\tActive\n" for i in range(2500))
    document = gzip.compress((header + rows).encode(codec))
    respx.get(f"{BASE}/reports/2021-06-30/reports").mock(
        return_value=httpx.Response(200, json={"reports": []})
    )
    respx.post(f"{BASE}/reports/2021-06-30/reports").mock(
        return_value=httpx.Response(202, json={"reportId": "R1"})
    )
    polls = iter(["IN_QUEUE", "IN_PROGRESS"])

    def get_report(_: httpx.Request) -> httpx.Response:
        status = next(polls, "DONE")
        body = {"reportId": "R1", "processingStatus": status}
        if status == "DONE":
            body["reportDocumentId"] = "D1"
        return httpx.Response(200, json=body)

    respx.get(f"{BASE}/reports/2021-06-30/reports/R1").mock(side_effect=get_report)
    respx.get(f"{BASE}/reports/2021-06-30/documents/D1").mock(
        return_value=httpx.Response(
            200,
            json={
                "reportDocumentId": "D1",
                "url": "https://s3.example/d1",
                "compressionAlgorithm": "GZIP",
            },
        )
    )
    respx.get("https://s3.example/d1").mock(
        return_value=httpx.Response(200, content=document, headers={"content-type": content_type})
    )
    options = StreamOptions(polling=reports.ReportPolling(0.01, 0.01, 5))
    batches = [b async for b in read_listings(client(), ["ATVPDKIKX0DER"], None, options)]
    records = [r for b in batches for r in b.records]
    assert len(records) == 2500 and records[7].fields["title"] == f"{title} 7"
    assert records[7].external_id == "SKU-7@ATVPDKIKX0DER" and records[7].fields["quantity"] == 7
    # Mid-report checkpoints name the report and the rows done, for an exact resume.
    cursor = batches[0].cursor
    assert {k: cursor[k] for k in ("marketplace", "report_id", "rows_done", "done")} == {
        "marketplace": "ATVPDKIKX0DER", "report_id": "R1", "rows_done": 1000, "done": []
    }  # fmt: skip
    assert batches[-2].snapshot is not None and batches[-2].snapshot.id_suffix == "@ATVPDKIKX0DER"
    resumed = [
        r
        async for b in read_listings(client(), ["ATVPDKIKX0DER"], batches[1].cursor, options)
        for r in b.records
    ]
    assert len(resumed) == 500 and resumed[0].external_id == "SKU-2000@ATVPDKIKX0DER"


def test_request_values_follow_the_models() -> None:
    # Every operation the connector calls exists in the models with that method and path.
    called = {
        ("searchOrders", "get", "/orders/2026-01-01/orders"),
        ("getOrders", "get", "/orders/v0/orders"),
        ("getOrderItems", "get", "/orders/v0/orders/{orderId}/orderItems"),
        ("createReport", "post", "/reports/2021-06-30/reports"),
        ("getReports", "get", "/reports/2021-06-30/reports"),
        ("getReport", "get", "/reports/2021-06-30/reports/{reportId}"),
        ("getReportDocument", "get", "/reports/2021-06-30/documents/{reportDocumentId}"),
        ("getInventorySummaries", "get", "/fba/inventory/v1/summaries"),
        ("getMarketplaceParticipations", "get", "/sellers/v1/marketplaceParticipations"),
    }
    known = {(op.operation_id, op.method, op.path) for op in spec.operations()}
    assert called <= known
    parameters = {
        op.operation_id: {p.get("name") for p in op.parameters}
        for op in spec.operations()
        if (op.operation_id, op.method, op.path) in called
    }
    assert {
        "lastUpdatedAfter",
        "marketplaceIds",
        "maxResultsPerPage",
        "paginationToken",
    } <= parameters["searchOrders"]
    assert {
        "details",
        "granularityType",
        "granularityId",
        "marketplaceIds",
        "startDateTime",
        "nextToken",
    } <= parameters["getInventorySummaries"]
    assert {
        "reportTypes",
        "processingStatuses",
        "marketplaceIds",
        "createdSince",
        "pageSize",
    } <= parameters["getReports"]
    assert {"MarketplaceIds", "MaxResultsPerPage", "LastUpdatedAfter", "NextToken"} <= parameters[
        "getOrders"
    ]
