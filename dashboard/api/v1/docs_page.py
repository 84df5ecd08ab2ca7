"""``/api/v1/docs``: the API reference as one plain HTML page, rendered from the OpenAPI
document itself (no script and nothing from a CDN: the hub's CSP allows neither, and the
page must work on a machine without internet)."""

from __future__ import annotations

import html
import json
from typing import Any

_STYLE = """body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}
code,pre{font:13px ui-monospace,monospace;background:#f4f4f5;padding:.1rem .3rem;border-radius:4px}
pre{padding:.6rem;overflow:auto}h2{margin-top:2.5rem;border-bottom:1px solid #ddd}
.op{margin:1.2rem 0;padding:.6rem 1rem;border-left:4px solid #3b82f6;background:#fafafa}
.m{font-weight:700;margin-right:.5rem}table{border-collapse:collapse}td,th{padding:.2rem .6rem;
text-align:left;border-bottom:1px solid #eee;vertical-align:top}"""


def _ref_name(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if schema.get("type") == "array":
        return f"list of {_ref_name(schema.get('items', {}))}"
    if "anyOf" in schema:
        return " or ".join(_ref_name(s) for s in schema["anyOf"])
    return str(schema.get("type", "object"))


def render(document: dict[str, Any]) -> str:
    esc = html.escape
    info = document.get("info", {})
    title = esc(info.get("title", ""))
    out = [
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{title}"
        f"</title><style>{_STYLE}</style></head><body>",
        f"<h1>{esc(info.get('title', ''))} <small>{esc(info.get('version', ''))}</small></h1>",
        f"<p>{esc(info.get('description', ''))}</p>",
        '<p>Machine-readable: <a href="openapi.json">openapi.json</a> (OpenAPI 3.1). '
        "Authenticate with <code>Authorization: Bearer chk_...</code>.</p>",
    ]
    out.append("<h2>Operations</h2>")
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            out.append(
                f"<div class=op><p><span class=m>{esc(method.upper())}</span>"
                f"<code>{esc(path)}</code> — {esc(operation.get('summary', ''))}</p>"
            )
            if operation.get("description"):
                out.append(f"<p>{esc(operation['description'])}</p>")
            params = operation.get("parameters", [])
            if params:
                out.append("<table><tr><th>parameter</th><th>in</th><th>type</th><th></th></tr>")
                for param in params:
                    out.append(
                        f"<tr><td><code>{esc(param['name'])}</code></td><td>{esc(param['in'])}"
                        f"</td><td>{esc(_ref_name(param.get('schema', {})))}</td>"
                        f"<td>{esc(param.get('description', ''))}</td></tr>"
                    )
                out.append("</table>")
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body:
                out.append(f"<p>Body: <code>{esc(_ref_name(body.get('schema', {})))}</code></p>")
            answers = ", ".join(
                f"{esc(code)} {esc(answer.get('description', ''))}"
                for code, answer in operation.get("responses", {}).items()
            )
            out.append(f"<p>Answers: {answers}</p></div>")
    out.append("<h2>Schemas</h2>")
    for name, schema in document.get("components", {}).get("schemas", {}).items():
        out.append(
            f"<h3 id={esc(name)}>{esc(name)}</h3><pre>{esc(json.dumps(schema, indent=1))}</pre>"
        )
    out.append("</body></html>")
    return "".join(out)
