"""OperationService, FileService records and ReportService over REST: one organize run from a
dry-run plan to its undo, watched as server-sent events, its records, report and exports."""

from __future__ import annotations

import csv
import io
import json
import uuid
from typing import Any, Dict, List

from conftest import TIMEOUT, User, assert_error
from conformance import check_schema, schema_errors

FILES = {
    "inbox/photo.png": bytes.fromhex("89504e470d0a1a0a0000000d494844520000000100000001") + b"\1" * 40,
    "inbox/notes.txt": b"meeting notes\n",
    "inbox/copy-of-notes.txt": b"meeting notes\n",
    "inbox/report.pdf": b"%PDF-1.4\n" + b"x" * 100,
    "inbox/song.mp3": b"ID3" + b"\0" * 64,
}


def watch(user: User, name: str) -> List[Dict[str, Any]]:
    """Every snapshot of GET :watch (server-sent events) until the stream ends."""
    response = user.api.get(f"/api/v1/{name}:watch", stream=True)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    events = []
    with response:
        for line in response.iter_lines(decode_unicode=True):
            if line.startswith("data: "):
                event = json.loads(line[len("data: "):])
                errors = schema_errors(event, {"$ref": "#/components/schemas/WatchOperationResponse"})
                assert not errors, errors
                events.append(event)
            else:
                assert line == "", f"not an SSE data line: {line!r}"
    assert events, "no event"
    assert all(e["name"] == name for e in events)
    return events


def pages(user: User, path: str, key: str, **params: Any) -> List[Dict[str, Any]]:
    """Every item of a list route, fetched page by page (page_size 2)."""
    items: List[Dict[str, Any]] = []
    token = ""
    for _ in range(50):
        page = user.api.ok("GET", path, params={**params, "page_size": 2, "page_token": token})
        assert len(page[key]) <= 2
        items += page[key]
        token = page["next_page_token"]
        if not token:
            return items
    raise AssertionError(f"{path}: more than 50 pages")


def test_organize_plan_apply_report_export_undo(user: User) -> None:
    for path, content in FILES.items():
        user.api.upload(path, content)

    created = user.api.ok("POST", "/api/v1/operations", json={
        "kind": "OPERATION_KIND_ORGANIZE", "source_path": "inbox", "destination_path": "sorted",
        "dry_run": True, "duplicate_policy": "DUPLICATE_POLICY_REPORT_ONLY",
    })
    name = created["name"]
    assert name.startswith("operations/") and created["state"] == "OPERATION_STATE_QUEUED"
    assert created["counters"]["files_moved"] == "0" and created["include_globs"] == []
    planned = watch(user, name)
    assert planned[-1]["state"] == "OPERATION_STATE_PLANNED", planned[-1]
    assert planned[-1]["counters"]["files_planned"] == str(len(FILES))

    # The plan's records, page by page, and filtered.
    records = pages(user, f"/api/v1/{name}/files", "file_records")
    assert sorted(r["original_path"] for r in records) == sorted(FILES)
    assert [int(r["seq"]) for r in records] == sorted(int(r["seq"]) for r in records)
    assert all(r["operation"] == name for r in records)
    duplicates = user.api.ok("GET", f"/api/v1/{name}/files", params={"duplicates_only": True})
    assert len(duplicates["file_records"]) == 1
    assert duplicates["file_records"][0]["duplicate_of_path"].startswith("inbox/")
    assert_error(user.api.get(f"/api/v1/{name}/files", params={"page_token": "zzz"}), 400, "INVALID_ARGUMENT",
                 field="page_token")

    applied = user.api.ok("POST", f"/api/v1/{name}:apply", json={})
    assert applied["state"] in ("OPERATION_STATE_QUEUED", "OPERATION_STATE_APPLYING", "OPERATION_STATE_SUCCEEDED")
    done = watch(user, name)
    moved = [int(e["counters"]["files_moved"]) for e in done]
    assert moved == sorted(moved), moved
    assert done[-1]["state"] == "OPERATION_STATE_SUCCEEDED", done[-1]
    assert done[-1]["progress_percent"] == 100
    # Not planned any more: applying again is FAILED_PRECONDITION (HTTP 400, google.rpc.Code mapping).
    assert_error(user.api.post(f"/api/v1/{name}:apply", json={}), 400, "FAILED_PRECONDITION")
    assert_error(user.api.post(f"/api/v1/{name}:cancel", json={}), 400, "FAILED_PRECONDITION")

    operation = user.api.ok("GET", f"/api/v1/{name}")
    check_schema(operation, "Operation")
    assert operation["state"] == "OPERATION_STATE_SUCCEEDED" and operation["end_time"]
    assert "error" not in operation  # an unset message is omitted

    report_name = "reports/" + name.split("/", 1)[1]
    report = user.api.ok("GET", f"/api/v1/{report_name}")
    assert report["operation"] == name
    assert report["duplicate_group_count"] == "1"
    assert report["totals"]["files_moved"] == str(len(FILES))  # REPORT_ONLY: the copy is organized too
    groups = user.api.ok("GET", f"/api/v1/{report_name}/duplicate-groups", params={"page_size": 1})
    assert groups["total_size"] == "1" and groups["next_page_token"] == ""
    assert groups["duplicate_groups"][0]["file_count"] == "2"
    assert_error(user.api.get(f"/api/v1/{report_name}/duplicate-groups", params={"page_token": "!"}),
                 400, "INVALID_ARGUMENT", field="page_token")

    export_id = name.split("/", 1)[1]
    for fmt, media, extension in [("REPORT_FORMAT_CSV", "text/csv; charset=utf-8", "csv"),
                                  ("REPORT_FORMAT_JSON", "application/json", "json"),
                                  ("REPORT_FORMAT_HTML", "text/html; charset=utf-8", "html")]:
        bodies = []
        for path in (f"/api/v1/{report_name}:export", f"/api/v1/{report_name}/export"):
            response = user.api.get(path, params={"format": fmt})
            assert response.status_code == 200, response.text
            assert response.headers["content-type"] == media
            assert response.headers["content-disposition"] == f'attachment; filename="report-{export_id}.{extension}"'
            if "content-length" in response.headers:
                assert response.headers["content-length"] == str(len(response.content))
            bodies.append(response.content)
        if fmt == "REPORT_FORMAT_CSV":
            rows = list(csv.DictReader(io.StringIO(bodies[0].decode("utf-8"), newline="")))
            assert sorted(r["original_path"] for r in rows) == sorted(FILES)
            assert bodies[0] == bodies[1]
        elif fmt == "REPORT_FORMAT_JSON":
            exported = json.loads(bodies[0])
            assert exported["report"]["operation"] == name
            check_schema(exported["report"], "OperationReport")
        else:
            assert bodies[0].startswith(b"<!DOCTYPE html>") and export_id.encode() in bodies[0]
    bad_format = user.api.get(f"/api/v1/{report_name}:export", params={"format": "REPORT_FORMAT_PDF"})
    assert bad_format.status_code == 400

    # Search across the user's records: by name, by hash, by operation.
    notes = next(r for r in records if r["original_path"] == "inbox/notes.txt")
    by_name = user.api.ok("GET", "/api/v1/files:search", params={"name_contains": "notes"})
    assert {r["original_path"] for r in by_name["file_records"]} == {"inbox/notes.txt", "inbox/copy-of-notes.txt"}
    by_hash = user.api.ok("GET", "/api/v1/files:search", params={"content_hash": notes["content_hash"]})
    assert len(by_hash["file_records"]) == 2
    by_operation = pages(user, "/api/v1/files:search", "file_records", operation=name, category="Documents")
    assert sorted(r["original_path"] for r in by_operation) == [
        "inbox/copy-of-notes.txt", "inbox/notes.txt", "inbox/report.pdf"]

    usage = user.api.ok("GET", "/api/v1/usage")
    check_schema(usage, "UsageSummary")
    assert usage["operation_count"] == "1"
    assert usage["files_organized"] == str(len(FILES))

    undo = user.api.ok("POST", f"/api/v1/{name}:undo", json={})
    assert undo["kind"] == "OPERATION_KIND_UNDO" and undo["undo_of"] == name
    assert watch(user, undo["name"])[-1]["state"] == "OPERATION_STATE_SUCCEEDED"
    assert_error(user.api.post(f"/api/v1/{name}:undo", json={}), 409, "ALREADY_EXISTS")
    assert user.api.ok("GET", f"/api/v1/{name}")["undone_by"] == undo["name"]
    restored = user.api.get("/api/v1/files:download", params={"path": "inbox/notes.txt"}, timeout=TIMEOUT)
    assert restored.content == FILES["inbox/notes.txt"]


def test_cancel_list_and_errors(user: User, new_user: Any) -> None:
    user.api.upload("src/a.txt", b"a")
    names = []
    for _ in range(3):
        op = user.api.ok("POST", "/api/v1/operations",
                         json={"kind": "OPERATION_KIND_ORGANIZE", "source_path": "src", "dry_run": True})
        assert watch(user, op["name"])[-1]["state"] == "OPERATION_STATE_PLANNED"
        names.append(op["name"])
    cancelled = user.api.ok("POST", f"/api/v1/{names[0]}:cancel", json={})
    assert cancelled["state"] == "OPERATION_STATE_CANCELLED"
    assert_error(user.api.post(f"/api/v1/{names[0]}:cancel", json={}), 400, "FAILED_PRECONDITION")
    assert_error(user.api.post(f"/api/v1/{names[0]}:apply", json={}), 400, "FAILED_PRECONDITION")

    listed = pages(user, "/api/v1/operations", "operations")
    assert [o["name"] for o in listed] == names[::-1], "newest first"
    planned = user.api.ok("GET", "/api/v1/operations", params={"state": "OPERATION_STATE_PLANNED"})
    assert [o["name"] for o in planned["operations"]] == names[:0:-1]
    assert_error(user.api.get("/api/v1/operations", params={"page_token": "not-a-token"}), 400,
                 "INVALID_ARGUMENT", field="page_token")
    assert user.api.get("/api/v1/operations", params={"state": "OPERATION_STATE_BOGUS"}).status_code == 400

    # Unknown ids and other users' operations are the same 404.
    other = new_user("other")
    missing = f"operations/{uuid.uuid4()}"
    for client, target in [(user.api, missing), (other.api, names[1])]:
        for method, path in [("GET", f"/api/v1/{target}"), ("POST", f"/api/v1/{target}:cancel"),
                             ("POST", f"/api/v1/{target}:apply"), ("POST", f"/api/v1/{target}:undo"),
                             ("GET", f"/api/v1/{target}:watch"), ("GET", f"/api/v1/{target}/files"),
                             ("GET", "/api/v1/reports/" + target.split("/")[1])]:
            kwargs = {"json": {}} if method == "POST" else {}
            assert_error(client.request(method, path, **kwargs), 404, "NOT_FOUND")
    assert_error(user.api.get("/api/v1/operations/not-a-uuid"), 400, "INVALID_ARGUMENT", field="name")

    bad = user.api.post("/api/v1/operations", json={"kind": "OPERATION_KIND_ORGANIZE", "source_path": "../up"})
    assert_error(bad, 400, "PATH_ESCAPE", field="operation.source_path")
    # Without a kind: ORGANIZE (the seed's default).
    default = user.api.ok("POST", "/api/v1/operations", json={"source_path": "src", "dry_run": True})
    assert default["kind"] == "OPERATION_KIND_ORGANIZE"
    undo = user.api.post("/api/v1/operations", json={"source_path": "src", "kind": "OPERATION_KIND_UNDO"})
    assert_error(undo, 400, "INVALID_ARGUMENT", field="operation.kind")
    assert user.api.post("/api/v1/operations", json={"kind": "NOT_A_KIND", "source_path": "src"}).status_code == 400


def sse(response: Any) -> List[Dict[str, Any]]:
    """The events of a server-sent-events response, read to its end."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    with response:
        return [json.loads(line[len("data: "):]) for line in response.iter_lines(decode_unicode=True)
                if line.startswith("data: ")]


def test_watch_token_lets_a_client_without_credentials_watch_once(user: User, new_user: Any) -> None:
    """CreateWatchToken, then GET :watch?watch_token=… with no authorization header (what a browser
    EventSource sends): to the end once, and never again, nor elsewhere, nor by anyone else."""
    user.api.upload("tok/a.txt", b"a")
    user.api.upload("tok2/b.txt", b"b")
    name = user.api.ok("POST", "/api/v1/operations", json={
        "kind": "OPERATION_KIND_ORGANIZE", "source_path": "tok", "dry_run": True})["name"]
    other = user.api.ok("POST", "/api/v1/operations", json={
        "kind": "OPERATION_KIND_ORGANIZE", "source_path": "tok2", "dry_run": True})["name"]

    issued = user.api.ok("POST", f"/api/v1/{name}:watchToken", json={})
    check_schema(issued, "WatchToken")
    assert issued["name"] == name and issued["token"].startswith("fow_")
    assert issued["watch_path"] == f"/api/v1/{name}:watch?watch_token={issued['token']}"
    events = sse(user.api.get(issued["watch_path"], anonymous=True, stream=True))
    assert events[-1]["state"] == "OPERATION_STATE_PLANNED", events
    assert all(e["name"] == name for e in events)
    # Spent.
    assert_error(user.api.get(issued["watch_path"], anonymous=True), 401, "TOKEN_INVALID")
    # The query parameter, with the token, as the requests library encodes it.
    token = user.api.ok("POST", f"/api/v1/{name}:watchToken", json={})["token"]
    events = sse(user.api.get(f"/api/v1/{name}:watch", params={"watch_token": token}, anonymous=True,
                              stream=True))
    assert events[-1]["state"] == "OPERATION_STATE_PLANNED"

    # Presented for another operation: refused, and spent.
    token = user.api.ok("POST", f"/api/v1/{name}:watchToken", json={})["token"]
    assert_error(user.api.get(f"/api/v1/{other}:watch", params={"watch_token": token}, anonymous=True),
                 401, "TOKEN_INVALID")
    assert_error(user.api.get(f"/api/v1/{name}:watch", params={"watch_token": token}, anonymous=True),
                 401, "TOKEN_INVALID")
    # Presented to another route: Envoy knows no such parameter there.
    token = user.api.ok("POST", f"/api/v1/{name}:watchToken", json={})["token"]
    assert user.api.get(f"/api/v1/{name}", params={"watch_token": token}, anonymous=True).status_code == 400
    assert user.api.get(f"/api/v1/{name}/files", params={"watch_token": token}, anonymous=True).status_code == 400
    # As a credential: not one.
    assert_error(user.api.get(f"/api/v1/{name}", token=token), 401, "TOKEN_INVALID")
    assert_error(user.api.get(f"/api/v1/{name}", headers={"x-api-key": token}, anonymous=True), 401,
                 "API_KEY_INVALID")
    # With credentials as well: 400 naming the field (and the token is not spent).
    assert_error(user.api.get(f"/api/v1/{name}:watch", params={"watch_token": token}), 400,
                 "INVALID_ARGUMENT", field="watch_token")
    assert sse(user.api.get(f"/api/v1/{name}:watch", params={"watch_token": token}, anonymous=True,
                            stream=True))

    # Someone else: no token for this user's operation (404, as for a missing one), and their own
    # token does not open it.
    mallory = new_user("mallory")
    assert_error(mallory.api.post(f"/api/v1/{name}:watchToken", json={}), 404, "NOT_FOUND")
    assert_error(mallory.api.post(f"/api/v1/operations/{uuid.uuid4()}:watchToken", json={}), 404, "NOT_FOUND")
    mallory.api.upload("m/x.txt", b"x")
    theirs = mallory.api.ok("POST", "/api/v1/operations", json={
        "kind": "OPERATION_KIND_ORGANIZE", "source_path": "m", "dry_run": True})["name"]
    token = mallory.api.ok("POST", f"/api/v1/{theirs}:watchToken", json={})["token"]
    assert_error(mallory.api.get(f"/api/v1/{name}:watch", params={"watch_token": token}, anonymous=True),
                 401, "TOKEN_INVALID")
    # Anonymous, nothing at all: 401; a forged token: 401; no token for the anonymous.
    assert_error(user.api.get(f"/api/v1/{name}:watch", anonymous=True), 401, "CREDENTIALS_MISSING")
    assert_error(user.api.get(f"/api/v1/{name}:watch", params={"watch_token": "fow_" + "A" * 43},
                              anonymous=True), 401, "TOKEN_INVALID")
    assert_error(user.api.post(f"/api/v1/{name}:watchToken", json={}, anonymous=True), 401,
                 "CREDENTIALS_MISSING")
