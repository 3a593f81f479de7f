"""The table of the clients' RPC wrappers: one :class:`Wrapper` per unary or paged RPC, each a
pure request builder (the wrapper's signature) and a response conversion. Both clients are
built from this one table (:func:`install`), so :class:`fileorganizer.Client` and
:class:`fileorganizer.aio.AsyncClient` cannot drift apart; only the RPCs that need more than
one call or a stream of bytes (register/login, uploads, downloads, watch, organize, undo …)
are written by hand in each client, marked with :func:`rpcs`.

Adding an RPC is one entry, e.g. ``Wrapper("create_watch_token", _rpc("OperationService",
"CreateWatchToken"), fields(pb.operation.CreateWatchTokenRequest, "name", names={"name":
OPERATIONS}))``; tests/test_coverage.py fails while an RPC of the descriptor has no wrapper.

Conventions: keyword arguments are the request's fields (:func:`fileorganizer.convert.build`:
enum names, datetimes, dicts); resource names may be given as a full name, a bare id or
anything with a ``name`` (the prefix is put in); a request id is made up when not given; a
``Create…``/``Update…`` takes the resource's fields as keywords (an update's mask is the fields
given); results are :class:`~fileorganizer.convert.View`\\ s (``None`` for Empty); a List or
Search RPC gives ``list_…`` (every item of every page) and ``iter_…`` (items, fetching pages as
it goes, following ``next_page_token``).
"""

from __future__ import annotations

import inspect
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from google.api import field_behavior_pb2

from fileorganizer import pb
from fileorganizer.convert import build, resource_name, split_fields, unwrap, view

__all__ = ["Rpc", "Wrapper", "WRAPPERS", "rpcs", "install", "fields", "create", "update"]

PACKAGE = "fileorganizer.v1"
#: The client attribute holding each service's stub.
STUBS = {
    "AuthService": "auth",
    "AutomationService": "automations",
    "FileService": "files",
    "OperationService": "operations",
    "ReportService": "reports",
    "RuleService": "rules",
    "SystemService": "system",
}

OPERATIONS = "operations/"
REPORTS = "reports/"
TRASH = "trash/"


@dataclass(frozen=True)
class Rpc:
    service: str
    method: str

    @property
    def path(self) -> str:
        """The gRPC method path, ``/fileorganizer.v1.FileService/SearchFiles``."""
        return f"/{PACKAGE}.{self.service}/{self.method}"

    def stub(self, client: Any) -> Callable[..., Any]:
        return getattr(getattr(client, STUBS[self.service]), self.method)


def _rpc(service: str, method: str) -> Rpc:
    return Rpc(service, method)


def rpcs(*paths: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Marks a hand-written client method as the wrapper of RPCs (``"FileService/UploadFile"``)."""

    def mark(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn.__rpc__ = tuple(f"/{PACKAGE}.{p}" for p in paths)  # type: ignore[attr-defined]
        return fn

    return mark


# -- request builders ---------------------------------------------------------------------------


def _normalize(req_desc: Any, values: Dict[str, Any], names: Mapping[str, str]) -> Dict[str, Any]:
    """Resource names prefixed, an etag taken from a given resource, a request id made up."""
    for key, prefix in names.items():
        ref = values.get(key)
        if ref is None:
            continue
        if isinstance(ref, (list, tuple)):
            values[key] = [resource_name(r, prefix) for r in ref]
            continue
        if not isinstance(ref, str) and "etag" in req_desc.fields_by_name and values.get("etag") is None:
            etag = getattr(ref, "etag", None)
            if isinstance(etag, str):
                values["etag"] = etag
        values[key] = resource_name(ref, prefix)
    if "request_id" in req_desc.fields_by_name and not values.get("request_id"):
        values["request_id"] = str(uuid.uuid4())
    return values


def _signature(params: List[inspect.Parameter]) -> inspect.Signature:
    return inspect.Signature(params)


def fields(
    request: Any, *positional: str, names: Optional[Mapping[str, str]] = None
) -> Callable[..., Any]:
    """A builder taking the request's fields as keywords (``positional`` ones also by
    position); ``names`` maps name fields to their resource prefix."""
    desc = request.DESCRIPTOR
    names = dict(names or {})

    def build_request(*args: Any, **kwargs: Any) -> Any:
        if len(args) > len(positional):
            raise TypeError(f"takes at most {len(positional)} positional arguments ({', '.join(positional)})")
        for key, value in zip(positional, args):
            if key in kwargs:
                raise TypeError(f"got two values for {key!r}")
            kwargs[key] = value
        return build(desc, _normalize(desc, kwargs, names))

    params = [inspect.Parameter(p, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None) for p in positional]
    params += [
        inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=None)
        for f in desc.fields
        if f.name not in positional
    ]
    build_request.__signature__ = _signature(params)  # type: ignore[attr-defined]
    return build_request


def create(request: Any, resource: str) -> Callable[..., Any]:
    """A builder for ``Create…(resource)``: the resource as a message/view/dict, or its fields
    as keywords (or both: keywords win); other request fields (a request id) as keywords."""
    desc = request.DESCRIPTOR
    res_desc = desc.fields_by_name[resource].message_type

    def build_request(base: Any = None, /, **kwargs: Any) -> Any:
        own, res_fields = split_fields(desc, kwargs)
        res = _resource(res_desc, own.pop(resource, base), res_fields)
        return build(desc, _normalize(desc, {**own, resource: res}, {}))

    params = [inspect.Parameter(resource, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None)]
    params += [
        inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=None)
        for f in [*_writable(res_desc), *desc.fields]
        if f.name != resource
    ]
    build_request.__signature__ = _signature(params)  # type: ignore[attr-defined]
    return build_request


def update(request: Any, resource: str) -> Callable[..., Any]:
    """A builder for ``Update…(resource, update_mask)``: the resource as read (its name and
    etag), the fields to change as keywords; the mask is those fields (or ``update_mask``).
    With no keywords every field of ``resource`` is sent, with no mask."""
    desc = request.DESCRIPTOR
    res_desc = desc.fields_by_name[resource].message_type

    def build_request(base: Any = None, /, *, update_mask: Optional[Sequence[str]] = None, **changes: Any) -> Any:
        own, res_fields = split_fields(desc, changes)
        res = _resource(res_desc, own.pop(resource, base), res_fields)
        mask = list(update_mask) if update_mask is not None else list(res_fields) or None
        return build(desc, {**own, resource: res, "update_mask": mask})

    params = [
        inspect.Parameter(resource, inspect.Parameter.POSITIONAL_OR_KEYWORD),
        inspect.Parameter("update_mask", inspect.Parameter.KEYWORD_ONLY, default=None),
    ]
    params += [
        inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=None)
        for f in _writable(res_desc)
        if f.name not in ("name", "etag")
    ]
    build_request.__signature__ = _signature(params)  # type: ignore[attr-defined]
    return build_request


def _writable(res_desc: Any) -> List[Any]:
    """The fields of a resource a caller may set (not OUTPUT_ONLY)."""
    out = []
    for f in res_desc.fields:
        behaviors = f.GetOptions().Extensions[field_behavior_pb2.field_behavior]
        if field_behavior_pb2.OUTPUT_ONLY not in behaviors:
            out.append(f)
    return out


def _resource(res_desc: Any, base: Any, changes: Mapping[str, Any]) -> Any:
    """``base`` (message, view, dict or None) with ``changes`` replacing whole fields."""
    msg = build(res_desc, {})
    base = unwrap(base)
    if isinstance(base, Mapping):
        base = build(res_desc, base)
    if base is not None:
        msg.CopyFrom(base)
    for key, value in changes.items():
        part = build(res_desc, {key: value})
        msg.ClearField(key)
        msg.MergeFrom(part)
    return msg


def _create_operation(
    source: Optional[str] = None,
    destination: Optional[str] = None,
    dry_run: bool = False,
    kind: Any = "ORGANIZE",
    *,
    request_id: Optional[str] = None,
    **options: Any,
) -> Any:
    op = build(
        pb.operation.Operation,
        {"kind": kind, "source_path": source, "destination_path": destination, "dry_run": dry_run, **options},
    )
    return pb.operation.CreateOperationRequest(operation=op, request_id=request_id or str(uuid.uuid4()))


def _create_api_key(display_name: str, scopes: Sequence[str] = (), expire_time: Any = None) -> Any:
    key = build(pb.auth.ApiKey, {"display_name": display_name, "scopes": list(scopes), "expire_time": expire_time})
    return pb.auth.CreateApiKeyRequest(api_key=key)


def _update_current_user(
    *,
    display_name: Optional[str] = None,
    current_password: str = "",
    new_password: str = "",
) -> Any:
    user = pb.auth.User(display_name=display_name) if display_name is not None else None
    mask = ["display_name"] if display_name is not None else []
    return pb.auth.UpdateCurrentUserRequest(
        user=user,
        update_mask={"paths": mask} if mask else None,
        current_password=current_password,
        new_password=new_password,
    )


def _key_and_secret(resp: Any) -> Tuple[Any, str]:
    return view(resp.api_key), resp.secret


# -- the table ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Wrapper:
    """One generated method (two for ``pages``: ``name`` lists, ``iter_name`` iterates).

    ``kind``: ``"unary"`` (one request, ``result(response)``), ``"pages"`` (``items`` is the
    response's repeated field; pages followed by ``next_page_token``) or ``"bytes"`` (a stream
    of ``google.api.HttpBody`` joined into ``bytes``)."""

    name: str
    rpc: Rpc
    request: Callable[..., Any]
    doc: str = ""
    result: Callable[[Any], Any] = view
    kind: str = "unary"
    items: str = ""
    iter_name: str = ""


def _pages(name: str, iter_name: str, rpc: Rpc, request: Callable[..., Any], items: str, doc: str) -> Wrapper:
    return Wrapper(name, rpc, request, doc, kind="pages", items=items, iter_name=iter_name)


A, AU, F, O, R, RU, S = (
    "AuthService",
    "AutomationService",
    "FileService",
    "OperationService",
    "ReportService",
    "RuleService",
    "SystemService",
)
p = pb

WRAPPERS: List[Wrapper] = [
    # -- auth (Register, Login, RefreshToken, Logout are hand-written: they keep the tokens)
    Wrapper("me", _rpc(A, "GetCurrentUser"), fields(p.auth.GetCurrentUserRequest), "The signed-in user."),
    Wrapper(
        "update_current_user",
        _rpc(A, "UpdateCurrentUser"),
        _update_current_user,
        "Changes the display name and/or the password (``current_password`` needed; other sessions end).",
    ),
    Wrapper(
        "create_api_key",
        _rpc(A, "CreateApiKey"),
        _create_api_key,
        "Creates an API key; returns (key, secret): the secret is shown only once. ``scopes`` "
        "restricts it (e.g. ``['files.read']``); none means all of the caller's.",
        result=_key_and_secret,
    ),
    _pages("list_api_keys", "iter_api_keys", _rpc(A, "ListApiKeys"), fields(p.auth.ListApiKeysRequest), "api_keys", "The caller's API keys."),
    Wrapper(
        "revoke_api_key",
        _rpc(A, "RevokeApiKey"),
        fields(p.auth.RevokeApiKeyRequest, "name", names={"name": "api-keys/"}),
        "Revokes an API key (``api-keys/{id}`` or the key).",
    ),
    # -- automations
    Wrapper("create_automation", _rpc(AU, "CreateAutomation"), create(p.automation.CreateAutomationRequest, "automation")),
    Wrapper(
        "automation",
        _rpc(AU, "GetAutomation"),
        fields(p.automation.GetAutomationRequest, "name", names={"name": "automations/"}),
    ),
    _pages(
        "list_automations",
        "iter_automations",
        _rpc(AU, "ListAutomations"),
        fields(p.automation.ListAutomationsRequest),
        "automations",
        "The caller's automations.",
    ),
    Wrapper("update_automation", _rpc(AU, "UpdateAutomation"), update(p.automation.UpdateAutomationRequest, "automation")),
    Wrapper(
        "delete_automation",
        _rpc(AU, "DeleteAutomation"),
        fields(p.automation.DeleteAutomationRequest, "name", "etag", names={"name": "automations/"}),
        "Deletes an automation; the etag of a given automation is sent unless ``etag`` is.",
    ),
    Wrapper(
        "pause_automation",
        _rpc(AU, "PauseAutomation"),
        fields(p.automation.PauseAutomationRequest, "name", names={"name": "automations/"}),
    ),
    Wrapper(
        "resume_automation",
        _rpc(AU, "ResumeAutomation"),
        fields(p.automation.ResumeAutomationRequest, "name", names={"name": "automations/"}),
    ),
    # -- files (uploads, downloads and archives are hand-written: they stream)
    Wrapper(
        "upload_small_file",
        _rpc(F, "UploadSmallFile"),
        fields(p.file.UploadSmallFileRequest, "path", "content"),
        "Stores ``content`` (bytes, at most 4 MiB) at ``path`` in one request.",
    ),
    _pages(
        "list_directory",
        "iter_directory",
        _rpc(F, "ListDirectory"),
        fields(p.file.ListDirectoryRequest, "path"),
        "entries",
        "The entries of a folder (``""`` is the storage root).",
    ),
    Wrapper(
        "delete_file",
        _rpc(F, "DeleteFile"),
        fields(p.file.DeleteFileRequest, "path"),
        "Moves a file or folder to the trash; returns the response with its ``trash_item``.",
    ),
    _pages("list_trash", "iter_trash", _rpc(F, "ListTrash"), fields(p.file.ListTrashRequest), "trash_items", "What is in the trash."),
    Wrapper(
        "restore_file",
        _rpc(F, "RestoreFile"),
        fields(p.file.RestoreFileRequest, "name", names={"name": TRASH}),
        "Restores a trash item (``trash/{id}`` or the item) to its old path or ``path``.",
    ),
    Wrapper(
        "empty_trash",
        _rpc(F, "EmptyTrash"),
        fields(p.file.EmptyTrashRequest, "names", names={"names": TRASH}),
        "Deletes the given trash items for good, or the whole trash when none are given.",
    ),
    _pages(
        "list_file_records",
        "iter_file_records",
        _rpc(F, "ListFileRecords"),
        fields(p.file.ListFileRecordsRequest, "parent", names={"parent": OPERATIONS}),
        "file_records",
        "The files an operation planned or moved (filters: ``status``, ``category``, …).",
    ),
    _pages(
        "search_files",
        "iter_search_files",
        _rpc(F, "SearchFiles"),
        fields(p.file.SearchFilesRequest, names={"operation": OPERATIONS}),
        "file_records",
        "File records by ``name_contains``, ``category``, ``content_hash`` or ``operation``.",
    ),
    _pages(
        "list_categories",
        "iter_categories",
        _rpc(F, "ListCategories"),
        fields(p.file.ListCategoriesRequest),
        "categories",
        "The built-in and the caller's categories.",
    ),
    Wrapper("create_category", _rpc(F, "CreateCategory"), create(p.file.CreateCategoryRequest, "category")),
    Wrapper("update_category", _rpc(F, "UpdateCategory"), update(p.file.UpdateCategoryRequest, "category")),
    Wrapper(
        "delete_category",
        _rpc(F, "DeleteCategory"),
        fields(p.file.DeleteCategoryRequest, "name", names={"name": "categories/"}),
    ),
    Wrapper(
        "create_upload",
        _rpc(F, "CreateUpload"),
        create(p.file.CreateUploadRequest, "upload"),
        "Starts a resumable upload session (``upload_large`` does the whole upload).",
    ),
    Wrapper(
        "upload_session",
        _rpc(F, "GetUpload"),
        fields(p.file.GetUploadRequest, "name", names={"name": "uploads/"}),
        "A resumable upload session (its ``committed_offset``).",
    ),
    Wrapper(
        "finish_upload",
        _rpc(F, "FinishUpload"),
        fields(p.file.FinishUploadRequest, "name", names={"name": "uploads/"}),
    ),
    Wrapper(
        "cancel_upload",
        _rpc(F, "CancelUpload"),
        fields(p.file.CancelUploadRequest, "name", names={"name": "uploads/"}),
    ),
    # -- operations (watch, organize, apply and undo are hand-written: they follow progress)
    Wrapper(
        "create_operation",
        _rpc(O, "CreateOperation"),
        _create_operation,
        "Creates an operation. ``options`` are Operation fields (``layout_template``, "
        "``include_globs``, ``duplicate_policy='MOVE_TO_TRASH'``, …).",
    ),
    Wrapper(
        "operation",
        _rpc(O, "GetOperation"),
        fields(p.operation.GetOperationRequest, "name", names={"name": OPERATIONS}),
    ),
    _pages(
        "list_operations",
        "iter_operations",
        _rpc(O, "ListOperations"),
        fields(p.operation.ListOperationsRequest, names={"automation": "automations/"}),
        "operations",
        "The caller's operations, newest first (filters: ``state``, ``kind``, ``automation``).",
    ),
    Wrapper(
        "create_watch_token",
        _rpc(O, "CreateWatchToken"),
        fields(p.operation.CreateWatchTokenRequest, "name", names={"name": OPERATIONS}),
        "A short-lived, single-use token that lets a client without credentials (a browser's "
        "``EventSource``) follow one operation: ``GET /api/v1/<name>:watch?watch_token=<token>``.",
    ),
    Wrapper(
        "cancel_operation",
        _rpc(O, "CancelOperation"),
        fields(p.operation.CancelOperationRequest, "name", names={"name": OPERATIONS}),
    ),
    Wrapper(
        "apply_operation",
        _rpc(O, "ApplyOperation"),
        fields(p.operation.ApplyOperationRequest, "name", names={"name": OPERATIONS}),
        "Starts applying a PLANNED dry run (``apply`` also follows its progress).",
    ),
    Wrapper(
        "undo_operation",
        _rpc(O, "UndoOperation"),
        fields(p.operation.UndoOperationRequest, "name", names={"name": OPERATIONS}),
        "Starts undoing an operation; returns the UNDO operation (``undo`` also waits for it).",
    ),
    # -- reports
    Wrapper(
        "report",
        _rpc(R, "GetOperationReport"),
        fields(p.report.GetOperationReportRequest, "name", names={"name": REPORTS}),
        "The report of an operation (an operation, its name or id, or ``reports/{id}``).",
    ),
    _pages(
        "list_duplicate_groups",
        "iter_duplicate_groups",
        _rpc(R, "ListDuplicateGroups"),
        fields(p.report.ListDuplicateGroupsRequest, "parent", names={"parent": REPORTS}),
        "duplicate_groups",
        "The groups of identical files an operation found.",
    ),
    Wrapper(
        "export_report",
        _rpc(R, "ExportReport"),
        fields(p.report.ExportReportRequest, "name", "format", names={"name": REPORTS}),
        "The report as a file (``format`` ``'CSV'``, ``'JSON'`` or ``'HTML'``), as bytes.",
        kind="bytes",
    ),
    Wrapper("usage", _rpc(R, "GetUsageSummary"), fields(p.report.GetUsageSummaryRequest), "The caller's usage and quota."),
    # -- rules
    Wrapper("create_rule", _rpc(RU, "CreateRule"), create(p.rule.CreateRuleRequest, "rule")),
    Wrapper("rule", _rpc(RU, "GetRule"), fields(p.rule.GetRuleRequest, "name", names={"name": "rules/"})),
    _pages("list_rules", "iter_rules", _rpc(RU, "ListRules"), fields(p.rule.ListRulesRequest), "rules", "The caller's rules in the order they are tried."),
    Wrapper("update_rule", _rpc(RU, "UpdateRule"), update(p.rule.UpdateRuleRequest, "rule")),
    Wrapper(
        "delete_rule",
        _rpc(RU, "DeleteRule"),
        fields(p.rule.DeleteRuleRequest, "name", "etag", names={"name": "rules/"}),
        "Deletes a rule; the etag of a given rule is sent unless ``etag`` is.",
    ),
    Wrapper(
        "preview_rules",
        _rpc(RU, "PreviewRules"),
        fields(p.rule.PreviewRulesRequest),
        "Which rule decides each file of ``folder`` (or ``paths``) and why; ``rules`` previews a draft.",
    ),
    # -- system
    Wrapper("health", _rpc(S, "GetHealth"), fields(p.system.GetHealthRequest)),
    Wrapper("status", _rpc(S, "GetStatus"), fields(p.system.GetStatusRequest), "Components' health (admins)."),
    Wrapper(
        "rate_limit_status",
        _rpc(S, "GetRateLimitStatus"),
        fields(p.system.GetRateLimitStatusRequest),
        "The caller's rate-limit counters (another user's: admins).",
    ),
    Wrapper(
        "reset_rate_limit",
        _rpc(S, "ResetRateLimit"),
        fields(p.system.ResetRateLimitRequest),
        "Resets rate-limit counters (admins).",
    ),
    _pages(
        "list_audit_events",
        "iter_audit_events",
        _rpc(S, "ListAuditEvents"),
        fields(p.system.ListAuditEventsRequest),
        "events",
        "Audit events (the caller's; anyone's: admins).",
    ),
]


# -- installing the table on a client class ----------------------------------------------------


def install(cls: type, binder: Callable[[Wrapper], Dict[str, Callable[..., Any]]]) -> type:
    """Adds the methods ``binder`` makes of each wrapper to ``cls`` (a hand-written method of
    the same name wins), with the builder's signature and the doc."""
    for wrapper in WRAPPERS:
        for name, fn in binder(wrapper).items():
            if name in cls.__dict__:
                continue
            sig = inspect.signature(wrapper.request)
            fn.__signature__ = sig.replace(  # type: ignore[attr-defined]
                parameters=[inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD), *sig.parameters.values()]
            )
            fn.__name__ = name
            fn.__qualname__ = f"{cls.__name__}.{name}"
            fn.__doc__ = f"{wrapper.doc or wrapper.rpc.method + '.'}\n\nCalls ``{wrapper.rpc.path}``."
            fn.__rpc__ = (wrapper.rpc.path,)  # type: ignore[attr-defined]
            setattr(cls, name, fn)
    return cls
