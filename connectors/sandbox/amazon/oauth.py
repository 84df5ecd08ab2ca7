"""Login with Amazon's token endpoint (``https://api.amazon.com`` -> ``{BASE}/amazon/lwa``)
and the Seller Central consent page (``{BASE}/amazon/sellercentral/{region}``)."""

from __future__ import annotations

import html
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
)

from connectors.amazon.regions import REGIONS
from connectors.sandbox.amazon.sandbox import (
    GRANTLESS_SCOPES,
    AmazonSandbox,
    Grant,
)

# --- Login with Amazon and Seller Central consent -------------------------------------------


def _oauth_error(error: str, description: str, status: int = 400) -> Response:
    return JSONResponse({"error": error, "error_description": description}, status_code=status)


async def lwa_token(request: Request, sandbox: AmazonSandbox) -> Response:
    form = await request.form()
    grant_type = str(form.get("grant_type", ""))
    if (
        form.get("client_id") != sandbox.app.client_id
        or form.get("client_secret") != sandbox.app.client_secret
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
        return JSONResponse(sandbox.issue_tokens(refresh, with_refresh=False))
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
border-radius:8px;padding:1rem}}</style></head><body>
<p><small>Amazon Seller Central &middot; sandbox &middot; region {region}</small></p>
<div class="box"><h1>Authorize {app}</h1>
<p>Signed in as <strong>{store}</strong> (selling partner {seller}).</p>
<p>{app} asks to access your selling partner data in this region through the Selling
Partner API: orders, listings, reports and FBA inventory.</p>
<form method="post"><input type="hidden" name="selling_partner_id" value="{seller}">
<button name="decision" value="approve" type="submit">Confirm</button>
<button name="decision" value="deny" type="submit">Cancel</button></form></div></body></html>"""


def _consent_error(code: str, message: str) -> Response:
    return HTMLResponse(
        f"<!doctype html><html lang='en'><meta charset='utf-8'><title>Error {code}</title>"
        f"<body><h1>We could not authorize the application</h1><p>Error code: <strong>{code}"
        f"</strong></p><p>{html.escape(message)}</p></body></html>",
        status_code=400,
    )


async def consent(request: Request, sandbox: AmazonSandbox) -> Response:
    region = request.path_params["region"]
    params = request.query_params
    if region not in REGIONS:
        return _consent_error("MD9100", "Unknown Seller Central region.")
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
    seller = sandbox.default_seller(region)
    if request.method == "GET":
        page = CONSENT_PAGE.format(
            app="Connector Hub",
            region=region.upper(),
            store=html.escape(seller.store_name),
            seller=html.escape(seller.seller_id),
        )
        return HTMLResponse(page)
    form = await request.form()
    seller_id = str(form.get("selling_partner_id") or seller.seller_id)
    if seller_id not in sandbox.sellers or sandbox.sellers[seller_id].region != region:
        return _consent_error("MD9100", "Unknown selling partner for this region.")
    if form.get("decision") != "approve":
        return HTMLResponse(
            "<!doctype html><html lang='en'><meta charset='utf-8'><title>Not authorized</title>"
            "<body><h1>You did not authorize the application</h1><p>You can close this page."
            "</p></body></html>"
        )
    sandbox.authorize(seller_id)
    code = sandbox.issue_code(seller_id, region, redirect_uri)
    query = urlencode(
        {
            "state": params.get("state", ""),
            "selling_partner_id": seller_id,
            "spapi_oauth_code": code,
        }
    )
    separator = "&" if "?" in redirect_uri else "?"
    return RedirectResponse(f"{redirect_uri}{separator}{query}", status_code=302)
