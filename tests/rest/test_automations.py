"""AutomationService over REST: create, read, list, update with an etag, pause, resume and delete
an automation; bad triggers name their field; another user's automation is NOT_FOUND."""

from __future__ import annotations

from conftest import User, assert_error
from conformance import check_schema


def test_automation_crud_pause_resume(user: User, new_user) -> None:
    created = user.api.ok("POST", "/api/v1/automations", json={
        "display_name": "nightly inbox",
        "schedule": {"cron": "0 3 * * *", "time_zone": "Europe/Paris"},
        "operation": {"kind": "OPERATION_KIND_ORGANIZE", "source_path": "", "destination_path": "sorted"},
    })
    check_schema(created, "Automation")
    name = created["name"]
    assert name.startswith("automations/"), created
    assert created["schedule"] == {"cron": "0 3 * * *", "time_zone": "Europe/Paris"}
    assert created["paused"] is False and created["next_run_time"], created
    assert created["run_count"] == "0" and created["last_operation"] == ""
    # No run failed (yet): the output-only last_error is empty (JSON: "").
    assert created["last_error"] == ""

    got = user.api.ok("GET", f"/api/v1/{name}")
    assert got == created
    listed = user.api.ok("GET", "/api/v1/automations")
    assert [a["name"] for a in listed["automations"]] == [name]

    # Update with the etag read; the old etag is then refused.
    updated = user.api.ok("PATCH", f"/api/v1/{name}", params={"update_mask": "display_name"},
                          json={"display_name": "renamed", "etag": created["etag"]})
    assert updated["display_name"] == "renamed" and updated["etag"] != created["etag"]
    assert updated["schedule"] == created["schedule"]
    stale = user.api.patch(f"/api/v1/{name}", params={"update_mask": "display_name"},
                           json={"display_name": "again", "etag": created["etag"]})
    assert_error(stale, 409, "ETAG_MISMATCH")
    # A stale etag deletes nothing either (ABORTED is HTTP 409).
    assert_error(user.api.delete(f"/api/v1/{name}", params={"etag": created["etag"]}), 409, "ETAG_MISMATCH")
    assert user.api.ok("GET", f"/api/v1/{name}")["display_name"] == "renamed"

    paused = user.api.ok("POST", f"/api/v1/{name}:pause", json={})
    assert paused["paused"] is True and not paused.get("next_run_time"), paused
    resumed = user.api.ok("POST", f"/api/v1/{name}:resume", json={})
    assert resumed["paused"] is False and resumed["next_run_time"]

    # Runs are listed by automation (none yet).
    runs = user.api.ok("GET", "/api/v1/operations", params={"automation": name})
    assert runs["operations"] == []

    other = new_user("rest-other")
    assert other.api.get(f"/api/v1/{name}").status_code == 404
    assert other.api.delete(f"/api/v1/{name}").status_code == 404

    assert user.api.ok("DELETE", f"/api/v1/{name}") == {}
    assert user.api.get(f"/api/v1/{name}").status_code == 404


def test_bad_triggers_name_their_field(user: User) -> None:
    organize = {"kind": "OPERATION_KIND_ORGANIZE", "destination_path": "sorted"}
    cases = [
        ({"schedule": {"cron": "61 * * * *"}}, "automation.schedule.cron"),
        ({"schedule": {"cron": "0 3 * * *", "time_zone": "Mars/Olympus"}}, "automation.schedule.time_zone"),
        ({"arrival": {"folder_path": "../elsewhere"}}, "automation.arrival.folder_path"),
        ({"watched_folder": {"folder_path": "/etc"}}, "automation.watched_folder.folder_path"),
    ]
    for trigger, field in cases:
        response = user.api.post("/api/v1/automations", json={**trigger, "operation": organize})
        assert response.status_code == 400, (trigger, response.text)
        body = response.json()
        fields = [v["field"] for d in body["details"] if d["@type"].endswith("BadRequest")
                  for v in d["field_violations"]]
        assert fields == [field], (trigger, body)
    assert_error(user.api.post("/api/v1/automations", json={"operation": organize}), 400,
                 "INVALID_ARGUMENT", "automation.trigger")
