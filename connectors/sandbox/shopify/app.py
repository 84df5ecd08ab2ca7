"""Sandbox Shopify: OAuth consent and token endpoints, the Admin GraphQL API with cost-based
throttling, webhooks, and the control routes tests and demos drive it with.

URL layout below the sandbox base: ``https://{shop}`` becomes ``{BASE}/shopify/{shop}``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
import json
import random
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import httpx
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import BaseRoute, Route

from connectors.sandbox.core import FaultConfig, SandboxState
from connectors.sandbox.shopify import bulk, webhooks_api
from connectors.sandbox.shopify.data import ID_BASE, PLANS, ShopData, iso
from connectors.sandbox.shopify.graphql_api import API_VERSION, admin_schema, run_query

CLIENT_ID = "sandbox-shopify-client-id"
CLIENT_SECRET = "sandbox-shopify-client-secret"  # noqa: S105  the sandbox app's public secret
CODE_LIFETIME = 60.0  # platform seconds an authorization code stays valid
TOKEN_LIFETIME = 3600.0  # expiring offline tokens
SHOP_PATTERN = r"{shop:str}"
DEMO_SHOPS = {
    "demo-outdoor.myshopify.com": {"products": 1200, "orders": 2500, "customers": 800},
    "demo-kitchen.myshopify.com": {"products": 600, "orders": 1500, "customers": 500},
}
SHOP_REDACT_DELAY = 48 * 3600.0  # platform seconds from uninstall to shop/redact
COMPLIANCE_TOPICS = ("customers/data_request", "customers/redact", "shop/redact")
INVALID_TOKEN = "[API] Invalid API key or access token (unrecognized login or wrong password)"  # noqa: S105


@dataclass
class Grant:
    shop: str
    scopes: str
    expires_at: float | None = None  # platform seconds; None = non-expiring offline token
    used: bool = False


@dataclass
class Bucket:
    """Leaky bucket of query cost points per shop and app."""

    maximum: float
    restore_rate: float
    available: float
    updated: float

    def refill(self, now: float) -> None:
        self.available = min(
            self.maximum, self.available + (now - self.updated) * self.restore_rate
        )
        self.updated = now


@dataclass
class ShopifySandbox:
    state: SandboxState
    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET
    shops: dict[str, ShopData] = field(default_factory=dict)
    codes: dict[str, Grant] = field(default_factory=dict)
    tokens: dict[str, Grant] = field(default_factory=dict)
    refresh_tokens: dict[str, Grant] = field(default_factory=dict)
    buckets: dict[str, Bucket] = field(default_factory=dict)
    subscriptions: dict[str, dict[str, webhooks_api.Subscription]] = field(default_factory=dict)
    revoked: set[str] = field(default_factory=set)
    background: set[asyncio.Task[Any]] = field(default_factory=set)
    deliveries: list[tuple[str, Any]] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=lambda: {"requests": 0, "throttled": 0})
    bulk: bulk.BulkOperations = field(default_factory=bulk.BulkOperations)
    # Transport for deliveries the sandbox starts on its own (bulk_operations/finish); tests
    # set one, otherwise real HTTP.
    webhook_transport: httpx.AsyncBaseTransport | None = None
    # The app's privacy compliance webhook URL: on Shopify it is part of the app's
    # configuration (shopify.app.toml), not a subscription.
    compliance_url: str | None = None
    data_requests: int = 0

    def create_shop(self, shop: str, **sizes: Any) -> ShopData:
        plan = sizes.pop("plan", "standard")
        if plan not in PLANS:
            raise ValueError(f"plan must be one of {', '.join(PLANS)}")
        data = ShopData(shop=shop, seed=self.state.seed, plan=plan, **sizes)
        self.shops[shop] = data
        self.revoked.discard(shop)
        self.bulk.forget_shop(shop)
        self.bulk.faults.pop(shop, None)
        restore = PLANS[plan][1]
        now = self.state.clock.monotonic()
        self.buckets[shop] = Bucket(restore * 20, restore, restore * 20, now)
        self.state.remember()
        return data

    def shop(self, shop: str) -> ShopData:
        """The shop, created small on first use so any myshopify domain can be tried."""
        if shop not in self.shops:
            self.create_shop(shop)
        return self.shops[shop]

    def charge(self, shop: str, cost: int) -> bool:
        bucket = self.buckets[shop]
        bucket.refill(self.state.clock.monotonic())
        if bucket.available < cost:
            return False
        bucket.available -= cost
        return True

    def refund(self, shop: str, points: int) -> None:
        bucket = self.buckets[shop]
        bucket.available = min(bucket.maximum, bucket.available + points)

    def throttle_status(self, shop: str) -> dict[str, float]:
        bucket = self.buckets[shop]
        bucket.refill(self.state.clock.monotonic())
        return {
            "maximumAvailable": bucket.maximum,
            "currentlyAvailable": round(bucket.available, 1),
            "restoreRate": bucket.restore_rate,
        }

    def token_grant(self, shop: str, token: str | None) -> Grant | None:
        grant = self.tokens.get(token or "")
        if grant is None or grant.shop != shop or shop in self.revoked:
            return None
        if self.state.faults.config("shopify", shop).revoke_tokens:
            return None
        if grant.expires_at is not None and grant.expires_at <= self.state.clock.monotonic():
            return None
        return grant

    def issue_token(self, shop: str, scopes: str, *, expiring: bool) -> dict[str, Any]:
        token = "shpat_" + secrets.token_hex(16)
        now = self.state.clock.monotonic()
        grant = Grant(shop, scopes, now + TOKEN_LIFETIME if expiring else None)
        self.tokens[token] = grant
        body: dict[str, Any] = {"access_token": token, "scope": scopes}
        if expiring:
            refresh = "shprt_" + secrets.token_hex(16)
            self.refresh_tokens[refresh] = Grant(shop, scopes, now + 90 * 86400)
            body.update(
                expires_in=int(TOKEN_LIFETIME),
                refresh_token=refresh,
                refresh_token_expires_in=90 * 86400,
            )
        self.state.remember()
        return body

    # --- what a restart keeps (persistence.py) ------------------------------------------------

    def remembered(self) -> dict[str, Any]:
        """Installed grants, uninstalls, subscriptions, the app's compliance URL and the shops
        by their creation parameters (their data regrows from the seed). Expired grants are
        left out; expiries are platform times."""
        clock = self.state.clock
        now = clock.monotonic()

        def grants(table: dict[str, Grant]) -> dict[str, dict[str, Any]]:
            kept = {}
            for token, grant in list(table.items()):  # a copy: subscriptions save off-loop
                if grant.expires_at is None:
                    kept[token] = {"shop": grant.shop, "scopes": grant.scopes, "expires": None}
                elif grant.expires_at > now:
                    expires = clock.moment(grant.expires_at).isoformat()
                    kept[token] = {"shop": grant.shop, "scopes": grant.scopes, "expires": expires}
            return kept

        return {
            "compliance_url": self.compliance_url,
            "shops": {name: shop.parameters() for name, shop in list(self.shops.items())},
            "revoked": sorted(self.revoked),
            "tokens": grants(self.tokens),
            "refresh_tokens": grants(self.refresh_tokens),
            "subscriptions": {
                shop: [asdict(s) for s in list(subscriptions.values())]
                for shop, subscriptions in list(self.subscriptions.items())
                if subscriptions
            },
        }

    def restore(self, saved: dict[str, Any]) -> None:
        """Take back what ``remembered`` saved. Raises KeyError, TypeError or ValueError for a
        file that is not what it wrote."""
        clock = self.state.clock
        for name, parameters in saved["shops"].items():
            self.create_shop(name, **parameters)
        self.revoked = set(saved["revoked"])
        for table, entries in ((self.tokens, saved["tokens"]),
                               (self.refresh_tokens, saved["refresh_tokens"])):  # fmt: skip
            for token, entry in entries.items():
                expires = entry["expires"]
                table[str(token)] = Grant(
                    str(entry["shop"]), str(entry["scopes"]),
                    None if expires is None else clock.reading(datetime.fromisoformat(expires)),
                )  # fmt: skip
        self.subscriptions = {
            shop: {entry["id"]: webhooks_api.Subscription(**entry) for entry in entries}
            for shop, entries in saved["subscriptions"].items()
        }
        if self.compliance_url is None:  # a URL the hub passes in wins over the saved one
            self.compliance_url = saved["compliance_url"]

    # --- changes, with webhooks --------------------------------------------------------------

    async def mutate(
        self,
        shop_name: str,
        *,
        updates: int = 0,
        deletes: int = 0,
        new_orders: int = 0,
        delete_orders: int = 0,
        delete_customers: int = 0,
        remove_variants: int = 0,
        remove_lines: int = 0,
        transport: Any = None,
    ) -> dict[str, int]:
        """Random changes, each announced to the shop's webhook subscribers as Shopify does:
        ``updates`` and ``deletes`` of products, ``new_orders``, ``delete_orders`` and
        ``delete_customers`` (only customers without orders: Shopify refuses to delete the
        others), ``remove_variants`` (one variant each from as many products) and
        ``remove_lines`` (one line item each from as many orders, an order edit). A product
        keeps one variant and an order one line item, as on Shopify. Returns how many of each
        happened."""
        shop = self.shops[shop_name]
        rng = random.Random(
            f"{self.state.seed}:{shop_name}:{len(shop.updated)}:{len(shop.deleted)}"
        )
        now = self.state.clock.now()
        delivered = 0
        live = [i for i in range(shop.products) if shop.is_live("product", i)]
        for index in rng.sample(live, min(updates, len(live))):
            shop.touch("product", index, now)
            delivered += await webhooks_api.deliver(
                sandbox=self,
                shop=shop_name,
                topic="PRODUCTS_UPDATE",
                payload=_rest_payload("product", shop.product_node(index)),
                transport=transport,
            )

        async def delete(kind: str, topic: str, candidates: list[int], count: int) -> int:
            """Delete ``count`` of ``candidates`` at random, each with its webhook."""
            nonlocal delivered
            chosen = rng.sample(candidates, min(count, len(candidates)))
            for index in chosen:
                shop.delete(kind, index, now)
                delivered += await webhooks_api.deliver(
                    sandbox=self, shop=shop_name, topic=topic,
                    payload={"id": ID_BASE[kind] + index}, transport=transport,
                )  # fmt: skip
            return len(chosen)

        live = [i for i in range(shop.products) if shop.is_live("product", i)]
        await delete("product", "PRODUCTS_DELETE", live, deletes)
        for _ in range(new_orders):
            index = shop.add_order(now)
            delivered += await webhooks_api.deliver(
                sandbox=self,
                shop=shop_name,
                topic="ORDERS_CREATE",
                payload=_rest_payload("order", shop.order_node(index)),
                transport=transport,
            )
        live = [i for i in range(shop.total("order")) if shop.is_live("order", i)]
        deleted_orders = await delete("order", "ORDERS_DELETE", live, delete_orders)
        # As on Shopify, a customer with orders cannot be deleted.
        buyers = shop.customers_with_orders()
        live = [i for i in range(shop.customers) if shop.is_live("customer", i) and i not in buyers]
        deleted_customers = await delete("customer", "CUSTOMERS_DELETE", live, delete_customers)
        products = [i for i in range(shop.products)
                    if shop.is_live("product", i) and len(shop.variant_ids(i)) > 1]  # fmt: skip
        for index in rng.sample(products, min(remove_variants, len(products))):
            shop.remove_variant(index, rng.choice(shop.variant_ids(index)), now)
            delivered += await webhooks_api.deliver(
                sandbox=self, shop=shop_name, topic="PRODUCTS_UPDATE",
                payload=_rest_payload("product", shop.product_node(index)), transport=transport,
            )  # fmt: skip
        orders = [i for i in range(shop.total("order"))
                  if shop.is_live("order", i) and len(shop.lines(i)) > 1]  # fmt: skip
        for index in rng.sample(orders, min(remove_lines, len(orders))):
            shop.remove_line(index, rng.choice(shop.lines(index)), now)
            delivered += await webhooks_api.deliver(
                sandbox=self, shop=shop_name, topic="ORDERS_UPDATED",
                payload=_rest_payload("order", shop.order_node(index)), transport=transport,
            )  # fmt: skip
        return {
            "updated": updates,
            "deleted": deletes,
            "new_orders": new_orders,
            "deleted_orders": deleted_orders,
            "deleted_customers": deleted_customers,
            "removed_variants": min(remove_variants, len(products)),
            "removed_lines": min(remove_lines, len(orders)),
            "webhooks": delivered,
        }

    async def revoke(self, shop_name: str, transport: Any = None) -> None:
        """The merchant uninstalled the app: app/uninstalled is sent, then the app's tokens and
        webhook subscriptions are gone for good, as on Shopify; only a new install (an approval
        on the consent page, see ``install``) gives the app access again."""
        self.revoked.add(shop_name)
        await webhooks_api.deliver(
            sandbox=self,
            shop=shop_name,
            topic="APP_UNINSTALLED",
            # The Shop object: its id is the shop's.
            payload={
                "id": self.shops[shop_name].shop_id,
                "domain": shop_name,
                "myshopify_domain": shop_name,
            },
            transport=transport,
        )
        for grants in (self.codes, self.tokens, self.refresh_tokens):
            for key in [key for key, grant in grants.items() if grant.shop == shop_name]:
                del grants[key]
        self.subscriptions.pop(shop_name, None)
        self.state.remember()
        # Shopify sends shop/redact 48 hours after the uninstall unless the app comes back.
        task = asyncio.get_running_loop().create_task(self._shop_redact_later(shop_name))
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    def request_compliance(
        self, shop_name: str, topic: str, customer: int | None = None, transport: Any = None
    ) -> dict[str, Any]:
        """Send one of the mandatory privacy topics to the app's compliance URL, as Shopify
        does when a customer asks the merchant for their data or for erasure, or 48 hours
        after an uninstall. customers/redact also erases the customer in the shop, so the next
        sync cannot bring them back. Raises ValueError for what cannot be sent."""
        if topic not in COMPLIANCE_TOPICS:
            raise ValueError(f"topic must be one of {', '.join(COMPLIANCE_TOPICS)}")
        if not self.compliance_url:
            raise ValueError("the app has no compliance_url; PUT /_sandbox/shopify/app first")
        shop = self.shops[shop_name]
        payload: dict[str, Any] = {"shop_id": shop.shop_id, "shop_domain": shop_name}
        if topic != "shop/redact":
            if customer is None or not shop.is_live("customer", customer):
                raise ValueError(f"customer must be the index of a live customer of {shop_name}")
            node = shop.customer_node(customer)
            orders = [ID_BASE["order"] + i for i in shop.orders_of_customer(customer)]
            payload["customer"] = {
                "id": int(node["legacyResourceId"]),
                "email": node["email"],
                "phone": None,
            }
            if topic == "customers/redact":
                payload["orders_to_redact"] = orders
                shop.delete("customer", customer, self.state.clock.now())
            else:
                self.data_requests += 1
                payload["orders_requested"] = orders
                payload["data_request"] = {"id": 9000 + self.data_requests}
        webhooks_api.send(
            sandbox=self, shop=shop_name, rest_topic=topic, url=self.compliance_url,
            payload=payload, transport=transport or self.webhook_transport,
        )  # fmt: skip
        return payload

    async def _shop_redact_later(self, shop_name: str) -> None:
        await self.state.clock.sleep(SHOP_REDACT_DELAY)
        if shop_name in self.revoked and self.compliance_url and shop_name in self.shops:
            self.request_compliance(shop_name, "shop/redact")

    def install(self, shop_name: str, scopes: str) -> str:
        """The merchant approved the app on the consent page: the shop has the app (again, after
        an uninstall) and the app gets an authorization code to exchange for a token."""
        if shop_name in self.revoked:
            self.revoked.discard(shop_name)
            self.state.remember()
        code = secrets.token_hex(16)
        self.codes[code] = Grant(shop_name, scopes, self.state.clock.monotonic() + CODE_LIFETIME)
        return code


def _rest_payload(kind: str, node: dict[str, Any]) -> dict[str, Any]:
    """The REST-shaped body Shopify's JSON webhooks carry (the fields the hub reads)."""
    return {
        "id": int(node["legacyResourceId"]),
        "admin_graphql_api_id": node["id"],
        "updated_at": node["updatedAt"],
        "title": node.get("title"),
        "name": node.get("name"),
    }


# --- HTTP: OAuth -------------------------------------------------------------------------------


def query_hmac(params: dict[str, str], secret: str) -> str:
    message = "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k != "hmac")
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><html><head><meta charset='utf-8'><meta name='viewport' "
        f"content='width=device-width, initial-scale=1'><title>{html.escape(title)}</title>"
        "<style>body{font-family:system-ui;max-width:32rem;margin:3rem auto;padding:0 1rem}"
        "button{font-size:1rem;padding:.6rem 1.2rem;margin-right:.5rem}</style></head>"
        f"<body><p><b>Shopify sandbox</b></p><h1>{html.escape(title)}</h1>{body}</body></html>",
        status_code=status,
    )


def routes(sandbox: ShopifySandbox) -> list[BaseRoute]:
    async def authorize(request: Request) -> Response:
        shop = request.path_params["shop"]
        params = dict(request.query_params)
        if request.method == "POST":
            params.update({k: str(v) for k, v in (await request.form()).items()})
        if params.get("client_id") != sandbox.client_id:
            return _page("Unknown app", "<p>The client_id does not belong to an app.</p>", 400)
        redirect_uri = params.get("redirect_uri", "")
        if not redirect_uri.startswith(("http://", "https://")):
            return _page("Invalid redirect", "<p>redirect_uri is missing or invalid.</p>", 400)
        scopes = params.get("scope", "")
        sandbox.shop(shop)
        if request.method == "GET":
            hidden = "".join(
                f"<input type='hidden' name='{html.escape(k)}' value='{html.escape(v)}'>"
                for k, v in params.items()
                if k != "decision"
            )
            items = "".join(f"<li>{html.escape(s)}</li>" for s in scopes.split(",") if s)
            return _page(
                f"Install app on {shop}?",
                f"<p>The app asks for these permissions:</p><ul>{items}</ul>"
                f"<form method='post'>{hidden}"
                "<button name='decision' value='approve'>Install app</button>"
                "<button name='decision' value='deny'>Cancel</button></form>",
            )
        if params.get("decision") != "approve":
            return _page("Installation cancelled", "<p>The app was not installed.</p>")
        code = sandbox.install(shop, scopes)
        back = {
            "code": code,
            "host": _host(shop),
            "shop": shop,
            "state": params.get("state", ""),
            "timestamp": str(int(time.time())),  # wall clock: the hub checks its age
        }
        back["hmac"] = query_hmac(back, sandbox.client_secret)
        return RedirectResponse(f"{redirect_uri}?{urlencode(back)}", status_code=302)

    async def access_token(request: Request) -> Response:
        shop = request.path_params["shop"]
        if "json" in request.headers.get("content-type", ""):
            try:
                params = {k: str(v) for k, v in (await request.json()).items()}
            except (ValueError, AttributeError):
                return JSONResponse({"error": "invalid_request"}, status_code=400)
        else:
            params = {k: str(v) for k, v in (await request.form()).items()}
        if params.get("client_id") != sandbox.client_id or not hmac.compare_digest(
            params.get("client_secret", ""), sandbox.client_secret
        ):
            return JSONResponse(
                {"error": "invalid_client", "error_description": "Client credentials are invalid"},
                status_code=400,
            )
        now = sandbox.state.clock.monotonic()
        if params.get("grant_type") == "refresh_token":
            grant = sandbox.refresh_tokens.pop(params.get("refresh_token", ""), None)
            if (
                grant is None
                or grant.shop != shop
                or shop in sandbox.revoked
                or (grant.expires_at or 0) <= now
            ):
                if grant is not None:
                    sandbox.state.remember()  # consumed: it stays refused after a restart
                return JSONResponse(
                    {"error": "invalid_grant", "error_description": "refresh token is invalid"},
                    status_code=400,
                )
            return JSONResponse(sandbox.issue_token(shop, grant.scopes, expiring=True))
        grant = sandbox.codes.get(params.get("code", ""))
        if grant is None or grant.shop != shop or grant.used or (grant.expires_at or 0) <= now:
            return JSONResponse(
                {
                    "error": "invalid_request",
                    "error_description": "The authorization code was not found or was already used",
                },
                status_code=400,
            )
        grant.used = True
        expiring = params.get("expiring") in ("1", "true")
        return JSONResponse(sandbox.issue_token(shop, grant.scopes, expiring=expiring))

    async def graphql_endpoint(request: Request) -> Response:
        shop_name = request.path_params["shop"]
        if request.path_params["version"] != API_VERSION:
            return JSONResponse({"errors": "Not Found"}, status_code=404)
        sandbox.stats["requests"] += 1
        fault = sandbox.state.faults.pick("shopify", shop_name)
        if fault == "error":
            status = random.Random(sandbox.stats["requests"]).choice((500, 502, 503))
            return JSONResponse({"errors": "Internal Server Error"}, status_code=status)
        if fault == "timeout":
            await sandbox.state.clock.sleep(120)
        if fault == "slow":
            await sandbox.state.clock.sleep(
                sandbox.state.faults.config("shopify", shop_name).slow_seconds
            )
        grant = sandbox.token_grant(shop_name, request.headers.get("x-shopify-access-token"))
        if grant is None or shop_name not in sandbox.shops:
            return JSONResponse({"errors": INVALID_TOKEN}, status_code=401)
        try:
            payload = await request.json()
            query = payload["query"]
        except (ValueError, KeyError, TypeError):
            return JSONResponse(
                {"errors": {"query": "Required parameter missing or invalid"}}, status_code=400
            )
        shop = sandbox.shops[shop_name]
        if fault == "throttle":
            sandbox.buckets[shop_name].available = 0.0
        # Where this Shopify is served (for bulk result urls), as the client reached it.
        own_url = str(request.url).split("?", 1)[0]
        base_url = own_url[: own_url.rindex(f"/{shop_name}/admin/")]
        # Executing a page of 250 nodes is CPU work: keep it off the (shared) event loop.
        body = await asyncio.to_thread(
            run_query,
            shop,
            query,
            payload.get("variables"),
            {"sandbox": sandbox, "base_url": base_url},
            charge=lambda c: sandbox.charge(shop_name, c),
        )
        bulk.start_pending(sandbox, admin_schema())
        requested, actual = body.pop("_cost", (0, 0))
        if actual is not None and requested > actual:
            sandbox.refund(shop_name, requested - actual)
        if actual is None:
            sandbox.stats["throttled"] += 1
        body["extensions"] = {
            "cost": {
                "requestedQueryCost": requested,
                "actualQueryCost": actual,
                "throttleStatus": sandbox.throttle_status(shop_name),
            }
        }
        text = json.dumps(body)
        if fault == "malformed":
            text = text[: max(1, len(text) // 2)]
        return Response(text, media_type="application/json")

    async def bulk_result(request: Request) -> Response:
        """A bulk operation's JSONL, streamed from disk; no token, like a signed storage url."""
        op = sandbox.bulk.by_key(request.path_params["key"])
        if (
            op is None
            or op.path is None
            or op.finished_at is None
            or op.expired(sandbox.state.clock.now())
            or not op.path.exists()
        ):
            return Response("Not Found", status_code=404, media_type="text/plain")
        return FileResponse(op.path, media_type="application/jsonl")

    return [
        Route("/_bulk/{key:str}.jsonl", bulk_result, methods=["GET"]),
        Route(f"/{SHOP_PATTERN}/admin/oauth/authorize", authorize, methods=["GET", "POST"]),
        Route(f"/{SHOP_PATTERN}/admin/oauth/access_token", access_token, methods=["POST"]),
        Route(
            f"/{SHOP_PATTERN}/admin/api/{{version:str}}/graphql.json",
            graphql_endpoint,
            methods=["POST"],
        ),
    ]


def _host(shop: str) -> str:
    import base64

    return base64.b64encode(f"{shop}/admin".encode()).decode().rstrip("=")


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

    async def configure_app(request: Request) -> Response:
        """The app's configuration: {"compliance_url": URL or null}."""
        body = await _json_object(request, {"compliance_url"})
        url = body.get("compliance_url", sandbox.compliance_url)
        if url is not None and not (
            isinstance(url, str) and url.startswith(("http://", "https://"))
        ):
            raise _Refused("compliance_url must be an http(s) URL or null")
        if url != sandbox.compliance_url:
            sandbox.compliance_url = url
            sandbox.state.remember()
        return JSONResponse({"client_id": sandbox.client_id, "compliance_url": url})

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

    handlers = [
        ("/shopify/shops", create_shop, "POST"),
        (f"/shopify/shops/{SHOP_PATTERN}/truth", truth, "GET"),
        (f"/shopify/shops/{SHOP_PATTERN}/mutate", mutate, "POST"),
        (f"/shopify/shops/{SHOP_PATTERN}/revoke", revoke, "POST"),
        ("/shopify/stats", stats, "GET"),
        ("/shopify/app", configure_app, "PUT"),
        (f"/shopify/shops/{SHOP_PATTERN}/compliance", compliance, "POST"),
        (f"/shopify/shops/{SHOP_PATTERN}/bulk_faults", bulk_faults, "PUT"),
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


async def run_demo_changes(sandbox: ShopifySandbox, stop: asyncio.Event) -> None:
    """A slow stream of changes so the dashboard shows live activity."""
    while not stop.is_set():
        for shop in DEMO_SHOPS:
            await sandbox.mutate(shop, updates=3, new_orders=1)
        try:
            await asyncio.wait_for(stop.wait(), timeout=20)
        except TimeoutError:
            continue


__all__ = ["FaultConfig", "ShopifySandbox", "control_routes", "routes"]
