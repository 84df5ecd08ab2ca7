"""Sandbox Amazon state: the sandbox app, sellers, LWA grants, rate-limit buckets (reports in
``reports.py``).

Routes live in ``app.py``; this module holds what they share and what the control API and the
tests drive directly.
"""

from __future__ import annotations

import hashlib
import secrets
import string
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from connectors.amazon.regions import MARKETPLACES, REGION_MARKETPLACES, REGIONS
from connectors.ratelimit import TokenBucket
from connectors.sandbox.access import AMAZON_APP_ID as APP_ID
from connectors.sandbox.access import AMAZON_CLIENT_ID as CLIENT_ID
from connectors.sandbox.amazon import spec
from connectors.sandbox.amazon.data import SellerData
from connectors.sandbox.amazon.reports import Report, ReportDesk
from connectors.sandbox.core import SandboxState, checksum

CODE_LIFETIME = 300.0  # "An LWA authorization code expires after five minutes."
ACCESS_TOKEN_LIFETIME = 3600.0
# "You must rotate your LWA credentials (client secrets) for all applications every 180 days"
# and "your old credentials expire seven days after you generate new credentials"
# (https://developer-docs.amazon.com/sp-api/docs/rotating-your-apps-lwa-credentials).
LWA_SECRET_LIFETIME = timedelta(days=180)
OLD_SECRET_GRACE = timedelta(days=7)
# How long the Appstore's amazon_state stays good between the Login URI and the confirm page
# (Amazon does not publish it; long enough for a seller to sign in to the app's website).
APPSTORE_STATE_LIFETIME = 1800.0
FBA_TOKEN_LIFETIME = 30.0  # getInventorySummaries nextToken expires after 30 s
# ... but never sooner than this many real seconds: a sped-up clock must not outrun the HTTP
# round trip itself, which a busy test machine can stretch past a scaled 30 s.
FBA_TOKEN_MIN_REAL_SECONDS = 2.0
GRANTLESS_SCOPES = {
    "sellingpartnerapi::notifications",
    "sellingpartnerapi::client_credential:rotation",
}
DEMO_SELLER = "A1DEMOSELLER0NA"
DEMO_SIZES: dict[str, Any] = {"orders": 2000, "listings": 1500, "fba_items": 600}
EXPIRED = "The access token you provided has expired."
REVOKED = "The access token you provided is revoked, malformed or invalid."


@dataclass
class SandboxApp:
    app_id: str = APP_ID
    client_id: str = CLIENT_ID
    # Derived from the control token by create_sandbox_app (access.py); never a constant.
    client_secret: str = field(default_factory=lambda: secrets.token_hex(16))
    draft: bool = False
    redirect_uris: list[str] = field(default_factory=list)  # the consent page's only targets
    login_uri: str | None = None  # where the Appstore sends a seller who authorizes the app
    # Amazon's restricted roles for orders' personal data (Direct-to-Consumer Delivery, Tax
    # Invoicing/Remittance): without them includedData BUYER or RECIPIENT is refused.
    restricted_roles: bool = False
    # Platform time each client secret was generated, and the end a rotation gave old ones.
    secret_issued: dict[str, datetime] = field(default_factory=dict)
    secret_expires: dict[str, datetime] = field(default_factory=dict)


@dataclass
class AppstoreGrant:
    """An ``amazon_state`` the Appstore gave the app's Login URI, until the confirm page."""

    seller_id: str
    host: str
    expires_at: float  # platform seconds
    used: bool = False


@dataclass
class Grant:
    seller_id: str | None  # None for grantless tokens
    region: str | None
    expires_at: float  # platform seconds
    scope: str = ""
    redirect_uri: str | None = None
    used: bool = False


@dataclass
class AmazonSandbox(ReportDesk):
    state: SandboxState
    app: SandboxApp = field(default_factory=SandboxApp)
    sellers: dict[str, SellerData] = field(default_factory=dict)
    codes: dict[str, Grant] = field(default_factory=dict)
    access_tokens: dict[str, Grant] = field(default_factory=dict)
    refresh_tokens: dict[str, Grant] = field(default_factory=dict)
    revoked: set[str] = field(default_factory=set)
    buckets: dict[tuple[str, str], TokenBucket] = field(default_factory=dict)
    reports: dict[str, Report] = field(default_factory=dict)
    report_outcomes: dict[str, str] = field(default_factory=dict)  # seller -> forced outcome
    fba_tokens: dict[str, tuple[float, dict[str, Any]]] = field(default_factory=dict)
    appstore_states: dict[str, AppstoreGrant] = field(default_factory=dict)
    signing_key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    stats: dict[str, int] = field(
        default_factory=lambda: {"requests": 0, "throttled": 0, "refused": 0}
    )

    # --- sellers ------------------------------------------------------------------------

    def create_seller(
        self,
        seller_id: str,
        region: str = "na",
        marketplaces: list[str] | None = None,
        created: datetime | None = None,
        **sizes: Any,
    ) -> SellerData:
        """A seller whose data grows from the seed; ``created`` (default: now) anchors its
        order history, so a seller given back its creation time has the same data."""
        if region not in REGIONS:
            raise ValueError(f"region must be one of {', '.join(REGIONS)}")
        chosen = tuple(marketplaces or REGION_MARKETPLACES[region][:2])
        wrong = [m for m in chosen if m not in MARKETPLACES or MARKETPLACES[m].region != region]
        if wrong:
            raise ValueError(f"marketplaces not in region {region}: {', '.join(wrong)}")
        unknown = set(sizes) - {"orders", "listings", "fba_items", "store_name"}
        if unknown:
            raise ValueError(f"unknown seller settings: {', '.join(sorted(unknown))}")
        seller = SellerData(
            seller_id=seller_id,
            region=region,
            seed=self.state.seed,
            created=created or self.state.clock.now(),
            marketplaces=chosen,
            **sizes,
        )
        self.sellers[seller_id] = seller
        self.revoked.discard(seller_id)
        self.state.remember()
        return seller

    def default_seller(self, region: str) -> SellerData:
        """The seller a consent page signs in as when the control API made none."""
        for seller in self.sellers.values():
            if seller.region == region:
                return seller
        seller_id = (
            "A" + hashlib.sha256(f"{self.state.seed}:{region}".encode()).hexdigest()[:12].upper()
        )
        return self.create_seller(seller_id, region)

    def new_seller_id(self) -> str:
        """A new merchant token in Amazon's format: "A" and 13 capital letters and digits."""
        alphabet = string.ascii_uppercase + string.digits
        while True:
            seller_id = "A" + "".join(secrets.choice(alphabet) for _ in range(13))
            if seller_id not in self.sellers:
                return seller_id

    def truth(self, seller_id: str) -> dict[str, dict[str, Any]]:
        seller = self.sellers[seller_id]
        orders = [seller.order(i) for i in range(seller.orders)]
        visible_before = self.state.clock.now() - timedelta(minutes=2)
        orders = [o for o in orders if o["updated"] < visible_before]
        listings = [
            f"{seller.listing(i)['sku']}@{seller.listing_marketplace(i)}"
            for i in range(seller.listings)
            if seller.listing_exists(i)
        ]
        inventory = [
            f"{seller.listing(i)['sku']}@{seller.listing_marketplace(i)}"
            for i in range(seller.fba_items)
            if seller.listing_exists(i)
        ]
        lines = [item["orderItemId"] for order in orders for item in order["items"]]
        return {
            "orders": {"count": len(orders), "checksum": checksum(o["orderId"] for o in orders)},
            "order_lines": {"count": len(lines), "checksum": checksum(lines)},
            "listings": {"count": len(listings), "checksum": checksum(listings)},
            "inventory": {"count": len(inventory), "checksum": checksum(inventory)},
        }

    def mutate(
        self, seller_id: str, *, updates: int = 0, new_orders: int = 0, delete_listings: int = 0
    ) -> dict[str, int]:
        seller = self.sellers[seller_id]
        live = [i for i in range(seller.listings - 1, -1, -1) if seller.listing_exists(i)]
        seller.deleted_listings.update(live[:delete_listings])  # closed on Seller Central
        now = self.state.clock.now()
        start = len(seller.order_updates) + len(seller.added_orders)
        for step in range(min(updates, seller.orders)):
            seller.touch_order((start * 7919 + step * 104729) % seller.orders, now)
        for _ in range(new_orders):
            seller.add_order(now)
        return {
            "updated": updates,
            "new_orders": new_orders,
            "deleted_listings": min(delete_listings, len(live)),
        }

    # --- LWA ------------------------------------------------------------------------------

    def issue_code(self, seller_id: str, region: str, redirect_uri: str | None) -> str:
        code = "ANDa" + secrets.token_urlsafe(18)
        self.codes[code] = Grant(
            seller_id,
            region,
            self.state.clock.monotonic() + CODE_LIFETIME,
            redirect_uri=redirect_uri,
        )
        return code

    def issue_tokens(self, grant: Grant, *, with_refresh: bool) -> dict[str, Any]:
        now = self.state.clock.monotonic()
        access = "Atza|" + secrets.token_urlsafe(40)
        self.access_tokens[access] = Grant(
            grant.seller_id, grant.region, now + ACCESS_TOKEN_LIFETIME, scope=grant.scope
        )
        body: dict[str, Any] = {
            "access_token": access,
            "token_type": "bearer",
            "expires_in": int(ACCESS_TOKEN_LIFETIME),
        }
        if with_refresh:
            refresh = "Atzr|" + secrets.token_urlsafe(60)
            self.refresh_tokens[refresh] = Grant(grant.seller_id, grant.region, float("inf"))
            body["refresh_token"] = refresh
        self.state.remember()
        return body

    # --- the app's client secret: 180 days each, two valid for seven days after a rotation --

    def client_secret_valid(self, secret: str) -> bool:
        now = self.state.clock.now()
        self.app.secret_issued.setdefault(self.app.client_secret, now)
        issued = self.app.secret_issued.get(secret)
        if issued is None:
            return False
        end = issued + LWA_SECRET_LIFETIME
        rotated_out = self.app.secret_expires.get(secret)
        return now < (end if rotated_out is None else min(end, rotated_out))

    def rotate_client_secret(self) -> tuple[str, datetime]:
        """A new secret (Solution Provider Portal's "Rotate secret"); the current ones stop
        working seven days later. Returns the new secret and when the old one ends."""
        now = self.state.clock.now()
        self.app.secret_issued.setdefault(self.app.client_secret, now)
        grace_end = now + OLD_SECRET_GRACE
        for old in self.app.secret_issued:
            ends = self.app.secret_expires.get(old)
            self.app.secret_expires[old] = grace_end if ends is None else min(ends, grace_end)
        new = "amzn1.oa2-cs.v1." + secrets.token_hex(32)
        self.app.client_secret = new
        self.app.secret_issued[new] = now
        return new, grace_end

    def age_client_secret(self, days: float) -> datetime:
        """Make the current secret ``days`` old (platform time): tests reach 180 days."""
        issued = self.state.clock.now() - timedelta(days=days)
        self.app.secret_issued[self.app.client_secret] = issued
        return issued

    # --- the Selling Partner Appstore -----------------------------------------------------

    def issue_appstore_state(self, seller_id: str, host: str) -> str:
        state = "amzn" + secrets.token_urlsafe(24)
        expires = self.state.clock.monotonic() + APPSTORE_STATE_LIFETIME
        self.appstore_states[state] = AppstoreGrant(seller_id, host, expires)
        return state

    def take_appstore_state(self, state: str, host: str) -> AppstoreGrant | None:
        """The grant of an unused, unexpired ``amazon_state`` issued on ``host``; used now."""
        grant = self.appstore_states.get(state)
        if (
            grant is None
            or grant.used
            or grant.host != host
            or grant.expires_at <= self.state.clock.monotonic()
        ):
            return None
        grant.used = True
        return grant

    def authorize(self, seller_id: str) -> None:
        """The seller confirmed the consent page: a revoke is undone."""
        if seller_id in self.revoked:
            self.revoked.discard(seller_id)
            self.state.remember()

    def token_problem(self, token: str | None, region: str) -> tuple[Grant | None, str | None]:
        """The grant behind an access token, or the 403 details Amazon gives for it."""
        grant = self.access_tokens.get(token or "")
        if grant is None or grant.seller_id is None:
            return None, REVOKED
        if grant.seller_id in self.revoked:
            return None, REVOKED
        if self.state.faults.config("amazon", grant.seller_id).revoke_tokens:
            return None, REVOKED
        if grant.expires_at <= self.state.clock.monotonic():
            return None, EXPIRED
        if grant.region != region:
            return None, REVOKED  # authorizations are regional
        return grant, None

    def revoke(self, seller_id: str) -> None:
        self.revoked.add(seller_id)
        for tokens in (self.refresh_tokens, self.access_tokens):
            for token in [t for t, g in tokens.items() if g.seller_id == seller_id]:
                del tokens[token]
        self.state.remember()

    def expire_access_tokens(self, seller_id: str) -> int:
        now = self.state.clock.monotonic()
        expired = 0
        for grant in self.access_tokens.values():
            if grant.seller_id == seller_id:
                grant.expires_at = now
                expired += 1
        self.state.remember()
        return expired

    # --- what a restart keeps (persistence.py) --------------------------------------------

    def remembered(self) -> dict[str, Any]:
        """Refresh and access tokens (live ones; expiries as platform times), revokes, the
        app's configuration and the sellers by their creation parameters and time (their
        data regrows from the seed). Not the report URL signing key: those URLs live five
        minutes and their reports are not kept."""
        clock = self.state.clock
        now = clock.monotonic()

        def grants(table: dict[str, Grant]) -> dict[str, dict[str, Any]]:
            kept = {}
            for token, grant in list(table.items()):
                if grant.expires_at <= now:
                    continue
                forever = grant.expires_at == float("inf")
                kept[token] = {
                    "seller_id": grant.seller_id,
                    "region": grant.region,
                    "scope": grant.scope,
                    "expires": None if forever else clock.moment(grant.expires_at).isoformat(),
                }
            return kept

        return {
            "app": {
                "draft": self.app.draft,
                "redirect_uris": self.app.redirect_uris,
                "login_uri": self.app.login_uri,
                "restricted_roles": self.app.restricted_roles,
            },
            "sellers": {
                seller_id: {
                    "region": seller.region,
                    "marketplaces": list(seller.marketplaces),
                    "orders": seller.initial_orders,
                    "listings": seller.listings,
                    "fba_items": seller.fba_items,
                    "store_name": seller.store_name,
                    "created": seller.created.isoformat(),
                }
                for seller_id, seller in list(self.sellers.items())
            },
            "revoked": sorted(self.revoked),
            "access_tokens": grants(self.access_tokens),
            "refresh_tokens": grants(self.refresh_tokens),
        }

    def restore(self, saved: dict[str, Any]) -> None:
        """Take back what ``remembered`` saved. Raises KeyError, TypeError or ValueError for a
        file that is not what it wrote."""
        clock = self.state.clock
        self.app.draft = bool(saved["app"]["draft"])
        self.app.redirect_uris = list(saved["app"]["redirect_uris"] or [])
        self.app.login_uri = saved["app"].get("login_uri")
        self.app.restricted_roles = bool(saved["app"].get("restricted_roles", False))
        for seller_id, entry in saved["sellers"].items():
            self.create_seller(
                seller_id, entry["region"], entry["marketplaces"],
                created=datetime.fromisoformat(entry["created"]), orders=entry["orders"],
                listings=entry["listings"], fba_items=entry["fba_items"],
                store_name=entry["store_name"],
            )  # fmt: skip
        self.revoked = set(saved["revoked"])
        for table, entries in ((self.access_tokens, saved["access_tokens"]),
                               (self.refresh_tokens, saved["refresh_tokens"])):  # fmt: skip
            for token, entry in entries.items():
                expires = entry["expires"]
                expires_at = (
                    float("inf") if expires is None
                    else clock.reading(datetime.fromisoformat(expires))
                )  # fmt: skip
                table[str(token)] = Grant(
                    entry["seller_id"], entry["region"], expires_at, scope=str(entry["scope"])
                )

    # --- rate limits ----------------------------------------------------------------------

    def bucket(self, seller_id: str, operation: spec.Operation) -> TokenBucket:
        key = (seller_id, f"{operation.model}:{operation.operation_id}")
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = TokenBucket(operation.rate, operation.burst, clock=self.state.clock.monotonic)
            self.buckets[key] = bucket
        return bucket

    def rate_header(self, operation: spec.Operation) -> str:
        """The seller's actual rate in requests per (real) second.

        A faster sandbox clock looks, to a client, like a generous dynamic usage plan: the
        header tells the truth about what the bucket allows, as Amazon's does.
        """
        return f"{operation.rate * self.state.clock.time_scale:g}"
