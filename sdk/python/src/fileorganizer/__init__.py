"""FileOrganizer Pro Python SDK: generated gRPC stubs (``fileorganizer.pb``) and a thin typed
client (:class:`Client`)."""

from fileorganizer.client import Client, Progress
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
)
from fileorganizer import pb
from fileorganizer.transfers import FolderUpload, WaitNotice

__version__ = "0.1.0"

__all__ = [
    "Client",
    "Progress",
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
