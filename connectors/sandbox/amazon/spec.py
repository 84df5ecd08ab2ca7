"""What the sandbox knows about SP-API, read from Amazon's own models (vendored in models/).

Operations (method, path template, usage plan), response schemas for validation, and the
``x-amzn-api-sandbox`` static examples all come from the Swagger files, never from us.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MODELS_DIR = Path(__file__).resolve().parent / "models"
MODEL_FILES = (
    "orders-api-model/ordersV0.json",
    "orders-api-model/orders_2026-01-01.json",
    "reports-api-model/reports_2021-06-30.json",
    "listings-items-api-model/listingsItems_2021-08-01.json",
    "fba-inventory-api-model/fbaInventory.json",
    "sellers-api-model/sellers.json",
    "catalog-items-api-model/catalogItems_2022-04-01.json",
    "notifications-api-model/notifications.json",
    "tokens-api-model/tokens_2021-03-01.json",
    "application-management-api-model/application_2023-11-30.json",
)
_USAGE_PLAN = re.compile(r"\|\s*([0-9.]+)\s*\|\s*([0-9.]+)\s*\|")
HTTP_METHODS = ("get", "post", "put", "patch", "delete")
# Sandbox-only operations (FBA createInventoryItem ...) state no plan; Amazon's sandbox
# endpoints allow 5 requests/s with a burst of 15 for every operation.
SANDBOX_PLAN = (5.0, 15)


@dataclass(frozen=True)
class Operation:
    model: str
    operation_id: str
    method: str
    path: str
    rate: float
    burst: int
    parameters: tuple[dict[str, Any], ...]
    responses: dict[str, Any] = field(hash=False, compare=False)
    pattern: re.Pattern[str] = field(hash=False, compare=False, repr=False)

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if method.lower() != self.method:
            return None
        found = self.pattern.fullmatch(path)
        return found.groupdict() if found else None

    def response_schema(self, status: int) -> dict[str, Any] | None:
        response = self.responses.get(str(status)) or {}
        schema = response.get("schema")
        if schema is None:
            return None
        return {**schema, "definitions": load_model(self.model)["definitions"]}

    def static_examples(self) -> list[tuple[int, dict[str, Any], Any]]:
        """(status, request parameters, response) of every static-sandbox example."""
        examples = []
        for status, response in self.responses.items():
            for example in (response.get("x-amzn-api-sandbox") or {}).get("static", []):
                params = (example.get("request") or {}).get("parameters") or {}
                examples.append((int(status), params, example.get("response")))
        return examples


@functools.cache
def load_model(name: str) -> dict[str, Any]:
    model: dict[str, Any] = json.loads((MODELS_DIR / name).read_text())
    return model


def _pattern(path: str) -> re.Pattern[str]:
    regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]*)", re.escape(path))
    return re.compile(regex)


def usage_plan(description: str) -> tuple[float, int]:
    """Rate and burst from the operation's "Usage Plan" table."""
    if "Usage Plan" not in description:
        return SANDBOX_PLAN
    found = _USAGE_PLAN.search(description.split("Usage Plan", 1)[-1])
    if not found:
        raise ValueError("operation has an unreadable usage plan")
    return float(found.group(1)), int(float(found.group(2)))


@functools.cache
def operations() -> tuple[Operation, ...]:
    found = []
    for name in MODEL_FILES:
        model = load_model(name)
        for path, item in model["paths"].items():
            shared = item.get("parameters", [])
            for method in HTTP_METHODS:
                op = item.get(method)
                if op is None:
                    continue
                rate, burst = usage_plan(op.get("description", ""))
                found.append(
                    Operation(
                        model=name,
                        operation_id=op["operationId"],
                        method=method,
                        path=path,
                        rate=rate,
                        burst=burst,
                        parameters=tuple(
                            _resolve(model, p) for p in [*shared, *op.get("parameters", [])]
                        ),
                        responses=op["responses"],
                        pattern=_pattern(path),
                    )
                )
    # Literal segments before templated ones: /orders/v0/orders/{id}/orderItems/buyerInfo
    # must not be taken by a shorter template.
    found.sort(key=lambda op: (-op.path.count("/"), op.path.count("{")))
    return tuple(found)


def _resolve(model: dict[str, Any], parameter: dict[str, Any]) -> dict[str, Any]:
    ref = parameter.get("$ref")
    if not ref:
        return parameter
    resolved: dict[str, Any] = model["parameters"][ref.rsplit("/", 1)[-1]]
    return resolved


def find_operation(method: str, path: str) -> tuple[Operation, dict[str, str]] | None:
    for op in operations():
        params = op.match(method, path)
        if params is not None:
            return op, params
    return None


def operation(operation_id: str, model_hint: str = "") -> Operation:
    for op in operations():
        if op.operation_id == operation_id and model_hint in op.model:
            return op
    raise KeyError(operation_id)
