"""FileService over REST: upload, listing pages, raw downloads, trash, categories."""

from __future__ import annotations

import base64
import os
import uuid

from conftest import User, assert_error
from conformance import check_schema

PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489") + b"\0" * 16


def test_upload_list_pages_and_download(user: User) -> None:
    blob = os.urandom(300 * 1024 + 7)
    files = {"docs/a.txt": b"alpha\n", "docs/b.png": PNG, "docs/c.bin": blob, "docs/d.txt": b"delta\n"}
    for path, content in files.items():
        entry = user.api.upload(path, content)
        check_schema(entry, "FileEntry")
        assert entry["path"] == path and entry["kind"] == "FILE_KIND_FILE"
        assert entry["size_bytes"] == str(len(content))
    # FAIL is the default conflict policy: 409; RENAME keeps both.
    again = user.api.post("/api/v1/files", json={"path": "docs/a.txt", "content": base64.b64encode(b"x").decode()})
    assert_error(again, 409, "ALREADY_EXISTS")
    renamed = user.api.upload("docs/a.txt", b"other\n", conflict_policy="FILE_CONFLICT_POLICY_RENAME")
    assert renamed["path"] == "docs/a (1).txt"
    escape = user.api.post("/api/v1/files", json={"path": "../x", "content": ""})
    assert_error(escape, 400, "PATH_ESCAPE", field="path")
    not_base64 = user.api.post("/api/v1/files", json={"path": "docs/z", "content": "***"})
    assert not_base64.status_code == 400

    names = []
    token = ""
    for _ in range(10):
        page = user.api.ok("GET", "/api/v1/files", params={"path": "docs", "page_size": 2, "page_token": token})
        assert page["path"] == "docs" and len(page["entries"]) <= 2
        names += [e["name"] for e in page["entries"]]
        token = page["next_page_token"]
        if not token:
            break
    assert names == ["a (1).txt", "a.txt", "b.png", "c.bin", "d.txt"]
    assert_error(user.api.get("/api/v1/files", params={"path": "docs", "page_token": "bogus"}),
                 400, "INVALID_ARGUMENT", field="page_token")
    assert_error(user.api.get("/api/v1/files", params={"path": "nowhere"}), 404, "NOT_FOUND")

    for path, media in [("docs/a.txt", "text/plain; charset=utf-8"), ("docs/b.png", "image/png"),
                        ("docs/c.bin", "application/octet-stream")]:
        response = user.api.get("/api/v1/files:download", params={"path": path})
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == media, response.text
        name = path.rsplit("/", 1)[1]
        assert response.headers["content-disposition"].startswith(f'attachment; filename="{name}"')
        assert response.content == files[path]
        # A streamed download: chunked, or (when Envoy knows it) the exact length.
        framing = response.raw.headers.get("transfer-encoding") == "chunked"
        assert framing or response.headers.get("content-length") == str(len(files[path])), response.headers
    # requests (like a browser's URLSearchParams) sends a space in a query as "+", and a "+" as %2B.
    odd = "docs/café \"1\"+2.txt"
    user.api.upload(odd, b"accented")
    response = user.api.get("/api/v1/files:download", params={"path": odd})
    assert response.status_code == 200, response.text
    assert response.content == b"accented"
    assert response.headers["content-disposition"] == (
        "attachment; filename=\"caf_ _1_+2.txt\"; filename*=UTF-8''caf%C3%A9%20%221%22+2.txt")
    assert_error(user.api.get("/api/v1/files:download", params={"path": "docs/none"}), 404, "NOT_FOUND")
    assert_error(user.api.get("/api/v1/files:download", params={"path": "/etc/passwd"}),
                 400, "PATH_ESCAPE", field="path")


def test_trash_delete_restore_and_empty(user: User) -> None:
    for i in range(3):
        user.api.upload(f"t/{i}.txt", f"trash me {i}\n".encode())
    items = []
    for i in range(3):
        deleted = user.api.ok("DELETE", "/api/v1/files", params={"path": f"t/{i}.txt"})
        check_schema(deleted, "DeleteFileResponse")
        assert deleted["trash_item"]["original_path"] == f"t/{i}.txt"
        items.append(deleted["trash_item"])
    assert_error(user.api.delete("/api/v1/files", params={"path": "t/0.txt"}), 404, "NOT_FOUND")

    first = user.api.ok("GET", "/api/v1/trash", params={"page_size": 2})
    assert len(first["trash_items"]) == 2 and first["next_page_token"]
    assert first["total_size_bytes"] == str(sum(len(f"trash me {i}\n") for i in range(3)))
    rest = user.api.ok("GET", "/api/v1/trash", params={"page_size": 2, "page_token": first["next_page_token"]})
    assert len(rest["trash_items"]) == 1 and rest["next_page_token"] == ""
    listed = {t["name"] for t in first["trash_items"] + rest["trash_items"]}
    assert listed == {t["name"] for t in items}
    assert_error(user.api.get("/api/v1/trash", params={"page_token": "x"}), 400, "INVALID_ARGUMENT",
                 field="page_token")

    restored = user.api.ok("POST", f"/api/v1/{items[0]['name']}:restore", json={})
    assert restored["file"]["path"] == "t/0.txt"
    download = user.api.get("/api/v1/files:download", params={"path": "t/0.txt"})
    assert download.content == b"trash me 0\n"
    assert_error(user.api.post(f"/api/v1/{items[0]['name']}:restore", json={}), 404, "NOT_FOUND")
    assert_error(user.api.post(f"/api/v1/trash/{uuid.uuid4()}:restore", json={}), 404, "NOT_FOUND")

    emptied = user.api.ok("POST", "/api/v1/trash:empty", json={"names": [items[1]["name"]]})
    assert emptied["deleted_count"] == "1"
    emptied = user.api.ok("POST", "/api/v1/trash:empty", json={})
    assert emptied == {"deleted_count": "1", "freed_bytes": str(len("trash me 2\n")), "failed_items": []}
    assert user.api.ok("GET", "/api/v1/trash")["trash_items"] == []


def test_categories_create_page_update_delete(user: User) -> None:
    builtin = user.api.ok("GET", "/api/v1/categories")
    assert builtin["next_page_token"] == ""
    assert any(c["built_in"] for c in builtin["categories"])
    created = user.api.ok("POST", "/api/v1/categories",
                          json={"display_name": "Recipes", "extensions": ["recipe", "cook"], "color": "#aa5500"})
    check_schema(created, "Category")
    assert created["name"].startswith("categories/") and created["built_in"] is False
    assert created["file_count"] == "0"
    assert_error(user.api.post("/api/v1/categories", json={"display_name": "Recipes", "extensions": ["x"]}), 409, "ALREADY_EXISTS")
    assert_error(user.api.post("/api/v1/categories", json={"display_name": ""}), 400, "INVALID_ARGUMENT",
                 field="category.display_name")

    names = []
    token = ""
    for _ in range(50):
        page = user.api.ok("GET", "/api/v1/categories", params={"page_size": 3, "page_token": token})
        names += [c["name"] for c in page["categories"]]
        token = page["next_page_token"]
        if not token:
            break
    assert sorted(names) == sorted(c["name"] for c in builtin["categories"] + [created])
    assert_error(user.api.get("/api/v1/categories", params={"page_token": "nope"}), 400, "INVALID_ARGUMENT",
                 field="page_token")

    updated = user.api.ok("PATCH", f"/api/v1/{created['name']}",
                          params={"update_mask": "color"}, json={"color": "#005500", "display_name": "ignored"})
    assert updated["color"] == "#005500" and updated["display_name"] == "Recipes"
    missing = f"categories/{uuid.uuid4()}"
    assert_error(user.api.patch(f"/api/v1/{missing}", json={"color": "#000000"}), 404, "NOT_FOUND")
    assert user.api.ok("DELETE", f"/api/v1/{created['name']}") == {}
    assert_error(user.api.delete(f"/api/v1/{created['name']}"), 404, "NOT_FOUND")
    builtin_name = next(c["name"] for c in builtin["categories"] if c["built_in"])
    assert user.api.delete(f"/api/v1/{builtin_name}").status_code == 400


def test_search_without_records_and_bad_tokens(user: User) -> None:
    """SearchFiles looks through the records of the user's operations (see test_operations.py
    for a full run); a user without operations finds nothing, and bad input is 400."""
    empty = user.api.ok("GET", "/api/v1/files:search", params={"name_contains": "xyz"})
    assert empty == {"file_records": [], "next_page_token": ""}
    assert_error(user.api.get("/api/v1/files:search", params={"name_contains": "xyz", "page_token": "??"}), 400, "INVALID_ARGUMENT",
                 field="page_token")


def test_download_archive_through_envoy(user: User) -> None:
    import io
    import tarfile
    import zipfile

    data = {"one.txt": b"one\n", "b/two.bin": os.urandom(300_000), "b/\u00e9t\u00e9.txt": b"summer"}
    for name, content in data.items():
        user.api.upload(f"out/{name}", content)
    response = user.api.get("/api/v1/files:downloadArchive", params={"path": "out"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    disposition = response.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="out.zip"'), disposition
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert archive.testzip() is None
        assert sorted(archive.namelist()) == ["b/", "b/two.bin", "b/\u00e9t\u00e9.txt", "one.txt"]
        for name, content in data.items():
            assert archive.read(name) == content
    response = user.api.get("/api/v1/files:downloadArchive",
                            params={"path": "out/b", "format": "ARCHIVE_FORMAT_TAR_GZIP"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/gzip"
    assert 'filename="b.tar.gz"' in response.headers["content-disposition"]
    with tarfile.open(fileobj=io.BytesIO(response.content), mode="r:gz") as archive:
        assert sorted(archive.getnames()) == ["two.bin", "\u00e9t\u00e9.txt"]
    # Errors before the first byte are ordinary JSON errors naming the field.
    assert_error(user.api.get("/api/v1/files:downloadArchive", params={"path": "none"}), 404, "NOT_FOUND")
    assert_error(user.api.get("/api/v1/files:downloadArchive", params={"path": "../x"}), 400, "PATH_ESCAPE",
                 field="path")
    assert_error(user.api.get("/api/v1/files:downloadArchive",
                              params={"path": "out", "format": "ARCHIVE_FORMAT_AUTO"}), 400, "INVALID_ARGUMENT",
                 field="format")


def test_import_archive_as_a_raw_body(user: User) -> None:
    import io
    import tarfile


    data = {"a/one.txt": b"one\n", "a/b/two.bin": os.urandom(200_000)}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, content in data.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(content), 1_600_000_000
            tar.addfile(info, io.BytesIO(content))
        link = tarfile.TarInfo("a/link")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    response = user.api.post("/api/v1/files:import", params={"path": "imported"}, data=buffer.getvalue(),
                             headers={"content-type": "application/gzip"})
    assert response.status_code == 200, response.text
    body = response.json()
    check_schema(body, "ImportArchiveResponse")
    assert body["path"] == "imported" and body["format"] == "ARCHIVE_FORMAT_TAR_GZIP"
    assert body["file_count"] == "2" and body["total_bytes"] == str(sum(map(len, data.values())))
    assert [(s["name"], s["reason"]) for s in body["skipped_entries"]] == [
        ("a/link", "ARCHIVE_ENTRY_SKIP_REASON_SYMLINK")]
    for name, content in data.items():
        got = user.api.get("/api/v1/files:download", params={"path": f"imported/{name}"})
        assert got.status_code == 200 and got.content == content
    # Not an archive: 400 naming the body; nothing created.
    assert_error(user.api.post("/api/v1/files:import", params={"path": "junk"}, data=b"plain text"),
                 400, "INVALID_ARGUMENT", field="body")
    assert_error(user.api.get("/api/v1/files", params={"path": "junk"}), 404, "NOT_FOUND")
