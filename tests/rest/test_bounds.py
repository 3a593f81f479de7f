"""Every length, range and item-count bound of sdk/openapi/openapi.json is one the server enforces:
a value just outside it is refused (400 INVALID_ARGUMENT naming the field), and the value at it is
not refused for that field.

The bounds come from the proto (`// openapi:` comment lines, sdk/openapi/generate.py), their only
source; this test reads them from the document, so a bound added there is tested here, and it fails
when a bound of a request schema is reached by no case below (each case is a valid request the
bounds are applied to, one field at a time).
"""

from __future__ import annotations

import copy
import uuid
from typing import Any, Dict, Iterator, List, Optional, Set, Tuple

import conformance
from conftest import RestClient, User

KEYWORDS = ("minLength", "maxLength", "minimum", "maximum", "minItems", "maxItems")

# operationId -> a valid request: path, query parameters and JSON body. `{op}` in a path is the
# case's operation id, `{password}` the users' password, `{uuid}` a new UUID for each request (an
# idempotency key must not return the first request's operation). The bounds of every query parameter and
# body field the request sets are tried on it, one field at a time.
RULE = {
    "display_name": "Papers",
    "match": "RULE_MATCH_ANY",
    "conditions": [{"extensions": {"extensions": ["pdf"]}}, {"age": {"older_than_days": 1}}, {"age": {"newer_than_days": 5}}],
    "action": {"move": {"destination_template": "Documents/{name}"}},
}
CASES: Dict[str, Tuple[str, Dict[str, Any], Any]] = {
    "AuthService_Register": ("/api/v1/auth/register", {}, {"email": "", "password": "long enough", "display_name": "B"}),
    "AuthService_UpdateCurrentUser": ("/api/v1/users/me", {}, {
        "user": {"display_name": "B"}, "current_password": "{password}", "new_password": "another good one"}),
    "AuthService_CreateApiKey": ("/api/v1/api-keys", {}, {"display_name": "k", "scopes": ["files.read"]}),
    "AuthService_ListApiKeys": ("/api/v1/api-keys", {"page_size": 1}, None),
    "AutomationService_CreateAutomation": ("/api/v1/automations", {}, {
        "display_name": "nightly", "schedule": {"cron": "0 3 * * *", "time_zone": "UTC"},
        "operation": {"kind": "OPERATION_KIND_ORGANIZE", "source_path": "", "destination_path": "sorted"}}),
    "AutomationService_ListAutomations": ("/api/v1/automations", {"page_size": 1}, None),
    "FileService_ListDirectory": ("/api/v1/files", {"page_size": 1}, None),
    "FileService_ListTrash": ("/api/v1/trash", {"page_size": 1}, None),
    "FileService_ListFileRecords": ("/api/v1/operations/{op}/files", {"page_size": 1}, None),
    "FileService_SearchFiles": ("/api/v1/files:search", {"name_contains": "abc", "page_size": 1}, None),
    "FileService_CreateCategory": ("/api/v1/categories", {}, {"display_name": "c", "extensions": ["x"], "globs": ["*.x"]}),
    "FileService_ListCategories": ("/api/v1/categories", {"page_size": 1}, None),
    "OperationService_CreateOperation": ("/api/v1/operations", {"request_id": "{uuid}"}, {
        "kind": "OPERATION_KIND_ORGANIZE", "source_path": "", "destination_path": "sorted", "dry_run": True,
        "layout_template": "{name}", "include_globs": ["*"], "exclude_globs": ["*.tmp"]}),
    "OperationService_ListOperations": ("/api/v1/operations", {"page_size": 1}, None),
    "OperationService_UndoOperation": ("/api/v1/operations/{op}:undo", {}, {"request_id": "{uuid}"}),
    "ReportService_ListDuplicateGroups": ("/api/v1/reports/{op}/duplicate-groups", {"page_size": 1}, None),
    "RuleService_CreateRule": ("/api/v1/rules", {}, RULE),
    "RuleService_ListRules": ("/api/v1/rules", {"page_size": 1}, None),
    "RuleService_PreviewRules": ("/api/v1/rules:preview", {}, {"paths": ["a.pdf"], "rules": [RULE], "max_files": 1}),
    "SystemService_ListAuditEvents": ("/api/v1/admin/audit-events", {"page_size": 1}, None),
}
ADMIN = {"SystemService_ListAuditEvents"}
# Cases whose every request needs a user of its own (a password change).
FRESH = {"AuthService_UpdateCurrentUser"}


def operations() -> Dict[str, Tuple[str, Dict[str, Any]]]:
    return {op["operationId"]: (method.upper(), op)
            for ops in conformance.OPENAPI["paths"].values() for method, op in ops.items()}


def resolve(schema: Dict[str, Any]) -> Dict[str, Any]:
    while "$ref" in schema or "allOf" in schema:
        if "allOf" in schema:
            schema = schema["allOf"][0]
            continue
        schema = conformance.OPENAPI["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def component_of(schema: Dict[str, Any]) -> Optional[str]:
    while "allOf" in schema:
        schema = schema["allOf"][0]
    return schema["$ref"].rsplit("/", 1)[1] if "$ref" in schema else None


Bound = Tuple[str, str, str]  # (component or operation, field, keyword)


def bounds_in(schema: Dict[str, Any], value: Any, where: str, path: List[Any]) -> Iterator[Tuple[Bound, List[Any], Dict[str, Any]]]:
    """Bounds reachable in `value` (valid under `schema`): (the bound, the JSON path, the field's schema)."""
    owner = component_of(schema) or where
    schema = resolve(schema)
    for name, prop in schema.get("properties", {}).items():
        if prop.get("readOnly") or name not in value:
            continue
        target = resolve(prop)
        for key in KEYWORDS:
            if key in target or key in target.get("items", {}):
                yield (owner, name, key), path + [name], target
        if name in value and isinstance(value[name], dict):
            yield from bounds_in(prop, value[name], f"{owner}.{name}", path + [name])
        elif name in value and isinstance(value[name], list) and value[name] and isinstance(value[name][0], dict):
            for i, item in enumerate(value[name]):
                yield from bounds_in(target["items"], item, f"{owner}.{name}", path + [name, i])


def outside(schema: Dict[str, Any], key: str, current: Any) -> Tuple[Any, Any]:
    """(the value at the bound, a value just outside it) for keyword `key` of `schema`."""
    items = schema.get("items", {})
    if key in ("minItems", "maxItems"):
        n = schema[key]
        item = current[0] if current else "x"
        at, out = [item] * n, [item] * (n - 1 if key == "minItems" else n + 1)
        return at, out
    if key in ("minLength", "maxLength"):
        limit = schema.get(key, items.get(key))
        n = limit - 1 if key == "minLength" else limit + 1
        seed = (current[0] if isinstance(current, list) else current) or "x"
        # Keep a suffix of the valid value (a template must end with {name}).
        text = lambda length: ("a" * length + seed)[-length:] if length else ""  # noqa: E731
        at, out = text(limit), text(n)
        if "items" in schema:
            return [at], [out]
        return at, out
    n = schema[key]
    return n, n - 1 if key == "minimum" else n + 1


def fill(body: Any, password: str) -> Any:
    if isinstance(body, dict):
        return {k: fill(v, password) for k, v in body.items()}
    if isinstance(body, list):
        return [fill(v, password) for v in body]
    if body == "{uuid}":
        return str(uuid.uuid4())
    return password if body == "{password}" else body


def set_path(body: Any, path: List[Any], value: Any) -> Any:
    body = copy.deepcopy(body)
    node = body
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return body


def get_path(body: Any, path: List[Any]) -> Any:
    for part in path:
        if isinstance(body, dict) and part not in body:
            return None
        body = body[part]
    return body


def reached(ops: Dict[str, Tuple[str, Dict[str, Any]]]) -> Iterator[Tuple[str, Bound, str, List[Any], Dict[str, Any]]]:
    for op_id, (path, query, body) in CASES.items():
        _, op = ops[op_id]
        for param in op.get("parameters", []):
            if param["in"] == "query" and param["name"] in query:
                for key in KEYWORDS:
                    if key in param["schema"]:
                        yield op_id, (op_id, param["name"], key), "query", [param["name"]], param["schema"]
        if body is not None:
            schema = op["requestBody"]["content"]["application/json"]["schema"]
            for bound, json_path, schema in bounds_in(schema, body, op_id, []):
                yield op_id, bound, "body", json_path, schema


def all_request_bounds(ops: Dict[str, Tuple[str, Dict[str, Any]]]) -> Set[Bound]:
    """Every bound of a query parameter or of a request body schema in the document."""
    found: Set[Bound] = set()
    seen: Set[str] = set()

    def walk(schema: Dict[str, Any], where: str) -> None:
        name = component_of(schema)
        if name is not None:
            if name in seen:
                return
            seen.add(name)
            where = name
        schema = resolve(schema)
        for field, prop in schema.get("properties", {}).items():
            if prop.get("readOnly"):
                continue
            target = resolve(prop)
            for key in KEYWORDS:
                if key in target or key in target.get("items", {}):
                    found.add((where, field, key))
            if component_of(prop) or target.get("properties"):
                walk(prop, f"{where}.{field}")
            items = target.get("items", {})
            if component_of(items):
                walk(items, f"{where}.{field}")

    for op_id, (_, op) in ops.items():
        for param in op.get("parameters", []):
            if param["in"] == "query":
                found.update((op_id, param["name"], key) for key in KEYWORDS if key in param["schema"])
        content = op.get("requestBody", {}).get("content", {}).get("application/json")
        if content:
            walk(content["schema"], op_id)
    return found


def test_every_bound_is_reached_by_a_case() -> None:
    ops = operations()
    assert not set(CASES) - set(ops), set(CASES) - set(ops)
    missing = all_request_bounds(ops) - {bound for _, bound, _, _, _ in reached(ops)}
    assert not missing, f"bounds no case of test_bounds.py reaches: {sorted(missing)}"


def named(fields: List[str], path: List[Any]) -> bool:
    """Whether a violation names the field at `path` or one that contains it (the server names a
    request field with the body field first: `rule.display_name`, `operation.include_globs`)."""
    target = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
    for field in fields:
        for candidate in (field, field.split(".", 1)[-1]):
            if target == candidate or target.startswith((candidate + ".", candidate + "[")) or candidate.endswith("." + target):
                return True
    return False


def test_the_server_refuses_values_just_outside_each_bound(user: User, admin: RestClient, new_user: Any,
                                                            password: str) -> None:
    ops = operations()
    # A finished dry run for the routes under an operation.
    user.api.upload("inbox/a.txt", b"a")
    op = user.api.ok("POST", "/api/v1/operations", json={
        "kind": "OPERATION_KIND_ORGANIZE", "source_path": "inbox", "destination_path": "sorted", "dry_run": True})
    op_id = op["name"].split("/")[1]
    tried = 0
    for op_name, bound, place, path, schema in reached(ops):
        template, query, body = CASES[op_name]
        query, body = fill(query, password), fill(body, password)
        method, op = ops[op_name]
        url = template.replace("{op}", op_id)
        key = bound[2]
        current = query[path[0]] if place == "query" else get_path(body, path)
        at, out = outside(schema, key, current)
        client = admin if op_name in ADMIN else user.api
        for value, refused in ((out, True), (at, False)):
            if place == "query":
                params, json_body = {**query, path[0]: value}, body
            else:
                params, json_body = query, set_path(body, path, value)
            if op_name == "AuthService_Register" and json_body is not None:
                json_body = {**json_body, "email": f"bounds-{uuid.uuid4().hex[:10]}@example.com"}
            if op_name in FRESH:
                client = new_user("bounds").api
            response = client.request(method, url, params=params, json=json_body)
            where = f"{op_name} {'.'.join(map(str, path))} {key}={schema.get(key, schema.get('items', {}).get(key))} value={str(value)[:60]!r}"
            fields: List[str] = []
            if response.status_code == 400:
                body_json = response.json()
                fields = [v["field"] for d in body_json["details"] if d["@type"].endswith("BadRequest")
                          for v in d["field_violations"]]
            if refused:
                assert response.status_code == 400 and named(fields, path), f"{where}: not refused: {response.status_code} {response.text}"
            else:
                assert not named(fields, path), f"{where}: the value at the bound was refused: {response.text}"
            tried += 1
    assert tried > 40, tried
