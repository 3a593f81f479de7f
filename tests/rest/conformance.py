"""What a REST response must look like, read from sdk/openapi/openapi.json, and a record of the
routes the suite exercised.

Every response that passes through `RestClient` is checked here (a requests response hook):

- the security headers the README promises are present;
- a JSON success body matches the route's response schema, made strict: no property the schema
  does not list (a misspelt or camelCase field fails), and every field the transcoder must print
  even at its default value (`always_print_primitive_fields`: scalars, enums, repeated fields)
  is present, int64 values are decimal strings, timestamps RFC 3339;
- a JSON error body is a google.rpc.Status and its HTTP status is the one Envoy maps its code to.

`HITS` collects (method, path template, status) for test_zz_coverage.py, which fails when a
route of openapi.json or of the README's API table was never answered with a 2xx.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import re
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, List, Optional, Set, Tuple

import requests
from jsonschema import FormatChecker
from openapi_schema_validator import OAS30ReadValidator
from rfc3339_validator import validate_rfc3339

ROOT = Path(__file__).resolve().parents[2]
OPENAPI = json.loads((ROOT / "sdk/openapi/openapi.json").read_text())

sys.path.insert(0, str(ROOT / "sdk/openapi"))
from test_openapi import readme_routes  # noqa: E402  (the README table parser, shared)

# google.rpc.Code -> HTTP status, as Envoy's transcoder maps them (grpc/http_status.cc).
HTTP_FOR_CODE = {
    1: 499, 2: 500, 3: 400, 4: 504, 5: 404, 6: 409, 7: 403, 8: 429, 9: 400, 10: 409,
    11: 400, 12: 501, 13: 500, 14: 503, 15: 500, 16: 401,
}
SECURITY_HEADERS = (
    "x-content-type-options",
    "x-frame-options",
    "strict-transport-security",
    "content-security-policy",
    "referrer-policy",
    "permissions-policy",
)

# (method, template) -> HTTP statuses seen.
HITS: Dict[Tuple[str, str], Set[int]] = defaultdict(set)


def _always_printed(prop: Dict[str, Any]) -> bool:
    """Whether the transcoder prints this field even at its default value. Message fields
    (references, and the well-known Timestamp/Duration/FieldMask the document inlines as
    strings, `x-well-known`) are
    omitted when unset, and so is a oneof member (a proto3 `optional` field too) that is not the
    one set (`x-oneof`); everything else is a primitive, an enum, a repeated field or a map."""
    if "$ref" in prop or "allOf" in prop or "x-oneof" in prop or "x-well-known" in prop:
        return False
    kind = prop.get("type")
    return kind in ("integer", "number", "boolean", "array", "object")


def _strict(node: Any) -> Any:
    if isinstance(node, dict):
        node = {k: _strict(v) for k, v in node.items()}
        props = node.get("properties")
        if node.get("type") == "object" and isinstance(props, dict) and "@type" not in props:
            node.setdefault("additionalProperties", False)
            always = [name for name, prop in props.items() if _always_printed(prop)]
            node["required"] = sorted(set(node.get("required", [])) | set(always))
        return node
    if isinstance(node, list):
        return [_strict(v) for v in node]
    return node


COMPONENTS = _strict(copy.deepcopy(OPENAPI["components"]))
FORMATS = FormatChecker()


@FORMATS.checks("int64")
def _int64(value: Any) -> bool:
    return not isinstance(value, str) or re.fullmatch(r"-?[0-9]+", value) is not None


@FORMATS.checks("uint64")
def _uint64(value: Any) -> bool:
    return not isinstance(value, str) or re.fullmatch(r"[0-9]+", value) is not None


@FORMATS.checks("date-time")
def _date_time(value: Any) -> bool:
    return not isinstance(value, str) or validate_rfc3339(value)


@FORMATS.checks("byte")
def _byte(value: Any) -> bool:
    try:
        base64.b64decode(value, validate=True)
        return True
    except (binascii.Error, TypeError):
        return False


def schema_errors(body: Any, schema: Dict[str, Any]) -> List[str]:
    """Violations of `schema` (which may `$ref` a component) by `body`, strictly."""
    root = {**_strict(copy.deepcopy(schema)), "components": COMPONENTS}
    validator = OAS30ReadValidator(root, format_checker=FORMATS)
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in validator.iter_errors(body)]


def check_schema(body: Any, component: str) -> None:
    errors = schema_errors(body, {"$ref": f"#/components/schemas/{component}"})
    assert not errors, f"{component}: {errors}\n{json.dumps(body, indent=1)[:3000]}"


class Route:
    def __init__(self, method: str, template: str, operation: Dict[str, Any]) -> None:
        self.method = method
        self.template = template
        self.operation = operation
        parts = re.split(r"(\{[^}]+\})", template)
        pattern = "".join("[^/:]+" if p.startswith("{") else re.escape(p) for p in parts)
        self.regex = re.compile(pattern + "$")

    def response_schema(self) -> Optional[Dict[str, Any]]:
        content = self.operation["responses"]["200"]["content"]
        return content.get("application/json", {}).get("schema")


ROUTES = [
    Route(method.upper(), template, operation)
    for template, operations in OPENAPI["paths"].items()
    for method, operation in operations.items()
]


def documented_routes() -> Set[Tuple[str, str]]:
    """Every REST route of openapi.json and of the README's API table."""
    readme = {(verb.upper(), path) for verb, path in readme_routes()}
    return {(r.method, r.template) for r in ROUTES} | readme


def route_for(method: str, path: str) -> Optional[Route]:
    matches = [r for r in ROUTES if r.method == method and r.regex.match(path)]
    # A literal segment beats a parameter (`/api/v1/files:search` is not `/api/v1/files`).
    matches.sort(key=lambda r: r.template.count("{"))
    return matches[0] if matches else None


def check_response(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    """The response hook: records the route and checks headers and JSON bodies."""
    request = response.request
    path = requests.utils.urlparse(request.url).path
    route = route_for(request.method, path)
    if route is not None:
        HITS[(route.method, route.template)].add(response.status_code)
    where = f"{request.method} {request.url} -> {response.status_code}"
    for header in SECURITY_HEADERS:
        assert header in response.headers, f"{where}: {header} missing"
    media = response.headers.get("content-type", "")
    if not media.startswith("application/json") or route is None:
        return
    if response.status_code >= 400:
        body = response.json()
        errors = schema_errors(body, {"$ref": "#/components/schemas/google.rpc.Status"})
        assert not errors, f"{where}: not a google.rpc.Status: {errors}: {body}"
        assert HTTP_FOR_CODE[body["code"]] == response.status_code, f"{where}: {body}"
    elif response.status_code == 200 and route.response_schema() is not None:
        assert "x-request-id" in response.headers, f"{where}: x-request-id not echoed"
        errors = schema_errors(response.json(), route.response_schema())
        assert not errors, f"{where}: {errors}\n{response.text[:3000]}"
