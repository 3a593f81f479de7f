"""A thin, typed convenience client over the generated gRPC stubs."""

from __future__ import annotations

import collections
import os
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, List, Optional, Sequence, Tuple, TypeVar, Union

import grpc

from fileorganizer import pb
from fileorganizer.errors import from_rpc_error
from fileorganizer.organizing import OrganizingMixin
from fileorganizer.transfers import TransfersMixin

__all__ = ["Client", "Progress"]

T = TypeVar("T")
Metadata = List[Tuple[str, str]]
OperationRef = Union[str, "pb.operation.Operation", "Progress"]

#: Refresh the access token when less than this many seconds of its lifetime remain.
REFRESH_MARGIN_SECS = 60.0
#: Bytes per UploadFile message.
CHUNK_SIZE = 256 * 1024

_TERMINAL = {"SUCCEEDED", "FAILED", "CANCELLED", "PLANNED"}


def _enum_name(enum: Any, value: int, prefix: str) -> str:
    return str(enum.Name(value)).removeprefix(prefix)


@dataclass(frozen=True)
class Progress:
    """One WatchOperation snapshot. ``state``/``phase`` are enum names without their prefix
    (``"SUCCEEDED"``, ``"APPLY"``); ``raw`` is the WatchOperationResponse itself."""

    name: str
    state: str
    phase: str
    counters: "pb.operation.OperationCounters"
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
            state=_enum_name(pb.operation.OperationState, msg.state, "OPERATION_STATE_"),
            phase=_enum_name(pb.operation.OperationPhase, msg.phase, "OPERATION_PHASE_"),
            counters=msg.counters,
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
        given = list(details.metadata or ())
        if details.method in _PUBLIC or any(k in ("authorization", "x-api-key") for k, _ in given):
            return details
        return _CallDetails(
            details.method,
            details.timeout,
            given + self._metadata(),
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


def _operation_id(ref: OperationRef) -> str:
    name = ref.name if not isinstance(ref, str) else ref
    return name.rsplit("/", 1)[-1]


class Client(TransfersMixin, OrganizingMixin):
    """Connects to a FileOrganizer Pro server over gRPC.

    ``Client("localhost:50051")`` (or ``"grpc://host:port"``; ``"grpcs://host:port"`` for TLS),
    then :meth:`login` or :meth:`register`; or ``Client(url, api_key="fo_…")``. Access tokens are
    refreshed with RefreshToken shortly before they expire. Every error is an :class:`ApiError`.
    Many or large files: :meth:`upload_folder`, :meth:`import_archive`, :meth:`upload_large`
    (``fileorganizer.transfers``).
    """

    def __init__(
        self,
        url: str,
        *,
        api_key: Optional[str] = None,
        timeout: Optional[float] = 30.0,
        channel: Optional[grpc.Channel] = None,
    ) -> None:
        self.url = url
        self.timeout = timeout
        self._raw_channel = channel or _channel_for(url)
        self._channel = grpc.intercept_channel(self._raw_channel, _Authenticate(self._metadata))
        self._api_key = api_key
        self.access_token: Optional[str] = None
        self.refresh_token: Optional[str] = None
        #: time.time() at which the access token expires.
        self.expires_at: float = 0.0
        self._lock = threading.Lock()
        self.auth = pb.auth_grpc.AuthServiceStub(self._channel)
        self.operations = pb.operation_grpc.OperationServiceStub(self._channel)
        self.automations = pb.automation_grpc.AutomationServiceStub(self._channel)
        self.files = pb.file_grpc.FileServiceStub(self._channel)
        self.reports = pb.report_grpc.ReportServiceStub(self._channel)
        self.rules = pb.rule_grpc.RuleServiceStub(self._channel)
        self.system = pb.system_grpc.SystemServiceStub(self._channel)

    # -- plumbing ---------------------------------------------------------------------------

    def close(self) -> None:
        self._raw_channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: Callable[..., T], request: Any, *, auth: bool = True) -> T:
        try:
            return method(request, metadata=self._metadata() if auth else None, timeout=self.timeout)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None

    def _stream(self, method: Callable[..., Any], request: Any, timeout: Optional[float] = None) -> Iterator[Any]:
        try:
            yield from method(request, metadata=self._metadata(), timeout=timeout)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None

    def _store_tokens(self, resp: Any) -> None:
        self.access_token = resp.access_token
        self.refresh_token = resp.refresh_token
        self.expires_at = time.time() + resp.expires_in

    def _metadata(self) -> Metadata:
        if self._api_key:
            return [("x-api-key", self._api_key)]
        with self._lock:
            if self.refresh_token and time.time() >= self.expires_at - REFRESH_MARGIN_SECS:
                self._refresh_locked()
            token = self.access_token
        return [("authorization", f"Bearer {token}")] if token else []

    def _refresh_locked(self) -> None:
        req = pb.auth.RefreshTokenRequest(refresh_token=self.refresh_token or "")
        self._store_tokens(self._call(self.auth.RefreshToken, req, auth=False))

    # -- auth -------------------------------------------------------------------------------

    def register(self, email: str, password: str, display_name: str = "") -> "pb.auth.User":
        """Creates an account, starts a session and returns the new user."""
        req = pb.auth.RegisterRequest(email=email, password=password, display_name=display_name)
        resp = self._call(self.auth.Register, req, auth=False)
        self._store_tokens(resp)
        return resp.user

    def login(self, email: str, password: str) -> "pb.auth.User":
        """Logs in with email and password; returns the user."""
        resp = self._call(self.auth.Login, pb.auth.LoginRequest(email=email, password=password), auth=False)
        self._store_tokens(resp)
        return resp.user

    def refresh(self) -> None:
        """Rotates the token pair now (normally done automatically)."""
        with self._lock:
            self._refresh_locked()

    def logout(self) -> None:
        """Ends this session (revokes the refresh token's family)."""
        self._call(self.auth.Logout, pb.auth.LogoutRequest(refresh_token=self.refresh_token or ""))
        self.access_token = self.refresh_token = None

    def me(self) -> "pb.auth.User":
        return self._call(self.auth.GetCurrentUser, pb.auth.GetCurrentUserRequest())

    def create_api_key(self, display_name: str, scopes: Sequence[str] = ()) -> Tuple["pb.auth.ApiKey", str]:
        """Creates an API key; returns (key, secret). The secret is shown only once.

        ``scopes`` restricts the key (e.g. ``["files.read"]``; the set is documented on
        ``ApiKey.scopes``); none means all of the caller's. A scope the caller lacks is refused
        (PERMISSION_DENIED, reason SCOPE_INSUFFICIENT); an unknown one is INVALID_ARGUMENT.
        """
        req = pb.auth.CreateApiKeyRequest(api_key=pb.auth.ApiKey(display_name=display_name, scopes=list(scopes)))
        resp = self._call(self.auth.CreateApiKey, req)
        return resp.api_key, resp.secret

    # -- files ------------------------------------------------------------------------------

    def upload(
        self, local_path: Union[str, os.PathLike[str]], remote_path: str, *, rename_on_conflict: bool = False
    ) -> "pb.file.FileEntry":
        """Streams a local file to ``remote_path`` (relative to the storage root) with UploadFile."""
        local = Path(local_path)
        size = local.stat().st_size
        policy = (
            pb.file.FILE_CONFLICT_POLICY_RENAME if rename_on_conflict else pb.file.FILE_CONFLICT_POLICY_FAIL
        )

        def requests() -> Iterator["pb.file.UploadFileRequest"]:
            meta = pb.file.UploadFileMetadata(path=remote_path, size_bytes=size, conflict_policy=policy)
            yield pb.file.UploadFileRequest(metadata=meta)
            with local.open("rb") as f:
                while chunk := f.read(CHUNK_SIZE):
                    yield pb.file.UploadFileRequest(chunk=chunk)

        try:
            resp = self.files.UploadFile(requests(), metadata=self._metadata(), timeout=None)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None
        return resp.file

    def download(self, remote_path: str, local_path: Union[str, os.PathLike[str]]) -> int:
        """Streams ``remote_path`` into ``local_path`` (written to a temp file, then renamed).
        Returns the number of bytes written."""
        local = Path(local_path)
        tmp = local.with_name(f".{local.name}.{uuid.uuid4().hex}.part")
        written = 0
        try:
            with tmp.open("wb") as f:
                for body in self._stream(self.files.DownloadFile, pb.file.DownloadFileRequest(path=remote_path)):
                    f.write(body.data)
                    written += len(body.data)
            os.replace(tmp, local)
        finally:
            tmp.unlink(missing_ok=True)
        return written

    def list_directory(self, path: str = "") -> List["pb.file.FileEntry"]:
        """Every entry of a folder (all pages)."""
        entries: List[pb.file.FileEntry] = []
        token = ""
        while True:
            resp = self._call(self.files.ListDirectory, pb.file.ListDirectoryRequest(path=path, page_token=token))
            entries += resp.entries
            token = resp.next_page_token
            if not token:
                return entries

    # -- operations -------------------------------------------------------------------------

    def create_operation(
        self,
        source: str,
        destination: Optional[str] = None,
        dry_run: bool = False,
        kind: str = "ORGANIZE",
        **options: Any,
    ) -> "pb.operation.Operation":
        """Creates an operation. ``options`` are Operation fields (``layout_template``,
        ``include_globs``, ``duplicate_policy``, …); enum options accept names like
        ``"MOVE_TO_TRASH"``."""
        for field, prefix in (("duplicate_policy", "DUPLICATE_POLICY_"), ("conflict_policy", "CONFLICT_POLICY_")):
            if isinstance(options.get(field), str) and not options[field].startswith(prefix):
                options[field] = prefix + options[field]
        op = pb.operation.Operation(
            kind=f"OPERATION_KIND_{kind}",
            source_path=source,
            destination_path=destination or "",
            dry_run=dry_run,
            **options,
        )
        req = pb.operation.CreateOperationRequest(operation=op, request_id=str(uuid.uuid4()))
        return self._call(self.operations.CreateOperation, req)

    def watch(self, operation: OperationRef) -> Iterator[Progress]:
        """Yields progress snapshots of an operation until it stops."""
        name = f"operations/{_operation_id(operation)}"
        for msg in self._stream(self.operations.WatchOperation, pb.operation.WatchOperationRequest(name=name)):
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

    def operation(self, operation: OperationRef) -> "pb.operation.Operation":
        name = f"operations/{_operation_id(operation)}"
        return self._call(self.operations.GetOperation, pb.operation.GetOperationRequest(name=name))

    def apply(self, operation: OperationRef) -> Iterator[Progress]:
        """Applies a PLANNED (dry-run) operation and yields its progress."""
        name = f"operations/{_operation_id(operation)}"
        self._call(self.operations.ApplyOperation, pb.operation.ApplyOperationRequest(name=name))
        yield from self.watch(name)

    def undo(self, operation: OperationRef, wait: bool = True) -> "pb.operation.Operation":
        """Undoes an operation; with ``wait`` blocks until the UNDO operation stopped and returns
        it in its final state."""
        name = f"operations/{_operation_id(operation)}"
        req = pb.operation.UndoOperationRequest(name=name, request_id=str(uuid.uuid4()))
        undo_op = self._call(self.operations.UndoOperation, req)
        if wait:
            for _ in self.watch(undo_op):
                pass
            undo_op = self.operation(undo_op)
        return undo_op

    def report(self, operation: OperationRef) -> "pb.report.OperationReport":
        """The report of an operation (``reports/{operation_id}``)."""
        name = f"reports/{_operation_id(operation)}"
        return self._call(self.reports.GetOperationReport, pb.report.GetOperationReportRequest(name=name))


