"""The asyncio client: :class:`AsyncClient`, the same wrappers as :class:`fileorganizer.Client`
over ``grpc.aio``. Unary and paged wrappers come from the same table
(:mod:`fileorganizer.wrappers`) and the same conversions (:mod:`fileorganizer.convert`); the
streaming ones reuse the request streams and retry decisions of :mod:`fileorganizer.transfers`.
Wrappers are coroutines (``await client.me()``); ``iter_…``, ``watch``, ``organize`` and
``apply`` are async iterators (``async for``)::

    async with AsyncClient("localhost:50051") as client:
        await client.login("me@example.com", "correct horse")
        async for op in client.iter_operations(state="SUCCEEDED"):
            print(op.name)
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import IO, Any, AsyncIterator, Callable, Dict, List, Optional, Tuple, Union

import grpc
import grpc.aio

from fileorganizer import pb
from fileorganizer.client import (
    ClientBase,
    OperationRef,
    Progress,
    needs_credentials,
    upload_requests,
)
from fileorganizer.convert import View, resource_name
from fileorganizer.errors import from_rpc_error
from fileorganizer.transfers import (
    SESSION_CHUNK,
    Call,
    FolderUpload,
    PathLike,
    WaitNotice,
    append_upload_call,
    archive_format,
    disposition_name,
    download_archive_request,
    drive_async,
    folder_files,
    import_archive_steps,
    policy,
    sink,
    upload_file_steps,
    upload_large_steps,
)
from fileorganizer.wrappers import OPERATIONS, Wrapper, install, rpcs

__all__ = ["AsyncClient"]


def _channel_for(url: str, interceptors: List[Any]) -> grpc.aio.Channel:
    for scheme in ("grpcs://", "https://"):
        if url.startswith(scheme):
            target = url[len(scheme) :].rstrip("/")
            return grpc.aio.secure_channel(target, grpc.ssl_channel_credentials(), interceptors=interceptors)
    for scheme in ("grpc://", "http://"):
        if url.startswith(scheme):
            url = url[len(scheme) :]
    return grpc.aio.insecure_channel(url.rstrip("/"), interceptors=interceptors)


class _Credentials:
    """The asyncio twin of ``client._Authenticate``: adds the client's credentials
    (refreshing the access token when due) to every call that carries none. grpc.aio files
    an interceptor under one kind of call only, hence one subclass per kind."""

    def __init__(self, client: "AsyncClient") -> None:
        self._client = client

    async def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        if not needs_credentials(details.method, details.metadata):
            return details
        metadata = grpc.aio.Metadata(*(details.metadata or ()), *(await self._client._metadata()))
        return grpc.aio.ClientCallDetails(
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
        )


class _UnaryUnary(_Credentials, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(await self._details(details), request)


class _UnaryStream(_Credentials, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(await self._details(details), request)


class _StreamUnary(_Credentials, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(await self._details(details), requests)


class _StreamStream(_Credentials, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(await self._details(details), requests)


class AsyncClient(ClientBase):
    """:class:`fileorganizer.Client` for asyncio: the same constructor, wrappers, results and
    errors; every wrapper is a coroutine, and the iterating ones are async iterators. Use it
    as ``async with AsyncClient(url) as client:`` (or ``await client.close()``)."""

    def __init__(self, url: str, *, api_key: Optional[str] = None, timeout: Optional[float] = 30.0) -> None:
        self._lock = asyncio.Lock()
        interceptors = [kind(self) for kind in (_UnaryUnary, _UnaryStream, _StreamUnary, _StreamStream)]
        self._channel = _channel_for(url, interceptors)
        super().__init__(url, api_key, timeout, self._channel)

    # -- plumbing ---------------------------------------------------------------------------

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _call(self, method: Callable[..., Any], request: Any, timeout: Optional[float] = -1.0) -> Any:
        try:
            return await method(request, timeout=self.timeout if timeout == -1.0 else timeout)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None

    async def _stream(self, method: Callable[..., Any], request: Any, timeout: Optional[float] = None) -> AsyncIterator[Any]:
        try:
            async for msg in method(request, timeout=timeout):
                yield msg
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None

    async def _pages(self, method: Callable[..., Any], request: Any, items: str) -> AsyncIterator[View]:
        request = type(request).FromString(request.SerializeToString())
        while True:
            page = await self._call(method, request)
            for item in getattr(page, items):
                yield View(item)
            if not page.next_page_token:
                return
            request.page_token = page.next_page_token

    async def _metadata(self) -> List[Tuple[str, str]]:
        if self._refresh_due():
            async with self._lock:
                if self._refresh_due():
                    await self._refresh_locked()
        return self._credentials()

    async def _refresh_locked(self) -> None:
        self._store_tokens(await self._call(self.auth.RefreshToken, self._refresh_request()))

    # -- auth -------------------------------------------------------------------------------

    @rpcs("AuthService/Register")
    async def register(self, email: str, password: str, display_name: str = "") -> View:
        """Creates an account, starts a session and returns the new user."""
        req = pb.auth.RegisterRequest(email=email, password=password, display_name=display_name)
        resp = await self._call(self.auth.Register, req)
        self._store_tokens(resp)
        return View(resp.user)

    @rpcs("AuthService/Login")
    async def login(self, email: str, password: str) -> View:
        """Logs in with email and password; returns the user."""
        resp = await self._call(self.auth.Login, pb.auth.LoginRequest(email=email, password=password))
        self._store_tokens(resp)
        return View(resp.user)

    @rpcs("AuthService/RefreshToken")
    async def refresh(self) -> None:
        """Rotates the token pair now (normally done automatically)."""
        async with self._lock:
            await self._refresh_locked()

    @rpcs("AuthService/Logout")
    async def logout(self, all_sessions: bool = False) -> int:
        """Ends this session (or every session of the user); returns how many ended."""
        return self._logged_out(await self._call(self.auth.Logout, self._logout_request(all_sessions)))

    # -- files ------------------------------------------------------------------------------

    @rpcs("FileService/UploadFile")
    async def upload(self, local_path: PathLike, remote_path: str, *, rename_on_conflict: bool = False) -> View:
        """Streams a local file to ``remote_path`` with UploadFile; returns its FileEntry."""
        requests = upload_requests(local_path, remote_path, rename_on_conflict)
        return View((await self._call(self.files.UploadFile, requests, None)).file)

    @rpcs("FileService/DownloadFile")
    async def download(self, remote_path: str, local_path: PathLike) -> int:
        """Streams ``remote_path`` into ``local_path`` (a temp file, then renamed); returns
        the number of bytes written."""
        written = 0
        with sink(local_path, remote_path.rsplit("/", 1)[-1]) as write:
            async for body in self._stream(self.files.DownloadFile, pb.file.DownloadFileRequest(path=remote_path)):
                write(body.data)
                written += len(body.data)
        return written

    async def _step(self, step: Call) -> Any:
        return await self._call(getattr(self.files, step.method), step.request, None if step.stream else -1.0)

    @rpcs("FileService/UploadRawFile")
    async def upload_file(
        self,
        local_path: PathLike,
        remote_path: str,
        *,
        conflict_policy: str = "SKIP_IF_IDENTICAL",
        keep_mtime: bool = True,
        max_retries: int = 30,
        on_wait: Optional[Callable[[WaitNotice], None]] = None,
    ) -> View:
        """As :meth:`fileorganizer.Client.upload_file`: UploadRawFile, rate limits waited out."""
        steps = upload_file_steps(Path(local_path), remote_path, policy(conflict_policy), keep_mtime, max_retries, on_wait)
        return await drive_async(steps, self._step)

    async def upload_folder(
        self,
        local_dir: PathLike,
        remote_dir: str,
        *,
        concurrency: int = 4,
        conflict_policy: str = "SKIP_IF_IDENTICAL",
        max_retries: int = 30,
        on_wait: Optional[Callable[[WaitNotice], None]] = None,
    ) -> FolderUpload:
        """As :meth:`fileorganizer.Client.upload_folder`, ``concurrency`` uploads at a time."""
        todo = folder_files(local_dir, remote_dir)
        result = FolderUpload()
        gate = asyncio.Semaphore(max(1, concurrency))

        def counted_wait(notice: WaitNotice) -> None:
            result.waits += 1
            if on_wait:
                on_wait(notice)

        async def one(local: Path, remote: str) -> Any:
            async with gate:
                return await self.upload_file(
                    local, remote, conflict_policy=conflict_policy, max_retries=max_retries, on_wait=counted_wait
                )

        for resp in await asyncio.gather(*(one(local, remote) for local, remote in todo)):
            result.add(resp)
        return result

    @rpcs("FileService/ImportArchive")
    async def import_archive(
        self,
        archive: Union[PathLike, IO[bytes]],
        remote_dir: str,
        *,
        format: str = "AUTO",
        conflict_policy: str = "SKIP_IF_IDENTICAL",
        max_retries: int = 30,
        on_wait: Optional[Callable[[WaitNotice], None]] = None,
    ) -> View:
        """As :meth:`fileorganizer.Client.import_archive` (a file object must be seekable to be
        sent again after a rate-limit wait)."""
        fmt, conflict = archive_format(format), policy(conflict_policy)
        return await drive_async(import_archive_steps(archive, remote_dir, fmt, conflict, max_retries, on_wait), self._step)

    @rpcs("FileService/DownloadArchive")
    async def download_archive(
        self, dest: Union[PathLike, IO[bytes]], path: str = "", *, operation: Any = "", format: str = "ZIP"
    ) -> str:
        """As :meth:`fileorganizer.Client.download_archive`: a folder or an operation's
        destination as one archive, into a file object, a file path or a directory."""
        request = download_archive_request(path, operation, format)
        try:
            call = self.files.DownloadArchive(request, timeout=None)
            name = disposition_name(dict(await call.initial_metadata()).get("content-disposition", ""))
            with sink(dest, name) as write:
                async for body in call:
                    write(body.data)
            return name
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None

    @rpcs("FileService/AppendUpload")
    async def append_upload(self, name: str, offset: int, data: bytes) -> View:
        """Appends ``data`` at ``offset`` to the upload session ``name``."""
        return View(await self._step(append_upload_call(name, offset, data)))

    @rpcs("FileService/CreateUpload", "FileService/AppendUpload", "FileService/GetUpload", "FileService/FinishUpload")
    async def upload_large(
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
        """As :meth:`fileorganizer.Client.upload_large`: a resumable upload session that goes
        on from the committed offset after a dropped connection."""
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
        return await drive_async(steps, self._step)

    # -- operations -------------------------------------------------------------------------

    @rpcs("OperationService/WatchOperation")
    async def watch(self, operation: OperationRef) -> AsyncIterator[Progress]:
        """Yields progress snapshots of an operation until it stops."""
        req = pb.operation.WatchOperationRequest(name=resource_name(operation, OPERATIONS))
        async for msg in self._stream(self.operations.WatchOperation, req):
            progress = Progress.from_pb(msg)
            yield progress
            if progress.done:
                return

    async def organize(
        self, source: str, destination: Optional[str] = None, dry_run: bool = False, **options: Any
    ) -> AsyncIterator[Progress]:
        """Creates an ORGANIZE operation and yields its progress until it stops."""
        op = await self.create_operation(source, destination, dry_run, **options)  # type: ignore[attr-defined]
        async for progress in self.watch(op):
            yield progress

    async def apply(self, operation: OperationRef) -> AsyncIterator[Progress]:
        """Applies a PLANNED (dry-run) operation and yields its progress."""
        op = await self.apply_operation(operation)  # type: ignore[attr-defined]
        async for progress in self.watch(op):
            yield progress

    async def undo(self, operation: OperationRef, wait: bool = True) -> View:
        """Undoes an operation; with ``wait`` returns the UNDO operation once it stopped."""
        undo_op = await self.undo_operation(operation)  # type: ignore[attr-defined]
        if wait:
            async for _ in self.watch(undo_op):
                pass
            undo_op = await self.operation(undo_op)  # type: ignore[attr-defined]
        return undo_op


def _bind(wrapper: Wrapper) -> Dict[str, Callable[..., Any]]:
    rpc, build, result = wrapper.rpc, wrapper.request, wrapper.result
    if wrapper.kind == "pages":

        def iterate(self: AsyncClient, *args: Any, **kwargs: Any) -> AsyncIterator[View]:
            return self._pages(rpc.stub(self), build(*args, **kwargs), wrapper.items)

        async def listing(self: AsyncClient, *args: Any, **kwargs: Any) -> List[View]:
            return [item async for item in self._pages(rpc.stub(self), build(*args, **kwargs), wrapper.items)]

        return {wrapper.name: listing, wrapper.iter_name: iterate}
    if wrapper.kind == "bytes":

        async def collect(self: AsyncClient, *args: Any, **kwargs: Any) -> bytes:
            request = build(*args, **kwargs)
            return b"".join([m.data async for m in self._stream(rpc.stub(self), request, self.timeout)])

        return {wrapper.name: collect}

    async def unary(self: AsyncClient, *args: Any, **kwargs: Any) -> Any:
        return result(await self._call(rpc.stub(self), build(*args, **kwargs)))

    return {wrapper.name: unary}


install(AsyncClient, _bind)
