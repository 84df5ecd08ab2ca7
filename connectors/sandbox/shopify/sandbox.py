"""Sandbox Shopify's platform state: shops, grants, cost buckets, webhooks and the app's
configuration. The HTTP faces are in ``routes.py`` (what the hub calls) and ``control.py``
(what tests and demos drive it with)."""

from __future__ import annotations

import asyncio
import random
import secrets
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import httpx

from connectors.sandbox.access import SHOPIFY_CLIENT_ID as CLIENT_ID
from connectors.sandbox.core import SandboxState
from connectors.sandbox.shopify import bulk, webhooks_api
from connectors.sandbox.shopify.data import ID_BASE, PLANS, ShopData

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
class ShopUsage:
    """What one shop's apps asked of it since the shop was created: the figures a benchmark
    compares with the shop's limits (``GET /_sandbox/shopify/shops/{shop}/usage``)."""

    graphql_requests: int = 0
    throttled: int = 0  # GraphQL answers with THROTTLED
    points: float = 0.0  # cost points the bucket really paid: charged minus refunded
    rest_requests: int = 0  # legacy REST requests admitted
    rest_throttled: int = 0  # legacy REST 429s


@dataclass
class Grant:
    shop: str
    scopes: str
    expires_at: float | None = None  # platform seconds; None = non-expiring offline token
    used: bool = False
    app: str = CLIENT_ID  # the app (client id) it was issued to: only that app may use it


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
    # Derived from the control token by create_sandbox_app (access.py); never a constant.
    client_secret: str = field(default_factory=lambda: secrets.token_hex(16))
    # The app's allowed redirection URLs: the consent page sends a code nowhere else.
    redirect_uris: list[str] = field(default_factory=list)
    shops: dict[str, ShopData] = field(default_factory=dict)
    codes: dict[str, Grant] = field(default_factory=dict)
    tokens: dict[str, Grant] = field(default_factory=dict)
    refresh_tokens: dict[str, Grant] = field(default_factory=dict)
    buckets: dict[str, Bucket] = field(default_factory=dict)
    rest_buckets: dict[str, Bucket] = field(default_factory=dict)  # legacy REST, per shop+app
    subscriptions: dict[str, dict[str, webhooks_api.Subscription]] = field(default_factory=dict)
    revoked: set[str] = field(default_factory=set)
    background: set[asyncio.Task[Any]] = field(default_factory=set)
    deliveries: list[tuple[str, Any]] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=lambda: {"requests": 0, "throttled": 0})
    usage: dict[str, ShopUsage] = field(default_factory=dict)
    bulk: bulk.BulkOperations = field(default_factory=bulk.BulkOperations)
    # Transport for deliveries the sandbox starts on its own (bulk_operations/finish); tests
    # set one, otherwise real HTTP.
    webhook_transport: httpx.AsyncBaseTransport | None = None
    # The app's privacy compliance webhook URL: on Shopify it is part of the app's
    # configuration (shopify.app.toml), not a subscription.
    compliance_url: str | None = None
    data_requests: int = 0
    # Custom-distribution apps (one merchant's store each): client id -> (shop, secret). The
    # app above is the public one, installable anywhere.
    custom_apps: dict[str, tuple[str, str]] = field(default_factory=dict)
    # The app installed on each shop (its secret signs the shop's webhooks and callbacks).
    installed_app: dict[str, str] = field(default_factory=dict)

    def app_secret(self, client_id: str | None, shop: str) -> str | None:
        """The secret of app ``client_id`` if it may be installed on ``shop``, else None."""
        if client_id == self.client_id:
            return self.client_secret
        custom = self.custom_apps.get(client_id or "")
        return custom[1] if custom is not None and custom[0] == shop else None

    def shop_app_secret(self, shop: str) -> str:
        """The secret of the app installed on ``shop`` (the public app by default)."""
        return self.app_secret(self.installed_app.get(shop), shop) or self.client_secret

    def create_custom_app(self, shop: str) -> tuple[str, str]:
        """A custom-distribution app for one store, as made in the Partner Dashboard."""
        client_id = "custom-" + secrets.token_hex(8)
        secret = "shpss_" + secrets.token_hex(16)
        self.custom_apps[client_id] = (shop, secret)
        self.state.remember()
        return client_id, secret

    def create_shop(self, shop: str, **sizes: Any) -> ShopData:
        plan = sizes.pop("plan", "standard")
        if plan not in PLANS:
            raise ValueError(f"plan must be one of {', '.join(PLANS)}")
        data = ShopData(shop=shop, seed=self.state.seed, plan=plan, **sizes)
        self.shops[shop] = data
        self.usage[shop] = ShopUsage()
        self.revoked.discard(shop)
        self.bulk.forget_shop(shop)
        self.bulk.faults.pop(shop, None)
        restore = PLANS[plan][1]
        now = self.state.clock.monotonic()
        self.buckets[shop] = Bucket(restore * 20, restore, restore * 20, now)
        for key in [k for k in self.rest_buckets if k.split(" ")[0] == shop]:
            del self.rest_buckets[key]  # a shop posted again starts with an empty REST bucket
        self.state.remember()
        return data

    def charge(self, shop: str, cost: int) -> bool:
        bucket = self.buckets[shop]
        bucket.refill(self.state.clock.monotonic())
        if bucket.available < cost:
            return False
        bucket.available -= cost
        self.usage_of(shop).points += cost
        return True

    def refund(self, shop: str, points: int) -> None:
        bucket = self.buckets[shop]
        bucket.available = min(bucket.maximum, bucket.available + points)
        self.usage_of(shop).points -= points

    def usage_of(self, shop: str) -> ShopUsage:
        """The shop's usage counters (a shop restored from disk starts them at zero)."""
        return self.usage.setdefault(shop, ShopUsage())

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

    def issue_token(
        self, shop: str, scopes: str, *, expiring: bool, app: str = CLIENT_ID
    ) -> dict[str, Any]:
        token = "shpat_" + secrets.token_hex(16)
        now = self.state.clock.monotonic()
        grant = Grant(shop, scopes, now + TOKEN_LIFETIME if expiring else None, app=app)
        self.tokens[token] = grant
        body: dict[str, Any] = {"access_token": token, "scope": scopes}
        if expiring:
            refresh = "shprt_" + secrets.token_hex(16)
            self.refresh_tokens[refresh] = Grant(shop, scopes, now + 90 * 86400, app=app)
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
                entry = {"shop": grant.shop, "scopes": grant.scopes, "app": grant.app}
                if grant.expires_at is None:
                    kept[token] = {**entry, "expires": None}
                elif grant.expires_at > now:
                    kept[token] = {**entry, "expires": clock.moment(grant.expires_at).isoformat()}
            return kept

        return {
            "compliance_url": self.compliance_url,
            "redirect_uris": self.redirect_uris,
            "custom_apps": {k: list(v) for k, v in self.custom_apps.items()},
            "installed_app": dict(self.installed_app),
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
                    app=str(entry.get("app", CLIENT_ID)),
                )  # fmt: skip
        self.subscriptions = {
            shop: {entry["id"]: webhooks_api.Subscription(**entry) for entry in entries}
            for shop, entries in saved["subscriptions"].items()
        }
        self.custom_apps = {
            str(k): (str(v[0]), str(v[1])) for k, v in saved.get("custom_apps", {}).items()
        }
        self.installed_app = {str(k): str(v) for k, v in saved.get("installed_app", {}).items()}
        if self.compliance_url is None:  # a URL the hub passes in wins over the saved one
            self.compliance_url = saved["compliance_url"]
        self.redirect_uris = list(saved.get("redirect_uris") or [])  # files from before: none

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

    def install(self, shop_name: str, scopes: str, client_id: str = CLIENT_ID) -> str:
        """The merchant approved the app on the consent page: the shop has the app (again, after
        an uninstall) and the app gets an authorization code to exchange for a token."""
        if shop_name in self.revoked or self.installed_app.get(shop_name) != client_id:
            self.revoked.discard(shop_name)
            self.installed_app[shop_name] = client_id
            self.state.remember()
        code = secrets.token_hex(16)
        self.codes[code] = Grant(
            shop_name, scopes, self.state.clock.monotonic() + CODE_LIFETIME, app=client_id
        )
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
