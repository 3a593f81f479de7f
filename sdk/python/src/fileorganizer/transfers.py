"""Getting many or large files in and out: folder uploads paced by the server's rate limit,
archive import and export, and resumable uploads that resume by themselves.

Mixed into :class:`fileorganizer.Client`; see its methods ``upload_file``, ``upload_folder``,
``import_archive``, ``download_archive`` and ``upload_large``.

Pacing: a RESOURCE_EXHAUSTED refusal with reason ``RATE_LIMITED`` carries a
``google.rpc.RetryInfo`` delay (the time until the rate-limit window moves on). The transfer
methods sleep that delay and try again, at most ``max_retries`` times per request; any other
RESOURCE_EXHAUSTED (a full quota, a zip bomb) is raised at once: waiting would not help.
"""

from __future__ import annotations

import os
import re
import threading
import time
import urllib.parse
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Iterator, List, Optional, Union

import grpc
from google.protobuf import timestamp_pb2

from fileorganizer import pb
from fileorganizer.errors import (
    Aborted,
    Cancelled,
    DeadlineExceeded,
    FailedPrecondition,
    ResourceExhausted,
    Unavailable,
    from_rpc_error,
)

__all__ = ["TransfersMixin", "FolderUpload", "WaitNotice"]

#: Bytes per message of a raw upload, an archive import or an append.
TRANSFER_CHUNK = 1024 * 1024
#: Bytes a resumable upload sends per AppendUpload call.
SESSION_CHUNK = 8 * 1024 * 1024
#: Seconds to wait when a rate-limit refusal carries no RetryInfo.
DEFAULT_RETRY_DELAY = 1.0

PathLike = Union[str, "os.PathLike[str]"]

_POLICIES = {
    "FAIL": pb.file.FILE_CONFLICT_POLICY_FAIL,
    "RENAME": pb.file.FILE_CONFLICT_POLICY_RENAME,
    "SKIP_IF_IDENTICAL": pb.file.FILE_CONFLICT_POLICY_SKIP_IF_IDENTICAL,
}
_FORMATS = {
    "AUTO": pb.file.ARCHIVE_FORMAT_AUTO,
    "ZIP": pb.file.ARCHIVE_FORMAT_ZIP,
    "TAR": pb.file.ARCHIVE_FORMAT_TAR,
    "TAR_GZIP": pb.file.ARCHIVE_FORMAT_TAR_GZIP,
    "TAR_ZSTD": pb.file.ARCHIVE_FORMAT_TAR_ZSTD,
}
#: Errors after which a resumable upload asks for its committed offset and goes on.
_RESUMABLE = (Unavailable, Cancelled, DeadlineExceeded)


@dataclass(frozen=True)
class WaitNotice:
    """Passed to ``on_wait`` each time a transfer waits out a rate limit."""

    path: str
    delay: float
    attempt: int


@dataclass
class FolderUpload:
    """What :meth:`TransfersMixin.upload_folder` did: ``uploaded`` files were written,
    ``identical`` were already there with the same content (nothing written), ``waits`` counts
    the rate-limit waits. ``files`` are the stored entries, in the order of ``local_paths``."""

    uploaded: int = 0
    identical: int = 0
    waits: int = 0
    files: List["pb.file.FileEntry"] = field(default_factory=list)


def _policy(name: str) -> int:
    try:
        return _POLICIES[name.upper().removeprefix("FILE_CONFLICT_POLICY_")]
    except KeyError:
        raise ValueError(f"unknown conflict policy {name!r} (one of {', '.join(_POLICIES)})") from None


def _format(name: str) -> int:
    try:
        return _FORMATS[name.upper().removeprefix("ARCHIVE_FORMAT_")]
    except KeyError:
        raise ValueError(f"unknown archive format {name!r} (one of {', '.join(_FORMATS)})") from None


def _disposition_name(value: str) -> str:
    """The file name of a content-disposition header: the UTF-8 ``filename*`` when there is
    one, else ``filename``; reduced to its last component; "archive" when there is none."""
    match = re.search(r"filename\*=UTF-8''([^;]+)", value)
    if match:
        name = urllib.parse.unquote(match.group(1))
    else:
        match = re.search(r'filename="([^"]*)"', value)
        name = match.group(1) if match else ""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    return name if name not in ("", ".", "..") else "archive"


def _mtime(path: Path) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(path.stat().st_mtime_ns)
    return ts


def _chunks(f: IO[bytes], size: int, limit: Optional[int] = None) -> Iterator[bytes]:
    left = limit
    while left is None or left > 0:
        chunk = f.read(size if left is None else min(size, left))
        if not chunk:
            return
        if left is not None:
            left -= len(chunk)
        yield chunk


class TransfersMixin:
    """Transfer methods of :class:`fileorganizer.Client` (needs its ``files`` stub, ``_call``
    and ``_metadata``)."""

    files: Any
    timeout: Optional[float]

    def _call(self, method: Callable[..., Any], request: Any, *, auth: bool = True) -> Any:  # pragma: no cover
        raise NotImplementedError

    def _metadata(self) -> Any:  # pragma: no cover
        raise NotImplementedError

    def _paced(
        self,
        send: Callable[[], Any],
        what: str,
        max_retries: int,
        on_wait: Optional[Callable[[WaitNotice], None]],
    ) -> Any:
        """Runs ``send`` (which makes one request from scratch), waiting out RATE_LIMITED
        refusals with their RetryInfo delay, at most ``max_retries`` times."""
        attempt = 0
        while True:
            try:
                return send()
            except ResourceExhausted as err:
                if err.reason != "RATE_LIMITED" or attempt >= max_retries:
                    raise
                attempt += 1
                delay = err.retry_delay if err.retry_delay is not None else DEFAULT_RETRY_DELAY
                if on_wait:
                    on_wait(WaitNotice(path=what, delay=delay, attempt=attempt))
                time.sleep(delay)

    def _client_stream(self, method: Callable[..., Any], requests: Iterator[Any]) -> Any:
        try:
            return method(requests, metadata=self._metadata(), timeout=None)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None

    # -- single files and folders ---------------------------------------------------------------

    def upload_file(
        self,
        local_path: PathLike,
        remote_path: str,
        *,
        conflict_policy: str = "SKIP_IF_IDENTICAL",
        keep_mtime: bool = True,
        max_retries: int = 30,
        on_wait: Optional[Callable[[WaitNotice], None]] = None,
    ) -> "pb.file.UploadRawFileResponse":
        """Streams one file with UploadRawFile. By default an upload of content already stored
        at ``remote_path`` writes nothing (``skipped_identical``), so retrying never makes
        copies; the file's modification time goes with it. Waits out rate limits."""
        local = Path(local_path)
        policy = _policy(conflict_policy)
        size = local.stat().st_size
        modify_time = _mtime(local) if keep_mtime else None

        def send() -> Any:
            def requests() -> Iterator[Any]:
                first = pb.file.UploadRawFileRequest(
                    path=remote_path, conflict_policy=policy, size_bytes=size, modify_time=modify_time
                )
                yield first
                with local.open("rb") as f:
                    for chunk in _chunks(f, TRANSFER_CHUNK):
                        yield pb.file.UploadRawFileRequest(content=pb.httpbody.HttpBody(data=chunk))

            return self._client_stream(self.files.UploadRawFile, requests())

        return self._paced(send, remote_path, max_retries, on_wait)

    def upload_folder(
        self,
        local_dir: PathLike,
        remote_dir: str,
        *,
        concurrency: int = 4,
        conflict_policy: str = "SKIP_IF_IDENTICAL",
        max_retries: int = 30,
        on_wait: Optional[Callable[[WaitNotice], None]] = None,
    ) -> FolderUpload:
        """Uploads every regular file under ``local_dir`` (recursively; symlinks are not
        followed) to the same relative path under ``remote_dir``, ``concurrency`` at a time.
        Each upload waits out the server's rate limit (RetryInfo) instead of failing, and by
        default skips content already stored at its path: calling it again uploads nothing
        twice. Raises the first error that is not a rate limit (the other uploads finish)."""
        root = Path(local_dir)
        if not root.is_dir():
            raise NotADirectoryError(str(root))
        locals_: List[Path] = []
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            dirnames.sort()
            for name in sorted(filenames):
                p = Path(dirpath) / name
                if p.is_file() and not p.is_symlink():
                    locals_.append(p)
        base = remote_dir.strip("/")
        result = FolderUpload()
        lock = threading.Lock()

        def counted_wait(notice: WaitNotice) -> None:
            with lock:
                result.waits += 1
            if on_wait:
                on_wait(notice)

        def one(p: Path) -> Any:
            rel = p.relative_to(root).as_posix()
            remote = f"{base}/{rel}" if base else rel
            return self.upload_file(
                p, remote, conflict_policy=conflict_policy, max_retries=max_retries, on_wait=counted_wait
            )

        with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            responses = list(pool.map(one, locals_))
        for resp in responses:
            if resp.skipped_identical:
                result.identical += 1
            else:
                result.uploaded += 1
            result.files.append(resp.file)
        return result

    # -- archives -------------------------------------------------------------------------------

    def import_archive(
        self,
        archive: Union[PathLike, IO[bytes]],
        remote_dir: str,
        *,
        format: str = "AUTO",
        conflict_policy: str = "SKIP_IF_IDENTICAL",
        max_retries: int = 30,
        on_wait: Optional[Callable[[WaitNotice], None]] = None,
    ) -> "pb.file.ImportArchiveResponse":
        """Streams a zip or tar (plain, gzip, zstd) archive, a path or a binary file object,
        into ``remote_dir`` with ImportArchive; the server extracts it as it arrives. One import
        is one request against the upload rate limit (waited out like an upload; a file object
        must then be seekable to be sent again)."""
        fmt = _format(format)
        policy = _policy(conflict_policy)

        def send() -> Any:
            def requests(f: IO[bytes]) -> Iterator[Any]:
                yield pb.file.ImportArchiveRequest(path=remote_dir, format=fmt, conflict_policy=policy)
                for chunk in _chunks(f, TRANSFER_CHUNK):
                    yield pb.file.ImportArchiveRequest(body=pb.httpbody.HttpBody(data=chunk))

            if isinstance(archive, (str, os.PathLike)):
                with open(archive, "rb") as f:
                    return self._client_stream(self.files.ImportArchive, requests(f))
            start = archive.tell() if archive.seekable() else None
            try:
                return self._client_stream(self.files.ImportArchive, requests(archive))
            except ResourceExhausted:
                if start is None:
                    raise
                archive.seek(start)
                raise

        return self._paced(send, remote_dir, max_retries, on_wait)

    def download_archive(
        self,
        dest: Union[PathLike, IO[bytes]],
        path: str = "",
        *,
        operation: str = "",
        format: str = "ZIP",
    ) -> str:
        """Downloads the folder ``path`` ("" for the whole storage) or, with ``operation``
        (``operations/{id}``), that operation's destination folder, as one archive ("ZIP",
        "TAR", "TAR_GZIP" or "TAR_ZSTD") streamed to ``dest`` as it arrives: a binary file
        object, a file path (written to a temporary file beside it, then renamed), or an
        existing directory, where the file takes the name the server gives (``<folder>.zip``)
        and an existing file of that name is never replaced (FileExistsError). Returns the
        archive's file name as the server gave it. A stream that fails midway raises, and a
        path or directory destination is then left untouched."""
        fmt = _format(format)
        if fmt == pb.file.ARCHIVE_FORMAT_AUTO:
            raise ValueError("format AUTO only reads archives; give ZIP, TAR, TAR_GZIP or TAR_ZSTD")
        request = pb.file.DownloadArchiveRequest(path=path, operation=operation, format=fmt)
        try:
            call = self.files.DownloadArchive(request, metadata=self._metadata(), timeout=None)
            name = _disposition_name(dict(call.initial_metadata()).get("content-disposition", ""))
            if not isinstance(dest, (str, os.PathLike)):
                for body in call:
                    dest.write(body.data)
                return name
            target = Path(dest)
            in_dir = target.is_dir()
            if in_dir:
                target = target / name
            tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
            try:
                with tmp.open("wb") as f:
                    for body in call:
                        f.write(body.data)
                if in_dir:
                    os.link(tmp, target)  # never replaces: FileExistsError if taken
                else:
                    os.replace(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)
            return name
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None

    # -- resumable uploads ----------------------------------------------------------------------

    def upload_large(
        self,
        local_path: PathLike,
        remote_path: str,
        *,
        conflict_policy: str = "SKIP_IF_IDENTICAL",
        content_hash: str = "",
        chunk_size: int = SESSION_CHUNK,
        max_resumes: int = 20,
        max_retries: int = 30,
        on_resume: Optional[Callable[[int], None]] = None,
        on_wait: Optional[Callable[[WaitNotice], None]] = None,
    ) -> "pb.file.FinishUploadResponse":
        """Uploads a large file through a resumable upload session: CreateUpload, then
        AppendUpload in ``chunk_size`` pieces, then FinishUpload. When a connection drops
        (UNAVAILABLE, CANCELLED, DEADLINE_EXCEEDED) it asks GetUpload for the committed offset
        and goes on from there, at most ``max_resumes`` times; ``on_resume(offset)`` is told each
        time. ``content_hash`` (lower-case hex blake3 of the whole file) is checked by the
        server at the end when given (DATA_LOSS on a mismatch)."""
        local = Path(local_path)
        size = local.stat().st_size
        upload = pb.file.Upload(
            path=remote_path,
            size_bytes=size,
            content_hash=content_hash,
            conflict_policy=_policy(conflict_policy),
            modify_time=_mtime(local),
        )
        session = self._paced(
            lambda: self._call(self.files.CreateUpload, pb.file.CreateUploadRequest(upload=upload)),
            remote_path,
            max_retries,
            on_wait,
        )
        offset = session.committed_offset
        resumes = 0
        while True:
            try:
                while offset < size:
                    offset = self._append(session.name, local, offset, min(chunk_size, size - offset))
                return self._call(self.files.FinishUpload, pb.file.FinishUploadRequest(name=session.name))
            except FailedPrecondition as err:
                # The server has another offset than we thought (e.g. bytes of a cut stream
                # were committed after all): go on from its offset.
                committed = err.metadata.get("committed_offset")
                if committed is None or resumes >= max_resumes:
                    raise
                resumes += 1
                offset = int(committed)
            except _RESUMABLE:
                if resumes >= max_resumes:
                    raise
                resumes += 1
                offset = self._committed_offset(session.name, max_resumes)
            except Aborted as err:
                # The request of a cut connection still holds the session on the server: wait
                # as it says, then go on from the offset it committed.
                if err.reason != "RESOURCE_BUSY" or resumes >= max_resumes:
                    raise
                resumes += 1
                time.sleep(err.retry_delay if err.retry_delay is not None else DEFAULT_RETRY_DELAY)
                offset = self._committed_offset(session.name, max_resumes)
            if on_resume:
                on_resume(offset)

    def _append(self, name: str, local: Path, offset: int, length: int) -> int:
        def requests() -> Iterator[Any]:
            yield pb.file.AppendUploadRequest(name=name, offset=offset)
            with local.open("rb") as f:
                f.seek(offset)
                for chunk in _chunks(f, TRANSFER_CHUNK, length):
                    yield pb.file.AppendUploadRequest(content=pb.httpbody.HttpBody(data=chunk))

        return int(self._client_stream(self.files.AppendUpload, requests()).committed_offset)

    def _committed_offset(self, name: str, attempts: int) -> int:
        """GetUpload's committed offset, retried while the server is unreachable."""
        delay = 0.2
        for attempt in range(attempts + 1):
            try:
                return int(self._call(self.files.GetUpload, pb.file.GetUploadRequest(name=name)).committed_offset)
            except _RESUMABLE:
                if attempt == attempts:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        raise AssertionError("unreachable")  # pragma: no cover

