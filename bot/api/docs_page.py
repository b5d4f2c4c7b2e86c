"""`/docs`: the API reference as one self-contained HTML page rendered from the OpenAPI document.

FastAPI's own /docs loads Swagger UI's scripts from a public CDN, which leaves an offline or air-gapped install
with a blank page, and no PyPI package here ships those assets. This page needs nothing but the server: no
script, no external style, every endpoint with its parameters, body and responses; `/openapi.json` stays the
machine-readable form for generated clients.
"""

from __future__ import annotations

import html
import json
from typing import Any

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_STYLE = (
    "body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}"
    "h2{margin-top:2rem;border-bottom:1px solid #ddd}code,pre{background:#f5f5f5;padding:.1rem .3rem}"
    "pre{padding:.6rem;overflow:auto}.m{font-weight:700;display:inline-block;min-width:4.5rem}"
    "table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.2rem .5rem;text-align:left}"
)


def _type(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " | ".join(_type(s) for s in schema["anyOf"])
    if schema.get("type") == "array":
        return f"list[{_type(schema.get('items', {}))}]"
    return str(schema.get("type", "any"))


def _operation(path: str, method: str, op: dict[str, Any]) -> str:
    e = html.escape
    parts = [f"<h3><span class=m>{e(method.upper())}</span><code>{e(path)}</code></h3>"]
    if op.get("description") or op.get("summary"):
        parts.append(f"<p>{e(op.get('description') or op.get('summary', ''))}</p>")
    params = op.get("parameters", [])
    if params:
        rows = "".join(
            f"<tr><td><code>{e(p['name'])}</code></td><td>{e(p.get('in', ''))}</td>"
            f"<td>{e(_type(p.get('schema', {})))}</td><td>{'yes' if p.get('required') else ''}</td>"
            f"<td>{e(p.get('description', ''))}</td></tr>"
            for p in params
        )
        parts.append(
            "<table><tr><th>parameter</th><th>in</th><th>type</th><th>required</th><th></th></tr>"
            f"{rows}</table>"
        )
    body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    if body:
        parts.append(f"<p>JSON body: <code>{e(_type(body))}</code></p>")
    responses = ", ".join(
        f"<code>{e(code)}</code> {e(r.get('description', ''))}" for code, r in op.get("responses", {}).items()
    )
    parts.append(f"<p>Responses: {responses}</p>")
    return "\n".join(parts)


def render(spec: dict[str, Any]) -> str:
    """The page for an OpenAPI document."""
    e = html.escape
    info = spec.get("info", {})
    sections = [
        _operation(path, method, op)
        for path, methods in spec.get("paths", {}).items()
        for method, op in methods.items()
    ]
    schemas = "".join(
        f"<h3><code>{e(name)}</code></h3><pre>{e(json.dumps(schema.get('properties', schema), indent=1))}</pre>"
        for name, schema in spec.get("components", {}).get("schemas", {}).items()
    )
    return (
        f"<!doctype html><html><head><meta charset=utf-8><title>{e(info.get('title', 'API'))}</title>"
        f"<style>{_STYLE}</style></head><body><h1>{e(info.get('title', 'API'))} {e(info.get('version', ''))}</h1>"
        f"<p>{e(info.get('description', ''))} Send <code>Authorization: Bearer &lt;token&gt;</code>. "
        "The machine-readable document is <a href=openapi.json>openapi.json</a>.</p>"
        f"<h2>Endpoints</h2>{''.join(sections)}<h2>Schemas</h2>{schemas}</body></html>"
    )


def add_docs(app: FastAPI) -> None:
    """Serve the page at /docs (no token needed, like /openapi.json)."""

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(render(app.openapi()), headers=PAGE_HEADERS)
