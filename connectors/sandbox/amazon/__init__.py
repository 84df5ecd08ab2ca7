"""Sandbox Amazon: Login with Amazon, Seller Central consent and the Selling Partner API."""

from connectors.sandbox.amazon.sandbox import AmazonSandbox

__all__ = ["AmazonSandbox"]
