"""Amazon's static sandbox (``https://sandbox.sellingpartnerapi-{region}.amazon.com``),
below ``{BASE}/amazon/sp-sandbox/{region}``: the models' ``x-amzn-api-sandbox`` examples."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from connectors.amazon.regions import REGIONS
from connectors.sandbox.amazon import spec
from connectors.sandbox.amazon.responses import _request_id, errors_body

# --- the static sandbox (sandbox.sellingpartnerapi-*.amazon.com) ----------------------------


def _normalize(value: Any) -> Any:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return [_normalize(v) for v in value]
    if isinstance(value, dict):
        return {k: _normalize(v) for k, v in value.items()}
    return str(value)


async def _request_values(
    request: Request, operation: spec.Operation, path_params: dict[str, str]
) -> dict[str, Any]:
    values: dict[str, Any] = dict(path_params)
    for parameter in operation.parameters:
        name, where = str(parameter.get("name")), parameter.get("in")
        if where == "query" and name in request.query_params:
            given = request.query_params.getlist(name)
            if parameter.get("type") == "array":
                values[name] = [v for item in given for v in item.split(",")]
            else:
                values[name] = given[0]
        elif where == "header" and name.lower() in request.headers:
            values[name] = request.headers[name.lower()]
    raw = await request.body()
    if raw:
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw.decode(errors="replace")
        # Examples name the body by its declared parameter or, in some models, "body".
        for parameter in operation.parameters:
            if parameter.get("in") == "body":
                values[str(parameter.get("name"))] = body
        values.setdefault("body", body)
    return values


async def static_sandbox(request: Request) -> Response:
    """Answer as Amazon's static sandbox does: the model example whose request matches."""
    path = "/" + request.path_params["path"]
    found = spec.find_operation(request.method, path)
    if found is None or request.path_params["region"] not in REGIONS:
        return JSONResponse(errors_body("NotFound", "Resource not found."), status_code=404)
    operation, path_params = found
    values = _normalize(await _request_values(request, operation, path_params))
    best: tuple[int, int, Any] | None = None  # (matched parameters, status, response)
    for status, parameters, response in operation.static_examples():
        wanted = {  # a parameter given without a value constrains nothing
            name: _normalize(holder["value"])
            for name, holder in parameters.items()
            if "value" in holder
        }
        matches = all(values.get(name) == value for name, value in wanted.items())
        # The most specific example wins, as several may match a request; between equally
        # specific ones (getAccount has a 200 and a 400 without parameters) the first.
        if matches and (best is None or len(wanted) > best[0]):
            best = (len(wanted), status, response)
    if best is not None:
        _, status, response = best
        headers = {"x-amzn-RequestId": _request_id()}
        if 200 <= status < 300:
            headers["x-amzn-RateLimit-Limit"] = "5"
        if response is None:
            return Response(status_code=status, headers=headers)
        return JSONResponse(response, status_code=status, headers=headers)
    return JSONResponse(
        errors_body(
            "InvalidInput",
            "Could not match input arguments with any of the sandbox responses.",
        ),
        status_code=400,
    )
