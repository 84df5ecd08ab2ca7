"""LEGACY: the REST Admin API endpoints other tools call (Airbyte's connection check:
``shop.json`` and ``oauth/access_scopes.json``; its streams: ``customers.json``,
``orders.json``, ``events.json``, see ``rest_records.py``). Shopify made REST legacy on
2024-10-01; the hub itself uses GraphQL only. Served so peers run unchanged on the sandbox.

REST has its own rate limit, a leaky bucket of requests per app and store
(shopify.dev/docs/api/admin-rest/usage/rate-limits): 2 requests/second on Standard, 4 on
Advanced, 20 on Plus (Commerce Components 20 times Standard), with a bucket of 20 seconds' worth
(40 on Standard). Every answer carries ``X-Shopify-Shop-Api-Call-Limit: used/size``; an
overflowing request gets 429 with ``Retry-After``.
"""

from __future__ import annotations

import math
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from connectors.sandbox.shopify import rest_records, versions
from connectors.sandbox.shopify.sandbox import INVALID_TOKEN, Bucket, ShopifySandbox

LEAK_RATE = {"standard": 2.0, "advanced": 4.0, "plus": 20.0, "enterprise": 40.0}
BUCKET_SECONDS = 20  # the bucket holds 20 seconds of leak: 40 requests at 2/s
CALL_LIMIT = "X-Shopify-Shop-Api-Call-Limit"


def _bucket(sandbox: ShopifySandbox, shop: str, app: str) -> Bucket:
    key = f"{shop} {app}"
    bucket = sandbox.rest_buckets.get(key)
    if bucket is None:
        rate = LEAK_RATE.get(sandbox.shops[shop].plan, LEAK_RATE["standard"])
        size = rate * BUCKET_SECONDS
        bucket = Bucket(size, rate, size, sandbox.state.clock.monotonic())
        sandbox.rest_buckets[key] = bucket
    return bucket


def _call_limit(bucket: Bucket) -> str:
    used = max(0, math.ceil(bucket.maximum - bucket.available - 1e-9))
    return f"{used}/{int(bucket.maximum)}"


def routes(sandbox: ShopifySandbox, shop_pattern: str) -> list[BaseRoute]:
    def admit(request: Request) -> tuple[Any, Bucket | None, Response | None]:
        """The grant and bucket of an authorised, admitted request, or the refusal."""
        shop = request.path_params["shop"]
        grant = sandbox.token_grant(shop, request.headers.get("x-shopify-access-token"))
        if grant is None or shop not in sandbox.shops:
            return None, None, JSONResponse({"errors": INVALID_TOKEN}, status_code=401)
        bucket = _bucket(sandbox, shop, grant.app)
        bucket.refill(sandbox.state.clock.monotonic())
        usage = sandbox.usage_of(shop)
        if bucket.available < 1:
            sandbox.stats["throttled"] += 1
            usage.rest_throttled += 1
            refusal = JSONResponse(
                {"errors": f"Exceeded {bucket.restore_rate:g} calls per second for api "
                           "client. Reduce request rates to resume uninterrupted service."},
                status_code=429,
                headers={"Retry-After": "2.0", CALL_LIMIT: _call_limit(bucket)},
            )  # fmt: skip
            return grant, bucket, refusal
        bucket.available -= 1
        sandbox.stats["requests"] += 1
        usage.rest_requests += 1
        return grant, bucket, None

    def answer(body: dict[str, Any], bucket: Bucket, version: str | None = None) -> Response:
        headers = {CALL_LIMIT: _call_limit(bucket)}
        if version is not None:
            headers["X-Shopify-API-Version"] = version
        return JSONResponse(body, headers=headers)

    def admit_versioned(request: Request) -> tuple[str, Bucket] | Response:
        """A versioned endpoint's answering version and the request's bucket, or the refusal
        (an unknown version is 404, as on Shopify)."""
        version = versions.answering_version(request.path_params["version"])
        if version is None:
            return JSONResponse({"errors": "Not Found"}, status_code=404)
        _, bucket, refusal = admit(request)
        if refusal is not None or bucket is None:
            return refusal or Response(status_code=500)
        return version, bucket

    async def shop_json(request: Request) -> Response:
        admitted = admit_versioned(request)
        if isinstance(admitted, Response):
            return admitted
        version, bucket = admitted
        data = sandbox.shops[request.path_params["shop"]]
        from connectors.sandbox.shopify.resolvers import shop_node

        node = shop_node(data)
        body = {
            "shop": {
                "id": data.shop_id,
                "name": node["name"],
                "email": node["email"],
                "customer_email": node["email"],
                "domain": data.shop,
                "myshopify_domain": data.shop,
                "currency": node["currencyCode"],
                "iana_timezone": node["ianaTimezone"],
                "plan_display_name": node["plan"]["displayName"],
            }
        }
        return answer(body, bucket, version)

    async def access_scopes_json(request: Request) -> Response:
        grant, bucket, refusal = admit(request)
        if refusal is not None or bucket is None:
            return refusal or Response(status_code=500)
        handles = [s for s in grant.scopes.split(",") if s]
        return answer({"access_scopes": [{"handle": h} for h in handles]}, bucket)

    def listing(kind: str) -> Any:
        async def endpoint(request: Request) -> Response:
            admitted = admit_versioned(request)
            if isinstance(admitted, Response):
                return admitted
            version, bucket = admitted
            data = sandbox.shops[request.path_params["shop"]]
            url = str(request.url).split("?", 1)[0]
            try:
                records, link = rest_records.page(data, kind, dict(request.query_params), url)
            except rest_records.RestError as error:
                return JSONResponse(
                    {"errors": str(error)},
                    status_code=400,
                    headers={CALL_LIMIT: _call_limit(bucket)},
                )
            response = answer({kind: records}, bucket, version)
            if link is not None:
                response.headers["Link"] = link
            return response

        return endpoint

    return [
        *(
            Route(
                f"/{shop_pattern}/admin/api/{{version:str}}/{kind}.json",
                listing(kind),
                methods=["GET"],
            )
            for kind in ("customers", "orders", "events")
        ),
        Route(f"/{shop_pattern}/admin/api/{{version:str}}/shop.json", shop_json, methods=["GET"]),
        Route(
            f"/{shop_pattern}/admin/oauth/access_scopes.json", access_scopes_json, methods=["GET"]
        ),
    ]
