"""Sandbox Shopify (OAuth, Admin GraphQL API with cost throttling, webhooks)."""

from connectors.sandbox.shopify.app import ShopifySandbox, control_routes, routes

__all__ = ["ShopifySandbox", "control_routes", "routes"]
