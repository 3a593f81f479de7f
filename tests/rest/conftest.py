"""Fixtures of the REST conformance suite. It needs live servers behind real Envoys, started by
the Rust test tests/api/rest_conformance.rs, which passes their base URLs:

    FILEORG_REST_URL          the main server (the suite's users register there)
    FILEORG_REST_LIMITED_URL  a server started with RATE_LIMIT_API=FILEORG_RATE_LIMIT_API
    FILEORG_REST_DOWN_URL     a server whose database is unreachable (its TcpProxy is down)
    FILEORG_DOWN_TOKEN        an access token of a user of that server, issued before the cut
    FILEORG_ADMIN_EMAIL       an admin of the main server (password FILEORG_PASSWORD)
    FILEORG_CORS_ORIGIN       the browser origin the main server allows (CORS_ORIGINS)
"""

from __future__ import annotations

import base64
import os
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Optional

import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

import conformance  # noqa: E402

TIMEOUT = 60  # seconds; only against hangs


def env(name: str) -> str:
    value = os.environ.get(name)
    assert value, f"{name} is not set: run this suite through tests/api/rest_conformance.rs"
    return value


class RestClient:
    """requests against one Envoy, every response checked and recorded by conformance.py."""

    def __init__(self, base: str, token: Optional[str] = None) -> None:
        self.base = base.rstrip("/")
        self.token = token
        self.session = requests.Session()
        self.session.hooks["response"].append(conformance.check_response)

    def request(self, method: str, path: str, *, token: Optional[str] = None, anonymous: bool = False,
                **kwargs: Any) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}))
        bearer = token or self.token
        if bearer and not anonymous and "x-api-key" not in headers:
            headers["authorization"] = f"Bearer {bearer}"
        kwargs.setdefault("timeout", TIMEOUT)
        return self.session.request(method, self.base + path, headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)

    def ok(self, method: str, path: str, **kwargs: Any) -> Dict[str, Any]:
        """The JSON body of a call that must succeed."""
        response = self.request(method, path, **kwargs)
        assert response.status_code == 200, f"{method} {path}: {response.status_code} {response.text}"
        return response.json()

    def upload(self, path: str, content: bytes, **fields: Any) -> Dict[str, Any]:
        body = {"path": path, "content": base64.b64encode(content).decode(), **fields}
        return self.ok("POST", "/api/v1/files", json=body)["file"]


@dataclass
class User:
    email: str
    token: str
    refresh_token: str
    id: str
    api: RestClient


@pytest.fixture(scope="session")
def password() -> str:
    return env("FILEORG_PASSWORD")


@pytest.fixture(scope="session")
def base_url() -> str:
    return env("FILEORG_REST_URL")


@pytest.fixture
def anon(base_url: str) -> RestClient:
    return RestClient(base_url)


@pytest.fixture(scope="session")
def new_user(base_url: str, password: str) -> Callable[[str], User]:
    """Registers a fresh user over REST and returns it with a client holding its token."""

    def make(label: str = "rest") -> User:
        email = f"{label}-{uuid.uuid4().hex[:10]}@example.com"
        body = RestClient(base_url).ok(
            "POST", "/api/v1/auth/register", json={"email": email, "password": password}
        )
        conformance.check_schema(body, "RegisterResponse")
        token = body["access_token"]
        return User(email, token, body["refresh_token"], body["user"]["id"], RestClient(base_url, token))

    return make


@pytest.fixture
def user(new_user: Callable[[str], User]) -> User:
    return new_user("rest")


@pytest.fixture(scope="session")
def admin(base_url: str, password: str) -> RestClient:
    email = env("FILEORG_ADMIN_EMAIL")
    body = RestClient(base_url).ok("POST", "/api/v1/auth/login", json={"email": email, "password": password})
    assert body["user"]["role"] == "USER_ROLE_ADMIN", body
    return RestClient(base_url, body["access_token"])


def error_detail(body: Dict[str, Any], type_suffix: str) -> Dict[str, Any]:
    """The detail of a google.rpc.Status JSON body whose @type ends with `type_suffix`."""
    for detail in body["details"]:
        if detail["@type"] == f"type.googleapis.com/google.rpc.{type_suffix}":
            return detail
    raise AssertionError(f"no {type_suffix} in {body}")


def assert_error(response: requests.Response, status: int, reason: str, field: Optional[str] = None) -> Dict[str, Any]:
    """A service error: HTTP `status`, a JSON google.rpc.Status with an ErrorInfo `reason` of our
    domain and, for validation errors, a BadRequest naming `field`."""
    assert response.status_code == status, f"{response.status_code} {response.text}"
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == {"code", "message", "details"}, body
    info = error_detail(body, "ErrorInfo")
    assert info["domain"] == "fileorganizer.v1", body
    assert info["reason"] == reason, body
    if field is not None:
        violations = error_detail(body, "BadRequest")["field_violations"]
        assert field in [v["field"] for v in violations], body
    return body


def pytest_collection_modifyitems(items: list) -> None:
    """The coverage check runs last, after every route had its chance."""
    items.sort(key=lambda item: "test_zz_coverage" in item.nodeid)
