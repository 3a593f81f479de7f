"""Exceptions raised by :class:`fileorganizer.Client`: one subclass of :class:`ApiError` per gRPC code."""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple, Type

import grpc
from google.rpc import error_details_pb2, status_pb2

__all__ = [
    "ApiError",
    "InvalidArgument",
    "Unauthenticated",
    "PermissionDenied",
    "NotFound",
    "AlreadyExists",
    "FailedPrecondition",
    "Aborted",
    "ResourceExhausted",
    "Unavailable",
    "Unimplemented",
    "DataLoss",
    "Internal",
    "Cancelled",
    "DeadlineExceeded",
    "from_rpc_error",
    "UnknownEnumValue",
]


class UnknownEnumValue(ValueError):
    """An enum argument that names no value of its enum, raised before anything is sent:
    ``str(err)`` lists the valid names; ``field``, ``value``, ``enum`` and ``valid`` say the
    same as attributes."""

    def __init__(self, field: str, value: object, enum: str, valid: List[str]) -> None:
        super().__init__(f"{field}: {value!r} is not a {enum}; use one of {', '.join(valid)}")
        self.field = field
        self.value = value
        self.enum = enum
        self.valid = valid


class ApiError(Exception):
    """An error answered by the service (or the transport).

    ``code`` is the :class:`grpc.StatusCode`; ``reason``/``domain``/``metadata`` come from the
    ``google.rpc.ErrorInfo`` detail (``reason`` is e.g. ``"INVALID_CREDENTIALS"``, empty when the
    error carried none); ``field_violations`` from a ``google.rpc.BadRequest`` as (field,
    description) pairs; ``retry_delay`` (seconds) from a ``google.rpc.RetryInfo``.
    """

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(
        self,
        message: str,
        *,
        code: Optional[grpc.StatusCode] = None,
        reason: str = "",
        domain: str = "",
        metadata: Optional[Dict[str, str]] = None,
        field_violations: Optional[List[Tuple[str, str]]] = None,
        retry_delay: Optional[float] = None,
    ) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message
        self.reason = reason
        self.domain = domain
        self.metadata: Dict[str, str] = metadata or {}
        self.field_violations: List[Tuple[str, str]] = field_violations or []
        self.retry_delay = retry_delay

    def __str__(self) -> str:
        reason = f" [{self.reason}]" if self.reason else ""
        return f"{self.code.name}{reason}: {self.message}"


class Cancelled(ApiError):
    code = grpc.StatusCode.CANCELLED


class InvalidArgument(ApiError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class DeadlineExceeded(ApiError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class NotFound(ApiError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(ApiError):
    code = grpc.StatusCode.ALREADY_EXISTS


class PermissionDenied(ApiError):
    code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhausted(ApiError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPrecondition(ApiError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Aborted(ApiError):
    """A write with a stale etag (reason ETAG_MISMATCH): read the resource again and retry; or
    the resource is busy with another request (reason RESOURCE_BUSY, with ``retry_delay``): an
    upload session whose cut connection the server has not seen end yet. ``upload_large``
    waits that out by itself."""

    code = grpc.StatusCode.ABORTED


class Unimplemented(ApiError):
    code = grpc.StatusCode.UNIMPLEMENTED


class Internal(ApiError):
    code = grpc.StatusCode.INTERNAL


class Unavailable(ApiError):
    code = grpc.StatusCode.UNAVAILABLE


class DataLoss(ApiError):
    code = grpc.StatusCode.DATA_LOSS


class Unauthenticated(ApiError):
    code = grpc.StatusCode.UNAUTHENTICATED


_BY_CODE: Dict[grpc.StatusCode, Type[ApiError]] = {
    cls.code: cls
    for cls in (
        Cancelled,
        InvalidArgument,
        DeadlineExceeded,
        NotFound,
        AlreadyExists,
        PermissionDenied,
        ResourceExhausted,
        FailedPrecondition,
        Aborted,
        Unimplemented,
        Internal,
        Unavailable,
        DataLoss,
        Unauthenticated,
    )
}


def from_rpc_error(err: grpc.RpcError) -> ApiError:
    """Converts a grpc error (a ``grpc.Call``) into the matching :class:`ApiError` subclass,
    decoding the ``grpc-status-details-bin`` trailer (a ``google.rpc.Status``)."""
    code: grpc.StatusCode = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN  # type: ignore[attr-defined]
    message: str = (err.details() if hasattr(err, "details") else None) or str(err)  # type: ignore[attr-defined]
    kwargs: Dict[str, object] = {}
    trailers = err.trailing_metadata() if hasattr(err, "trailing_metadata") else None  # type: ignore[attr-defined]
    for key, value in trailers or ():
        if key != "grpc-status-details-bin":
            continue
        status = status_pb2.Status.FromString(value)
        message = status.message or message
        violations: List[Tuple[str, str]] = []
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                kwargs.update(reason=info.reason, domain=info.domain, metadata=dict(info.metadata))
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                violations += [(v.field, v.description) for v in bad.field_violations]
            elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                retry = error_details_pb2.RetryInfo()
                detail.Unpack(retry)
                kwargs["retry_delay"] = retry.retry_delay.ToTimedelta().total_seconds()
        kwargs["field_violations"] = violations
    cls = _BY_CODE.get(code, ApiError)
    return cls(message, code=code, **kwargs)  # type: ignore[arg-type]
