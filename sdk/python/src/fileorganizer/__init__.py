"""FileOrganizer Pro Python SDK: generated gRPC stubs (``fileorganizer.pb``), a typed client
(:class:`Client`) with a wrapper for every RPC, and its asyncio twin
(:class:`fileorganizer.aio.AsyncClient`, also exported here)."""

from fileorganizer.client import Client, Progress
from fileorganizer.convert import View
from fileorganizer.errors import (
    Aborted,
    AlreadyExists,
    ApiError,
    Cancelled,
    DataLoss,
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
    Unimplemented,
    UnknownEnumValue,
)
from fileorganizer import pb
from fileorganizer.aio import AsyncClient
from fileorganizer.transfers import FolderUpload, WaitNotice

__version__ = "0.1.0"

__all__ = [
    "Client",
    "AsyncClient",
    "Progress",
    "View",
    "UnknownEnumValue",
    "FolderUpload",
    "WaitNotice",
    "pb",
    "ApiError",
    "Aborted",
    "AlreadyExists",
    "Cancelled",
    "DataLoss",
    "DeadlineExceeded",
    "FailedPrecondition",
    "Internal",
    "InvalidArgument",
    "NotFound",
    "PermissionDenied",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
]
