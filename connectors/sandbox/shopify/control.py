"""Sandbox Shopify's control routes (below ``{BASE}/_sandbox/shopify``) and its demo
profile: what tests, benchmarks and ``make run`` drive it with."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from connectors.sandbox.shopify import bulk, rest_api, webhooks_api
from connectors.sandbox.shopify.data import iso
from connectors.sandbox.shopify.routes import signed_app_query
from connectors.sandbox.shopify.sandbox import DEMO_SHOPS, SHOP_PATTERN, ShopifySandbox

log = logging.getLogger("sandbox.shopify.demo")

# --- HTTP: control API ---------------------------------------------------------------------------

MUTATIONS = (
    "updates", "deletes", "new_orders", "delete_orders", "delete_customers", "remove_variants",
    "remove_lines",
)  # fmt: skip
SIZE_FIELDS = {
    "products", "variants_per_product", "orders", "customers", "locations", "plan",
    "lines_per_order",
}  # fmt: skip


class _Refused(Exception):
    """A control request the sandbox cannot carry out: answered as {"error": message}."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _refusals_answered(
    handler: Callable[[Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    async def answer(request: Request) -> Response:
        try:
            return await handler(request)
        except _Refused as refused:
            return JSONResponse({"error": str(refused)}, status_code=refused.status)

    return answer


async def _json_object(request: Request, allowed: set[str] | None = None) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise _Refused("body must be JSON") from None
    if not isinstance(body, dict):
        raise _Refused("body must be a JSON object")
    unknown = set(body) - allowed if allowed is not None else set()
    if unknown:
        raise _Refused(f"unknown fields: {', '.join(sorted(unknown))}")
    return body


def _count(body: dict[str, Any], name: str, default: int = 0, minimum: int = 0) -> int:
    value = body.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise _Refused(f"{name} must be an integer >= {minimum}")
    return value


def control_routes(sandbox: ShopifySandbox) -> list[BaseRoute]:
    def known_shop(request: Request) -> str:
        name = str(request.path_params["shop"])
        if name not in sandbox.shops:
            raise _Refused("unknown shop", 404)
        return name

    async def create_shop(request: Request) -> Response:
        body = await _json_object(request)
        shop = str(body.get("shop", ""))
        if not shop.endswith(".myshopify.com"):
            raise _Refused("shop must be a myshopify.com domain")
        sizes = {k: v for k, v in body.items() if k in SIZE_FIELDS}
        try:
            data = sandbox.create_shop(shop, **sizes)
        except (TypeError, ValueError) as error:
            raise _Refused(str(error)) from None
        return JSONResponse(
            {
                "shop": shop,
                "products": data.products,
                "orders": data.orders,
                "customers": data.customers,
                "plan": data.plan,
            },
            status_code=201,
        )

    async def truth(request: Request) -> Response:
        shop = sandbox.shops[known_shop(request)]
        return JSONResponse(
            {"shop": shop.shop, "streams": shop.truth(), "at": iso(sandbox.state.clock.now())}
        )

    async def mutate(request: Request) -> Response:
        name = known_shop(request)
        body = await _json_object(request, set(MUTATIONS))
        result = await sandbox.mutate(name, **{field: _count(body, field) for field in MUTATIONS})
        return JSONResponse(result)

    async def revoke(request: Request) -> Response:
        name = known_shop(request)
        await sandbox.revoke(name)
        return JSONResponse({"revoked": name})

    async def stats(_: Request) -> Response:
        return JSONResponse(sandbox.stats)

    async def usage(request: Request) -> Response:
        """The shop's usage since it was created, beside its limits: GraphQL requests,
        THROTTLED answers and cost points paid (restoreRate, maximum), legacy REST requests
        and 429s (its leak rate and bucket size)."""
        name = known_shop(request)
        bucket = sandbox.buckets[name]
        rest_rate = rest_api.LEAK_RATE.get(sandbox.shops[name].plan, rest_api.LEAK_RATE["standard"])
        return JSONResponse(
            {
                **asdict(sandbox.usage_of(name)),
                "restore_rate": bucket.restore_rate,
                "maximum": bucket.maximum,
                "rest_rate": rest_rate,
                "rest_bucket": rest_rate * rest_api.BUCKET_SECONDS,
            }
        )

    async def configure_app(request: Request) -> Response:
        """The app's configuration: {"compliance_url": URL or null, "redirect_uris": [URL]}.
        Only the control token's holder gets here: the sandbox POSTs to compliance_url."""
        body = await _json_object(request, {"compliance_url", "redirect_uris"})
        url = body.get("compliance_url", sandbox.compliance_url)
        if url is not None and not (
            isinstance(url, str) and url.startswith(("http://", "https://"))
        ):
            raise _Refused("compliance_url must be an http(s) URL or null")
        uris = body.get("redirect_uris", sandbox.redirect_uris)
        if not (
            isinstance(uris, list)
            and all(isinstance(u, str) and u.startswith(("http://", "https://")) for u in uris)
        ):
            raise _Refused("redirect_uris must be a list of http(s) URLs")
        if url != sandbox.compliance_url or uris != sandbox.redirect_uris:
            sandbox.compliance_url = url
            sandbox.redirect_uris = list(uris)
            sandbox.state.remember()
        return JSONResponse(
            {"client_id": sandbox.client_id, "compliance_url": url, "redirect_uris": uris}
        )

    async def compliance(request: Request) -> Response:
        """Shopify sends a privacy topic: {"topic", "customer": index} (no customer for
        shop/redact)."""
        name = known_shop(request)
        body = await _json_object(request, {"topic", "customer"})
        customer = None if body.get("customer") is None else _count(body, "customer")
        topic = str(body.get("topic", ""))
        try:
            payload = sandbox.request_compliance(name, topic, customer)
        except ValueError as error:
            raise _Refused(str(error)) from None
        return JSONResponse({"topic": topic, "payload": payload}, status_code=202)

    async def bulk_faults(request: Request) -> Response:
        """The shop's next bulk operations fail: {"error_code", "count"} (count -1: all)."""
        name = known_shop(request)
        body = await _json_object(request, {"error_code", "count"})
        code = body.get("error_code", "INTERNAL_SERVER_ERROR")
        if code not in bulk.ERROR_CODES:
            raise _Refused(f"error_code must be one of {', '.join(bulk.ERROR_CODES)}")
        count = _count(body, "count", default=1, minimum=-1)
        if count == 0:
            sandbox.bulk.faults.pop(name, None)
        else:
            sandbox.bulk.faults[name] = bulk.BulkFault(code, count)
        return JSONResponse({"shop": name, "error_code": code if count else None, "count": count})

    async def webhook_subscriptions(request: Request) -> Response:
        """The app's webhook subscriptions in the shop: [{"id", "topic", "uri"}]."""
        name = known_shop(request)
        listed = sandbox.subscriptions.get(name, {}).values()
        return JSONResponse([{"id": s.id, "topic": s.topic, "uri": s.callback_url} for s in listed])

    async def remove_webhook_subscriptions(request: Request) -> Response:
        """Someone deletes the app's webhook subscriptions: {"topics": [GraphQL topic]}, all
        of them without "topics"."""
        name = known_shop(request)
        body = await _json_object(request, {"topics"})
        topics = body.get("topics")
        if topics is not None and not (
            isinstance(topics, list) and all(isinstance(t, str) for t in topics)
        ):
            raise _Refused("topics must be a list of webhook topics, e.g. PRODUCTS_UPDATE")
        removed = webhooks_api.remove(sandbox, name, topics)
        return JSONResponse({"shop": name, "removed": removed})

    async def open_app(request: Request) -> Response:
        """The merchant opens the app from the shop's admin (or installs it from the App
        Store): Shopify sends the browser to the app URL ``?app_url=`` with ``shop``,
        ``host`` and ``timestamp``, signed with the app's secret (``hmac``): the public app's,
        or ``?client_id=`` a custom app of the shop."""
        name = known_shop(request)
        target = request.query_params.get("app_url", "")
        if not target.startswith(("http://", "https://")) or "?" in target:
            raise _Refused("app_url must be an http(s) URL without a query")
        secret = sandbox.app_secret(request.query_params.get("client_id", sandbox.client_id), name)
        if secret is None:
            raise _Refused("no such app for this shop", 404)
        return RedirectResponse(f"{target}?{signed_app_query(secret, name)}", status_code=302)

    async def create_custom_app(request: Request) -> Response:
        """A custom-distribution app for the shop (one merchant), as made in the Partner
        Dashboard: {"client_id", "client_secret"}, told only to the control token's holder."""
        name = known_shop(request)
        client_id, secret = sandbox.create_custom_app(name)
        return JSONResponse({"client_id": client_id, "client_secret": secret}, status_code=201)

    handlers = [
        ("/shopify/shops", create_shop, "POST"),
        (f"/shopify/shops/{SHOP_PATTERN}/custom_app", create_custom_app, "POST"),
        (f"/shopify/shops/{SHOP_PATTERN}/open_app", open_app, "GET"),
        (f"/shopify/shops/{SHOP_PATTERN}/truth", truth, "GET"),
        (f"/shopify/shops/{SHOP_PATTERN}/mutate", mutate, "POST"),
        (f"/shopify/shops/{SHOP_PATTERN}/revoke", revoke, "POST"),
        ("/shopify/stats", stats, "GET"),
        (f"/shopify/shops/{SHOP_PATTERN}/usage", usage, "GET"),
        ("/shopify/app", configure_app, "PUT"),
        (f"/shopify/shops/{SHOP_PATTERN}/compliance", compliance, "POST"),
        (f"/shopify/shops/{SHOP_PATTERN}/bulk_faults", bulk_faults, "PUT"),
        (f"/shopify/shops/{SHOP_PATTERN}/webhook_subscriptions", webhook_subscriptions, "GET"),
        (
            f"/shopify/shops/{SHOP_PATTERN}/webhook_subscriptions/remove",
            remove_webhook_subscriptions,
            "POST",
        ),
    ]
    return [
        Route(path, _refusals_answered(handler), methods=[method])
        for path, handler, method in handlers
    ]


def seed_demo(sandbox: ShopifySandbox) -> None:
    """Create the demo shops a restarted sandbox does not already have (from its state file:
    same parameters, same data)."""
    for shop, sizes in DEMO_SHOPS.items():
        if shop not in sandbox.shops:
            sandbox.create_shop(shop, **sizes)


# Real seconds between two rounds of demo changes (not platform seconds: a sped-up clock
# would flood the hub with webhooks). Each round changes one demo shop, in turn.
DEMO_EVERY = 5.0


async def run_demo_changes(
    sandbox: ShopifySandbox, stop: asyncio.Event, every: float = DEMO_EVERY
) -> None:
    """A slow stream of changes so the dashboard shows live activity: every ``every``
    seconds, 2 product edits and a new order in the next demo shop, each with its webhook to
    the shop's subscribers. The first round waits ``every`` too: inside the hub the webhooks'
    target starts listening only once the start-up is over."""
    shops = itertools.cycle(DEMO_SHOPS)
    while True:
        try:
            await asyncio.wait_for(stop.wait(), timeout=every)
            return
        except TimeoutError:
            pass
        shop = next(shops)
        if shop not in sandbox.shops:
            continue
        try:
            await sandbox.mutate(shop, updates=2, new_orders=1)
        except Exception:  # one bad round must not end the demo
            log.exception("demo changes in %s failed", shop)
