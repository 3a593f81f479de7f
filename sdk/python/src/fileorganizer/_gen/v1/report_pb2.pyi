import datetime

from fileorganizer._gen.v1 import file_pb2 as _file_pb2
from fileorganizer._gen.v1 import operation_pb2 as _operation_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.api import httpbody_pb2 as _httpbody_pb2
from google.api import resource_pb2 as _resource_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ReportFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REPORT_FORMAT_UNSPECIFIED: _ClassVar[ReportFormat]
    REPORT_FORMAT_CSV: _ClassVar[ReportFormat]
    REPORT_FORMAT_JSON: _ClassVar[ReportFormat]
    REPORT_FORMAT_HTML: _ClassVar[ReportFormat]
    CSV: _ClassVar[ReportFormat]
    JSON: _ClassVar[ReportFormat]
    HTML: _ClassVar[ReportFormat]
REPORT_FORMAT_UNSPECIFIED: ReportFormat
REPORT_FORMAT_CSV: ReportFormat
REPORT_FORMAT_JSON: ReportFormat
REPORT_FORMAT_HTML: ReportFormat
CSV: ReportFormat
JSON: ReportFormat
HTML: ReportFormat

class OperationReport(_message.Message):
    __slots__ = ("name", "operation", "kind", "state", "dry_run", "start_time", "end_time", "duration", "totals", "categories", "top_categories", "largest_files", "duplicate_group_count", "duplicate_file_count", "reclaimable_bytes", "compute_time", "taken_dates_from_metadata", "taken_dates_from_mtime")
    NAME_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    TOTALS_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    TOP_CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    LARGEST_FILES_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_GROUP_COUNT_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FILE_COUNT_FIELD_NUMBER: _ClassVar[int]
    RECLAIMABLE_BYTES_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_TIME_FIELD_NUMBER: _ClassVar[int]
    TAKEN_DATES_FROM_METADATA_FIELD_NUMBER: _ClassVar[int]
    TAKEN_DATES_FROM_MTIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    operation: str
    kind: _operation_pb2.OperationKind
    state: _operation_pb2.OperationState
    dry_run: bool
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    duration: _duration_pb2.Duration
    totals: _operation_pb2.OperationCounters
    categories: _containers.RepeatedCompositeFieldContainer[CategoryBreakdown]
    top_categories: _containers.RepeatedScalarFieldContainer[str]
    largest_files: _containers.RepeatedCompositeFieldContainer[_file_pb2.FileRecord]
    duplicate_group_count: int
    duplicate_file_count: int
    reclaimable_bytes: int
    compute_time: _timestamp_pb2.Timestamp
    taken_dates_from_metadata: int
    taken_dates_from_mtime: int
    def __init__(self, name: _Optional[str] = ..., operation: _Optional[str] = ..., kind: _Optional[_Union[_operation_pb2.OperationKind, str]] = ..., state: _Optional[_Union[_operation_pb2.OperationState, str]] = ..., dry_run: _Optional[bool] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., totals: _Optional[_Union[_operation_pb2.OperationCounters, _Mapping]] = ..., categories: _Optional[_Iterable[_Union[CategoryBreakdown, _Mapping]]] = ..., top_categories: _Optional[_Iterable[str]] = ..., largest_files: _Optional[_Iterable[_Union[_file_pb2.FileRecord, _Mapping]]] = ..., duplicate_group_count: _Optional[int] = ..., duplicate_file_count: _Optional[int] = ..., reclaimable_bytes: _Optional[int] = ..., compute_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., taken_dates_from_metadata: _Optional[int] = ..., taken_dates_from_mtime: _Optional[int] = ...) -> None: ...

class CategoryBreakdown(_message.Message):
    __slots__ = ("category", "file_count", "size_bytes", "percentage")
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    FILE_COUNT_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    PERCENTAGE_FIELD_NUMBER: _ClassVar[int]
    category: str
    file_count: int
    size_bytes: int
    percentage: float
    def __init__(self, category: _Optional[str] = ..., file_count: _Optional[int] = ..., size_bytes: _Optional[int] = ..., percentage: _Optional[float] = ...) -> None: ...

class GetOperationReportRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DuplicateFile(_message.Message):
    __slots__ = ("file_record", "original_path", "path", "modify_time", "kept")
    FILE_RECORD_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_PATH_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    MODIFY_TIME_FIELD_NUMBER: _ClassVar[int]
    KEPT_FIELD_NUMBER: _ClassVar[int]
    file_record: str
    original_path: str
    path: str
    modify_time: _timestamp_pb2.Timestamp
    kept: bool
    def __init__(self, file_record: _Optional[str] = ..., original_path: _Optional[str] = ..., path: _Optional[str] = ..., modify_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., kept: _Optional[bool] = ...) -> None: ...

class DuplicateGroup(_message.Message):
    __slots__ = ("content_hash", "size_bytes", "file_count", "reclaimable_bytes", "kept_path", "files")
    CONTENT_HASH_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    FILE_COUNT_FIELD_NUMBER: _ClassVar[int]
    RECLAIMABLE_BYTES_FIELD_NUMBER: _ClassVar[int]
    KEPT_PATH_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    content_hash: str
    size_bytes: int
    file_count: int
    reclaimable_bytes: int
    kept_path: str
    files: _containers.RepeatedCompositeFieldContainer[DuplicateFile]
    def __init__(self, content_hash: _Optional[str] = ..., size_bytes: _Optional[int] = ..., file_count: _Optional[int] = ..., reclaimable_bytes: _Optional[int] = ..., kept_path: _Optional[str] = ..., files: _Optional[_Iterable[_Union[DuplicateFile, _Mapping]]] = ...) -> None: ...

class ListDuplicateGroupsRequest(_message.Message):
    __slots__ = ("parent", "page_size", "page_token", "min_size_bytes")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    MIN_SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    parent: str
    page_size: int
    page_token: str
    min_size_bytes: int
    def __init__(self, parent: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., min_size_bytes: _Optional[int] = ...) -> None: ...

class ListDuplicateGroupsResponse(_message.Message):
    __slots__ = ("duplicate_groups", "next_page_token", "total_size")
    DUPLICATE_GROUPS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    duplicate_groups: _containers.RepeatedCompositeFieldContainer[DuplicateGroup]
    next_page_token: str
    total_size: int
    def __init__(self, duplicate_groups: _Optional[_Iterable[_Union[DuplicateGroup, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_size: _Optional[int] = ...) -> None: ...

class ExportReportRequest(_message.Message):
    __slots__ = ("name", "format")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    name: str
    format: ReportFormat
    def __init__(self, name: _Optional[str] = ..., format: _Optional[_Union[ReportFormat, str]] = ...) -> None: ...

class GetUsageSummaryRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class OperationStateCount(_message.Message):
    __slots__ = ("state", "count")
    STATE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    state: _operation_pb2.OperationState
    count: int
    def __init__(self, state: _Optional[_Union[_operation_pb2.OperationState, str]] = ..., count: _Optional[int] = ...) -> None: ...

class UsageSummary(_message.Message):
    __slots__ = ("operation_count", "operations_by_state", "files_organized", "bytes_organized", "duplicates_found", "reclaimable_bytes", "storage_used_bytes", "storage_quota_bytes", "storage_used_percent", "trash_bytes", "compute_time")
    OPERATION_COUNT_FIELD_NUMBER: _ClassVar[int]
    OPERATIONS_BY_STATE_FIELD_NUMBER: _ClassVar[int]
    FILES_ORGANIZED_FIELD_NUMBER: _ClassVar[int]
    BYTES_ORGANIZED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FOUND_FIELD_NUMBER: _ClassVar[int]
    RECLAIMABLE_BYTES_FIELD_NUMBER: _ClassVar[int]
    STORAGE_USED_BYTES_FIELD_NUMBER: _ClassVar[int]
    STORAGE_QUOTA_BYTES_FIELD_NUMBER: _ClassVar[int]
    STORAGE_USED_PERCENT_FIELD_NUMBER: _ClassVar[int]
    TRASH_BYTES_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_TIME_FIELD_NUMBER: _ClassVar[int]
    operation_count: int
    operations_by_state: _containers.RepeatedCompositeFieldContainer[OperationStateCount]
    files_organized: int
    bytes_organized: int
    duplicates_found: int
    reclaimable_bytes: int
    storage_used_bytes: int
    storage_quota_bytes: int
    storage_used_percent: float
    trash_bytes: int
    compute_time: _timestamp_pb2.Timestamp
    def __init__(self, operation_count: _Optional[int] = ..., operations_by_state: _Optional[_Iterable[_Union[OperationStateCount, _Mapping]]] = ..., files_organized: _Optional[int] = ..., bytes_organized: _Optional[int] = ..., duplicates_found: _Optional[int] = ..., reclaimable_bytes: _Optional[int] = ..., storage_used_bytes: _Optional[int] = ..., storage_quota_bytes: _Optional[int] = ..., storage_used_percent: _Optional[float] = ..., trash_bytes: _Optional[int] = ..., compute_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
