"""sdk/openapi/openapi.json is valid OpenAPI 3, up to date with proto/, and lists every REST route
of the README's API table."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from openapi_spec_validator import validate

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

import generate  # noqa: E402


def load() -> dict:
    return json.loads((HERE / "openapi.json").read_text())


def test_document_is_valid_openapi_3() -> None:
    doc = load()
    assert doc["openapi"].startswith("3.0")
    validate(doc)


def test_document_is_up_to_date() -> None:
    assert (HERE / "openapi.json").read_text() == generate.render(None), "run sdk/openapi/generate.py"


def readme_routes() -> set[tuple[str, str]]:
    routes = set()
    for line in (ROOT / "README.md").read_text().splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) == 6 and cells[1].endswith("Service") and cells[4] in ("yes", "no"):
            for verb, path in re.findall(r"`(GET|POST|PATCH|PUT|DELETE) ([^`]+)`", cells[3]):
                routes.add((verb.lower(), path))
    return routes


def test_every_readme_route_is_documented() -> None:
    routes = readme_routes()
    assert len(routes) > 40, routes
    paths = load()["paths"]
    documented = {(verb, path) for path, ops in paths.items() for verb in ops}
    assert routes - documented == set()
    assert documented - routes == set(), "a route missing from the README table"


def test_json_conventions() -> None:
    schemas = load()["components"]["schemas"]
    user = schemas["User"]["properties"]
    assert user["storage_used_bytes"]["type"] == "string"  # int64 as string
    assert "display_name" in user  # proto (snake_case) names
    assert user["role"]["enum"][0] == "USER_ROLE_UNSPECIFIED"  # enums as names
    assert user["create_time"]["type"] == "string"  # Timestamp
    assert schemas["WatchOperationResponse"]["properties"]["eta"]["type"] == "string"  # Duration
