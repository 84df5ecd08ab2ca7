"""The peers benchmark's TLS proxy (bench/_tls_proxy.py): an unmodified client that speaks to
``https://{shop}.myshopify.com/admin/...`` through it reaches the sandbox's shop, and REST's
Link headers come back in Shopify's form, so following them stays on the proxy."""

from __future__ import annotations

import ssl
import sys
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from _tls_proxy import public_link, sandbox_url, tls_proxy

from tests.sandbox_server import control_headers, running_sandbox, shopify_install

SHOP = "proxy-shop.myshopify.com"


def test_request_targets_map_to_the_shops_path_in_the_sandbox() -> None:
    base = "http://127.0.0.1:8123"
    assert (
        sandbox_url(base + "/", SHOP, "/admin/api/2025-07/orders.json?status=any&limit=250")
        == f"{base}/shopify/{SHOP}/admin/api/2025-07/orders.json?status=any&limit=250"
    )
    assert sandbox_url(base, SHOP, "/admin/oauth/access_scopes.json") == (
        f"{base}/shopify/{SHOP}/admin/oauth/access_scopes.json"
    )
    with pytest.raises(ValueError):
        sandbox_url(base, SHOP, "https://elsewhere.example/admin")  # absolute-form: no


def test_link_headers_are_rewritten_to_the_shops_https_origin() -> None:
    base = "http://127.0.0.1:8123"
    link = (
        f"<{base}/shopify/{SHOP}/admin/api/2026-10/customers.json?limit=50&page_info=abc>; "
        f'rel="previous", <{base}/shopify/{SHOP}/admin/api/2026-10/customers.json?limit=50&'
        'page_info=def>; rel="next"'
    )
    assert public_link(link, base, SHOP) == (
        f"<https://{SHOP}/admin/api/2026-10/customers.json?limit=50&page_info=abc>; "
        f'rel="previous", <https://{SHOP}/admin/api/2026-10/customers.json?limit=50&'
        'page_info=def>; rel="next"'
    )
    other = '<http://127.0.0.1:8123/shopify/other.myshopify.com/admin/x>; rel="next"'
    assert public_link(other, base, SHOP) == other  # another shop's link is not this shop's


def test_a_client_reads_rest_pages_over_https_through_the_proxy() -> None:
    with running_sandbox(seed=3) as (base, _app), tls_proxy(base) as proxy:
        httpx.post(
            f"{base}/_sandbox/shopify/shops",
            headers=control_headers(base),
            json={"shop": SHOP, "products": 1, "orders": 1, "customers": 5},
        ).raise_for_status()
        token = shopify_install(base, SHOP, scopes="read_customers")
        trust = ssl.create_default_context(cafile=str(proxy.ca.ca_file))
        via = f"http://127.0.0.1:{proxy.port}"
        headers = {"X-Shopify-Access-Token": token}
        with httpx.Client(proxy=via, verify=trust, trust_env=False) as client:
            url = f"https://{SHOP}/admin/api/2026-10/customers.json?limit=2"
            ids, pages = [], 0
            while url:
                page = client.get(url, headers=headers)
                assert page.status_code == 200, page.text
                assert page.headers["x-shopify-shop-api-call-limit"].endswith("/40")
                ids += [c["id"] for c in page.json()["customers"]]
                pages += 1
                link = page.headers.get("link", "")
                nexts = [p for p in link.split(", ") if p.endswith('rel="next"')]
                url = nexts[0][1 : nexts[0].index(">")] if nexts else ""
                assert not url or url.startswith(f"https://{SHOP}/admin/api/2026-10/")
            graphql = client.post(
                f"https://{SHOP}/admin/api/2026-10/graphql.json",
                json={"query": "{ shop { myshopifyDomain } }"},
                headers=headers,
            )
            # Not an open proxy: a CONNECT anywhere else is refused before any TLS.
            with pytest.raises(httpx.ProxyError):
                client.get("https://example.com/", headers=headers)
        # A client that does not trust the throwaway CA gets no answer at all.
        with (
            httpx.Client(proxy=via, trust_env=False) as untrusting,
            pytest.raises(httpx.ConnectError),
        ):
            untrusting.get(f"https://{SHOP}/admin/api/2026-10/shop.json", headers=headers)
    assert len(ids) == len(set(ids)) == 5 and pages == 3
    assert graphql.json()["data"]["shop"]["myshopifyDomain"] == SHOP
    assert proxy.counts.refused == 1
