"""A banner on every page opened at another address than the hub's public URL.

The hub's websocket accepts only its own origin (``rxconfig.py``), and sign-in only posts from
it (``api/session.py``). A page opened at another address for the same server (the demo at
http://127.0.0.1:3000 instead of http://localhost:3000, a proxy's name that is not
``HUB_PUBLIC_URL``) therefore loads but can neither sign in nor show live data, and Reflex
says only "Cannot connect to server". This script runs in the browser before the websocket
matters, compares the page's origin with the hub's, and says where to go instead.

It is an inline script built into every page, so the Content-Security-Policy allows it by its
hash (``api/security_headers.py``). It is appended to ``<body>`` beside the app, which React
leaves alone when it hydrates.
"""

from __future__ import annotations

import json

import reflex as rx

BANNER_ID = "hub-wrong-address"

_SCRIPT = """(function () {
  var hub = %(origin)s;
  if (window.location.origin.toLowerCase() === hub) return;
  function show() {
    if (document.getElementById(%(banner_id)s)) return;
    var here = hub + window.location.pathname + window.location.search;
    var banner = document.createElement("div");
    banner.id = %(banner_id)s;
    banner.setAttribute("role", "alert");
    banner.style.cssText = "position:fixed;top:0;left:0;right:0;z-index:2147483647;" +
      "padding:12px 16px;background:#fff4e5;color:#4d2c00;border-bottom:1px solid #e8a33d;" +
      "font:15px/1.5 system-ui,sans-serif";
    banner.appendChild(document.createTextNode(
      "This hub answers at " + hub + ", not at " + window.location.origin +
      ": from this address you cannot sign in and nothing updates. "));
    var link = document.createElement("a");
    link.href = here;
    link.textContent = "Open " + here;
    link.style.cssText = "color:inherit;font-weight:600";
    banner.appendChild(link);
    document.body.appendChild(banner);
  }
  // Again after React has hydrated the page, should it have dropped the banner.
  if (document.body) show(); else document.addEventListener("DOMContentLoaded", show);
  window.addEventListener("load", function () { setTimeout(show, 500); });
})();"""


def wrong_address_script(hub_origin: str) -> rx.Component:
    """The inline script for a hub whose public origin is ``hub_origin`` (scheme://host[:port],
    lower case)."""
    # rx.el.script, not rx.script: the latter is added by react-helmet after hydration, out
    # of the served HTML, so the CSP (which hashes the HTML's inline scripts) would block it.
    return rx.el.script(
        _SCRIPT % {"origin": json.dumps(hub_origin), "banner_id": json.dumps(BANNER_ID)}
    )
