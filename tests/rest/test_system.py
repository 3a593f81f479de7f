"""SystemService over REST, and what every route shares: 403 on admin routes, 429 from a server
with a low limit, 503 from a server without its database, Envoy's own 400/404 answers, CORS."""

from __future__ import annotations

import time

from conftest import RestClient, User, assert_error, env, error_detail
from conformance import check_schema


def test_health_and_status(anon: RestClient, user: User) -> None:
    health = anon.ok("GET", "/health")
    assert health["status"] == "HEALTH_STATE_HEALTHY"
    assert health["uptime"].endswith("s")  # Duration: "1.5s"
    status = user.api.ok("GET", "/api/v1/status")
    check_schema(status, "GetStatusResponse")
    assert status["environment"] == "test"
    components = {c["name"]: c["state"] for c in status["components"]}
    assert components["database"] == "HEALTH_STATE_HEALTHY"
    assert components["storage"] == "HEALTH_STATE_HEALTHY"


def test_admin_routes_need_the_admin_role(admin: RestClient, user: User) -> None:
    routes = [
        ("GET", f"/api/v1/admin/rate-limits/{user.id}", {}),
        ("POST", f"/api/v1/admin/rate-limits/{user.id}:reset", {"json": {}}),
        ("GET", "/api/v1/admin/audit-events", {}),
    ]
    for method, path, kwargs in routes:
        assert_error(user.api.request(method, path, **kwargs), 403, "PERMISSION_DENIED")
        assert_error(user.api.request(method, path, anonymous=True, **kwargs), 401, "CREDENTIALS_MISSING")

    limits = admin.ok("GET", f"/api/v1/admin/rate-limits/{user.id}")
    assert limits["user_id"] == user.id
    assert limits["backend"] in ("redis", "local")
    assert {c["bucket"] for c in limits["counters"]} >= {"api"}
    reset = admin.ok("POST", f"/api/v1/admin/rate-limits/{user.id}:reset", json={"buckets": ["api"]})
    api = next(c for c in reset["counters"] if c["bucket"] == "api")
    assert api["used"] == 0
    bad = admin.get("/api/v1/admin/rate-limits/not-a-uuid")
    assert_error(bad, 400, "INVALID_ARGUMENT", field="user_id")


def test_audit_events_page_through(admin: RestClient, user: User) -> None:
    # The user's registration and denied calls to the three admin routes are in the trail (a
    # refusal is audited once per user, RPC and window, so each route adds one row at most).
    user.api.get(f"/api/v1/admin/rate-limits/{user.id}")
    user.api.post(f"/api/v1/admin/rate-limits/{user.id}:reset", json={})
    user.api.get("/api/v1/admin/audit-events")
    seen = []
    token = ""
    for _ in range(10):
        page = admin.ok("GET", "/api/v1/admin/audit-events",
                        params={"user_id": user.id, "page_size": 2, "page_token": token})
        assert len(page["events"]) <= 2
        seen += page["events"]
        token = page["next_page_token"]
        if not token:
            break
    assert not token, "more than 10 pages"
    assert len(seen) >= 4, seen
    assert len({e["id"] for e in seen}) == len(seen), "a page repeated an event"
    assert all(e["user_id"] == user.id for e in seen)
    ids = [int(e["id"]) for e in seen]
    assert ids == sorted(ids, reverse=True), "not newest first"
    assert "denied" in {e["outcome"] for e in seen}
    invalid = admin.get("/api/v1/admin/audit-events", params={"page_token": "%%%"})
    assert_error(invalid, 400, "INVALID_ARGUMENT", field="page_token")


def test_rate_limit_is_429_with_retry_information(password: str) -> None:
    limited = RestClient(env("FILEORG_REST_LIMITED_URL"))
    limit = int(env("FILEORG_RATE_LIMIT_API"))
    registered = limited.ok("POST", "/api/v1/auth/register",
                            json={"email": "limited@example.com", "password": password})
    client = RestClient(limited.base, registered["access_token"])
    answers = [client.get("/api/v1/users/me") for _ in range(limit)]
    assert [a.status_code for a in answers] == [200] * limit
    assert answers[0].headers["x-ratelimit-limit"] == str(limit)
    assert int(answers[0].headers["x-ratelimit-reset"]) > 1_700_000_000
    sent = int(time.time())
    refused = client.get("/api/v1/users/me")
    answered = int(time.time())
    body = assert_error(refused, 429, "RATE_LIMITED")
    retry_after = int(refused.headers["retry-after"])
    assert retry_after >= 1
    # x-ratelimit-reset is the moment in Unix epoch seconds (the seed's definition), retry-after
    # the delay until it.
    reset = int(refused.headers["x-ratelimit-reset"])
    assert sent + retry_after <= reset <= answered + retry_after, (reset, retry_after, sent)
    assert error_detail(body, "RetryInfo")["retry_delay"].endswith("s")
    # Public routes are not counted against the user.
    assert limited.get("/health").status_code == 200


def test_database_unreachable_is_503() -> None:
    down = RestClient(env("FILEORG_REST_DOWN_URL"), env("FILEORG_DOWN_TOKEN"))
    assert_error(down.get("/health"), 503, "SERVICE_UNAVAILABLE")
    assert_error(down.get("/api/v1/operations"), 503, "SERVICE_UNAVAILABLE")
    register = down.post("/api/v1/auth/register", anonymous=True,
                         json={"email": "down@example.com", "password": "correct horse battery"})
    assert_error(register, 503, "SERVICE_UNAVAILABLE")


def test_envoy_rejections_are_json_status_too(anon: RestClient, user: User) -> None:
    """What Envoy answers itself (the request never reaches the server) has the same error shape."""
    cases = [
        # Malformed JSON, a wrong JSON type, an unknown query parameter: 400 / INVALID_ARGUMENT.
        (anon.post("/api/v1/auth/login", data="{not json", headers={"content-type": "application/json"}), 400, 3),
        (anon.post("/api/v1/auth/login", json={"email": ["a"], "password": 1}), 400, 3),
        (user.api.get("/api/v1/operations", params={"page_size": "many"}), 400, 3),
        (anon.get("/health", params={"debug": "1"}), 400, 3),
        # No such route, or a route with the wrong verb: 404 / NOT_FOUND.
        (anon.get("/api/v1/nothing-here"), 404, 5),
        (anon.request("PUT", "/api/v1/users/me"), 404, 5),
    ]
    for response, status, code in cases:
        where = f"{response.request.method} {response.request.url}"
        assert response.status_code == status, f"{where}: {response.status_code} {response.text}"
        assert response.headers["content-type"].startswith("application/json"), f"{where}: {response.headers}"
        body = response.json()
        assert body["code"] == code and body["message"] and body["details"] == [], f"{where}: {body}"


def test_cors_preflight_for_allowed_and_other_origins(anon: RestClient) -> None:
    origin = env("FILEORG_CORS_ORIGIN")

    def preflight(origin: str, method: str, path: str) -> dict:
        response = anon.request("OPTIONS", path, headers={
            "origin": origin,
            "access-control-request-method": method,
            "access-control-request-headers": "authorization,content-type",
        })
        assert response.status_code in (200, 204), response.status_code
        return {k.lower(): v for k, v in response.headers.items()}

    for method, path in [("GET", "/api/v1/users/me"), ("PATCH", "/api/v1/users/me"),
                         ("DELETE", "/api/v1/files"), ("POST", "/api/v1/operations")]:
        granted = preflight(origin, method, path)
        assert granted["access-control-allow-origin"] == origin, granted
        assert method in granted["access-control-allow-methods"].replace(" ", "").split(","), granted
        allowed_headers = granted["access-control-allow-headers"].lower()
        assert "authorization" in allowed_headers and "content-type" in allowed_headers, granted
        refused = preflight("http://evil.test", method, path)
        assert "access-control-allow-origin" not in refused, refused

    # The actual call from the allowed origin carries the grant; from another origin it does not.
    actual = anon.get("/health", headers={"origin": origin})
    assert actual.headers["access-control-allow-origin"] == origin
    other = anon.get("/health", headers={"origin": "http://evil.test"})
    assert "access-control-allow-origin" not in other.headers


def test_the_callers_request_id_comes_back_and_a_bad_one_is_replaced(user: User) -> None:
    mine = "rest-correlation-4242.a_b"
    response = user.api.get("/api/v1/status", headers={"x-request-id": mine})
    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"] == mine
    for bad in ("has spaces in it", "x" * 129, 'quote"d'):
        response = user.api.get("/api/v1/status", headers={"x-request-id": bad})
        assert response.status_code == 200, response.text
        echoed = response.headers["x-request-id"]
        assert echoed != bad and 0 < len(echoed) <= 128, echoed
        assert all(c.isalnum() or c in "-_." for c in echoed), echoed
