"""RuleService over REST: create, get, list pages, update with etags and masks, delete, preview."""

from __future__ import annotations

import uuid

from conftest import User, assert_error
from conformance import check_schema


def pdf_rule(name: str, position: int = 0) -> dict:
    return {
        "display_name": name,
        "position": position,
        "match": "RULE_MATCH_ANY",
        "conditions": [{"extensions": {"extensions": ["pdf"]}}, {"name_glob": "invoice-*"}],
        "action": {"move": {"destination_template": "Documents/{year}/{name}"}},
    }


def test_rules_create_get_page_update_delete(user: User) -> None:
    assert user.api.ok("GET", "/api/v1/rules") == {"rules": [], "next_page_token": ""}
    second = user.api.ok("POST", "/api/v1/rules", json=pdf_rule("Papers", position=5))
    first = user.api.ok("POST", "/api/v1/rules", json={
        "display_name": "Old junk",
        "conditions": [{"age": {"older_than_days": 90}}, {"size": {"max_bytes": "1024"}}],
        "action": {"trash": {}},
    })
    for rule in (first, second):
        check_schema(rule, "Rule")
        assert rule["name"].startswith("rules/") and rule["version"] == "1" and rule["etag"]
    assert first["match"] == "RULE_MATCH_ALL"
    assert user.api.ok("GET", f"/api/v1/{second['name']}") == second

    names = []
    token = ""
    for _ in range(10):
        page = user.api.ok("GET", "/api/v1/rules", params={"page_size": 1, "page_token": token})
        names += [r["name"] for r in page["rules"]]
        token = page["next_page_token"]
        if not token:
            break
    # Position 0 before position 5, whatever the creation order.
    assert names == [first["name"], second["name"]]

    updated = user.api.ok("PATCH", f"/api/v1/{second['name']}", params={"update_mask": "display_name"},
                          json={"display_name": "Invoices", "etag": second["etag"], "position": 99})
    assert updated["display_name"] == "Invoices" and updated["position"] == 5
    assert updated["version"] == "2" and updated["etag"] != second["etag"]
    # The etag read before the update is stale now: nothing changes.
    assert_error(user.api.patch(f"/api/v1/{second['name']}", params={"update_mask": "display_name"},
                                json={"display_name": "Lost", "etag": second["etag"]}), 409, "ETAG_MISMATCH")
    assert_error(user.api.delete(f"/api/v1/{second['name']}", params={"etag": second["etag"]}), 409,
                 "ETAG_MISMATCH")
    assert user.api.ok("GET", f"/api/v1/{second['name']}")["display_name"] == "Invoices"

    bad = pdf_rule("Bad")
    bad["conditions"][1] = {"name_regex": "(" * 600}
    assert_error(user.api.post("/api/v1/rules", json=bad), 400, "INVALID_ARGUMENT", field="rule.conditions[1].name_regex")
    bad = pdf_rule("Escape")
    bad["action"] = {"move": {"destination_template": "../{name}"}}
    assert_error(user.api.post("/api/v1/rules", json=bad), 400, "INVALID_ARGUMENT",
                 field="rule.action.move.destination_template")

    assert user.api.ok("DELETE", f"/api/v1/{second['name']}", params={"etag": updated["etag"]}) == {}
    assert_error(user.api.get(f"/api/v1/{second['name']}"), 404, "NOT_FOUND")
    assert_error(user.api.delete(f"/api/v1/rules/{uuid.uuid4()}"), 404, "NOT_FOUND")
    assert user.api.ok("DELETE", f"/api/v1/{first['name']}") == {}


def test_preview_rules_over_a_folder_and_drafts(user: User) -> None:
    user.api.upload("inbox/invoice-1.pdf", b"%PDF-1.4 one")
    user.api.upload("inbox/notes.txt", b"just text")
    created = user.api.ok("POST", "/api/v1/rules", json=pdf_rule("Papers"))
    preview = user.api.ok("POST", "/api/v1/rules:preview", json={"folder": "inbox"})
    check_schema(preview, "PreviewRulesResponse")
    by_path = {e["path"]: e for e in preview["entries"]}
    assert set(by_path) == {"inbox/invoice-1.pdf", "inbox/notes.txt"}
    pdf = by_path["inbox/invoice-1.pdf"]
    assert pdf["rule"] == created["name"] and pdf["rule_display_name"] == "Papers"
    assert pdf["matched_conditions"] == [0]
    assert pdf["destination"].startswith("inbox/Documents/") and pdf["destination"].endswith("/invoice-1.pdf")
    assert by_path["inbox/notes.txt"]["rule"] == ""
    assert preview["matched_count"] == "1" and preview["truncated"] is False

    draft = user.api.ok("POST", "/api/v1/rules:preview", json={
        "paths": ["inbox/notes.txt"],
        "rules": [{"display_name": "Text", "conditions": [{"extensions": {"extensions": ["txt"]}}],
                   "action": {"leave_in_place": {}}}],
    })
    assert [e["rule"] for e in draft["entries"]] == ["rules/-0"]
    assert draft["entries"][0]["destination"] == ""
    assert_error(user.api.post("/api/v1/rules:preview", json={"paths": ["../etc/passwd"]}), 400, "PATH_ESCAPE",
                 field="paths[0]")

    # Capture-date conditions in JSON: RFC 3339 bounds and day counts. A text file has no
    # capture date: its modification date (today) stands in, so it is not "taken in 2001".
    dated = user.api.ok("POST", "/api/v1/rules:preview", json={
        "paths": ["inbox/notes.txt"],
        "rules": [
            {"display_name": "2001", "action": {"trash": {}},
             "conditions": [{"capture_time": {"start_time": "2001-01-01T00:00:00Z",
                                              "end_time": "2002-01-01T00:00:00Z"}}]},
            {"display_name": "recent", "action": {"leave_in_place": {}},
             "conditions": [{"capture_age": {"newer_than_days": 2}}]},
        ],
    })
    entry = dated["entries"][0]
    assert entry["rule"] == "rules/-1", entry
    assert "no capture date: modified on" in entry["explanation"], entry
    assert_error(user.api.post("/api/v1/rules", json={
        "display_name": "Backwards", "action": {"trash": {}},
        "conditions": [{"capture_time": {"start_time": "2002-01-01T00:00:00Z", "end_time": "2001-01-01T00:00:00Z"}}],
    }), 400, "INVALID_ARGUMENT", field="rule.conditions[0].capture_time")
