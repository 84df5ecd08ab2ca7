"""Checks a request the connector sent against Amazon's models: operation, parameters, body.

A recording transport sits between the connector and the sandbox, so tests see exactly what
would go to Amazon.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import jsonschema

from connectors.sandbox.amazon import spec

SP_PATH = re.compile(r"/sp/(na|eu|fe)(/.*)$")


class RecordingTransport(httpx.AsyncHTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.content:
            request.read()
        self.requests.append(request)
        return await super().handle_async_request(request)


def contract_problems(request: httpx.Request) -> list[str]:
    """What in this SP-API request the models do not allow ([] when it conforms)."""
    found = SP_PATH.search(request.url.path)
    if found is None:
        return []  # LWA or a report download, not an SP-API operation
    match = spec.find_operation(request.method, found.group(2))
    if match is None:
        return [f"{request.method} {found.group(2)} is no operation of the models"]
    operation, _ = match
    problems = []
    declared = {p["name"]: p for p in operation.parameters if p.get("in") == "query"}
    given = dict(request.url.params.multi_items())
    for name, value in given.items():
        parameter = declared.get(name)
        if parameter is None:
            problems.append(f"{operation.operation_id}: undeclared query parameter {name}")
            continue
        values = value.split(",") if parameter.get("type") == "array" else [value]
        item = parameter.get("items", parameter) if parameter.get("type") == "array" else parameter
        if "maxItems" in parameter and len(values) > parameter["maxItems"]:
            problems.append(f"{operation.operation_id}: {name} has more than maxItems")
        for one in values:
            if "enum" in item and one not in item["enum"]:
                problems.append(f"{operation.operation_id}: {name}={one} is not in its enum")
            if item.get("type") == "integer" and not one.lstrip("-").isdigit():
                problems.append(f"{operation.operation_id}: {name}={one} is not an integer")
            if item.get("type") == "boolean" and one not in ("true", "false"):
                problems.append(f"{operation.operation_id}: {name}={one} is not a boolean")
    for name, parameter in declared.items():
        if parameter.get("required") and name not in given:
            problems.append(f"{operation.operation_id}: required {name} missing")
    body_parameter = next((p for p in operation.parameters if p.get("in") == "body"), None)
    if body_parameter is not None:
        body: Any = json.loads(request.content) if request.content else None
        schema = {
            **body_parameter["schema"],
            "definitions": spec.load_model(operation.model)["definitions"],
        }
        try:
            jsonschema.Draft4Validator(schema).validate(body)
        except jsonschema.ValidationError as error:
            problems.append(f"{operation.operation_id}: body {error.message}")
    elif request.content:
        problems.append(f"{operation.operation_id}: sends a body the operation does not take")
    if not request.headers.get("x-amz-access-token"):
        problems.append(f"{operation.operation_id}: no x-amz-access-token")
    return problems
