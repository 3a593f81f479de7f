import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.api import httpbody_pb2 as _httpbody_pb2
from google.api import resource_pb2 as _resource_pb2
from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FileKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FILE_KIND_UNSPECIFIED: _ClassVar[FileKind]
    FILE_KIND_FILE: _ClassVar[FileKind]
    FILE_KIND_DIRECTORY: _ClassVar[FileKind]
    FILE_KIND_SYMLINK: _ClassVar[FileKind]
    FILE_KIND_OTHER: _ClassVar[FileKind]

class FileConflictPolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FILE_CONFLICT_POLICY_UNSPECIFIED: _ClassVar[FileConflictPolicy]
    FILE_CONFLICT_POLICY_FAIL: _ClassVar[FileConflictPolicy]
    FILE_CONFLICT_POLICY_RENAME: _ClassVar[FileConflictPolicy]
    FILE_CONFLICT_POLICY_SKIP_IF_IDENTICAL: _ClassVar[FileConflictPolicy]

class FileRecordStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FILE_RECORD_STATUS_UNSPECIFIED: _ClassVar[FileRecordStatus]
    FILE_RECORD_STATUS_PLANNED: _ClassVar[FileRecordStatus]
    FILE_RECORD_STATUS_COMPLETED: _ClassVar[FileRecordStatus]
    FILE_RECORD_STATUS_SKIPPED: _ClassVar[FileRecordStatus]
    FILE_RECORD_STATUS_FAILED: _ClassVar[FileRecordStatus]
    FILE_RECORD_STATUS_DUPLICATE: _ClassVar[FileRecordStatus]
    FILE_RECORD_STATUS_UNDONE: _ClassVar[FileRecordStatus]

class ArchiveFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ARCHIVE_FORMAT_UNSPECIFIED: _ClassVar[ArchiveFormat]
    ARCHIVE_FORMAT_AUTO: _ClassVar[ArchiveFormat]
    ARCHIVE_FORMAT_ZIP: _ClassVar[ArchiveFormat]
    ARCHIVE_FORMAT_TAR: _ClassVar[ArchiveFormat]
    ARCHIVE_FORMAT_TAR_GZIP: _ClassVar[ArchiveFormat]
    ARCHIVE_FORMAT_TAR_ZSTD: _ClassVar[ArchiveFormat]

class ArchiveEntrySkipReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ARCHIVE_ENTRY_SKIP_REASON_UNSPECIFIED: _ClassVar[ArchiveEntrySkipReason]
    ARCHIVE_ENTRY_SKIP_REASON_UNSAFE_PATH: _ClassVar[ArchiveEntrySkipReason]
    ARCHIVE_ENTRY_SKIP_REASON_SYMLINK: _ClassVar[ArchiveEntrySkipReason]
    ARCHIVE_ENTRY_SKIP_REASON_HARD_LINK: _ClassVar[ArchiveEntrySkipReason]
    ARCHIVE_ENTRY_SKIP_REASON_SPECIAL_FILE: _ClassVar[ArchiveEntrySkipReason]
    ARCHIVE_ENTRY_SKIP_REASON_NAME_NOT_UTF8: _ClassVar[ArchiveEntrySkipReason]
    ARCHIVE_ENTRY_SKIP_REASON_INVALID_NAME: _ClassVar[ArchiveEntrySkipReason]
    ARCHIVE_ENTRY_SKIP_REASON_TOO_DEEP: _ClassVar[ArchiveEntrySkipReason]
    ARCHIVE_ENTRY_SKIP_REASON_ALREADY_EXISTS: _ClassVar[ArchiveEntrySkipReason]
    ARCHIVE_ENTRY_SKIP_REASON_NOT_A_FOLDER: _ClassVar[ArchiveEntrySkipReason]
    ARCHIVE_ENTRY_SKIP_REASON_IDENTICAL: _ClassVar[ArchiveEntrySkipReason]
FILE_KIND_UNSPECIFIED: FileKind
FILE_KIND_FILE: FileKind
FILE_KIND_DIRECTORY: FileKind
FILE_KIND_SYMLINK: FileKind
FILE_KIND_OTHER: FileKind
FILE_CONFLICT_POLICY_UNSPECIFIED: FileConflictPolicy
FILE_CONFLICT_POLICY_FAIL: FileConflictPolicy
FILE_CONFLICT_POLICY_RENAME: FileConflictPolicy
FILE_CONFLICT_POLICY_SKIP_IF_IDENTICAL: FileConflictPolicy
FILE_RECORD_STATUS_UNSPECIFIED: FileRecordStatus
FILE_RECORD_STATUS_PLANNED: FileRecordStatus
FILE_RECORD_STATUS_COMPLETED: FileRecordStatus
FILE_RECORD_STATUS_SKIPPED: FileRecordStatus
FILE_RECORD_STATUS_FAILED: FileRecordStatus
FILE_RECORD_STATUS_DUPLICATE: FileRecordStatus
FILE_RECORD_STATUS_UNDONE: FileRecordStatus
ARCHIVE_FORMAT_UNSPECIFIED: ArchiveFormat
ARCHIVE_FORMAT_AUTO: ArchiveFormat
ARCHIVE_FORMAT_ZIP: ArchiveFormat
ARCHIVE_FORMAT_TAR: ArchiveFormat
ARCHIVE_FORMAT_TAR_GZIP: ArchiveFormat
ARCHIVE_FORMAT_TAR_ZSTD: ArchiveFormat
ARCHIVE_ENTRY_SKIP_REASON_UNSPECIFIED: ArchiveEntrySkipReason
ARCHIVE_ENTRY_SKIP_REASON_UNSAFE_PATH: ArchiveEntrySkipReason
ARCHIVE_ENTRY_SKIP_REASON_SYMLINK: ArchiveEntrySkipReason
ARCHIVE_ENTRY_SKIP_REASON_HARD_LINK: ArchiveEntrySkipReason
ARCHIVE_ENTRY_SKIP_REASON_SPECIAL_FILE: ArchiveEntrySkipReason
ARCHIVE_ENTRY_SKIP_REASON_NAME_NOT_UTF8: ArchiveEntrySkipReason
ARCHIVE_ENTRY_SKIP_REASON_INVALID_NAME: ArchiveEntrySkipReason
ARCHIVE_ENTRY_SKIP_REASON_TOO_DEEP: ArchiveEntrySkipReason
ARCHIVE_ENTRY_SKIP_REASON_ALREADY_EXISTS: ArchiveEntrySkipReason
ARCHIVE_ENTRY_SKIP_REASON_NOT_A_FOLDER: ArchiveEntrySkipReason
ARCHIVE_ENTRY_SKIP_REASON_IDENTICAL: ArchiveEntrySkipReason

class FileEntry(_message.Message):
    __slots__ = ("path", "name", "kind", "size_bytes", "modify_time", "category", "content_hash")
    PATH_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MODIFY_TIME_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    CONTENT_HASH_FIELD_NUMBER: _ClassVar[int]
    path: str
    name: str
    kind: FileKind
    size_bytes: int
    modify_time: _timestamp_pb2.Timestamp
    category: str
    content_hash: str
    def __init__(self, path: _Optional[str] = ..., name: _Optional[str] = ..., kind: _Optional[_Union[FileKind, str]] = ..., size_bytes: _Optional[int] = ..., modify_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., category: _Optional[str] = ..., content_hash: _Optional[str] = ...) -> None: ...

class UploadFileMetadata(_message.Message):
    __slots__ = ("path", "size_bytes", "conflict_policy", "content_hash", "modify_time")
    PATH_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    CONFLICT_POLICY_FIELD_NUMBER: _ClassVar[int]
    CONTENT_HASH_FIELD_NUMBER: _ClassVar[int]
    MODIFY_TIME_FIELD_NUMBER: _ClassVar[int]
    path: str
    size_bytes: int
    conflict_policy: FileConflictPolicy
    content_hash: str
    modify_time: _timestamp_pb2.Timestamp
    def __init__(self, path: _Optional[str] = ..., size_bytes: _Optional[int] = ..., conflict_policy: _Optional[_Union[FileConflictPolicy, str]] = ..., content_hash: _Optional[str] = ..., modify_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class UploadFileRequest(_message.Message):
    __slots__ = ("metadata", "chunk")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    metadata: UploadFileMetadata
    chunk: bytes
    def __init__(self, metadata: _Optional[_Union[UploadFileMetadata, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class UploadFileResponse(_message.Message):
    __slots__ = ("file", "skipped_identical")
    FILE_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_IDENTICAL_FIELD_NUMBER: _ClassVar[int]
    file: FileEntry
    skipped_identical: bool
    def __init__(self, file: _Optional[_Union[FileEntry, _Mapping]] = ..., skipped_identical: _Optional[bool] = ...) -> None: ...

class UploadSmallFileRequest(_message.Message):
    __slots__ = ("path", "content", "conflict_policy", "content_hash", "modify_time")
    PATH_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    CONFLICT_POLICY_FIELD_NUMBER: _ClassVar[int]
    CONTENT_HASH_FIELD_NUMBER: _ClassVar[int]
    MODIFY_TIME_FIELD_NUMBER: _ClassVar[int]
    path: str
    content: bytes
    conflict_policy: FileConflictPolicy
    content_hash: str
    modify_time: _timestamp_pb2.Timestamp
    def __init__(self, path: _Optional[str] = ..., content: _Optional[bytes] = ..., conflict_policy: _Optional[_Union[FileConflictPolicy, str]] = ..., content_hash: _Optional[str] = ..., modify_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class UploadSmallFileResponse(_message.Message):
    __slots__ = ("file", "skipped_identical")
    FILE_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_IDENTICAL_FIELD_NUMBER: _ClassVar[int]
    file: FileEntry
    skipped_identical: bool
    def __init__(self, file: _Optional[_Union[FileEntry, _Mapping]] = ..., skipped_identical: _Optional[bool] = ...) -> None: ...

class ListDirectoryRequest(_message.Message):
    __slots__ = ("path", "page_size", "page_token", "show_hidden")
    PATH_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    SHOW_HIDDEN_FIELD_NUMBER: _ClassVar[int]
    path: str
    page_size: int
    page_token: str
    show_hidden: bool
    def __init__(self, path: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., show_hidden: _Optional[bool] = ...) -> None: ...

class ListDirectoryResponse(_message.Message):
    __slots__ = ("path", "entries", "next_page_token")
    PATH_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    path: str
    entries: _containers.RepeatedCompositeFieldContainer[FileEntry]
    next_page_token: str
    def __init__(self, path: _Optional[str] = ..., entries: _Optional[_Iterable[_Union[FileEntry, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DownloadFileRequest(_message.Message):
    __slots__ = ("path",)
    PATH_FIELD_NUMBER: _ClassVar[int]
    path: str
    def __init__(self, path: _Optional[str] = ...) -> None: ...

class TrashItem(_message.Message):
    __slots__ = ("name", "original_path", "kind", "size_bytes", "delete_time", "operation")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_PATH_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    DELETE_TIME_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    name: str
    original_path: str
    kind: FileKind
    size_bytes: int
    delete_time: _timestamp_pb2.Timestamp
    operation: str
    def __init__(self, name: _Optional[str] = ..., original_path: _Optional[str] = ..., kind: _Optional[_Union[FileKind, str]] = ..., size_bytes: _Optional[int] = ..., delete_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., operation: _Optional[str] = ...) -> None: ...

class DeleteFileRequest(_message.Message):
    __slots__ = ("path",)
    PATH_FIELD_NUMBER: _ClassVar[int]
    path: str
    def __init__(self, path: _Optional[str] = ...) -> None: ...

class DeleteFileResponse(_message.Message):
    __slots__ = ("trash_item",)
    TRASH_ITEM_FIELD_NUMBER: _ClassVar[int]
    trash_item: TrashItem
    def __init__(self, trash_item: _Optional[_Union[TrashItem, _Mapping]] = ...) -> None: ...

class ListTrashRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListTrashResponse(_message.Message):
    __slots__ = ("trash_items", "next_page_token", "total_size_bytes")
    TRASH_ITEMS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    trash_items: _containers.RepeatedCompositeFieldContainer[TrashItem]
    next_page_token: str
    total_size_bytes: int
    def __init__(self, trash_items: _Optional[_Iterable[_Union[TrashItem, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_size_bytes: _Optional[int] = ...) -> None: ...

class RestoreFileRequest(_message.Message):
    __slots__ = ("name", "path", "conflict_policy")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    CONFLICT_POLICY_FIELD_NUMBER: _ClassVar[int]
    name: str
    path: str
    conflict_policy: FileConflictPolicy
    def __init__(self, name: _Optional[str] = ..., path: _Optional[str] = ..., conflict_policy: _Optional[_Union[FileConflictPolicy, str]] = ...) -> None: ...

class RestoreFileResponse(_message.Message):
    __slots__ = ("file",)
    FILE_FIELD_NUMBER: _ClassVar[int]
    file: FileEntry
    def __init__(self, file: _Optional[_Union[FileEntry, _Mapping]] = ...) -> None: ...

class EmptyTrashRequest(_message.Message):
    __slots__ = ("names",)
    NAMES_FIELD_NUMBER: _ClassVar[int]
    names: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, names: _Optional[_Iterable[str]] = ...) -> None: ...

class EmptyTrashResponse(_message.Message):
    __slots__ = ("deleted_count", "freed_bytes", "failed_items")
    DELETED_COUNT_FIELD_NUMBER: _ClassVar[int]
    FREED_BYTES_FIELD_NUMBER: _ClassVar[int]
    FAILED_ITEMS_FIELD_NUMBER: _ClassVar[int]
    deleted_count: int
    freed_bytes: int
    failed_items: _containers.RepeatedCompositeFieldContainer[TrashItemFailure]
    def __init__(self, deleted_count: _Optional[int] = ..., freed_bytes: _Optional[int] = ..., failed_items: _Optional[_Iterable[_Union[TrashItemFailure, _Mapping]]] = ...) -> None: ...

class TrashItemFailure(_message.Message):
    __slots__ = ("name", "reason")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    reason: str
    def __init__(self, name: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class FileRecord(_message.Message):
    __slots__ = ("name", "operation", "seq", "original_path", "new_path", "size_bytes", "modify_time", "content_hash", "category", "duplicate_of", "duplicate_of_path", "status", "reason", "create_time", "update_time", "rule", "rule_version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_PATH_FIELD_NUMBER: _ClassVar[int]
    NEW_PATH_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MODIFY_TIME_FIELD_NUMBER: _ClassVar[int]
    CONTENT_HASH_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_OF_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_OF_PATH_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    RULE_VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    operation: str
    seq: int
    original_path: str
    new_path: str
    size_bytes: int
    modify_time: _timestamp_pb2.Timestamp
    content_hash: str
    category: str
    duplicate_of: str
    duplicate_of_path: str
    status: FileRecordStatus
    reason: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    rule: str
    rule_version: int
    def __init__(self, name: _Optional[str] = ..., operation: _Optional[str] = ..., seq: _Optional[int] = ..., original_path: _Optional[str] = ..., new_path: _Optional[str] = ..., size_bytes: _Optional[int] = ..., modify_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., content_hash: _Optional[str] = ..., category: _Optional[str] = ..., duplicate_of: _Optional[str] = ..., duplicate_of_path: _Optional[str] = ..., status: _Optional[_Union[FileRecordStatus, str]] = ..., reason: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., rule: _Optional[str] = ..., rule_version: _Optional[int] = ...) -> None: ...

class FileRecordStatusCounts(_message.Message):
    __slots__ = ("total", "planned", "completed", "skipped", "failed", "duplicate", "undone")
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    PLANNED_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    UNDONE_FIELD_NUMBER: _ClassVar[int]
    total: int
    planned: int
    completed: int
    skipped: int
    failed: int
    duplicate: int
    undone: int
    def __init__(self, total: _Optional[int] = ..., planned: _Optional[int] = ..., completed: _Optional[int] = ..., skipped: _Optional[int] = ..., failed: _Optional[int] = ..., duplicate: _Optional[int] = ..., undone: _Optional[int] = ...) -> None: ...

class ListFileRecordsRequest(_message.Message):
    __slots__ = ("parent", "page_size", "page_token", "status", "category", "min_size_bytes", "duplicates_only", "order_by")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    MIN_SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_ONLY_FIELD_NUMBER: _ClassVar[int]
    ORDER_BY_FIELD_NUMBER: _ClassVar[int]
    parent: str
    page_size: int
    page_token: str
    status: FileRecordStatus
    category: str
    min_size_bytes: int
    duplicates_only: bool
    order_by: str
    def __init__(self, parent: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., status: _Optional[_Union[FileRecordStatus, str]] = ..., category: _Optional[str] = ..., min_size_bytes: _Optional[int] = ..., duplicates_only: _Optional[bool] = ..., order_by: _Optional[str] = ...) -> None: ...

class ListFileRecordsResponse(_message.Message):
    __slots__ = ("file_records", "next_page_token", "total_size", "status_counts")
    FILE_RECORDS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    STATUS_COUNTS_FIELD_NUMBER: _ClassVar[int]
    file_records: _containers.RepeatedCompositeFieldContainer[FileRecord]
    next_page_token: str
    total_size: int
    status_counts: FileRecordStatusCounts
    def __init__(self, file_records: _Optional[_Iterable[_Union[FileRecord, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_size: _Optional[int] = ..., status_counts: _Optional[_Union[FileRecordStatusCounts, _Mapping]] = ...) -> None: ...

class SearchFilesRequest(_message.Message):
    __slots__ = ("name_contains", "category", "content_hash", "operation", "page_size", "page_token")
    NAME_CONTAINS_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    CONTENT_HASH_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    name_contains: str
    category: str
    content_hash: str
    operation: str
    page_size: int
    page_token: str
    def __init__(self, name_contains: _Optional[str] = ..., category: _Optional[str] = ..., content_hash: _Optional[str] = ..., operation: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class SearchFilesResponse(_message.Message):
    __slots__ = ("file_records", "next_page_token")
    FILE_RECORDS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    file_records: _containers.RepeatedCompositeFieldContainer[FileRecord]
    next_page_token: str
    def __init__(self, file_records: _Optional[_Iterable[_Union[FileRecord, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class Category(_message.Message):
    __slots__ = ("name", "display_name", "built_in", "extensions", "globs", "color", "icon", "file_count", "create_time", "update_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    BUILT_IN_FIELD_NUMBER: _ClassVar[int]
    EXTENSIONS_FIELD_NUMBER: _ClassVar[int]
    GLOBS_FIELD_NUMBER: _ClassVar[int]
    COLOR_FIELD_NUMBER: _ClassVar[int]
    ICON_FIELD_NUMBER: _ClassVar[int]
    FILE_COUNT_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    display_name: str
    built_in: bool
    extensions: _containers.RepeatedScalarFieldContainer[str]
    globs: _containers.RepeatedScalarFieldContainer[str]
    color: str
    icon: str
    file_count: int
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., display_name: _Optional[str] = ..., built_in: _Optional[bool] = ..., extensions: _Optional[_Iterable[str]] = ..., globs: _Optional[_Iterable[str]] = ..., color: _Optional[str] = ..., icon: _Optional[str] = ..., file_count: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListCategoriesRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListCategoriesResponse(_message.Message):
    __slots__ = ("categories", "next_page_token")
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    categories: _containers.RepeatedCompositeFieldContainer[Category]
    next_page_token: str
    def __init__(self, categories: _Optional[_Iterable[_Union[Category, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CreateCategoryRequest(_message.Message):
    __slots__ = ("category",)
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    category: Category
    def __init__(self, category: _Optional[_Union[Category, _Mapping]] = ...) -> None: ...

class UpdateCategoryRequest(_message.Message):
    __slots__ = ("category", "update_mask")
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    category: Category
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, category: _Optional[_Union[Category, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class DeleteCategoryRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class UploadRawFileRequest(_message.Message):
    __slots__ = ("path", "conflict_policy", "content_hash", "modify_time", "size_bytes", "content")
    PATH_FIELD_NUMBER: _ClassVar[int]
    CONFLICT_POLICY_FIELD_NUMBER: _ClassVar[int]
    CONTENT_HASH_FIELD_NUMBER: _ClassVar[int]
    MODIFY_TIME_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    path: str
    conflict_policy: FileConflictPolicy
    content_hash: str
    modify_time: _timestamp_pb2.Timestamp
    size_bytes: int
    content: _httpbody_pb2.HttpBody
    def __init__(self, path: _Optional[str] = ..., conflict_policy: _Optional[_Union[FileConflictPolicy, str]] = ..., content_hash: _Optional[str] = ..., modify_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., size_bytes: _Optional[int] = ..., content: _Optional[_Union[_httpbody_pb2.HttpBody, _Mapping]] = ...) -> None: ...

class UploadRawFileResponse(_message.Message):
    __slots__ = ("file", "skipped_identical")
    FILE_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_IDENTICAL_FIELD_NUMBER: _ClassVar[int]
    file: FileEntry
    skipped_identical: bool
    def __init__(self, file: _Optional[_Union[FileEntry, _Mapping]] = ..., skipped_identical: _Optional[bool] = ...) -> None: ...

class Upload(_message.Message):
    __slots__ = ("name", "path", "size_bytes", "content_hash", "conflict_policy", "modify_time", "committed_offset", "create_time", "expire_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    CONTENT_HASH_FIELD_NUMBER: _ClassVar[int]
    CONFLICT_POLICY_FIELD_NUMBER: _ClassVar[int]
    MODIFY_TIME_FIELD_NUMBER: _ClassVar[int]
    COMMITTED_OFFSET_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    path: str
    size_bytes: int
    content_hash: str
    conflict_policy: FileConflictPolicy
    modify_time: _timestamp_pb2.Timestamp
    committed_offset: int
    create_time: _timestamp_pb2.Timestamp
    expire_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., path: _Optional[str] = ..., size_bytes: _Optional[int] = ..., content_hash: _Optional[str] = ..., conflict_policy: _Optional[_Union[FileConflictPolicy, str]] = ..., modify_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., committed_offset: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateUploadRequest(_message.Message):
    __slots__ = ("upload",)
    UPLOAD_FIELD_NUMBER: _ClassVar[int]
    upload: Upload
    def __init__(self, upload: _Optional[_Union[Upload, _Mapping]] = ...) -> None: ...

class GetUploadRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class AppendUploadRequest(_message.Message):
    __slots__ = ("name", "offset", "content")
    NAME_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    name: str
    offset: int
    content: _httpbody_pb2.HttpBody
    def __init__(self, name: _Optional[str] = ..., offset: _Optional[int] = ..., content: _Optional[_Union[_httpbody_pb2.HttpBody, _Mapping]] = ...) -> None: ...

class FinishUploadRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class FinishUploadResponse(_message.Message):
    __slots__ = ("file", "skipped_identical")
    FILE_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_IDENTICAL_FIELD_NUMBER: _ClassVar[int]
    file: FileEntry
    skipped_identical: bool
    def __init__(self, file: _Optional[_Union[FileEntry, _Mapping]] = ..., skipped_identical: _Optional[bool] = ...) -> None: ...

class CancelUploadRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ImportArchiveRequest(_message.Message):
    __slots__ = ("path", "format", "conflict_policy", "body")
    PATH_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    CONFLICT_POLICY_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    path: str
    format: ArchiveFormat
    conflict_policy: FileConflictPolicy
    body: _httpbody_pb2.HttpBody
    def __init__(self, path: _Optional[str] = ..., format: _Optional[_Union[ArchiveFormat, str]] = ..., conflict_policy: _Optional[_Union[FileConflictPolicy, str]] = ..., body: _Optional[_Union[_httpbody_pb2.HttpBody, _Mapping]] = ...) -> None: ...

class DownloadArchiveRequest(_message.Message):
    __slots__ = ("path", "operation", "format")
    PATH_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    path: str
    operation: str
    format: ArchiveFormat
    def __init__(self, path: _Optional[str] = ..., operation: _Optional[str] = ..., format: _Optional[_Union[ArchiveFormat, str]] = ...) -> None: ...

class SkippedArchiveEntry(_message.Message):
    __slots__ = ("name", "reason", "detail")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    name: str
    reason: ArchiveEntrySkipReason
    detail: str
    def __init__(self, name: _Optional[str] = ..., reason: _Optional[_Union[ArchiveEntrySkipReason, str]] = ..., detail: _Optional[str] = ...) -> None: ...

class RenamedArchiveEntry(_message.Message):
    __slots__ = ("name", "path")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    name: str
    path: str
    def __init__(self, name: _Optional[str] = ..., path: _Optional[str] = ...) -> None: ...

class ImportArchiveResponse(_message.Message):
    __slots__ = ("path", "format", "file_count", "folder_count", "total_bytes", "skipped_entries", "renamed_entries", "skipped_count", "renamed_count")
    PATH_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    FILE_COUNT_FIELD_NUMBER: _ClassVar[int]
    FOLDER_COUNT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_ENTRIES_FIELD_NUMBER: _ClassVar[int]
    RENAMED_ENTRIES_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_COUNT_FIELD_NUMBER: _ClassVar[int]
    RENAMED_COUNT_FIELD_NUMBER: _ClassVar[int]
    path: str
    format: ArchiveFormat
    file_count: int
    folder_count: int
    total_bytes: int
    skipped_entries: _containers.RepeatedCompositeFieldContainer[SkippedArchiveEntry]
    renamed_entries: _containers.RepeatedCompositeFieldContainer[RenamedArchiveEntry]
    skipped_count: int
    renamed_count: int
    def __init__(self, path: _Optional[str] = ..., format: _Optional[_Union[ArchiveFormat, str]] = ..., file_count: _Optional[int] = ..., folder_count: _Optional[int] = ..., total_bytes: _Optional[int] = ..., skipped_entries: _Optional[_Iterable[_Union[SkippedArchiveEntry, _Mapping]]] = ..., renamed_entries: _Optional[_Iterable[_Union[RenamedArchiveEntry, _Mapping]]] = ..., skipped_count: _Optional[int] = ..., renamed_count: _Optional[int] = ...) -> None: ...
