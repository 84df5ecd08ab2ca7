"""Every GraphQL document the hub sends to Shopify, in one place.

A test validates each against Shopify's published Admin schema (2026-10).
"""

from __future__ import annotations

API_VERSION = "2026-10"

# Page sizes keep each query's requested cost under Shopify's 1,000-point limit (a test
# computes every document's cost); the unused part of the cost is refunded by Shopify.
PAGE_SIZES = {"products": 25, "inventory": 30, "orders": 10, "customers": 250}

SHOP = """query Shop {
  shop { name email myshopifyDomain currencyCode ianaTimezone plan { displayName shopifyPlus } }
}"""

PRODUCTS = """query Products($first: Int!, $after: String, $query: String) {
  products(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) {
    nodes {
      id title handle vendor productType status createdAt updatedAt
      variants(first: 15) {
        nodes { id title sku barcode price inventoryQuantity inventoryItem { id } }
      }
    }
    pageInfo { hasNextPage endCursor }
  }
}"""

INVENTORY = """query Inventory($first: Int!, $after: String, $query: String) {
  inventoryItems(first: $first, after: $after, query: $query) {
    nodes {
      id sku updatedAt
      inventoryLevels(first: 8) {
        nodes {
          id updatedAt
          location { id name }
          quantities(names: ["available", "on_hand", "reserved", "incoming"]) { name quantity }
        }
      }
    }
    pageInfo { hasNextPage endCursor }
  }
}"""

ORDERS = """query Orders($first: Int!, $after: String, $query: String) {
  orders(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) {
    nodes {
      id name email createdAt updatedAt cancelledAt currencyCode
      displayFinancialStatus displayFulfillmentStatus
      totalPriceSet { shopMoney { amount currencyCode } }
      customer { id }
      lineItems(first: 15) {
        nodes {
          id sku title quantity
          originalUnitPriceSet { shopMoney { amount } }
          product { id }
          variant { id }
        }
      }
    }
    pageInfo { hasNextPage endCursor }
  }
}"""

CUSTOMERS = """query Customers($first: Int!, $after: String, $query: String) {
  customers(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) {
    nodes {
      id firstName lastName state createdAt updatedAt numberOfOrders
      defaultEmailAddress { emailAddress }
      amountSpent { amount currencyCode }
    }
    pageInfo { hasNextPage endCursor }
  }
}"""

COUNTS = {
    "products": """query ProductsCount($query: String) {
  productsCount(query: $query, limit: null) { count precision }
}""",
    "orders": """query OrdersCount($query: String) {
  ordersCount(query: $query, limit: null) { count precision }
}""",
    "customers": """query CustomersCount($query: String) {
  customersCount(query: $query, limit: null) { count precision }
}""",
}

WEBHOOK_SUBSCRIBE = """mutation WebhookSubscribe($topic: WebhookSubscriptionTopic!, $uri: String!) {
  webhookSubscriptionCreate(topic: $topic, webhookSubscription: {uri: $uri, format: JSON}) {
    webhookSubscription { id topic uri }
    userErrors { field message }
  }
}"""

PRODUCT_BY_ID = """query ProductById($id: ID!) {
  product(id: $id) {
    id title handle vendor productType status createdAt updatedAt
    variants(first: 20) {
      nodes { id title sku barcode price inventoryQuantity inventoryItem { id } }
    }
  }
}"""

ORDER_BY_ID = """query OrderById($id: ID!) {
  order(id: $id) {
    id name email createdAt updatedAt cancelledAt currencyCode
    displayFinancialStatus displayFulfillmentStatus
    totalPriceSet { shopMoney { amount currencyCode } }
    customer { id }
    lineItems(first: 50) {
      nodes {
        id sku title quantity
        originalUnitPriceSet { shopMoney { amount } }
        product { id }
        variant { id }
      }
    }
  }
}"""

ALL_DOCUMENTS = {
    "Shop": SHOP, "Products": PRODUCTS, "Inventory": INVENTORY, "Orders": ORDERS,
    "Customers": CUSTOMERS, "WebhookSubscribe": WEBHOOK_SUBSCRIBE,
    "ProductById": PRODUCT_BY_ID, "OrderById": ORDER_BY_ID,
    **{f"{name.title()}Count": doc for name, doc in COUNTS.items()},
}  # fmt: skip

# Topics the hub subscribes to after connecting (GraphQL enum names).
WEBHOOK_TOPICS = (
    "PRODUCTS_CREATE", "PRODUCTS_UPDATE", "PRODUCTS_DELETE", "ORDERS_CREATE", "ORDERS_UPDATED",
    "ORDERS_DELETE", "CUSTOMERS_CREATE", "CUSTOMERS_UPDATE", "CUSTOMERS_DELETE",
    "INVENTORY_LEVELS_UPDATE", "APP_UNINSTALLED",
)  # fmt: skip
