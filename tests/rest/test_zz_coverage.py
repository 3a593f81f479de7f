"""Runs last (see conftest.py): every REST route of openapi.json and of the README's API table was
answered with a 2xx at least once by the tests before it."""

from __future__ import annotations

from conformance import HITS, ROUTES, documented_routes


def test_every_documented_route_was_exercised() -> None:
    documented = documented_routes()
    assert len(documented) == len(ROUTES) > 40, "the README table and openapi.json disagree"
    succeeded = {route for route, statuses in HITS.items() if any(200 <= s < 300 for s in statuses)}
    missing = sorted(documented - succeeded)
    assert not missing, "routes never answered with a 2xx: " + ", ".join(
        f"{method} {path} (seen: {sorted(HITS.get((method, path), []))})" for method, path in missing)
