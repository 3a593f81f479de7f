"""Raw-body uploads and resumable upload sessions over REST (docs/uploads.md)."""

from __future__ import annotations

import os

from conftest import User, assert_error
from conformance import check_schema


def test_raw_body_upload(user: User) -> None:
    blob = bytes(range(256)) + os.urandom(2 * 1024 * 1024 + 5)
    response = user.api.post("/api/v1/files:upload",
                             params={"path": "raw/blob.bin", "modify_time": "2019-06-15T12:00:00Z"},
                             data=blob, headers={"content-type": "application/octet-stream"})
    assert response.status_code == 200, response.text
    body = response.json()
    check_schema(body, "UploadRawFileResponse")
    assert body["file"]["size_bytes"] == str(len(blob)) and body["skipped_identical"] is False
    assert body["file"]["modify_time"] == "2019-06-15T12:00:00Z"
    assert user.api.get("/api/v1/files:download", params={"path": "raw/blob.bin"}).content == blob
    # Retried with SKIP_IF_IDENTICAL: the existing file answers, nothing is written.
    again = user.api.ok("POST", "/api/v1/files:upload", data=blob, params={
        "path": "raw/blob.bin", "conflict_policy": "FILE_CONFLICT_POLICY_SKIP_IF_IDENTICAL"})
    assert again["skipped_identical"] is True and again["file"]["path"] == "raw/blob.bin"
    assert_error(user.api.post("/api/v1/files:upload", params={"path": "raw/blob.bin"}, data=b"x"),
                 409, "ALREADY_EXISTS")
    assert_error(user.api.post("/api/v1/files:upload", params={"path": "../x"}, data=b"x"),
                 400, "PATH_ESCAPE", field="path")
    assert_error(user.api.post("/api/v1/files:upload", params={"path": "raw/late", "modify_time": "2999-01-01T00:00:00Z"},
                               data=b"x"), 400, "INVALID_ARGUMENT", field="modify_time")
    listing = user.api.ok("GET", "/api/v1/files", params={"path": "raw"})
    assert [e["name"] for e in listing["entries"]] == ["blob.bin"]


def test_resumable_session(user: User) -> None:
    blob = os.urandom(3 * 1024 * 1024 + 11)
    created = user.api.ok("POST", "/api/v1/uploads", json={
        "path": "big/disk.img", "size_bytes": str(len(blob)), "modify_time": "2020-01-02T03:04:05Z"})
    check_schema(created, "Upload")
    name = created["name"]
    assert name.startswith("uploads/") and created["committed_offset"] == "0"
    half = len(blob) // 2
    appended = user.api.ok("POST", f"/api/v1/{name}:append", params={"offset": "0"}, data=blob[:half])
    assert appended["committed_offset"] == str(half)
    assert user.api.ok("GET", f"/api/v1/{name}")["committed_offset"] == str(half)
    # A gap is refused with the committed offset in the details.
    gap = assert_error(user.api.post(f"/api/v1/{name}:append", params={"offset": str(half + 1)}, data=b"x"),
                       400, "FAILED_PRECONDITION")
    info = next(d for d in gap["details"] if d["@type"].endswith("ErrorInfo"))
    assert info["metadata"]["committed_offset"] == str(half), gap
    # Finishing early is refused; a retried chunk overlapping the committed bytes is fine.
    assert_error(user.api.post(f"/api/v1/{name}:finish", json={}), 400, "FAILED_PRECONDITION")
    user.api.ok("POST", f"/api/v1/{name}:append", params={"offset": str(half - 10)}, data=blob[half - 10:])
    finished = user.api.ok("POST", f"/api/v1/{name}:finish", json={})
    check_schema(finished, "FinishUploadResponse")
    assert finished["file"]["path"] == "big/disk.img"
    assert finished["file"]["modify_time"] == "2020-01-02T03:04:05Z"
    assert user.api.get("/api/v1/files:download", params={"path": "big/disk.img"}).content == blob
    assert_error(user.api.get(f"/api/v1/{name}"), 404, "NOT_FOUND")

    other = user.api.ok("POST", "/api/v1/uploads", json={"path": "big/other.img", "size_bytes": "4"})
    response = user.api.delete(f"/api/v1/{other['name']}")
    assert response.status_code == 200, response.text
    assert_error(user.api.get(f"/api/v1/{other['name']}"), 404, "NOT_FOUND")
    assert_error(user.api.post("/api/v1/uploads", json={"path": "big/disk.img", "size_bytes": "1"}),
                 409, "ALREADY_EXISTS")


def test_sessions_of_another_user_are_not_found(user: User, new_user) -> None:  # type: ignore[no-untyped-def]
    created = user.api.ok("POST", "/api/v1/uploads", json={"path": "mine.bin", "size_bytes": "3"})
    other = new_user("rest-other")
    assert_error(other.api.get(f"/api/v1/{created['name']}"), 404, "NOT_FOUND")
    assert_error(other.api.post(f"/api/v1/{created['name']}:append", params={"offset": "0"}, data=b"abc"),
                 404, "NOT_FOUND")
    assert_error(other.api.delete(f"/api/v1/{created['name']}"), 404, "NOT_FOUND")
    assert user.api.ok("GET", f"/api/v1/{created['name']}")["committed_offset"] == "0"
