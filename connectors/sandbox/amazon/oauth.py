"""Login with Amazon's token endpoint (``https://api.amazon.com`` -> ``{BASE}/amazon/lwa``)
and the Seller Central consent page of each marketplace's host
(``https://{host}`` -> ``{BASE}/amazon/sellercentral/{host}``, e.g. sellercentral.amazon.com.au)."""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
)

from connectors.amazon.regions import SELLER_CENTRAL_HOSTS
from connectors.sandbox.amazon.sandbox import (
    GRANTLESS_SCOPES,
    AmazonSandbox,
    Grant,
)
from connectors.sandbox.consent import TOKEN_FIELD, consent_token, hidden_fields, token_matches

# --- Login with Amazon and Seller Central consent -------------------------------------------


def _oauth_error(error: str, description: str, status: int = 400) -> Response:
    return JSONResponse({"error": error, "error_description": description}, status_code=status)


async def lwa_token(request: Request, sandbox: AmazonSandbox) -> Response:
    form = await request.form()
    grant_type = str(form.get("grant_type", ""))
    # A secret older than 180 days, or rotated out more than seven days ago, fails like a
    # wrong one: LWA answers invalid_client and every call of the app stops.
    if form.get("client_id") != sandbox.app.client_id or not sandbox.client_secret_valid(
        str(form.get("client_secret", ""))
    ):
        return _oauth_error("invalid_client", "Client authentication failed", 401)
    now = sandbox.state.clock.monotonic()
    if grant_type == "authorization_code":
        code = sandbox.codes.get(str(form.get("code", "")))
        if code is None or code.used or code.expires_at <= now:
            return _oauth_error(
                "invalid_grant", "The request has an invalid grant parameter : code"
            )
        if code.redirect_uri and form.get("redirect_uri") != code.redirect_uri:
            return _oauth_error(
                "invalid_grant", "The redirect_uri does not match the consent request"
            )
        code.used = True
        return JSONResponse(sandbox.issue_tokens(code, with_refresh=True))
    if grant_type == "refresh_token":
        refresh = sandbox.refresh_tokens.get(str(form.get("refresh_token", "")))
        if refresh is None or refresh.seller_id in sandbox.revoked:
            return _oauth_error(
                "invalid_grant",
                "The request has an invalid grant parameter : refresh_token. "
                "User may have revoked or didn't grant the permission.",
            )
        # Login with Amazon answers a refresh with the same refresh token beside the new
        # access token (it does not rotate it).
        body = sandbox.issue_tokens(refresh, with_refresh=False)
        body["refresh_token"] = str(form.get("refresh_token"))
        return JSONResponse(body)
    if grant_type == "client_credentials":
        scope = str(form.get("scope", ""))
        if not scope or not set(scope.split()) <= GRANTLESS_SCOPES:
            return _oauth_error("invalid_scope", "The requested scope is invalid or unknown")
        return JSONResponse(
            sandbox.issue_tokens(Grant(None, None, 0.0, scope=scope), with_refresh=False)
        )
    return _oauth_error("unsupported_grant_type", "The grant type is not supported")


CONSENT_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Authorize {app} - Seller Central (sandbox)</title>
<style>body{{font-family:system-ui,sans-serif;max-width:34rem;margin:2rem auto;padding:0 1rem}}
button{{font-size:1rem;padding:.6rem 1.2rem;margin-right:.5rem}}.box{{border:1px solid #ccc;
border-radius:8px;padding:1rem;margin-bottom:1rem}}fieldset{{border:0;padding:0;margin:0 0 1rem}}
label{{display:block;padding:.3rem 0}}input[type=text]{{font-size:1rem;padding:.4rem;width:100%;
box-sizing:border-box;margin:.3rem 0 .6rem}}.note{{color:#067d62}}.error{{color:#b12704}}</style>
</head><body>
<p><small>Amazon Seller Central &middot; sandbox &middot; {host} &middot; region {region}
</small></p>
<div class="box"><h1>Authorize {app}</h1>{notice}
<p>{app} asks to access your selling partner data in this region through the Selling
Partner API: orders, listings, reports and FBA inventory.</p>
<form method="post">{hidden}<fieldset><legend>Sign in as</legend>{sellers}</fieldset>
<button name="decision" value="approve" type="submit">Confirm</button>
<button name="decision" value="deny" type="submit">Cancel</button></form></div>
<div class="box"><h2>Or create a new seller account</h2>
<p>A new seller in region {region} with a small catalog (sandbox only).</p>
<form method="post">{hidden}<label>Store name
<input type="text" name="store_name" required maxlength="{name_max}"></label>
<button name="decision" value="create" type="submit">Create seller</button></form></div>
</body></html>"""
# A seller made on the consent page: a small catalog, enough to see every stream sync.
NEW_SELLER_SIZES: dict[str, Any] = {"orders": 60, "listings": 40, "fba_items": 20}
STORE_NAME_MAX = 80
CHECKED = " checked"


def _consent_error(code: str, message: str) -> Response:
    return HTMLResponse(
        f"<!doctype html><html lang='en'><meta charset='utf-8'><title>Error {code}</title>"
        f"<body><h1>We could not authorize the application</h1><p>Error code: <strong>{code}"
        f"</strong></p><p>{html.escape(message)}</p></body></html>",
        status_code=400,
    )


def _consent_page(
    sandbox: AmazonSandbox,
    host: str,
    region: str,
    token: str,
    chosen: str,
    notice: str = "",
    status: int = 200,
) -> Response:
    """The consent page: the region's sellers to sign in as (``chosen`` checked), Confirm
    and Cancel, and a form to create a new seller; every form carries ``token``."""
    sellers = "".join(
        f'<label><input type="radio" name="selling_partner_id" '
        f'value="{html.escape(seller.seller_id)}"{CHECKED if seller.seller_id == chosen else ""}>'
        f" <strong>{html.escape(seller.store_name)}</strong> "
        f"<small>(selling partner {html.escape(seller.seller_id)})</small></label>"
        for seller in sandbox.sellers.values()
        if seller.region == region
    )
    page = CONSENT_PAGE.format(
        app="Connector Hub",
        host=html.escape(host),
        region=region.upper(),
        hidden=hidden_fields({TOKEN_FIELD: token}),
        sellers=sellers,
        notice=notice,
        name_max=STORE_NAME_MAX,
    )
    return HTMLResponse(page, status_code=status)


def _request_parts(host: str, params: Mapping[str, str], redirect_uri: str) -> list[str]:
    """What the consent form is bound to: this Seller Central host, app, redirect URI and
    state."""
    return ["amazon", host, params.get("application_id", ""), redirect_uri,
            params.get("state", "")]  # fmt: skip


async def consent(request: Request, sandbox: AmazonSandbox) -> Response:
    host = request.path_params["host"]
    params = request.query_params
    marketplace = SELLER_CENTRAL_HOSTS.get(host)
    if marketplace is None:  # Amazon has no Seller Central there: nothing answers
        return HTMLResponse("<!doctype html><title>Not found</title>", status_code=404)
    region = marketplace.region
    if params.get("application_id") != sandbox.app.app_id:
        return _consent_error("MD1100", "The application id is not valid.")
    if sandbox.app.draft and params.get("version") != "beta":
        return _consent_error(
            "MD1000", "The application is in draft state: the request must include version=beta."
        )
    redirect_uri = params.get("redirect_uri")
    registered = sandbox.app.redirect_uris
    if redirect_uri is None and registered:
        redirect_uri = registered[0]
    if redirect_uri is None or redirect_uri not in registered:
        return _consent_error(
            "MD5101", "The redirect URI is not one of the application's registered redirect URIs."
        )
    parts = _request_parts(host, params, redirect_uri)
    token = consent_token(sandbox.app.client_secret, parts)
    first = sandbox.default_seller(region)  # the region's first seller, made on first use
    if request.method == "GET":
        return _consent_page(sandbox, host, region, token, first.seller_id)
    form = await request.form()
    if not token_matches(form.get(TOKEN_FIELD), sandbox.app.client_secret, parts):
        return HTMLResponse(
            "<!doctype html><html lang='en'><meta charset='utf-8'><title>Session expired</title>"
            "<body><h1>This page has expired</h1><p>The form does not belong to this "
            "authorization request. Start again from the application.</p></body></html>",
            status_code=403,
        )
    decision = form.get("decision")
    if decision == "create":
        name = " ".join(str(form.get("store_name") or "").split())
        if not 0 < len(name) <= STORE_NAME_MAX:
            notice = f'<p class="error">Enter a store name of 1 to {STORE_NAME_MAX} characters.</p>'
            return _consent_page(sandbox, host, region, token, first.seller_id, notice, status=400)
        seller = sandbox.create_seller(
            sandbox.new_seller_id(), region, None, store_name=name, **NEW_SELLER_SIZES
        )
        notice = (
            f'<p class="note">Created <strong>{html.escape(seller.store_name)}</strong> '
            f"(selling partner {html.escape(seller.seller_id)}). Confirm to sign in as it.</p>"
        )
        return _consent_page(sandbox, host, region, token, seller.seller_id, notice)
    seller_id = str(form.get("selling_partner_id") or first.seller_id)
    if seller_id not in sandbox.sellers or sandbox.sellers[seller_id].region != region:
        return _consent_error("MD9100", "Unknown selling partner for this region.")
    separator = "&" if "?" in redirect_uri else "?"
    if decision != "approve":
        # Cancel: Login with Amazon's authorization error response (OAuth 2.0, RFC 6749
        # 4.1.2.1): back to the registered redirect URI with error=access_denied and the state,
        # no code. The app says what happened and offers the way back.
        denied = urlencode(
            {
                "error": "access_denied",
                "error_description": "The selling partner cancelled the authorization.",
                "state": params.get("state", ""),
            }
        )
        return RedirectResponse(f"{redirect_uri}{separator}{denied}", status_code=302)
    sandbox.authorize(seller_id)
    code = sandbox.issue_code(seller_id, region, redirect_uri)
    query = urlencode(
        {
            "state": params.get("state", ""),
            "selling_partner_id": seller_id,
            "spapi_oauth_code": code,
        }
    )
    return RedirectResponse(f"{redirect_uri}{separator}{query}", status_code=302)


# --- the Selling Partner Appstore authorization workflow --------------------------------------
# https://developer-docs.amazon.com/sp-api/docs/selling-partner-appstore-authorization-workflow
# The seller chooses "Authorize now" on the app's detail page and consents; Amazon loads the
# app's Login URI with amazon_callback_uri, amazon_state and selling_partner_id (and
# version=beta for a draft app); the app redirects to amazon_callback_uri with redirect_uri,
# amazon_state and its own state; Amazon then sends the browser to redirect_uri with state,
# selling_partner_id and spapi_oauth_code, as in the website workflow.

APPSTORE_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Connector Hub - Selling Partner Appstore (sandbox)</title>
<style>body{{font-family:system-ui,sans-serif;max-width:34rem;margin:2rem auto;padding:0 1rem}}
button{{font-size:1rem;padding:.6rem 1.2rem}}</style></head><body>
<p><small>Selling Partner Appstore &middot; sandbox &middot; {host}</small></p>
<h1>Connector Hub</h1>
<p>Signed in as <strong>{store}</strong> (selling partner {seller}).</p>
<p>Connector Hub asks to access your selling partner data in this region through the Selling
Partner API: orders, listings, reports and FBA inventory.</p>
<form method="post">{hidden}
<button name="decision" value="approve" type="submit">Authorize now and sign in to
Connector Hub</button></form></body></html>"""


async def appstore_authorize(request: Request, sandbox: AmazonSandbox) -> Response:
    """The app's detail page: "Authorize now" for the signed-in seller (``selling_partner_id``,
    else the region's first), then off to the app's Login URI."""
    host = request.path_params["host"]
    marketplace = SELLER_CENTRAL_HOSTS.get(host)
    if marketplace is None:
        return HTMLResponse("<!doctype html><title>Not found</title>", status_code=404)
    seller_id = request.query_params.get("selling_partner_id") or (
        sandbox.default_seller(marketplace.region).seller_id
    )
    seller = sandbox.sellers.get(seller_id)
    if seller is None or seller.region != marketplace.region:
        return _consent_error("MD9100", "Unknown selling partner for this region.")
    if not sandbox.app.login_uri:
        return _consent_error("MD5110", "The application has no OAuth Login URI.")
    parts = ["amazon-appstore", host, seller_id, sandbox.app.app_id]
    if request.method == "GET":
        token = consent_token(sandbox.app.client_secret, parts)
        return HTMLResponse(
            APPSTORE_PAGE.format(
                host=html.escape(host),
                store=html.escape(seller.store_name),
                seller=html.escape(seller_id),
                hidden=hidden_fields({TOKEN_FIELD: token}),
            )
        )
    form = await request.form()
    if not token_matches(form.get(TOKEN_FIELD), sandbox.app.client_secret, parts):
        return HTMLResponse(
            "<!doctype html><html lang='en'><meta charset='utf-8'><title>Session expired</title>"
            "<body><h1>This page has expired</h1></body></html>",
            status_code=403,
        )
    if form.get("decision") != "approve":
        return _consent_error("MD9000", "You did not authorize the application.")
    base = str(request.url).split("/sellercentral/", 1)[0]
    query = {
        "amazon_callback_uri": f"{base}/sellercentral/{host}/apps/authorize/confirm/"
        f"{sandbox.app.app_id}",
        "amazon_state": sandbox.issue_appstore_state(seller_id, host),
        "selling_partner_id": seller_id,
    }
    if sandbox.app.draft:
        query["version"] = "beta"
    separator = "&" if "?" in sandbox.app.login_uri else "?"
    return RedirectResponse(
        f"{sandbox.app.login_uri}{separator}{urlencode(query)}", status_code=302
    )


async def appstore_confirm(request: Request, sandbox: AmazonSandbox) -> Response:
    """``amazon_callback_uri``: the app came back with amazon_state, its state and its
    redirect_uri; Amazon sends the browser on with the authorization code."""
    host = request.path_params["host"]
    params = request.query_params
    marketplace = SELLER_CENTRAL_HOSTS.get(host)
    if marketplace is None:
        return HTMLResponse("<!doctype html><title>Not found</title>", status_code=404)
    if request.path_params["app_id"] != sandbox.app.app_id:
        return _consent_error("MD1100", "The application id is not valid.")
    if sandbox.app.draft and params.get("version") != "beta":
        return _consent_error(
            "MD1000", "The application is in draft state: the request must include version=beta."
        )
    redirect_uri = params.get("redirect_uri") or next(iter(sandbox.app.redirect_uris), None)
    if redirect_uri is None or redirect_uri not in sandbox.app.redirect_uris:
        return _consent_error(
            "MD5101", "The redirect URI is not one of the application's registered redirect URIs."
        )
    grant = sandbox.take_appstore_state(params.get("amazon_state", ""), host)
    if grant is None:
        return _consent_error(
            "MD9010", "The authorization request is unknown, used or expired. Start again."
        )
    sandbox.authorize(grant.seller_id)
    code = sandbox.issue_code(grant.seller_id, marketplace.region, redirect_uri)
    query = urlencode(
        {
            "state": params.get("state", ""),
            "selling_partner_id": grant.seller_id,
            "spapi_oauth_code": code,
        }
    )
    separator = "&" if "?" in redirect_uri else "?"
    return RedirectResponse(f"{redirect_uri}{separator}{query}", status_code=302)
