"""Transfers against a live server whose upload limit is low (tests/api/python_sdk.rs starts it
with RATE_LIMIT_UPLOAD=FILEORG_UPLOAD_LIMIT per RATE_LIMIT_WINDOW_SECS): upload_folder paced by
RetryInfo and idempotent, import_archive and download_archive, upload_large resumed after its
connection is cut."""

from __future__ import annotations

import asyncio
import io
import os
import socket
import tarfile
import threading
import zipfile
from pathlib import Path
from typing import Iterator, List

import pytest

import fileorganizer
from conftest import PASSWORD


@pytest.fixture(scope="module", autouse=True)
def low_upload_limit() -> int:
    """These tests need a server with a low upload limit (tests/api/python_sdk.rs starts one)."""
    value = os.environ.get("FILEORG_UPLOAD_LIMIT")
    if not value:
        pytest.fail("FILEORG_UPLOAD_LIMIT is not set: run through tests/api/python_sdk.rs", pytrace=False)
    return int(value)


def walk(client: fileorganizer.Client, path: str) -> List[str]:
    """Every file path under ``path`` on the server, sorted."""
    out: List[str] = []
    pending = [path]
    while pending:
        for entry in client.list_directory(pending.pop()):
            if entry.kind == "DIRECTORY":
                pending.append(entry.path)
            else:
                out.append(entry.path)
    return sorted(out)


def test_upload_folder_waits_out_the_rate_limit_and_never_duplicates(
    client: fileorganizer.Client, tmp_path: Path
) -> None:
    limit = int(os.environ["FILEORG_UPLOAD_LIMIT"])
    count = 3 * limit + 1  # needs at least four windows: the limit must be met
    local = tmp_path / "album"
    expected = []
    for i in range(count):
        sub = local / ("a" if i % 2 else "a/b")
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"f{i:02}.txt").write_bytes(f"file {i}\n".encode() * (i + 1))
        expected.append(f"up/{(sub / f'f{i:02}.txt').relative_to(local).as_posix()}")
    os.utime(local / "a/b/f00.txt", (1_500_000_000, 1_500_000_000))

    notices: List[fileorganizer.WaitNotice] = []
    first = client.upload_folder(local, "up", concurrency=3, on_wait=notices.append)
    assert (first.uploaded, first.identical) == (count, 0)
    assert first.waits >= 1 and len(notices) == first.waits, "the limit was never met: nothing was paced"
    assert all(n.delay > 0 for n in notices), notices
    assert walk(client, "up") == sorted(expected)
    # The modification time went with the file.
    f00 = [f for f in first.files if f.path == "up/a/b/f00.txt"][0]
    assert f00.modify_time.timestamp() == 1_500_000_000  # a datetime

    # Again: everything is already there, nothing is written twice.
    second = client.upload_folder(local, "up", concurrency=3)
    assert (second.uploaded, second.identical) == (0, count)
    assert walk(client, "up") == sorted(expected)

    # A changed file under a taken name is kept beside the old one, never over it.
    (local / "a/f01.txt").write_bytes(b"changed")
    third = client.upload_folder(local, "up", concurrency=3)
    assert (third.uploaded, third.identical) == (1, count - 1)
    assert walk(client, "up") == sorted(expected + ["up/a/f01 (1).txt"])


def test_import_archive_tar_and_zip(client: fileorganizer.Client, tmp_path: Path) -> None:
    buf = io.BytesIO()
    contents = {"pics/one.jpg": os.urandom(3000), "pics/deep/two.txt": b"two\n", "three.bin": os.urandom(70_000)}
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in contents.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1_400_000_000
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    resp = client.import_archive(buf, "imported")
    assert resp.file_count == 3 and resp.skipped_count == 0, resp
    assert resp.format == "TAR"
    assert walk(client, "imported") == sorted(f"imported/{n}" for n in contents)
    out = tmp_path / "three.back"
    client.download("imported/three.bin", out)
    assert out.read_bytes() == contents["three.bin"]
    listed = {e.name: e for e in client.list_directory("imported/pics")}
    assert listed["one.jpg"].modify_time.timestamp() == 1_400_000_000

    # Importing it again stores nothing new and makes no copies.
    buf.seek(0)
    again = client.import_archive(buf, "imported")
    assert again.file_count == 0 and again.skipped_count == 3, again
    assert walk(client, "imported") == sorted(f"imported/{n}" for n in contents)

    # A zip file from disk, format detected.
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in contents.items():
            z.writestr(name, data)
    resp = client.import_archive(archive, "zipped")
    assert resp.file_count == 3 and resp.format == "ZIP", resp
    assert walk(client, "zipped") == sorted(f"zipped/{n}" for n in contents)


def test_download_archive_as_zip_and_tar(client: fileorganizer.Client, tmp_path: Path) -> None:
    contents = {"one.txt": b"one\n", "deep/two.bin": os.urandom(2_500_000), "deep/\u00e9.txt": b"e"}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in contents.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 1_500_000_000
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    assert client.import_archive(buf, "exported").file_count == 3

    # Into a directory: named by the server, never replacing a file there.
    name = client.download_archive(tmp_path, "exported")
    assert name == "exported.zip"
    with zipfile.ZipFile(tmp_path / name) as z:
        assert z.testzip() is None
        assert {n: z.read(n) for n in z.namelist() if not n.endswith("/")} == contents
        assert z.getinfo("one.txt").date_time[0] == 2017
    with pytest.raises(FileExistsError):
        client.download_archive(tmp_path, "exported")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exported.zip"]

    # Into a file object, as a compressed tar.
    out = io.BytesIO()
    assert client.download_archive(out, "exported/deep", format="TAR_GZIP") == "deep.tar.gz"
    out.seek(0)
    with tarfile.open(fileobj=out, mode="r:gz") as tar:
        assert sorted(tar.getnames()) == ["two.bin", "\u00e9.txt"]
        assert tar.extractfile("two.bin").read() == contents["deep/two.bin"]

    # Errors are the SDK's typed errors, and leave nothing behind.
    with pytest.raises(fileorganizer.errors.NotFound):
        client.download_archive(tmp_path / "missing.zip", "no/such/folder")
    assert not (tmp_path / "missing.zip").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exported.zip"]


class CuttingProxy:
    """A TCP proxy on 127.0.0.1 that closes every connection once, after ``cut_after`` bytes
    went from the client to the server; later connections are forwarded untouched."""

    def __init__(self, upstream: str, cut_after: int) -> None:
        host, port = upstream.rsplit(":", 1)
        self.upstream = (host, int(port))
        self.cut_after = cut_after
        self.forwarded = 0
        self.cuts = 0
        self.lock = threading.Lock()
        self.conns: List[socket.socket] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            with self.lock:
                self.conns += [client, server]
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, upstream: bool) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
                if upstream:
                    with self.lock:
                        self.forwarded += len(data)
                        cut = self.cuts == 0 and self.forwarded >= self.cut_after
                        if cut:
                            self.cuts = 1
                            conns, self.conns = self.conns, []
                    if cut:
                        for s in conns:
                            s.close()
                        return
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.listener.close()
        with self.lock:
            for s in self.conns:
                s.close()


@pytest.fixture
def cutting_proxy(url: str) -> Iterator[CuttingProxy]:
    proxy = CuttingProxy(url, cut_after=5 * 1024 * 1024)
    yield proxy
    proxy.close()


def test_upload_large_resumes_after_the_connection_is_cut(
    client: fileorganizer.Client, email: str, cutting_proxy: CuttingProxy, tmp_path: Path
) -> None:
    data = os.urandom(12 * 1024 * 1024 + 5)
    src = tmp_path / "big.iso"
    src.write_bytes(data)
    resumed: List[int] = []
    with fileorganizer.Client(f"127.0.0.1:{cutting_proxy.port}") as via_proxy:
        via_proxy.login(email, PASSWORD)
        done = via_proxy.upload_large(src, "inbox/big.iso", chunk_size=4 * 1024 * 1024, on_resume=resumed.append)
    assert cutting_proxy.cuts == 1, "the proxy never cut the connection"
    assert len(resumed) >= 1 and all(0 <= o < len(data) for o in resumed), resumed
    assert done.file.path == "inbox/big.iso" and done.file.size_bytes == len(data)
    out = tmp_path / "back.iso"
    assert client.download("inbox/big.iso", out) == len(data)
    assert out.read_bytes() == data
    # The same file again: identical, nothing written.
    again = client.upload_large(src, "inbox/big.iso")
    assert again.skipped_identical and again.file.path == "inbox/big.iso"
    assert [e.name for e in client.list_directory("inbox")] == ["big.iso"]


def test_async_upload_large_resumes_and_folders_wait_out_the_limit(
    client: fileorganizer.Client, email: str, cutting_proxy: CuttingProxy, tmp_path: Path, low_upload_limit: int
) -> None:
    """The asyncio client runs the same transfer steps: a cut connection resumed, a folder of
    more files than the limit allows per window uploaded with waits."""
    data = os.urandom(12 * 1024 * 1024 + 5)
    src = tmp_path / "big.iso"
    src.write_bytes(data)
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(2 * low_upload_limit + 1):
        (folder / f"f{i}.txt").write_bytes(b"x" * i)
    resumed: List[int] = []
    waits: List[fileorganizer.WaitNotice] = []

    async def body() -> None:
        async with fileorganizer.AsyncClient(f"127.0.0.1:{cutting_proxy.port}") as via_proxy:
            await via_proxy.login(email, PASSWORD)
            done = await via_proxy.upload_large(
                src, "async/big.iso", chunk_size=4 * 1024 * 1024, on_resume=resumed.append
            )
            assert done.file.size_bytes == len(data)
        async with fileorganizer.AsyncClient(client.url) as direct:
            await direct.login(email, PASSWORD)
            result = await direct.upload_folder(folder, "async/many", concurrency=2, on_wait=waits.append)
            assert result.uploaded == 2 * low_upload_limit + 1 and result.waits == len(waits) >= 1

    asyncio.run(body())
    assert cutting_proxy.cuts == 1 and len(resumed) >= 1, resumed
    out = tmp_path / "back.iso"
    assert client.download("async/big.iso", out) == len(data) and out.read_bytes() == data
