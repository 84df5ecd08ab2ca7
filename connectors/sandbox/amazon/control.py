"""Sandbox Amazon's control routes (below ``{BASE}/_sandbox/amazon``) and its demo
profile."""

from __future__ import annotations

import asyncio
import logging

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from connectors.sandbox.amazon.sandbox import (
    DEMO_SELLER,
    DEMO_SIZES,
    AmazonSandbox,
)

log = logging.getLogger("sandbox.amazon.demo")

# --- control API ----------------------------------------------------------------------------


def control_routes(sandbox: AmazonSandbox) -> list[BaseRoute]:
    async def create_seller(request: Request) -> Response:
        body = await request.json()
        seller_id = str(body.pop("selling_partner_id", "") or "")
        if not seller_id.isalnum() or not 8 <= len(seller_id) <= 20:
            return JSONResponse(
                {"error": "selling_partner_id must be 8-20 letters/digits"}, status_code=400
            )
        try:
            seller = sandbox.create_seller(
                seller_id,
                body.pop("region", "na"),
                body.pop("marketplaces", None),
                **body,
            )
        except (TypeError, ValueError) as error:
            return JSONResponse({"error": str(error)}, status_code=400)
        return JSONResponse(
            {
                "selling_partner_id": seller.seller_id,
                "region": seller.region,
                "marketplaces": list(seller.marketplaces),
                "orders": seller.orders,
                "listings": seller.listings,
                "fba_items": seller.fba_items,
            },
            status_code=201,
        )

    def seller_or_404(request: Request) -> str | Response:
        seller_id = request.path_params["seller"]
        if seller_id not in sandbox.sellers:
            return JSONResponse({"error": "unknown seller"}, status_code=404)
        return seller_id

    async def truth(request: Request) -> Response:
        seller_id = seller_or_404(request)
        if isinstance(seller_id, Response):
            return seller_id
        streams = await asyncio.to_thread(sandbox.truth, seller_id)
        return JSONResponse({"selling_partner_id": seller_id, "streams": streams})

    async def mutate(request: Request) -> Response:
        seller_id = seller_or_404(request)
        if isinstance(seller_id, Response):
            return seller_id
        body = await request.json()
        return JSONResponse(
            sandbox.mutate(
                seller_id,
                updates=int(body.get("updates", 0)),
                new_orders=int(body.get("new_orders", 0)),
                delete_listings=int(body.get("delete_listings", 0)),
            )
        )

    async def revoke(request: Request) -> Response:
        seller_id = seller_or_404(request)
        if isinstance(seller_id, Response):
            return seller_id
        sandbox.revoke(seller_id)
        return JSONResponse({"revoked": seller_id})

    async def expire_tokens(request: Request) -> Response:
        seller_id = seller_or_404(request)
        if isinstance(seller_id, Response):
            return seller_id
        return JSONResponse({"expired": sandbox.expire_access_tokens(seller_id)})

    async def report_outcome(request: Request) -> Response:
        seller_id = seller_or_404(request)
        if isinstance(seller_id, Response):
            return seller_id
        outcome = (await request.json()).get("outcome")
        if outcome not in (None, "DONE", "CANCELLED", "FATAL"):
            return JSONResponse(
                {"error": "outcome must be DONE, CANCELLED, FATAL or null"}, status_code=400
            )
        if outcome is None:
            sandbox.report_outcomes.pop(seller_id, None)
        else:
            sandbox.report_outcomes[seller_id] = outcome
        return JSONResponse({"selling_partner_id": seller_id, "outcome": outcome})

    async def configure_app(request: Request) -> Response:
        body = await request.json()
        if "draft" in body:
            sandbox.app.draft = bool(body["draft"])
        if "restricted_roles" in body:
            sandbox.app.restricted_roles = bool(body["restricted_roles"])
        if "redirect_uris" in body:
            uris = body["redirect_uris"]
            if not (
                isinstance(uris, list)
                and all(isinstance(u, str) and u.startswith(("http://", "https://")) for u in uris)
            ):
                return JSONResponse(
                    {"error": "redirect_uris must be a list of http(s) URLs"}, status_code=400
                )
            sandbox.app.redirect_uris = uris
        if "login_uri" in body:
            login_uri = body["login_uri"]
            if login_uri is not None and not (
                isinstance(login_uri, str) and login_uri.startswith(("http://", "https://"))
            ):
                return JSONResponse({"error": "login_uri must be an http(s) URL"}, status_code=400)
            sandbox.app.login_uri = login_uri
        sandbox.state.remember()
        return JSONResponse(
            {
                "app_id": sandbox.app.app_id,
                "draft": sandbox.app.draft,
                "redirect_uris": sandbox.app.redirect_uris,
                "login_uri": sandbox.app.login_uri,
                "restricted_roles": sandbox.app.restricted_roles,
            }
        )

    async def rotate_secret(_: Request) -> Response:
        """Solution Provider Portal's "Rotate secret": the new secret once; the old one
        keeps working seven days."""
        new, old_ends = sandbox.rotate_client_secret()
        return JSONResponse({"client_secret": new, "previous_secret_expires": old_ends.isoformat()})

    async def age_secret(request: Request) -> Response:
        days = (await request.json()).get("days")
        if not isinstance(days, int | float) or not 0 <= days <= 3650:
            return JSONResponse({"error": "days must be a number of days"}, status_code=400)
        issued = sandbox.age_client_secret(float(days))
        return JSONResponse({"issued": issued.isoformat()})

    async def stats(_: Request) -> Response:
        return JSONResponse(sandbox.stats)

    seller = "/amazon/sellers/{seller:str}"
    return [
        Route("/amazon/sellers", create_seller, methods=["POST"]),
        Route(f"{seller}/truth", truth, methods=["GET"]),
        Route(f"{seller}/mutate", mutate, methods=["POST"]),
        Route(f"{seller}/revoke", revoke, methods=["POST"]),
        Route(f"{seller}/expire-tokens", expire_tokens, methods=["POST"]),
        Route(f"{seller}/report-outcome", report_outcome, methods=["PUT"]),
        Route("/amazon/app", configure_app, methods=["PUT"]),
        Route("/amazon/app/rotate-secret", rotate_secret, methods=["POST"]),
        Route("/amazon/app/secret-age", age_secret, methods=["PUT"]),
        Route("/amazon/stats", stats, methods=["GET"]),
    ]


def seed_demo(sandbox: AmazonSandbox) -> None:
    """Create the demo seller unless a restarted sandbox has it already (from its state file:
    same parameters and creation time, same data)."""
    if DEMO_SELLER not in sandbox.sellers:
        sandbox.create_seller(
            DEMO_SELLER, "na", None, store_name="Demo Outdoor Co. (Amazon)", **DEMO_SIZES
        )


# Real seconds between two rounds of demo changes (Amazon sends the hub no webhooks: its
# scheduled syncs pick them up).
DEMO_EVERY = 10.0


async def run_demo_changes(
    sandbox: AmazonSandbox, stop: asyncio.Event, every: float = DEMO_EVERY
) -> None:
    """A new order and two listing updates for the demo seller every ``every`` seconds, so
    the dashboard shows activity."""
    while True:
        try:
            await asyncio.wait_for(stop.wait(), timeout=every)
            return
        except TimeoutError:
            pass
        if DEMO_SELLER not in sandbox.sellers:
            continue
        try:
            sandbox.mutate(DEMO_SELLER, updates=2, new_orders=1)
        except Exception:  # one bad round must not end the demo
            log.exception("demo changes for %s failed", DEMO_SELLER)
