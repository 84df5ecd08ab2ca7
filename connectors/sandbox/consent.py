"""What the sandbox's consent pages share: a form bound to the authorization it answers.

A consent page's forms carry a ``consent_token``: an HMAC, keyed with the app's client
secret, of the authorization request's own parameters (shop or region, client id, redirect
URI, state, scopes). A POST without the token of its request changes nothing: another site
cannot make a visitor's browser approve, create a shop or seller, or pick who signs in
(it cannot read the page, so it cannot know the token), and a form filled for one
authorization cannot answer another. Nothing is kept per page: the token is checked by
computing it again.
"""

from __future__ import annotations

import hashlib
import hmac
import html
from collections.abc import Iterable, Mapping
from html.parser import HTMLParser

TOKEN_FIELD = "consent_token"  # noqa: S105  a form field's name


def consent_token(secret: str, parts: Iterable[str]) -> str:
    """The token of the authorization request whose parameters are ``parts``."""
    message = "\x1f".join(parts).encode()
    return hmac.new(secret.encode(), b"sandbox-consent:" + message, hashlib.sha256).hexdigest()


def token_matches(given: object, secret: str, parts: Iterable[str]) -> bool:
    return isinstance(given, str) and hmac.compare_digest(given, consent_token(secret, parts))


def hidden_fields(fields: Mapping[str, str]) -> str:
    return "".join(
        f'<input type="hidden" name="{html.escape(name)}" value="{html.escape(value)}">'
        for name, value in fields.items()
    )


class _HiddenFields(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "input" and values.get("type") == "hidden" and values.get("name"):
            self.fields[str(values["name"])] = values.get("value") or ""


def form_fields(page: str) -> dict[str, str]:
    """The hidden fields of a consent page's forms (what a browser posts back with a click):
    for the installer, which approves without a browser, and for tests."""
    parser = _HiddenFields()
    parser.feed(page)
    return parser.fields
