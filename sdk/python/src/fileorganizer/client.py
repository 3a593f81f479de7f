"""A thin, typed convenience client over the generated gRPC stubs."""

from __future__ import annotations

import collections
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, TypeVar, Union

import grpc

from fileorganizer import pb
from fileorganizer.convert import View, enum_name, resource_name
from fileorganizer.errors import from_rpc_error
from fileorganizer.transfers import TransfersMixin, sink
from fileorganizer.wrappers import OPERATIONS, Wrapper, install, rpcs

__all__ = ["Client", "ClientBase", "Progress"]

T = TypeVar("T")
Metadata = List[Tuple[str, str]]
OperationRef = Union[str, "pb.operation.Operation", "Progress"]

#: Refresh the access token when less than this many seconds of its lifetime remain.
REFRESH_MARGIN_SECS = 60.0
#: Bytes per UploadFile message.
CHUNK_SIZE = 256 * 1024

_TERMINAL = {"SUCCEEDED", "FAILED", "CANCELLED", "PLANNED"}


@dataclass(frozen=True)
class Progress:
    """One WatchOperation snapshot. ``state``/``phase`` are enum names without their prefix
    (``"SUCCEEDED"``, ``"APPLY"``); ``raw`` is the WatchOperationResponse itself."""

    name: str
    state: str
    phase: str
    counters: View
    progress_percent: float
    current_path: str
    raw: "pb.operation.WatchOperationResponse"

    @property
    def done(self) -> bool:
        """True once the operation stopped: SUCCEEDED, FAILED, CANCELLED or (dry run) PLANNED."""
        return self.state in _TERMINAL

    @classmethod
    def from_pb(cls, msg: "pb.operation.WatchOperationResponse") -> "Progress":
        return cls(
            name=msg.name,
            state=enum_name(pb.operation.OperationState.DESCRIPTOR, msg.state),
            phase=enum_name(pb.operation.OperationPhase.DESCRIPTOR, msg.phase),
            counters=View(msg.counters),
            progress_percent=msg.progress_percent,
            current_path=msg.current_path,
            raw=msg,
        )


def _channel_for(url: str) -> grpc.Channel:
    for scheme in ("grpcs://", "https://"):
        if url.startswith(scheme):
            return grpc.secure_channel(url[len(scheme) :].rstrip("/"), grpc.ssl_channel_credentials())
    for scheme in ("grpc://", "http://"):
        if url.startswith(scheme):
            url = url[len(scheme) :]
    return grpc.insecure_channel(url.rstrip("/"))


#: The RPCs that take no credentials.
_PUBLIC = frozenset(
    f"/fileorganizer.v1.AuthService/{name}" for name in ("Register", "Login", "RefreshToken")
)


def needs_credentials(method: Union[str, bytes], metadata: Any) -> bool:
    """Whether the interceptors add the client's credentials to a call: not to the public
    RPCs, nor to a call whose caller gave credentials of their own."""
    if isinstance(method, bytes):
        method = method.decode()
    given = list(metadata or ())
    return method not in _PUBLIC and not any(k in ("authorization", "x-api-key") for k, _ in given)


class _CallDetails(
    collections.namedtuple(
        "_CallDetails", ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression")
    ),
    grpc.ClientCallDetails,
):
    pass


class _Authenticate(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds the client's credentials (refreshing the access token when due) to every call on
    its channel that carries none, so the raw stubs (``client.files.ListTrash(req)``) are
    authenticated like the wrappers. Register, Login and RefreshToken go without."""

    def __init__(self, metadata: Callable[[], Metadata]) -> None:
        self._metadata = metadata

    def _with_credentials(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        if not needs_credentials(details.method, details.metadata):
            return details
        return _CallDetails(
            details.method,
            details.timeout,
            list(details.metadata or ()) + self._metadata(),
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._with_credentials(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._with_credentials(details), request)

    def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._with_credentials(details), requests)

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._with_credentials(details), requests)



class ClientBase:
    """What the sync and the asyncio client share: the address, the credentials and the
    stubs (on a channel that authenticates every call by itself)."""

    def __init__(self, url: str, api_key: Optional[str], timeout: Optional[float], channel: Any) -> None:
        self.url = url
        self.timeout = timeout
        self._api_key = api_key
        self.access_token: Optional[str] = None
        self.refresh_token: Optional[str] = None
        #: time.time() at which the access token expires.
        self.expires_at: float = 0.0
        self.auth = pb.auth_grpc.AuthServiceStub(channel)
        self.operations = pb.operation_grpc.OperationServiceStub(channel)
        self.automations = pb.automation_grpc.AutomationServiceStub(channel)
        self.files = pb.file_grpc.FileServiceStub(channel)
        self.reports = pb.report_grpc.ReportServiceStub(channel)
        self.rules = pb.rule_grpc.RuleServiceStub(channel)
        self.system = pb.system_grpc.SystemServiceStub(channel)

    def _store_tokens(self, resp: Any) -> None:
        self.access_token = resp.access_token
        self.refresh_token = resp.refresh_token
        self.expires_at = time.time() + resp.expires_in

    def _refresh_due(self) -> bool:
        """Whether the access token is to be rotated before the next call (never with an API key)."""
        due = time.time() >= self.expires_at - REFRESH_MARGIN_SECS
        return not self._api_key and bool(self.refresh_token) and due

    def _refresh_request(self) -> Any:
        return pb.auth.RefreshTokenRequest(refresh_token=self.refresh_token or "")

    def _credentials(self) -> Metadata:
        if self._api_key:
            return [("x-api-key", self._api_key)]
        return [("authorization", f"Bearer {self.access_token}")] if self.access_token else []

    def _logout_request(self, all_sessions: bool) -> Any:
        return pb.auth.LogoutRequest(refresh_token=self.refresh_token or "", all_sessions=all_sessions)

    def _logged_out(self, resp: Any) -> int:
        self.access_token = self.refresh_token = None
        return int(resp.revoked_sessions)


class Client(ClientBase, TransfersMixin):
    """Connects to a FileOrganizer Pro server over gRPC.

    ``Client("localhost:50051")`` (or ``"grpc://host:port"``; ``"grpcs://host:port"`` for TLS),
    then :meth:`login` or :meth:`register`; or ``Client(url, api_key="fo_…")``. Access tokens are
    refreshed with RefreshToken shortly before they expire. Every RPC has a wrapper (the table
    in :mod:`fileorganizer.wrappers`, plus the streaming ones here and in
    :mod:`fileorganizer.transfers`); results are :class:`~fileorganizer.convert.View`\\ s with
    enum fields as names. Every error is an :class:`ApiError`. The raw stubs (``client.files``,
    ``client.operations``, …) are authenticated too. :class:`fileorganizer.aio.AsyncClient` is
    the same for asyncio.
    """

    def __init__(
        self,
        url: str,
        *,
        api_key: Optional[str] = None,
        timeout: Optional[float] = 30.0,
        channel: Optional[grpc.Channel] = None,
    ) -> None:
        self._raw_channel = channel or _channel_for(url)
        self._channel = grpc.intercept_channel(self._raw_channel, _Authenticate(self._metadata))
        self._lock = threading.Lock()
        super().__init__(url, api_key, timeout, self._channel)

    # -- plumbing ---------------------------------------------------------------------------

    def close(self) -> None:
        self._raw_channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: Callable[..., T], request: Any) -> T:
        try:
            return method(request, timeout=self.timeout)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None

    def _stream(self, method: Callable[..., Any], request: Any, timeout: Optional[float] = None) -> Iterator[Any]:
        try:
            yield from method(request, timeout=timeout)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None

    def _pages(self, method: Callable[..., Any], request: Any, items: str) -> Iterator[View]:
        request = type(request).FromString(request.SerializeToString())
        while True:
            page = self._call(method, request)
            for item in getattr(page, items):
                yield View(item)
            if not page.next_page_token:
                return
            request.page_token = page.next_page_token

    def _metadata(self) -> Metadata:
        if self._refresh_due():
            with self._lock:
                if self._refresh_due():
                    self._refresh_locked()
        return self._credentials()

    def _refresh_locked(self) -> None:
        self._store_tokens(self._call(self.auth.RefreshToken, self._refresh_request()))

    # -- auth -------------------------------------------------------------------------------

    @rpcs("AuthService/Register")
    def register(self, email: str, password: str, display_name: str = "") -> View:
        """Creates an account, starts a session and returns the new user."""
        req = pb.auth.RegisterRequest(email=email, password=password, display_name=display_name)
        resp = self._call(self.auth.Register, req)
        self._store_tokens(resp)
        return View(resp.user)

    @rpcs("AuthService/Login")
    def login(self, email: str, password: str) -> View:
        """Logs in with email and password; returns the user."""
        resp = self._call(self.auth.Login, pb.auth.LoginRequest(email=email, password=password))
        self._store_tokens(resp)
        return View(resp.user)

    @rpcs("AuthService/RefreshToken")
    def refresh(self) -> None:
        """Rotates the token pair now (normally done automatically)."""
        with self._lock:
            self._refresh_locked()

    @rpcs("AuthService/Logout")
    def logout(self, all_sessions: bool = False) -> int:
        """Ends this session (or, with ``all_sessions``, every session of the user); returns
        how many sessions ended."""
        return self._logged_out(self._call(self.auth.Logout, self._logout_request(all_sessions)))

    # -- files ------------------------------------------------------------------------------

    @rpcs("FileService/UploadFile")
    def upload(
        self, local_path: Union[str, os.PathLike[str]], remote_path: str, *, rename_on_conflict: bool = False
    ) -> View:
        """Streams a local file to ``remote_path`` (relative to the storage root) with UploadFile;
        returns its FileEntry. For many or large files see :meth:`upload_file`,
        :meth:`upload_folder` and :meth:`upload_large`."""
        try:
            resp = self.files.UploadFile(upload_requests(local_path, remote_path, rename_on_conflict), timeout=None)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None
        return View(resp.file)

    @rpcs("FileService/DownloadFile")
    def download(self, remote_path: str, local_path: Union[str, os.PathLike[str]]) -> int:
        """Streams ``remote_path`` into ``local_path`` (written to a temp file, then renamed;
        into a directory under the file's own name, never replacing a file). Returns the number
        of bytes written."""
        written = 0
        with sink(local_path, remote_path.rsplit("/", 1)[-1]) as write:
            for body in self._stream(self.files.DownloadFile, pb.file.DownloadFileRequest(path=remote_path)):
                write(body.data)
                written += len(body.data)
        return written

    # -- operations -------------------------------------------------------------------------

    @rpcs("OperationService/WatchOperation")
    def watch(self, operation: OperationRef) -> Iterator[Progress]:
        """Yields progress snapshots of an operation until it stops."""
        req = pb.operation.WatchOperationRequest(name=resource_name(operation, OPERATIONS))
        for msg in self._stream(self.operations.WatchOperation, req):
            progress = Progress.from_pb(msg)
            yield progress
            if progress.done:
                return

    def organize(
        self, source: str, destination: Optional[str] = None, dry_run: bool = False, **options: Any
    ) -> Iterator[Progress]:
        """Creates an ORGANIZE operation and yields its progress until it stops (the last
        snapshot's ``state`` is ``"SUCCEEDED"``, ``"FAILED"``, ``"CANCELLED"`` or, for a dry
        run, ``"PLANNED"``). ``Progress.name`` is the operation's name."""
        op = self.create_operation(source, destination, dry_run, **options)
        yield from self.watch(op)

    def apply(self, operation: OperationRef) -> Iterator[Progress]:
        """Applies a PLANNED (dry-run) operation and yields its progress."""
        op = self.apply_operation(operation)
        yield from self.watch(op)

    def undo(self, operation: OperationRef, wait: bool = True) -> View:
        """Undoes an operation; with ``wait`` blocks until the UNDO operation stopped and returns
        it in its final state (``state == "SUCCEEDED"``)."""
        undo_op = self.undo_operation(operation)
        if wait:
            for _ in self.watch(undo_op):
                pass
            undo_op = self.operation(undo_op)
        return undo_op


def upload_requests(
    local_path: Union[str, os.PathLike[str]], remote_path: str, rename_on_conflict: bool
) -> Iterator["pb.file.UploadFileRequest"]:
    """The UploadFile stream of a local file: metadata, then CHUNK_SIZE chunks."""
    local = Path(local_path)
    policy = pb.file.FILE_CONFLICT_POLICY_RENAME if rename_on_conflict else pb.file.FILE_CONFLICT_POLICY_FAIL
    meta = pb.file.UploadFileMetadata(path=remote_path, size_bytes=local.stat().st_size, conflict_policy=policy)
    yield pb.file.UploadFileRequest(metadata=meta)
    with local.open("rb") as f:
        while chunk := f.read(CHUNK_SIZE):
            yield pb.file.UploadFileRequest(chunk=chunk)


def _bind(wrapper: Wrapper) -> Dict[str, Callable[..., Any]]:
    rpc, build, result = wrapper.rpc, wrapper.request, wrapper.result
    if wrapper.kind == "pages":

        def iterate(self: Client, *args: Any, **kwargs: Any) -> Iterator[View]:
            return self._pages(rpc.stub(self), build(*args, **kwargs), wrapper.items)

        def listing(self: Client, *args: Any, **kwargs: Any) -> List[View]:
            return list(self._pages(rpc.stub(self), build(*args, **kwargs), wrapper.items))

        return {wrapper.name: listing, wrapper.iter_name: iterate}
    if wrapper.kind == "bytes":

        def collect(self: Client, *args: Any, **kwargs: Any) -> bytes:
            return b"".join(m.data for m in self._stream(rpc.stub(self), build(*args, **kwargs), self.timeout))

        return {wrapper.name: collect}

    def unary(self: Client, *args: Any, **kwargs: Any) -> Any:
        return result(self._call(rpc.stub(self), build(*args, **kwargs)))

    return {wrapper.name: unary}


install(Client, _bind)
