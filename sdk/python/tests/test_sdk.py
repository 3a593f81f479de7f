"""The Python SDK against a live server: auth, API keys, token refresh, upload/download,
organize with progress, report, undo and error mapping."""

from __future__ import annotations

import os
from pathlib import Path

import grpc
import pytest

import fileorganizer
from fileorganizer import pb

from conftest import PASSWORD


def test_register_then_login(url: str, client: fileorganizer.Client, email: str) -> None:
    assert client.me().email == email
    other = fileorganizer.Client(f"grpc://{url}")
    user = other.login(email, PASSWORD)
    assert user.email == email
    assert other.access_token and other.refresh_token
    assert other.me().id == user.id


def test_api_key_auth(url: str, client: fileorganizer.Client, email: str) -> None:
    key, secret = client.create_api_key("sdk test")
    assert secret.startswith("fo_") and key.name.startswith("api-keys/")
    with fileorganizer.Client(url, api_key=secret) as by_key:
        assert by_key.me().email == email
    with fileorganizer.Client(url, api_key=secret + "x") as bad:
        with pytest.raises(fileorganizer.Unauthenticated) as err:
            bad.me()
    assert err.value.reason == "API_KEY_INVALID"


def test_scoped_api_key(url: str, client: fileorganizer.Client, tmp_path: Path) -> None:
    key, secret = client.create_api_key("read only", scopes=["files.read"])
    assert list(key.scopes) == ["files.read"]
    (tmp_path / "r.txt").write_bytes(b"r")
    with fileorganizer.Client(url, api_key=secret) as reader:
        reader.me()
        with pytest.raises(fileorganizer.PermissionDenied) as err:
            reader.upload(tmp_path / "r.txt", "scoped/r.txt")
    assert err.value.reason == "SCOPE_INSUFFICIENT"
    with pytest.raises(fileorganizer.InvalidArgument):
        client.create_api_key("bogus", scopes=["files.delete"])


def test_token_refreshed_before_expiry(client: fileorganizer.Client) -> None:
    old_access, old_refresh = client.access_token, client.refresh_token
    client.me()
    assert client.access_token == old_access  # far from expiry: no refresh
    client.expires_at = 0.0  # pretend the access token expired
    client.me()
    assert client.access_token and client.access_token != old_access
    assert client.refresh_token != old_refresh
    assert client.expires_at > 0
    client.me()  # the rotated pair keeps working


def test_upload_download_round_trip(client: fileorganizer.Client, tmp_path: Path) -> None:
    data = os.urandom(1_000_000 + 17)  # several chunks, not a multiple of the chunk size
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    entry = client.upload(src, "inbox/big.bin")
    assert entry.path == "inbox/big.bin" and entry.size_bytes == len(data)
    assert [e.name for e in client.list_directory("inbox")] == ["big.bin"]
    out = tmp_path / "back.bin"
    assert client.download("inbox/big.bin", out) == len(data)
    assert out.read_bytes() == data
    # Empty files work too.
    (tmp_path / "empty").write_bytes(b"")
    client.upload(tmp_path / "empty", "inbox/empty")
    assert client.download("inbox/empty", tmp_path / "empty.back") == 0


def test_upload_conflict_is_already_exists(client: fileorganizer.Client, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"a")
    client.upload(tmp_path / "a.txt", "a.txt")
    with pytest.raises(fileorganizer.AlreadyExists):
        client.upload(tmp_path / "a.txt", "a.txt")
    renamed = client.upload(tmp_path / "a.txt", "a.txt", rename_on_conflict=True)
    assert renamed.path != "a.txt"


def _upload_all(client: fileorganizer.Client, tmp_path: Path, files: dict[str, bytes]) -> None:
    for name in files:
        client.upload(tmp_path / name, f"inbox/{name}")


def test_organize_progress_report_and_undo(
    client: fileorganizer.Client, tmp_path: Path, files: dict[str, bytes]
) -> None:
    _upload_all(client, tmp_path, files)
    snapshots = list(client.organize("inbox", "sorted"))
    assert snapshots, "no progress snapshots"
    last = snapshots[-1]
    assert last.done and last.state == "SUCCEEDED", last
    assert last.counters.files_scanned == len(files)
    assert last.counters.files_moved == len(files)
    assert last.counters.duplicates_found == 1
    assert last.name.startswith("operations/")
    scanned = [s.counters.files_scanned for s in snapshots]
    assert scanned == sorted(scanned), "counters never decrease"
    assert client.list_directory("inbox") == []

    report = client.report(last)
    assert report.name == "reports/" + last.name.split("/")[1]
    assert report.totals.files_moved == len(files)
    assert report.duplicate_file_count == 1
    assert {c.category for c in report.categories} == {"Documents", "Images", "Audio"}
    assert sorted(e.name for e in client.list_directory("sorted")) == ["Audio", "Documents", "Images"]

    undo = client.undo(last)
    assert undo.kind == "UNDO"
    assert undo.state == "SUCCEEDED"
    assert undo.undo_of == last.name
    restored = sorted(e.name for e in client.list_directory("inbox"))
    assert restored == sorted(files)
    out = tmp_path / "check"
    client.download("inbox/photo.jpg", out)
    assert out.read_bytes() == files["photo.jpg"]


def test_dry_run_then_apply(client: fileorganizer.Client, tmp_path: Path, files: dict[str, bytes]) -> None:
    _upload_all(client, tmp_path, files)
    planned = list(client.organize("inbox", dry_run=True, layout_template="{ext}/{name}"))[-1]
    assert planned.state == "PLANNED"
    assert sorted(e.name for e in client.list_directory("inbox")) == sorted(files)
    applied = list(client.apply(planned))[-1]
    assert applied.state == "SUCCEEDED"
    assert sorted(e.name for e in client.list_directory("inbox")) == ["jpg", "mp3", "txt"]


def test_wrong_password_is_unauthenticated(url: str, client: fileorganizer.Client, email: str) -> None:
    with pytest.raises(fileorganizer.Unauthenticated) as err:
        fileorganizer.Client(url).login(email, "not the password")
    e = err.value
    assert isinstance(e, fileorganizer.ApiError)
    assert e.code == grpc.StatusCode.UNAUTHENTICATED
    assert e.reason == "INVALID_CREDENTIALS"
    assert e.domain == "fileorganizer.v1"


def test_bad_path_is_invalid_argument(client: fileorganizer.Client, tmp_path: Path) -> None:
    with pytest.raises(fileorganizer.InvalidArgument) as err:
        list(client.organize("../outside"))
    assert err.value.reason == "PATH_ESCAPE"
    assert err.value.field_violations and "source_path" in err.value.field_violations[0][0]
    with pytest.raises(fileorganizer.InvalidArgument) as err2:
        client.download("/etc/passwd", tmp_path / "x")
    assert err2.value.reason == "PATH_ESCAPE"


def test_missing_credentials_and_not_found(url: str, client: fileorganizer.Client) -> None:
    with fileorganizer.Client(url) as anonymous:
        with pytest.raises(fileorganizer.Unauthenticated) as err:
            anonymous.me()
    assert err.value.reason == "CREDENTIALS_MISSING"
    with pytest.raises(fileorganizer.NotFound) as nf:
        client.report("operations/00000000-0000-0000-0000-000000000000")
    assert nf.value.reason == "NOT_FOUND"


def test_raw_stubs_are_authenticated(url: str, client: fileorganizer.Client, email: str, tmp_path: Path) -> None:
    # No metadata passed: the client's channel adds the bearer token.
    trash = client.files.ListTrash(pb.file.ListTrashRequest())
    assert list(trash.trash_items) == []
    assert client.auth.GetCurrentUser(pb.auth.GetCurrentUserRequest()).email == email
    # A server stream.
    (tmp_path / "raw.txt").write_bytes(b"raw stub bytes")
    client.upload(tmp_path / "raw.txt", "raw/raw.txt")
    body = b"".join(m.data for m in client.files.DownloadFile(pb.file.DownloadFileRequest(path="raw/raw.txt")))
    assert body == b"raw stub bytes"
    # An API key too.
    key, secret = client.create_api_key("raw stubs")
    with fileorganizer.Client(url, api_key=secret) as by_key:
        assert by_key.auth.GetCurrentUser(pb.auth.GetCurrentUserRequest()).email == email
    # Credentials given by the caller are left as they are (here: wrong ones).
    with pytest.raises(grpc.RpcError) as err:
        client.auth.GetCurrentUser(pb.auth.GetCurrentUserRequest(), metadata=[("authorization", "Bearer nope")])
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    # The public RPCs go without: a second client logs in through the raw stub.
    anonymous = fileorganizer.Client(url)
    anonymous.auth.Login(pb.auth.LoginRequest(email=email, password=PASSWORD))
    with pytest.raises(grpc.RpcError) as err:
        anonymous.files.ListTrash(pb.file.ListTrashRequest())
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    anonymous.close()
