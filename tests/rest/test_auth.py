"""AuthService over REST: accounts, sessions, API keys; 400/401/404/409 and key pagination."""

from __future__ import annotations

import uuid

from conftest import RestClient, User, assert_error, error_detail
from conformance import check_schema


def test_register_login_refresh_and_logout(anon: RestClient, password: str) -> None:
    email = f"Flow-{uuid.uuid4().hex[:8]}@Example.com"
    registered = anon.ok("POST", "/api/v1/auth/register",
                         json={"email": email, "password": password, "display_name": "Flow"})
    assert registered["token_type"] == "Bearer"
    assert registered["expires_in"] == 900  # int32: a JSON number
    assert registered["user"]["email"] == email.lower()
    assert registered["user"]["storage_used_bytes"] == "0"  # int64: a JSON string, printed at 0
    assert registered["user"]["role"] == "USER_ROLE_USER"  # enums by name
    assert registered["user"]["name"] == f"users/{registered['user']['id']}"
    assert "password" not in registered["user"]

    login = anon.ok("POST", "/api/v1/auth/login", json={"email": email, "password": password})
    check_schema(login, "LoginResponse")
    assert login["user"]["last_login_time"].endswith("Z")

    refreshed = anon.ok("POST", "/api/v1/auth/refresh", json={"refresh_token": login["refresh_token"]})
    check_schema(refreshed, "RefreshTokenResponse")
    assert refreshed["refresh_token"] != login["refresh_token"]
    # The spent token again: 401, and the whole family is revoked.
    reused = anon.post("/api/v1/auth/refresh", json={"refresh_token": login["refresh_token"]})
    assert_error(reused, 401, "REFRESH_TOKEN_REUSED")
    dead = anon.post("/api/v1/auth/refresh", json={"refresh_token": refreshed["refresh_token"]})
    assert_error(dead, 401, "REFRESH_TOKEN_INVALID")

    out = anon.ok("POST", "/api/v1/auth/logout", token=registered["access_token"],
                  json={"refresh_token": registered["refresh_token"]})
    assert out == {"revoked_sessions": 1}
    gone = anon.post("/api/v1/auth/refresh", json={"refresh_token": registered["refresh_token"]})
    assert_error(gone, 401, "REFRESH_TOKEN_INVALID")


def test_errors_of_register_and_login(anon: RestClient, user: User, password: str) -> None:
    duplicate = anon.post("/api/v1/auth/register", json={"email": user.email.upper(), "password": password})
    assert_error(duplicate, 409, "EMAIL_TAKEN")
    weak = anon.post("/api/v1/auth/register", json={"email": "weak@example.com", "password": "short"})
    assert_error(weak, 400, "INVALID_ARGUMENT", field="password")
    no_email = anon.post("/api/v1/auth/register", json={"password": password})
    assert_error(no_email, 400, "INVALID_ARGUMENT", field="email")
    wrong = anon.post("/api/v1/auth/login", json={"email": user.email, "password": "not the password"})
    assert_error(wrong, 401, "INVALID_CREDENTIALS")
    unknown = anon.post("/api/v1/auth/login", json={"email": "nobody@example.com", "password": password})
    assert_error(unknown, 401, "INVALID_CREDENTIALS")


def test_current_user_on_both_paths_and_its_update(user: User) -> None:
    for path in ("/api/v1/users/me", "/api/v1/auth/me"):
        me = user.api.ok("GET", path)
        check_schema(me, "User")
        assert me["email"] == user.email
        assert me["display_name"] == ""  # printed although empty
    updated = user.api.ok("PATCH", "/api/v1/users/me",
                          json={"user": {"display_name": "Renamed"}, "update_mask": "display_name"})
    assert updated["display_name"] == "Renamed"
    assert user.api.ok("GET", "/api/v1/users/me")["display_name"] == "Renamed"
    bad_mask = user.api.patch("/api/v1/users/me", json={"user": {"display_name": "x"}, "update_mask": "email"})
    assert_error(bad_mask, 400, "INVALID_ARGUMENT", field="update_mask")
    no_current = user.api.patch("/api/v1/users/me", json={"new_password": "another good one"})
    assert_error(no_current, 400, "INVALID_ARGUMENT", field="current_password")


def test_credentials_missing_or_invalid_are_401(anon: RestClient, user: User) -> None:
    assert_error(anon.get("/api/v1/users/me"), 401, "CREDENTIALS_MISSING")
    assert_error(anon.get("/api/v1/users/me", token="not.a.jwt"), 401, "TOKEN_INVALID")
    assert_error(anon.get("/api/v1/users/me", token=user.token[:-4] + "AAAA"), 401, "TOKEN_INVALID")
    bad_key = anon.get("/api/v1/users/me", headers={"x-api-key": "fo_nothing_here"})
    assert_error(bad_key, 401, "API_KEY_INVALID")
    for path in ("/api/v1/operations", "/api/v1/files", "/api/v1/categories", "/api/v1/usage", "/api/v1/status"):
        assert_error(anon.get(path), 401, "CREDENTIALS_MISSING")


def test_api_keys_create_use_page_and_revoke(user: User, anon: RestClient) -> None:
    created = [
        user.api.ok("POST", "/api/v1/api-keys", json={"display_name": f"key {i}"}) for i in range(3)
    ]
    for body in created:
        check_schema(body, "CreateApiKeyResponse")
        assert body["secret"].startswith(f"fo_{body['api_key']['prefix']}_")
        assert body["api_key"]["revoked"] is False
        assert body["api_key"]["scopes"] == []
    secret = created[0]["secret"]
    me = anon.ok("GET", "/api/v1/users/me", headers={"x-api-key": secret})
    assert me["email"] == user.email

    # Newest first, two pages of two.
    first = user.api.ok("GET", "/api/v1/api-keys", params={"page_size": 2})
    assert [k["display_name"] for k in first["api_keys"]] == ["key 2", "key 1"]
    assert first["next_page_token"]
    second = user.api.ok("GET", "/api/v1/api-keys",
                         params={"page_size": 2, "page_token": first["next_page_token"]})
    assert [k["display_name"] for k in second["api_keys"]] == ["key 0"]
    assert second["next_page_token"] == ""
    for key in first["api_keys"] + second["api_keys"]:
        assert "secret" not in key
    invalid = user.api.get("/api/v1/api-keys", params={"page_token": "garbage!"})
    assert_error(invalid, 400, "INVALID_ARGUMENT", field="page_token")
    negative = user.api.get("/api/v1/api-keys", params={"page_size": -1})
    assert_error(negative, 400, "INVALID_ARGUMENT", field="page_size")

    name = created[0]["api_key"]["name"]
    revoked = user.api.ok("POST", f"/api/v1/{name}:revoke", json={})
    assert revoked["revoked"] is True and revoked["revoke_time"]
    assert_error(anon.get("/api/v1/users/me", headers={"x-api-key": secret}), 401, "API_KEY_INVALID")
    deleted = user.api.ok("DELETE", f"/api/v1/{created[1]['api_key']['name']}")
    assert deleted["revoked"] is True
    # Revoking twice is not an error.
    assert user.api.ok("DELETE", f"/api/v1/{name}")["revoked"] is True

    missing = f"api-keys/{uuid.uuid4()}"
    assert_error(user.api.delete(f"/api/v1/{missing}"), 404, "NOT_FOUND")
    assert_error(user.api.post(f"/api/v1/{missing}:revoke", json={}), 404, "NOT_FOUND")
    no_name = user.api.post("/api/v1/api-keys", json={"display_name": ""})
    assert_error(no_name, 400, "INVALID_ARGUMENT", field="api_key.display_name")


def test_scoped_api_keys(user: User, anon: RestClient) -> None:
    created = user.api.ok("POST", "/api/v1/api-keys", json={"display_name": "reader", "scopes": ["files.read"]})
    check_schema(created, "CreateApiKeyResponse")
    assert created["api_key"]["scopes"] == ["files.read"]
    reader = {"x-api-key": created["secret"]}
    anon.ok("GET", "/api/v1/trash", headers=reader)
    denied = assert_error(anon.post("/api/v1/trash:empty", json={}, headers=reader), 403, "SCOPE_INSUFFICIENT")
    assert error_detail(denied, "ErrorInfo")["metadata"] == {"scope": "files.write"}
    wider = anon.post("/api/v1/api-keys", json={"display_name": "x", "scopes": ["keys"]}, headers=reader)
    assert_error(wider, 403, "SCOPE_INSUFFICIENT")
    unknown = user.api.post("/api/v1/api-keys", json={"display_name": "x", "scopes": ["files.delete"]})
    assert_error(unknown, 400, "INVALID_ARGUMENT", field="api_key.scopes")
