"""Sandbox Shopify's public HTTP face: the OAuth consent and token endpoints, the Admin
GraphQL API and bulk result downloads, below ``{BASE}/shopify``."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
import json
import random
import re
import time
from urllib.parse import urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import BaseRoute, Route

from connectors.sandbox.consent import TOKEN_FIELD, consent_token, hidden_fields, token_matches
from connectors.sandbox.shopify import bulk, rest_api, versions
from connectors.sandbox.shopify.graphql_api import admin_schema, run_query
from connectors.sandbox.shopify.sandbox import (
    INVALID_TOKEN,
    SHOP_PATTERN,
    ShopifySandbox,
)

# --- HTTP: OAuth -------------------------------------------------------------------------------


RETURN_FIELD = "return_to"  # the app page the merchant came from (the way back after a cancel)


def _same_origin(url: str, other: str) -> bool:
    first, second = urlsplit(url), urlsplit(other)
    return bool(first.scheme and first.netloc) and (first.scheme, first.netloc) == (
        second.scheme,
        second.netloc,
    )


def query_hmac(params: dict[str, str], secret: str) -> str:
    message = "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k != "hmac")
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


# A store's permanent domain, as Shopify mints them: installs happen only there.
SHOP_DOMAIN = re.compile(r"[a-z0-9][a-z0-9-]{0,59}\.myshopify\.com")

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
        form: dict[str, str] = {}
        if request.method == "POST":
            form = {k: str(v) for k, v in (await request.form()).items()}
            params.update(form)
        if not SHOP_DOMAIN.fullmatch(shop):  # Shopify installs only on a store's myshopify.com
            return _page("There's no store at this address", f"<p>{html.escape(shop)}</p>", 404)
        client_id = params.get("client_id", "")
        # A custom-distribution app installs only on its own store.
        app_secret = sandbox.app_secret(client_id, shop)
        if app_secret is None:
            return _page("Unknown app", "<p>The client_id does not belong to an app.</p>", 400)
        redirect_uri = params.get("redirect_uri", "")
        if redirect_uri not in sandbox.redirect_uris:
            # Shopify sends the code only to one of the app's allowed redirection URLs: an
            # error page, never a redirect (no open redirect, no code for a stranger).
            return _page(
                "Oauth error invalid_request",
                "<p>The redirect_uri is not whitelisted: it is not one of the app's allowed "
                "redirection URLs.</p>",
                400,
            )
        scopes = params.get("scope", "")
        # The forms answer this authorization request only (connectors/sandbox/consent.py).
        bound = ["shopify", shop, client_id, redirect_uri, params.get("state", ""), scopes]
        token = consent_token(app_secret, bound)
        request_fields = {
            k: v for k, v in params.items() if k not in ("decision", TOKEN_FIELD, RETURN_FIELD)
        }
        # Where the merchant came from (the app's page that sent them here), for the way back
        # after a cancel: only a page of the app's own site (a redirect URI's origin).
        came_from = form.get(RETURN_FIELD) or request.headers.get("referer", "")
        return_to = came_from if _same_origin(came_from, redirect_uri) else ""
        hidden = hidden_fields({**request_fields, TOKEN_FIELD: token})
        if request.method == "POST" and not token_matches(
            form.get(TOKEN_FIELD), app_secret, bound
        ):
            return _page(
                "This page has expired",
                "<p>The form does not belong to this installation request. Start again from "
                "the app.</p>",
                403,
            )
        decision = form.get("decision")  # a click: only ever posted
        if request.method == "GET":
            items = "".join(f"<li>{html.escape(s)}</li>" for s in scopes.split(",") if s)
            if shop in sandbox.shops:
                who = f"<p>Logged in as the owner of <strong>{html.escape(shop)}</strong>.</p>"
                install = "<button name='decision' value='approve'>Install app</button>"
            else:
                # On Shopify the merchant logs in to a store that exists; in the sandbox any
                # myshopify.com name can become one, on the merchant's say-so.
                who = (
                    f"<p>There is no store at <strong>{html.escape(shop)}</strong> in this "
                    "sandbox yet. On Shopify you would log in to your store; here you can "
                    "create it, with a small generated catalog, orders and customers.</p>"
                )
                install = (
                    "<button name='decision' value='create'>Create store and install app</button>"
                )
            return _page(
                f"Install app on {shop}?",
                f"{who}<p>The app asks for these permissions:</p><ul>{items}</ul>"
                f"<form method='post'>{hidden}{hidden_fields({RETURN_FIELD: return_to})}{install}"
                "<button name='decision' value='deny'>Cancel</button></form>",
            )
        if decision == "create" and shop not in sandbox.shops:
            sandbox.create_shop(shop)  # small: ShopData's default sizes
        elif decision in ("approve", "create") and shop not in sandbox.shops:
            return _page("There's no store at this address", f"<p>{html.escape(shop)}</p>", 404)
        if decision not in ("approve", "create"):
            # Shopify sends nothing to the app when the merchant cancels (no redirect, no
            # error parameter): the merchant stays in their admin, which leads on from there.
            # The sandbox has no admin, so its page leads back to where the merchant came from.
            way_back = (
                f"<p><a href='{html.escape(return_to)}'>Back to the app</a></p>"
                if return_to
                else ""
            )
            return _page(
                "Installation cancelled",
                f"<p>The app was not installed on {html.escape(shop)}.</p>{way_back}",
            )
        code = sandbox.install(shop, scopes, client_id)
        back = {
            "code": code,
            "host": _host(shop),
            "shop": shop,
            "state": params.get("state", ""),
            "timestamp": str(int(time.time())),  # wall clock: the hub checks its age
        }
        back["hmac"] = query_hmac(back, app_secret)
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
        app_secret = sandbox.app_secret(params.get("client_id"), shop)
        if app_secret is None or not hmac.compare_digest(
            params.get("client_secret", "").encode(), app_secret.encode()
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
                or grant.app != params.get("client_id")
                or shop in sandbox.revoked
                or (grant.expires_at or 0) <= now
            ):
                if grant is not None:
                    sandbox.state.remember()  # consumed: it stays refused after a restart
                return JSONResponse(
                    {"error": "invalid_grant", "error_description": "refresh token is invalid"},
                    status_code=400,
                )
            return JSONResponse(
                sandbox.issue_token(shop, grant.scopes, expiring=True, app=grant.app)
            )
        grant = sandbox.codes.get(params.get("code", ""))
        if (
            grant is None
            or grant.shop != shop
            or grant.app != params.get("client_id")
            or grant.used
            or (grant.expires_at or 0) <= now
        ):
            return JSONResponse(
                {
                    "error": "invalid_request",
                    "error_description": "The authorization code was not found or was already used",
                },
                status_code=400,
            )
        grant.used = True
        expiring = params.get("expiring") in ("1", "true")
        return JSONResponse(
            sandbox.issue_token(shop, grant.scopes, expiring=expiring, app=grant.app)
        )

    async def graphql_endpoint(request: Request) -> Response:
        shop_name = request.path_params["shop"]
        answering = versions.answering_version(request.path_params["version"])
        if answering is None:
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
            return JSONResponse(
                {"errors": INVALID_TOKEN},
                status_code=401,
                headers={"X-Shopify-API-Version": answering},
            )
        try:
            payload = await request.json()
            query = payload["query"]
        except (ValueError, KeyError, TypeError):
            return JSONResponse(
                {"errors": {"query": "Required parameter missing or invalid"}}, status_code=400
            )
        shop = sandbox.shops[shop_name]
        usage = sandbox.usage_of(shop_name)
        usage.graphql_requests += 1
        if fault == "throttle":
            sandbox.buckets[shop_name].available = 0.0
        # Where this Shopify is served (for bulk result urls), as the client reached it.
        own_url = str(request.url).split("?", 1)[0]
        base_url = own_url[: own_url.rindex(f"/{shop_name}/admin/")]
        paid: list[int] = []  # what the bucket was charged: only that can be refunded

        def charge(cost: int) -> bool:
            charged = sandbox.charge(shop_name, cost)
            if charged:
                paid.append(cost)
            return charged

        # Executing a page of 250 nodes is CPU work: keep it off the (shared) event loop.
        body = await asyncio.to_thread(
            run_query,
            shop,
            query,
            payload.get("variables"),
            {"sandbox": sandbox, "base_url": base_url, "grant": grant},
            charge=charge,
        )
        bulk.start_pending(sandbox, admin_schema())
        requested, actual = body.pop("_cost", (0, 0))
        # A query refused before it was charged (over the 1,000-point maximum) refunds nothing.
        if paid and actual is not None and requested > actual:
            sandbox.refund(shop_name, requested - actual)
        if actual is None:
            sandbox.stats["throttled"] += 1
            usage.throttled += 1
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
        return Response(
            text, media_type="application/json", headers={"X-Shopify-API-Version": answering}
        )

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
        return FileResponse(op.path, media_type="application/jsonl", filename=op.filename)

    return [
        Route("/_bulk/{key:str}.jsonl", bulk_result, methods=["GET"]),
        Route(f"/{SHOP_PATTERN}/admin/oauth/authorize", authorize, methods=["GET", "POST"]),
        Route(f"/{SHOP_PATTERN}/admin/oauth/access_token", access_token, methods=["POST"]),
        Route(
            f"/{SHOP_PATTERN}/admin/api/{{version:str}}/graphql.json",
            graphql_endpoint,
            methods=["POST"],
        ),
        *rest_api.routes(sandbox, SHOP_PATTERN),  # legacy REST, for peers (the hub: GraphQL)
    ]


def signed_app_query(app_secret: str, shop: str) -> str:
    """The query Shopify adds to the app URL when a merchant opens (or installs) the app:
    ``hmac`` is the HMAC-SHA256 of the other parameters, sorted, with the app's secret."""
    query = {"host": _host(shop), "shop": shop, "timestamp": str(int(time.time()))}
    query["hmac"] = query_hmac(query, app_secret)
    return urlencode(query)


def _host(shop: str) -> str:
    import base64

    return base64.b64encode(f"{shop}/admin".encode()).decode().rstrip("=")
