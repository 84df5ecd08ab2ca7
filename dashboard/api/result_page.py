"""Small standalone pages the OAuth routes answer with: a clear result, never a stack trace."""

from __future__ import annotations

import html
import uuid

from starlette.responses import HTMLResponse

from dashboard.settings import get_settings


def result_page(
    title: str, message: str, *, ok: bool, status: int = 200, action: tuple[str, str] | None = None
) -> HTMLResponse:
    """A phone-friendly page saying what happened and what to do next."""
    org = html.escape(get_settings().org_name)
    color = "#1a7f37" if ok else "#c62828"
    icon = "&#10003;" if ok else "&#9888;"
    link = ""
    if action is not None:
        label, href = action
        link = f"<p><a class='button' href='{html.escape(href)}'>{html.escape(label)}</a></p>"
    return HTMLResponse(
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)} · {org}</title><style>"
        "body{font-family:system-ui,-apple-system,sans-serif;margin:0;background:#f6f7f9;"
        "color:#1c2024}main{max-width:30rem;margin:10vh auto;background:#fff;padding:2rem;"
        "border-radius:12px;box-shadow:0 1px 4px #0002}h1{font-size:1.4rem}"
        f".icon{{font-size:2.5rem;color:{color}}}.button{{display:inline-block;"
        "background:#3e63dd;color:#fff;padding:.6rem 1.1rem;border-radius:8px;"
        "text-decoration:none}</style></head><body><main>"
        f"<div class='icon' aria-hidden='true'>{icon}</div><h1>{html.escape(title)}</h1>"
        f"<p>{html.escape(message)}</p>{link}<p style='color:#60646c;font-size:.85rem'>"
        f"{org}</p></main></body></html>",
        status_code=status,
    )


def account_taken_page(*, account: str, holder_id: uuid.UUID, holder_name: str) -> HTMLResponse:
    """The callback refused a second integration for one shop or seller: say which
    integration has it and link to that one."""
    settings = get_settings()
    return result_page(
        "Already connected",
        f"{account} is already connected to {settings.org_name} through the integration "
        f"\u201c{holder_name}\u201d, so it was not connected a second time: one account syncs "
        "through one integration (two would compete for the same rate limit). Reconnect or "
        "manage it from that integration.",
        ok=False,
        status=409,
        action=(
            f"Open \u201c{holder_name}\u201d",
            f"{settings.public_url}/integrations/{holder_id}",
        ),
    )
