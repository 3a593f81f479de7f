"""Getting many or large files in and out: folder uploads paced by the server's rate limit,
archive import and export, and resumable uploads that resume by themselves.

Mixed into :class:`fileorganizer.Client`; see its methods ``upload_file``, ``upload_folder``,
``import_archive``, ``download_archive``, ``upload_large`` and ``append_upload``. The request
streams and the retry decisions are module functions, shared with
:class:`fileorganizer.aio.AsyncClient`.

Pacing: a RESOURCE_EXHAUSTED refusal with reason ``RATE_LIMITED`` carries a
``google.rpc.RetryInfo`` delay (the time until the rate-limit window moves on). The transfer
methods sleep that delay and try again, at most ``max_retries`` times per request; any other
RESOURCE_EXHAUSTED (a full quota, a zip bomb) is raised at once: waiting would not help.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import threading
import time
import urllib.parse
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Awaitable, Callable, Generator, Iterator, List, Optional, Tuple, Union

import grpc
from google.protobuf import timestamp_pb2

from fileorganizer import pb
from fileorganizer.convert import View, enum_value
from fileorganizer.errors import (
    Aborted,
    ApiError,
    Cancelled,
    DeadlineExceeded,
    FailedPrecondition,
    ResourceExhausted,
    Unavailable,
    from_rpc_error,
)
from fileorganizer.wrappers import rpcs

__all__ = ["TransfersMixin", "FolderUpload", "WaitNotice", "rate_limit_delay"]

#: Bytes per message of a raw upload, an archive import or an append.
TRANSFER_CHUNK = 1024 * 1024
#: Bytes a resumable upload sends per AppendUpload call.
SESSION_CHUNK = 8 * 1024 * 1024
#: Seconds to wait when a rate-limit refusal carries no RetryInfo.
DEFAULT_RETRY_DELAY = 1.0

PathLike = Union[str, "os.PathLike[str]"]

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
    files: List[View] = field(default_factory=list)

    def add(self, resp: Any) -> None:
        if resp.skipped_identical:
            self.identical += 1
        else:
            self.uploaded += 1
        self.files.append(resp.file)


def policy(name: Any) -> int:
    """A FileConflictPolicy from its name (``"SKIP_IF_IDENTICAL"``) or number."""
    return enum_value(pb.file.FileConflictPolicy.DESCRIPTOR, name, "conflict_policy")


def archive_format(name: Any, *, reading: bool = True) -> int:
    """An ArchiveFormat from its name (``"TAR_GZIP"``) or number; AUTO only for reading."""
    fmt = enum_value(pb.file.ArchiveFormat.DESCRIPTOR, name, "format")
    if not reading and fmt == pb.file.ARCHIVE_FORMAT_AUTO:
        raise ValueError("format AUTO only reads archives; give ZIP, TAR, TAR_GZIP or TAR_ZSTD")
    return fmt


def rate_limit_delay(err: ResourceExhausted, attempt: int, max_retries: int) -> Optional[float]:
    """How long to wait before retrying after ``err`` (the ``attempt``-th refusal so far), or
    ``None`` to raise it: only RATE_LIMITED refusals are waited out, at most ``max_retries``."""
    if err.reason != "RATE_LIMITED" or attempt > max_retries:
        return None
    return err.retry_delay if err.retry_delay is not None else DEFAULT_RETRY_DELAY


def raw_upload_requests(local: Path, remote_path: str, conflict: int, keep_mtime: bool) -> Iterator[Any]:
    """The UploadRawFile stream of a local file."""
    modify_time = _mtime(local) if keep_mtime else None
    size = local.stat().st_size
    yield pb.file.UploadRawFileRequest(
        path=remote_path, conflict_policy=conflict, size_bytes=size, modify_time=modify_time
    )
    with local.open("rb") as f:
        for chunk in _chunks(f, TRANSFER_CHUNK):
            yield pb.file.UploadRawFileRequest(content=pb.httpbody.HttpBody(data=chunk))


def archive_requests(f: IO[bytes], remote_dir: str, fmt: int, conflict: int) -> Iterator[Any]:
    """The ImportArchive stream of an archive read from ``f``."""
    yield pb.file.ImportArchiveRequest(path=remote_dir, format=fmt, conflict_policy=conflict)
    for chunk in _chunks(f, TRANSFER_CHUNK):
        yield pb.file.ImportArchiveRequest(body=pb.httpbody.HttpBody(data=chunk))


def append_requests(name: str, offset: int, chunks: Iterator[bytes]) -> Iterator[Any]:
    """The AppendUpload stream of ``chunks`` written at ``offset``."""
    yield pb.file.AppendUploadRequest(name=name, offset=offset)
    for chunk in chunks:
        yield pb.file.AppendUploadRequest(content=pb.httpbody.HttpBody(data=chunk))


def file_chunks(local: Path, offset: int, length: int) -> Iterator[bytes]:
    with local.open("rb") as f:
        f.seek(offset)
        yield from _chunks(f, TRANSFER_CHUNK, length)


def folder_files(local_dir: PathLike, remote_dir: str) -> List[Tuple[Path, str]]:
    """Every regular file under ``local_dir`` (symlinks not followed) with its remote path."""
    root = Path(local_dir)
    if not root.is_dir():
        raise NotADirectoryError(str(root))
    base = remote_dir.strip("/")
    found: List[Tuple[Path, str]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            p = Path(dirpath) / name
            if p.is_file() and not p.is_symlink():
                rel = p.relative_to(root).as_posix()
                found.append((p, f"{base}/{rel}" if base else rel))
    return found


def new_upload(local: Path, remote_path: str, conflict_policy: Any, content_hash: str) -> Any:
    """The CreateUpload request of a resumable upload of ``local``."""
    upload = pb.file.Upload(
        path=remote_path,
        size_bytes=local.stat().st_size,
        content_hash=content_hash,
        conflict_policy=policy(conflict_policy),
        modify_time=_mtime(local),
    )
    return pb.file.CreateUploadRequest(upload=upload)


def resume_after(err: Exception, resumes: int, max_resumes: int) -> Optional[Tuple[Optional[int], float]]:
    """How a resumable upload goes on after ``err`` (``resumes`` resumes so far): ``None`` to
    raise it, else ``(offset, wait)``: go on from ``offset``, or, when it is ``None``, wait
    ``wait`` seconds and ask GetUpload for the committed offset.

    - FAILED_PRECONDITION with a ``committed_offset``: the server has another offset than we
      thought (bytes of a cut stream were committed after all): go on from its offset.
    - UNAVAILABLE, CANCELLED, DEADLINE_EXCEEDED: the connection dropped: ask.
    - ABORTED, reason RESOURCE_BUSY: the request of a cut connection still holds the session
      on the server: wait as it says, then ask."""
    if resumes >= max_resumes:
        return None
    if isinstance(err, FailedPrecondition):
        committed = err.metadata.get("committed_offset")
        return (int(committed), 0.0) if committed is not None else None
    if isinstance(err, _RESUMABLE):
        return (None, 0.0)
    if isinstance(err, Aborted) and err.reason == "RESOURCE_BUSY":
        return (None, err.retry_delay if err.retry_delay is not None else DEFAULT_RETRY_DELAY)
    return None


def part_path(local: Path) -> Path:
    """The temporary file a download is written to before it is renamed to ``local``."""
    return local.with_name(f".{local.name}.{uuid.uuid4().hex}.part")


@contextlib.contextmanager
def sink(dest: Union[PathLike, IO[bytes]], name: str) -> Iterator[Callable[[bytes], Any]]:
    """Where a download goes, as a ``write`` function: a binary file object (written as the
    bytes come); a file path (a temporary file beside it, renamed over it at the end); or an
    existing directory (the file ``name`` in it, never replacing one: FileExistsError). When
    the download raises, a path or directory is left untouched."""
    if not isinstance(dest, (str, os.PathLike)):
        yield dest.write
        return
    target = Path(dest)
    in_dir = target.is_dir()
    if in_dir:
        target = target / name
    tmp = part_path(target)
    try:
        with tmp.open("wb") as f:
            yield f.write
        if in_dir:
            os.link(tmp, target)  # never replaces: FileExistsError if taken
        else:
            os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def download_archive_request(path: str, operation: str, format: Any) -> Any:
    """The DownloadArchive request (``operation`` as a name, an id or an operation)."""
    from fileorganizer.convert import resource_name

    op = resource_name(operation, "operations/") if operation else ""
    return pb.file.DownloadArchiveRequest(path=path, operation=op, format=archive_format(format, reading=False))


def disposition_name(value: str) -> str:
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


# -- the algorithms, once for both clients ------------------------------------------------------
#
# Each transfer is a generator of steps: it yields a Call (an RPC to make; the client sends back
# its response, or throws its ApiError in) or a Sleep, and returns the result. The sync client
# runs the steps with blocking calls and time.sleep (TransfersMixin._drive), the asyncio client
# with awaits and asyncio.sleep (AsyncClient._drive): the retry and resume logic is written once.


@dataclass(frozen=True)
class Call:
    """An RPC of the FileService to make: ``method`` (``"UploadRawFile"``) with ``request`` (a
    message, or an iterator of them for a client stream, sent with no deadline)."""

    method: str
    request: Any
    stream: bool = False


@dataclass(frozen=True)
class Sleep:
    seconds: float


Steps = Generator[Union[Call, Sleep], Any, Any]


def paced_steps(
    attempt: Callable[[], Steps], what: str, max_retries: int, on_wait: Optional[Callable[[WaitNotice], None]]
) -> Steps:
    """Runs ``attempt`` (the steps of one request from scratch), waiting out RATE_LIMITED
    refusals with their RetryInfo delay, at most ``max_retries`` times."""
    tries = 0
    while True:
        try:
            return (yield from attempt())
        except ResourceExhausted as err:
            tries += 1
            delay = rate_limit_delay(err, tries, max_retries)
            if delay is None:
                raise
            if on_wait:
                on_wait(WaitNotice(path=what, delay=delay, attempt=tries))
            yield Sleep(delay)


def upload_file_steps(
    local: Path, remote_path: str, conflict: int, keep_mtime: bool, max_retries: int, on_wait: Any
) -> Steps:
    def attempt() -> Steps:
        return (yield Call("UploadRawFile", raw_upload_requests(local, remote_path, conflict, keep_mtime), True))

    return View((yield from paced_steps(attempt, remote_path, max_retries, on_wait)))


def import_archive_steps(
    archive: Union[PathLike, IO[bytes]], remote_dir: str, fmt: int, conflict: int, max_retries: int, on_wait: Any
) -> Steps:
    def attempt() -> Steps:
        if isinstance(archive, (str, os.PathLike)):
            with open(archive, "rb") as f:
                return (yield Call("ImportArchive", archive_requests(f, remote_dir, fmt, conflict), True))
        start = archive.tell() if archive.seekable() else None
        try:
            return (yield Call("ImportArchive", archive_requests(archive, remote_dir, fmt, conflict), True))
        except ResourceExhausted:
            if start is not None:
                archive.seek(start)  # sent again after the wait
            raise

    return View((yield from paced_steps(attempt, remote_dir, max_retries, on_wait)))


def upload_large_steps(
    local: Path,
    remote_path: str,
    conflict_policy: Any,
    content_hash: str,
    chunk_size: int,
    max_resumes: int,
    max_retries: int,
    on_resume: Optional[Callable[[int], None]],
    on_wait: Any,
) -> Steps:
    size = local.stat().st_size
    create = new_upload(local, remote_path, conflict_policy, content_hash)

    def attempt() -> Steps:
        return (yield Call("CreateUpload", create))

    session = yield from paced_steps(attempt, remote_path, max_retries, on_wait)
    offset = session.committed_offset
    resumes = 0
    while True:
        try:
            while offset < size:
                length = min(chunk_size, size - offset)
                requests = append_requests(session.name, offset, file_chunks(local, offset, length))
                offset = int((yield Call("AppendUpload", requests, True)).committed_offset)
            return View((yield Call("FinishUpload", pb.file.FinishUploadRequest(name=session.name))))
        except (FailedPrecondition, Aborted, *_RESUMABLE) as err:
            plan = resume_after(err, resumes, max_resumes)
            if plan is None:
                raise
            resumes += 1
            known, wait = plan
            if wait:
                yield Sleep(wait)
            offset = known if known is not None else (yield from committed_offset_steps(session.name, max_resumes))
        if on_resume:
            on_resume(offset)


def committed_offset_steps(name: str, attempts: int) -> Steps:
    """GetUpload's committed offset, asked again while the server is unreachable."""
    delay = 0.2
    for attempt in range(attempts + 1):
        try:
            return int((yield Call("GetUpload", pb.file.GetUploadRequest(name=name))).committed_offset)
        except _RESUMABLE:
            if attempt == attempts:
                raise
            yield Sleep(delay)
            delay = min(delay * 2, 5.0)
    raise AssertionError("unreachable")  # pragma: no cover


def append_upload_call(name: str, offset: int, data: bytes) -> Call:
    chunks = (data[i : i + TRANSFER_CHUNK] for i in range(0, len(data), TRANSFER_CHUNK))
    return Call("AppendUpload", append_requests(name, offset, chunks), True)


def _send(steps: Steps, result: Any, error: Optional[BaseException]) -> Tuple[bool, Any]:
    """Advances ``steps`` with a response (or an error); (True, result) when they returned."""
    try:
        return False, (steps.throw(error) if error is not None else steps.send(result))
    except StopIteration as stop:
        return True, stop.value


def drive(steps: Steps, call: Callable[[Call], Any]) -> Any:
    """Runs ``steps`` with blocking calls (the sync client)."""
    done, step = _send(steps, None, None)
    while not done:
        result, error = None, None
        try:
            if isinstance(step, Sleep):
                time.sleep(step.seconds)
            else:
                result = call(step)
        except ApiError as err:
            error = err
        done, step = _send(steps, result, error)
    return step


async def drive_async(steps: Steps, call: Callable[[Call], Awaitable[Any]]) -> Any:
    """Runs ``steps`` with awaited calls (the asyncio client)."""
    done, step = _send(steps, None, None)
    while not done:
        result, error = None, None
        try:
            if isinstance(step, Sleep):
                await asyncio.sleep(step.seconds)
            else:
                result = await call(step)
        except ApiError as err:
            error = err
        done, step = _send(steps, result, error)
    return step


class TransfersMixin:
    """Transfer methods of :class:`fileorganizer.Client` (needs its ``files`` stub and ``_call``)."""

    files: Any
    timeout: Optional[float]

    def _call(self, method: Callable[..., Any], request: Any) -> Any:  # pragma: no cover
        raise NotImplementedError

    def _step(self, step: Call) -> Any:
        method = getattr(self.files, step.method)
        if not step.stream:
            return self._call(method, step.request)
        try:
            return method(step.request, timeout=None)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None

    # -- single files and folders ---------------------------------------------------------------

    @rpcs("FileService/UploadRawFile")
    def upload_file(
        self,
        local_path: PathLike,
        remote_path: str,
        *,
        conflict_policy: str = "SKIP_IF_IDENTICAL",
        keep_mtime: bool = True,
        max_retries: int = 30,
        on_wait: Optional[Callable[[WaitNotice], None]] = None,
    ) -> View:
        """Streams one file with UploadRawFile. By default an upload of content already stored
        at ``remote_path`` writes nothing (``skipped_identical``), so retrying never makes
        copies; the file's modification time goes with it. Waits out rate limits."""
        steps = upload_file_steps(Path(local_path), remote_path, policy(conflict_policy), keep_mtime, max_retries, on_wait)
        return drive(steps, self._step)

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
        todo = folder_files(local_dir, remote_dir)
        result = FolderUpload()
        lock = threading.Lock()

        def counted_wait(notice: WaitNotice) -> None:
            with lock:
                result.waits += 1
            if on_wait:
                on_wait(notice)

        def one(item: Tuple[Path, str]) -> Any:
            return self.upload_file(
                item[0], item[1], conflict_policy=conflict_policy, max_retries=max_retries, on_wait=counted_wait
            )

        with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            responses = list(pool.map(one, todo))
        for resp in responses:
            result.add(resp)
        return result

    # -- archives -------------------------------------------------------------------------------

    @rpcs("FileService/ImportArchive")
    @rpcs("FileService/ImportArchive")
    def import_archive(
        self,
        archive: Union[PathLike, IO[bytes]],
        remote_dir: str,
        *,
        format: str = "AUTO",
        conflict_policy: str = "SKIP_IF_IDENTICAL",
        max_retries: int = 30,
        on_wait: Optional[Callable[[WaitNotice], None]] = None,
    ) -> View:
        """Streams a zip or tar (plain, gzip, zstd) archive, a path or a binary file object,
        into ``remote_dir`` with ImportArchive; the server extracts it as it arrives. One import
        is one request against the upload rate limit (waited out like an upload; a file object
        must then be seekable to be sent again)."""
        fmt, conflict = archive_format(format), policy(conflict_policy)
        return drive(import_archive_steps(archive, remote_dir, fmt, conflict, max_retries, on_wait), self._step)

    @rpcs("FileService/DownloadArchive")
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
        request = download_archive_request(path, operation, format)
        try:
            call = self.files.DownloadArchive(request, timeout=None)
            name = disposition_name(dict(call.initial_metadata()).get("content-disposition", ""))
            with sink(dest, name) as write:
                for body in call:
                    write(body.data)
            return name
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None

    # -- resumable uploads ----------------------------------------------------------------------

    @rpcs("FileService/CreateUpload", "FileService/AppendUpload", "FileService/GetUpload", "FileService/FinishUpload")
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
    ) -> View:
        """Uploads a large file through a resumable upload session: CreateUpload, then
        AppendUpload in ``chunk_size`` pieces, then FinishUpload. When a connection drops
        (UNAVAILABLE, CANCELLED, DEADLINE_EXCEEDED) it asks GetUpload for the committed offset
        and goes on from there, at most ``max_resumes`` times; ``on_resume(offset)`` is told each
        time. ``content_hash`` (lower-case hex blake3 of the whole file) is checked by the
        server at the end when given (DATA_LOSS on a mismatch)."""
        steps = upload_large_steps(
            Path(local_path),
            remote_path,
            conflict_policy,
            content_hash,
            chunk_size,
            max_resumes,
            max_retries,
            on_resume,
            on_wait,
        )
        return drive(steps, self._step)

    @rpcs("FileService/AppendUpload")
    def append_upload(self, name: str, offset: int, data: bytes) -> View:
        """Appends ``data`` at ``offset`` to the upload session ``name`` (``uploads/{id}``);
        returns the session with its new ``committed_offset``. :meth:`upload_large` does this
        (and the resuming) for a whole file."""
        return View(self._step(append_upload_call(name, offset, data)))
