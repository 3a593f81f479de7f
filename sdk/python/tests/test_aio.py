"""The asyncio client (fileorganizer.AsyncClient) against a live server: every group of
wrappers, results with enum names, pages followed, errors mapped, raw stubs authenticated."""

from __future__ import annotations

import asyncio
import io
import os
import tarfile
import uuid
from pathlib import Path
from typing import Any, Awaitable, Callable, Tuple

import grpc
import pytest

import fileorganizer
from fileorganizer import AsyncClient, pb

from conftest import PASSWORD


def run(test: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(test())


def fresh_email() -> str:
    return f"aio-{uuid.uuid4().hex[:12]}@example.com"


def test_organize_report_undo_and_history(url: str, tmp_path: Path, files: dict[str, bytes]) -> None:
    async def body() -> None:
        async with AsyncClient(url) as c:
            user = await c.register(fresh_email(), PASSWORD, display_name="Async")
            assert user.role == "USER" and (await c.me()).id == user.id
            for name in files:
                entry = await c.upload(tmp_path / name, f"inbox/{name}")
                assert entry.kind == "FILE"
            assert sorted(e.name for e in await c.list_directory("inbox")) == sorted(files)
            snapshots = [p async for p in c.organize("inbox", "sorted", duplicate_policy="report_only")]
            last = snapshots[-1]
            assert last.state == "SUCCEEDED" and last.counters.files_moved == len(files)
            op = await c.operation(last)
            assert (op.kind, op.state, op.duplicate_policy) == ("ORGANIZE", "SUCCEEDED", "REPORT_ONLY")
            report = await c.report(op)
            assert report.duplicate_file_count == 1 and report.state == "SUCCEEDED"
            csv = await c.export_report(op, format="csv")
            assert csv.startswith(b"seq,original_path") and csv.count(b"\r\n") == len(files) + 1
            records = await c.list_file_records(op, status="COMPLETED", page_size=1)
            assert {r.status for r in records} == {"COMPLETED"} and len(records) >= 3
            assert len([r async for r in c.iter_search_files(name_contains="notes")]) == 2
            groups = await c.list_duplicate_groups(report)
            assert len(groups) == 1 and groups[0].file_count == 2
            undo = await c.undo(last)
            assert (undo.kind, undo.state, undo.undo_of) == ("UNDO", "SUCCEEDED", last.name)
            # Two operations, one per page: the iterator follows next_page_token.
            kinds = [o.kind async for o in c.iter_operations(page_size=1)]
            assert kinds == ["UNDO", "ORGANIZE"]
            assert [o.name for o in await c.list_operations(kind="undo")] == [undo.name]
            usage = await c.usage()
            assert usage.operation_count == 2 and usage.operations_by_state[0].state == "SUCCEEDED"
            # A dry run cancelled, another applied.
            plan = await c.create_operation("inbox", "planned", dry_run=True)
            assert [p.state async for p in c.watch(plan)][-1] == "PLANNED"
            assert (await c.cancel_operation(plan)).state == "CANCELLED"
            plan = await c.create_operation("inbox", "planned", dry_run=True)
            assert [p.state async for p in c.watch(plan)][-1] == "PLANNED"
            assert [p.state async for p in c.apply(plan)][-1] == "SUCCEEDED"
            second = await c.undo_operation(plan)
            assert second.kind == "UNDO" and [p.state async for p in c.watch(second)][-1] == "SUCCEEDED"
            with pytest.raises(fileorganizer.FailedPrecondition):
                await c.apply_operation(plan)  # not PLANNED any more

    run(body)


def test_files_trash_categories_keys_and_profile(url: str, tmp_path: Path) -> None:
    async def body() -> None:
        email = fresh_email()
        async with AsyncClient(url) as c:
            await c.register(email, PASSWORD)
            await c.upload_small_file("docs/a.txt", b"alpha")
            out = tmp_path / "a.txt"
            assert await c.download("docs/a.txt", out) == 5 and out.read_bytes() == b"alpha"
            deleted = await c.delete_file("docs/a.txt")
            assert deleted.trash_item.kind == "FILE"
            assert [t.name async for t in c.iter_trash()] == [deleted.trash_item.name]
            assert (await c.restore_file(deleted.trash_item)).file.path == "docs/a.txt"
            await c.delete_file("docs/a.txt")
            emptied = await c.empty_trash([t.name for t in await c.list_trash()])
            assert emptied.deleted_count == 1 and await c.list_trash() == []

            made = await c.create_category(display_name="Comics", extensions=["cbz"])
            changed = await c.update_category(made, color="#112233")
            assert changed.extensions == ["cbz"] and changed.color == "#112233"
            assert "Comics" in [x.display_name async for x in c.iter_categories(page_size=2)]
            assert await c.delete_category(changed) is None

            key, secret = await c.create_api_key("async", scopes=["files.read"])
            assert [k.name for k in await c.list_api_keys()] == [key.name]
            async with AsyncClient(url, api_key=secret) as by_key:
                assert (await by_key.me()).email == email
                with pytest.raises(fileorganizer.PermissionDenied) as denied:
                    await by_key.upload_small_file("docs/b.txt", b"b")
                assert denied.value.reason == "SCOPE_INSUFFICIENT"
            assert (await c.revoke_api_key(key)).revoked
            assert [k.revoked async for k in c.iter_api_keys()] == [True]

            assert (await c.update_current_user(display_name="Renamed")).display_name == "Renamed"
            await c.update_current_user(current_password=PASSWORD, new_password=PASSWORD + "!")
            old = c.access_token
            c.expires_at = 0.0  # the access token is due: the interceptor refreshes it
            assert (await c.me()).display_name == "Renamed" and c.access_token != old
            assert await c.logout() >= 1
            with pytest.raises(fileorganizer.Unauthenticated) as err:
                await c.login(email, PASSWORD)
            assert err.value.reason == "INVALID_CREDENTIALS"
            await c.login(email, PASSWORD + "!")
            await c.refresh()
            assert (await c.health()).status == "HEALTHY"
            assert (await c.status()).status in ("HEALTHY", "DEGRADED")

    run(body)


def test_transfers_and_upload_sessions(url: str, tmp_path: Path) -> None:
    async def body() -> None:
        async with AsyncClient(url) as c:
            await c.register(fresh_email(), PASSWORD)
            (tmp_path / "dir").mkdir()
            (tmp_path / "dir" / "one.txt").write_bytes(b"one")
            (tmp_path / "dir" / "two.bin").write_bytes(os.urandom(3000))
            first = await c.upload_file(tmp_path / "dir" / "one.txt", "up/one.txt")
            assert first.file.path == "up/one.txt" and not first.skipped_identical
            folder = await c.upload_folder(tmp_path / "dir", "up")
            assert (folder.uploaded, folder.identical) == (1, 1)
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w") as tar:
                info = tarfile.TarInfo("x/three.txt")
                info.size = 5
                tar.addfile(info, io.BytesIO(b"three"))
            buf.seek(0)
            imported = await c.import_archive(buf, "up", format="tar")
            assert imported.file_count == 1 and imported.format == "TAR"
            archive = io.BytesIO()
            assert await c.download_archive(archive, "up", format="TAR") == "up.tar"
            with tarfile.open(fileobj=io.BytesIO(archive.getvalue())) as tar:
                assert sorted(tar.getnames()) == ["one.txt", "two.bin", "x", "x/three.txt"]
            big = tmp_path / "big.bin"
            big.write_bytes(os.urandom(300_000))
            done = await c.upload_large(big, "up/big.bin", chunk_size=100_000)
            assert done.file.size_bytes == 300_000
            session = await c.create_upload(path="up/parts.bin", size_bytes=4)
            assert (await c.append_upload(session.name, 0, b"ab")).committed_offset == 2
            assert (await c.upload_session(session)).committed_offset == 2
            await c.append_upload(session.name, 2, b"cd")
            assert (await c.finish_upload(session)).file.size_bytes == 4
            doomed = await c.create_upload(path="up/never.bin", size_bytes=1)
            assert await c.cancel_upload(doomed) is None
            with pytest.raises(fileorganizer.NotFound):
                await c.upload_session(doomed)

    run(body)


def test_rules_automations_and_admin(url: str, admin_login: Tuple[str, str]) -> None:
    async def body() -> None:
        async with AsyncClient(url) as c, AsyncClient(url) as admin:
            user = await c.register(fresh_email(), PASSWORD)
            rule = await c.create_rule(
                display_name="Invoices",
                match="all",
                conditions=[{"name_glob": "invoice-*"}],
                action={"move": {"destination_template": "Finance/{name}"}},
            )
            assert rule.match == "ALL"
            renamed = await c.update_rule(rule, display_name="Bills")
            assert (await c.rule(rule.name)).display_name == "Bills"
            with pytest.raises(fileorganizer.Aborted) as stale:
                await c.delete_rule(rule)  # the etag it was read with is stale
            assert stale.value.reason == "ETAG_MISMATCH"
            await c.upload_small_file("inbox/invoice-1.pdf", b"%PDF")
            preview = await c.preview_rules(folder="inbox")
            assert [e.rule for e in preview.entries] == [renamed.name]
            assert [r.name async for r in c.iter_rules()] == [renamed.name]
            await c.delete_rule(renamed)
            assert await c.list_rules() == []

            auto = await c.create_automation(
                display_name="Sort",
                arrival={"folder_path": "inbox"},
                operation={"kind": "ORGANIZE", "source_path": "inbox", "destination_path": "sorted"},
            )
            assert (await c.pause_automation(auto)).paused
            auto = await c.resume_automation(auto)
            auto = await c.update_automation(auto, display_name="Sort it")
            assert (await c.automation(auto)).display_name == "Sort it"
            assert [a.name async for a in c.iter_automations()] == [a.name for a in await c.list_automations()]
            await c.delete_automation(auto)

            with pytest.raises(fileorganizer.PermissionDenied):
                await c.list_audit_events()
            await admin.login(*admin_login)
            status = await admin.rate_limit_status(user_id=user.id)
            assert status.user_id == user.id and status.counters
            await admin.reset_rate_limit(user_id=user.id)
            events = [e async for e in admin.iter_audit_events(user_id=user.id, page_size=1)]
            assert events and all(e.action for e in events)
            assert len(await admin.list_audit_events(user_id=user.id)) == len(events)

    run(body)


def test_errors_enums_and_raw_stubs(url: str) -> None:
    async def body() -> None:
        async with AsyncClient(url) as c:
            email = fresh_email()
            await c.register(email, PASSWORD)
            with pytest.raises(fileorganizer.UnknownEnumValue) as bad_enum:
                await c.list_operations(state="DONE")
            assert "QUEUED" in str(bad_enum.value) and "SUCCEEDED" in str(bad_enum.value)
            assert bad_enum.value.field == "state"
            with pytest.raises(fileorganizer.InvalidArgument) as bad:
                await c.create_operation("../outside")
            assert bad.value.reason == "PATH_ESCAPE"
            assert bad.value.field_violations[0][0] == "operation.source_path"
            with pytest.raises(fileorganizer.NotFound):
                await c.report("00000000-0000-0000-0000-000000000000")
            # The raw stubs carry the client's token; given credentials are left alone.
            trash = await c.files.ListTrash(pb.file.ListTrashRequest())
            assert list(trash.trash_items) == []
            assert (await c.auth.GetCurrentUser(pb.auth.GetCurrentUserRequest())).email == email
            with pytest.raises(grpc.aio.AioRpcError) as raw:
                await c.auth.GetCurrentUser(pb.auth.GetCurrentUserRequest(), metadata=[("authorization", "Bearer x")])
            assert raw.value.code() == grpc.StatusCode.UNAUTHENTICATED
        async with AsyncClient(url) as anonymous:
            with pytest.raises(fileorganizer.Unauthenticated) as missing:
                await anonymous.me()
            assert missing.value.reason == "CREDENTIALS_MISSING"
        async with AsyncClient("127.0.0.1:1", timeout=5) as nowhere:
            with pytest.raises(fileorganizer.Unavailable):
                await nowhere.health()

    run(body)
