"""Every GraphQL document the hub sends to Shopify, in one place.

A test validates each against Shopify's published Admin schema (2026-10).
"""

from __future__ import annotations

API_VERSION = "2026-10"

# Page sizes keep each query's requested cost under Shopify's 1,000-point limit (a test
# computes every document's cost); the unused part of the cost is refunded by Shopify.
PAGE_SIZES = {"products": 25, "inventory": 30, "orders": 10, "customers": 250}

SHOP = """query Shop {
  shop {
    name email myshopifyDomain currencyCode ianaTimezone
    plan { publicDisplayName shopifyPlus }
  }
}"""

PRODUCTS = """query Products($first: Int!, $after: String, $query: String) {
  products(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) {
    nodes {
      id title handle vendor productType status createdAt updatedAt
      variants(first: 15) {
        nodes { id title sku barcode price inventoryQuantity inventoryItem { id } }
        pageInfo { hasNextPage endCursor }
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
        pageInfo { hasNextPage endCursor }
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
        pageInfo { hasNextPage endCursor }
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

# --- the rest of a nested connection, when a page's node says hasNextPage -------------------

PRODUCT_VARIANTS = """query ProductVariants($id: ID!, $after: String) {
  product(id: $id) {
    variants(first: 250, after: $after) {
      nodes { id title sku barcode price inventoryQuantity inventoryItem { id } }
      pageInfo { hasNextPage endCursor }
    }
  }
}"""

ORDER_LINE_ITEMS = """query OrderLineItems($id: ID!, $after: String) {
  order(id: $id) {
    lineItems(first: 100, after: $after) {
      nodes {
        id sku title quantity
        originalUnitPriceSet { shopMoney { amount } }
        product { id }
        variant { id }
      }
      pageInfo { hasNextPage endCursor }
    }
  }
}"""

INVENTORY_ITEM_LEVELS = """query InventoryItemLevels($id: ID!, $after: String) {
  inventoryItem(id: $id) {
    inventoryLevels(first: 100, after: $after) {
      nodes {
        id updatedAt
        location { id name }
        quantities(names: ["available", "on_hand", "reserved", "incoming"]) { name quantity }
      }
      pageInfo { hasNextPage endCursor }
    }
  }
}"""

# --- reconciliation: every live id, by ascending id ---------------------------------------------
# Each page asks afresh for ids above the last one seen (`id:>…`) instead of following a
# cursor, so no connection is paged deeper than Shopify's 25,000 objects.

PRODUCT_IDS = """query ProductIds($query: String) {
  products(first: 250, query: $query, sortKey: ID) { nodes { id } pageInfo { hasNextPage } }
}"""

ORDER_IDS = """query OrderIds($query: String) {
  orders(first: 250, query: $query, sortKey: ID) { nodes { id } pageInfo { hasNextPage } }
}"""

CUSTOMER_IDS = """query CustomerIds($query: String) {
  customers(first: 250, query: $query, sortKey: ID) { nodes { id } pageInfo { hasNextPage } }
}"""

# --- bulk operations (backfills of large streams) --------------------------------------------
# The inner queries mirror the paginated documents above; a bulk export reads every node of a
# nested connection, so they carry no `first`. Nested nodes come back as lines of their own
# with `__parentId`; groupObjects places them right after their parent, which lets the
# connector join them while streaming.

BULK_RUN = """mutation BulkOperationRun($query: String!) {
  bulkOperationRunQuery(query: $query, groupObjects: true) {
    bulkOperation { id status createdAt }
    userErrors { field message code }
  }
}"""

BULK_OPERATION = """query BulkOperation($id: ID!) {
  bulkOperation(id: $id) {
    id status errorCode createdAt completedAt objectCount rootObjectCount url
  }
}"""

# Exports not finished on the shop (this app's: bulk operations belong to the app that ran
# them), to cancel the ones no checkpoint follows any more.
BULK_ACTIVE = """query BulkOperationsActive {
  created: bulkOperations(first: 5, query: "status:created") { nodes { id status query } }
  running: bulkOperations(first: 5, query: "status:running") { nodes { id status query } }
}"""

BULK_CANCEL = """mutation BulkOperationCancel($id: ID!) {
  bulkOperationCancel(id: $id) {
    bulkOperation { id status }
    userErrors { field message }
  }
}"""

BULK_PRODUCTS = """query BulkProducts {
  products {
    edges {
      node {
        id title handle vendor productType status createdAt updatedAt
        variants {
          edges { node { id title sku barcode price inventoryQuantity inventoryItem { id } } }
        }
      }
    }
  }
}"""

BULK_INVENTORY = """query BulkInventory {
  inventoryItems {
    edges {
      node {
        id sku updatedAt
        inventoryLevels {
          edges {
            node {
              id updatedAt
              location { id name }
              quantities(names: ["available", "on_hand", "reserved", "incoming"]) { name quantity }
            }
          }
        }
      }
    }
  }
}"""

BULK_ORDERS = """query BulkOrders {
  orders {
    edges {
      node {
        id name email createdAt updatedAt cancelledAt currencyCode
        displayFinancialStatus displayFulfillmentStatus
        totalPriceSet { shopMoney { amount currencyCode } }
        customer { id }
        lineItems {
          edges {
            node {
              id sku title quantity
              originalUnitPriceSet { shopMoney { amount } }
              product { id }
              variant { id }
            }
          }
        }
      }
    }
  }
}"""

BULK_CUSTOMERS = """query BulkCustomers {
  customers {
    edges {
      node {
        id firstName lastName state createdAt updatedAt numberOfOrders
        defaultEmailAddress { emailAddress }
        amountSpent { amount currencyCode }
      }
    }
  }
}"""

# --- deletions: `events` (deletionEvents is deprecated in 2026-10) ------------------------------

PRODUCT_DELETIONS = """query ProductDeletions($after: String, $query: String) {
  events(first: 250, after: $after, query: $query, sortKey: CREATED_AT) {
    nodes {
      id action createdAt
      ... on BasicEvent { subjectId subjectType }
    }
    pageInfo { hasNextPage endCursor }
  }
}"""

LATEST_PRODUCT_DELETIONS = """query LatestProductDeletions {
  events(
    first: 250, query: "subject_type:PRODUCT action:destroy", sortKey: CREATED_AT, reverse: true
  ) {
    nodes { id createdAt }
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
    # One inventory item per variant: the size of an inventory backfill.
    "productVariants": """query ProductVariantsCount($query: String) {
  productVariantsCount(query: $query, limit: null) { count precision }
}""",
}

WEBHOOK_SUBSCRIBE = """mutation WebhookSubscribe($topic: WebhookSubscriptionTopic!, $uri: String!) {
  webhookSubscriptionCreate(topic: $topic, webhookSubscription: {uri: $uri, format: JSON}) {
    webhookSubscription { id topic uri }
    userErrors { field message }
  }
}"""

# The app's own subscriptions (an app sees only those it made): what the periodic check
# compares with WEBHOOK_TOPICS.
WEBHOOK_SUBSCRIPTIONS = """query WebhookSubscriptions($after: String) {
  webhookSubscriptions(first: 100, after: $after) {
    nodes { id topic uri }
    pageInfo { hasNextPage endCursor }
  }
}"""

# The products or orders behind a batch of webhooks, in one query (`nodes(ids:)`, Relay's
# refetch by global id). A node's first page of variants or line items is small, so that a
# full batch stays within the 1,000-point single-query limit even if Shopify prices each id;
# the rest of a longer one is read by the nested follow-up queries (``complete_nested``).
PRODUCTS_BY_IDS = """query ProductsByIds($ids: [ID!]!) {
  nodes(ids: $ids) {
    ... on Product {
      id title handle vendor productType status createdAt updatedAt
      variants(first: 10) {
        nodes { id title sku barcode price inventoryQuantity inventoryItem { id } }
        pageInfo { hasNextPage endCursor }
      }
    }
  }
}"""

ORDERS_BY_IDS = """query OrdersByIds($ids: [ID!]!) {
  nodes(ids: $ids) {
    ... on Order {
      id name email createdAt updatedAt cancelledAt currencyCode
      displayFinancialStatus displayFulfillmentStatus
      totalPriceSet { shopMoney { amount currencyCode } }
      customer { id }
      lineItems(first: 10) {
        nodes {
          id sku title quantity
          originalUnitPriceSet { shopMoney { amount } }
          product { id }
          variant { id }
        }
        pageInfo { hasNextPage endCursor }
      }
    }
  }
}"""

# (document name, document, ids per query) of the batched look-ups, by record kind. Priced
# per id as a `product(id:)` / `order(id:)` of the same fields (23 and 56 points), a full
# batch requests at most 920 and 896 points.
NODES_BY_IDS = {
    "product": ("ProductsByIds", PRODUCTS_BY_IDS, 40),
    "order": ("OrdersByIds", ORDERS_BY_IDS, 16),
}

ALL_DOCUMENTS = {
    "Shop": SHOP, "Products": PRODUCTS, "Inventory": INVENTORY, "Orders": ORDERS,
    "Customers": CUSTOMERS, "WebhookSubscribe": WEBHOOK_SUBSCRIBE,
    "WebhookSubscriptions": WEBHOOK_SUBSCRIPTIONS,
    "ProductsByIds": PRODUCTS_BY_IDS, "OrdersByIds": ORDERS_BY_IDS,
    "BulkOperationRun": BULK_RUN, "BulkOperation": BULK_OPERATION,
    "BulkOperationsActive": BULK_ACTIVE, "BulkOperationCancel": BULK_CANCEL,
    "BulkProducts": BULK_PRODUCTS, "BulkInventory": BULK_INVENTORY, "BulkOrders": BULK_ORDERS,
    "BulkCustomers": BULK_CUSTOMERS, "ProductDeletions": PRODUCT_DELETIONS,
    "LatestProductDeletions": LATEST_PRODUCT_DELETIONS,
    "ProductVariants": PRODUCT_VARIANTS, "OrderLineItems": ORDER_LINE_ITEMS,
    "InventoryItemLevels": INVENTORY_ITEM_LEVELS, "ProductIds": PRODUCT_IDS,
    "OrderIds": ORDER_IDS, "CustomerIds": CUSTOMER_IDS,
    **{f"{name[0].upper()}{name[1:]}Count": doc for name, doc in COUNTS.items()},
}  # fmt: skip

# Topics the hub subscribes to after connecting (GraphQL enum names).
WEBHOOK_TOPICS = (
    "PRODUCTS_CREATE", "PRODUCTS_UPDATE", "PRODUCTS_DELETE", "ORDERS_CREATE", "ORDERS_UPDATED",
    "ORDERS_DELETE", "CUSTOMERS_CREATE", "CUSTOMERS_UPDATE", "CUSTOMERS_DELETE",
    "INVENTORY_LEVELS_UPDATE", "APP_UNINSTALLED",
)  # fmt: skip
