"""The sandbox reads the `query:` argument with Shopify's search syntax: ranges joined by AND
(explicit or implied), quoted and spaced timestamps, OR, negation (`-` and `NOT`), groups."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.sandbox_shopify_helpers import SHOP, client, gql, install, sandbox_app

PRODUCTS = """query P($q: String, $sort: ProductSortKeys) {
  products(first: 250, query: $q, sortKey: $sort) { nodes { id updatedAt createdAt } }
}"""


def moment(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def products(c: httpx.AsyncClient, token: str, search: str | None, sort: str = "UPDATED_AT"):
    body = (await gql(c, token, PRODUCTS, {"q": search, "sort": sort})).json()
    assert "errors" not in body, body
    return body["data"]["products"]["nodes"]


@pytest.fixture
async def shop() -> Any:
    app = sandbox_app(seed=3)
    async with client(app) as c:
        await c.post("/_sandbox/shopify/shops", json={"shop": SHOP, "products": 60})
        token = await install(c)
        every = await products(c, token, None)
        assert len(every) == 60
        # Two boundaries that fall on records: A is the 20th updatedAt, B the 40th.
        a, b = every[19]["updatedAt"], every[39]["updatedAt"]
        yield c, token, every, moment(a), moment(b)


def ids(nodes: list[dict[str, Any]]) -> list[str]:
    return [n["id"] for n in nodes]


def spaced(value: datetime) -> str:
    return value.isoformat(sep=" ")  # "2025-01-01 00:11:43+00:00"


async def test_quoted_timestamp_with_a_space_and_an_offset(shop: Any) -> None:
    c, token, every, a, _ = shop
    got = await products(c, token, f"updated_at:>='{spaced(a)}'")
    assert ids(got) == [n["id"] for n in every if moment(n["updatedAt"]) >= a]
    assert len(got) == 41
    naive = await products(c, token, f'updated_at:>="{a.replace(tzinfo=None).isoformat(" ")}"')
    assert ids(naive) == ids(got)  # no offset: read as UTC


async def test_range_joined_by_and_applies_both_ends(shop: Any) -> None:
    c, token, every, a, b = shop
    got = await products(
        c, token, f"updated_at:>='{a.isoformat()}' AND updated_at:<'{b.isoformat()}'"
    )
    assert ids(got) == ids(every[19:39])


async def test_range_joined_by_whitespace_is_an_implied_and(shop: Any) -> None:
    c, token, every, a, b = shop
    got = await products(c, token, f"updated_at:>'{spaced(a)}' updated_at:<='{spaced(b)}'")
    assert ids(got) == ids(every[20:40])


async def test_or_joins_alternatives(shop: Any) -> None:
    c, token, every, a, b = shop
    got = await products(
        c, token, f"updated_at:<'{a.isoformat()}' OR updated_at:>='{b.isoformat()}'"
    )
    assert ids(got) == ids(every[:19] + every[39:])


async def test_and_binds_tighter_than_or_and_parentheses_group(shop: Any) -> None:
    c, token, every, a, b = shop
    first, last = every[0]["id"].rsplit("/", 1)[1], every[-1]["id"].rsplit("/", 1)[1]
    loose = f"id:{first} OR updated_at:>='{a.isoformat()}' updated_at:<'{b.isoformat()}'"
    assert ids(await products(c, token, loose)) == ids(every[:1] + every[19:39])
    grouped = f"(id:{first} OR id:{last}) updated_at:>='{a.isoformat()}'"
    assert ids(await products(c, token, grouped)) == ids(every[-1:])


async def test_negation_with_minus_and_with_not(shop: Any) -> None:
    c, token, every, a, b = shop
    minus = await products(c, token, f"-updated_at:<'{a.isoformat()}'")
    assert ids(minus) == ids(every[19:])
    word = await products(c, token, f"NOT updated_at:<'{a.isoformat()}'")
    assert ids(word) == ids(minus)
    group = f"-(updated_at:>='{a.isoformat()}' updated_at:<'{b.isoformat()}')"
    assert ids(await products(c, token, group)) == ids(every[:19] + every[39:])
    one = every[5]["id"]
    assert ids(await products(c, token, f"-id:{one}")) == [i for i in ids(every) if i != one]


async def test_id_range_with_sort_key_id_and_a_timestamp_term(shop: Any) -> None:
    c, token, every, a, _ = shop
    by_id = sorted(every, key=lambda n: int(n["id"].rsplit("/", 1)[1]))
    low, high = (int(by_id[i]["id"].rsplit("/", 1)[1]) for i in (10, 50))
    search = f"id:>{low} id:<={high} updated_at:>='{spaced(a)}'"
    got = await products(c, token, search, sort="ID")
    assert ids(got) == [n["id"] for n in by_id[11:51] if moment(n["updatedAt"]) >= a]


async def test_created_at_and_counts_follow_the_same_syntax(shop: Any) -> None:
    c, token, every, a, b = shop
    created = moment(every[30]["createdAt"])
    got = await products(c, token, f"created_at:<'{spaced(created)}'")
    assert ids(got) == [n["id"] for n in every if moment(n["createdAt"]) < created]
    count = """query C($q: String) { productsCount(query: $q) { count precision } }"""
    search = f"updated_at:>='{a.isoformat()}' AND updated_at:<'{b.isoformat()}'"
    body = (await gql(c, token, count, {"q": search})).json()
    assert body["data"]["productsCount"] == {"count": 20, "precision": "EXACT"}


async def test_an_invalid_date_is_a_graphql_error_not_a_crash(shop: Any) -> None:
    c, token, *_ = shop
    r = await gql(c, token, PRODUCTS, {"q": "updated_at:>='not a date'"})
    assert r.status_code == 200
    body = r.json()
    assert body["data"] is None or body["data"]["products"] is None
    assert "Invalid date" in body["errors"][0]["message"]
