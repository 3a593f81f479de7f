import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.api import resource_pb2 as _resource_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.rpc import status_pb2 as _status_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class OperationKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OPERATION_KIND_UNSPECIFIED: _ClassVar[OperationKind]
    OPERATION_KIND_ORGANIZE: _ClassVar[OperationKind]
    OPERATION_KIND_DEDUPLICATE: _ClassVar[OperationKind]
    OPERATION_KIND_UNDO: _ClassVar[OperationKind]

class OperationState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OPERATION_STATE_UNSPECIFIED: _ClassVar[OperationState]
    OPERATION_STATE_QUEUED: _ClassVar[OperationState]
    OPERATION_STATE_RUNNING: _ClassVar[OperationState]
    OPERATION_STATE_PLANNED: _ClassVar[OperationState]
    OPERATION_STATE_APPLYING: _ClassVar[OperationState]
    OPERATION_STATE_SUCCEEDED: _ClassVar[OperationState]
    OPERATION_STATE_FAILED: _ClassVar[OperationState]
    OPERATION_STATE_CANCELLING: _ClassVar[OperationState]
    OPERATION_STATE_CANCELLED: _ClassVar[OperationState]

class OperationPhase(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OPERATION_PHASE_UNSPECIFIED: _ClassVar[OperationPhase]
    OPERATION_PHASE_SCAN: _ClassVar[OperationPhase]
    OPERATION_PHASE_CATEGORIZE: _ClassVar[OperationPhase]
    OPERATION_PHASE_HASH: _ClassVar[OperationPhase]
    OPERATION_PHASE_PLAN: _ClassVar[OperationPhase]
    OPERATION_PHASE_JOURNAL: _ClassVar[OperationPhase]
    OPERATION_PHASE_APPLY: _ClassVar[OperationPhase]
    OPERATION_PHASE_CLEANUP: _ClassVar[OperationPhase]
    OPERATION_PHASE_REPORT: _ClassVar[OperationPhase]
    OPERATION_PHASE_RECOVER: _ClassVar[OperationPhase]
    OPERATION_PHASE_UNDO: _ClassVar[OperationPhase]

class DuplicatePolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DUPLICATE_POLICY_UNSPECIFIED: _ClassVar[DuplicatePolicy]
    DUPLICATE_POLICY_REPORT_ONLY: _ClassVar[DuplicatePolicy]
    DUPLICATE_POLICY_MOVE_TO_DUPLICATES_FOLDER: _ClassVar[DuplicatePolicy]
    DUPLICATE_POLICY_MOVE_TO_TRASH: _ClassVar[DuplicatePolicy]

class ConflictPolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONFLICT_POLICY_UNSPECIFIED: _ClassVar[ConflictPolicy]
    CONFLICT_POLICY_RENAME: _ClassVar[ConflictPolicy]
    CONFLICT_POLICY_SKIP: _ClassVar[ConflictPolicy]

class TriggerKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRIGGER_KIND_UNSPECIFIED: _ClassVar[TriggerKind]
    TRIGGER_KIND_MANUAL: _ClassVar[TriggerKind]
    TRIGGER_KIND_SCHEDULE: _ClassVar[TriggerKind]
    TRIGGER_KIND_ARRIVAL: _ClassVar[TriggerKind]
    TRIGGER_KIND_WATCHED_FOLDER: _ClassVar[TriggerKind]
OPERATION_KIND_UNSPECIFIED: OperationKind
OPERATION_KIND_ORGANIZE: OperationKind
OPERATION_KIND_DEDUPLICATE: OperationKind
OPERATION_KIND_UNDO: OperationKind
OPERATION_STATE_UNSPECIFIED: OperationState
OPERATION_STATE_QUEUED: OperationState
OPERATION_STATE_RUNNING: OperationState
OPERATION_STATE_PLANNED: OperationState
OPERATION_STATE_APPLYING: OperationState
OPERATION_STATE_SUCCEEDED: OperationState
OPERATION_STATE_FAILED: OperationState
OPERATION_STATE_CANCELLING: OperationState
OPERATION_STATE_CANCELLED: OperationState
OPERATION_PHASE_UNSPECIFIED: OperationPhase
OPERATION_PHASE_SCAN: OperationPhase
OPERATION_PHASE_CATEGORIZE: OperationPhase
OPERATION_PHASE_HASH: OperationPhase
OPERATION_PHASE_PLAN: OperationPhase
OPERATION_PHASE_JOURNAL: OperationPhase
OPERATION_PHASE_APPLY: OperationPhase
OPERATION_PHASE_CLEANUP: OperationPhase
OPERATION_PHASE_REPORT: OperationPhase
OPERATION_PHASE_RECOVER: OperationPhase
OPERATION_PHASE_UNDO: OperationPhase
DUPLICATE_POLICY_UNSPECIFIED: DuplicatePolicy
DUPLICATE_POLICY_REPORT_ONLY: DuplicatePolicy
DUPLICATE_POLICY_MOVE_TO_DUPLICATES_FOLDER: DuplicatePolicy
DUPLICATE_POLICY_MOVE_TO_TRASH: DuplicatePolicy
CONFLICT_POLICY_UNSPECIFIED: ConflictPolicy
CONFLICT_POLICY_RENAME: ConflictPolicy
CONFLICT_POLICY_SKIP: ConflictPolicy
TRIGGER_KIND_UNSPECIFIED: TriggerKind
TRIGGER_KIND_MANUAL: TriggerKind
TRIGGER_KIND_SCHEDULE: TriggerKind
TRIGGER_KIND_ARRIVAL: TriggerKind
TRIGGER_KIND_WATCHED_FOLDER: TriggerKind

class Operation(_message.Message):
    __slots__ = ("name", "kind", "state", "phase", "source_path", "destination_path", "dry_run", "layout_template", "duplicate_policy", "conflict_policy", "include_globs", "exclude_globs", "hash_all_files", "remove_empty_dirs", "counters", "error", "undo_of", "undone_by", "create_time", "start_time", "end_time", "update_time", "phase_durations", "apply_rules", "rule_set_version", "trigger")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_PATH_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_PATH_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    LAYOUT_TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_POLICY_FIELD_NUMBER: _ClassVar[int]
    CONFLICT_POLICY_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_GLOBS_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_GLOBS_FIELD_NUMBER: _ClassVar[int]
    HASH_ALL_FILES_FIELD_NUMBER: _ClassVar[int]
    REMOVE_EMPTY_DIRS_FIELD_NUMBER: _ClassVar[int]
    COUNTERS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    UNDO_OF_FIELD_NUMBER: _ClassVar[int]
    UNDONE_BY_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    PHASE_DURATIONS_FIELD_NUMBER: _ClassVar[int]
    APPLY_RULES_FIELD_NUMBER: _ClassVar[int]
    RULE_SET_VERSION_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: OperationKind
    state: OperationState
    phase: OperationPhase
    source_path: str
    destination_path: str
    dry_run: bool
    layout_template: str
    duplicate_policy: DuplicatePolicy
    conflict_policy: ConflictPolicy
    include_globs: _containers.RepeatedScalarFieldContainer[str]
    exclude_globs: _containers.RepeatedScalarFieldContainer[str]
    hash_all_files: bool
    remove_empty_dirs: bool
    counters: OperationCounters
    error: _status_pb2.Status
    undo_of: str
    undone_by: str
    create_time: _timestamp_pb2.Timestamp
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    phase_durations: _containers.RepeatedCompositeFieldContainer[PhaseDuration]
    apply_rules: bool
    rule_set_version: int
    trigger: OperationTrigger
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[_Union[OperationKind, str]] = ..., state: _Optional[_Union[OperationState, str]] = ..., phase: _Optional[_Union[OperationPhase, str]] = ..., source_path: _Optional[str] = ..., destination_path: _Optional[str] = ..., dry_run: _Optional[bool] = ..., layout_template: _Optional[str] = ..., duplicate_policy: _Optional[_Union[DuplicatePolicy, str]] = ..., conflict_policy: _Optional[_Union[ConflictPolicy, str]] = ..., include_globs: _Optional[_Iterable[str]] = ..., exclude_globs: _Optional[_Iterable[str]] = ..., hash_all_files: _Optional[bool] = ..., remove_empty_dirs: _Optional[bool] = ..., counters: _Optional[_Union[OperationCounters, _Mapping]] = ..., error: _Optional[_Union[_status_pb2.Status, _Mapping]] = ..., undo_of: _Optional[str] = ..., undone_by: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., phase_durations: _Optional[_Iterable[_Union[PhaseDuration, _Mapping]]] = ..., apply_rules: _Optional[bool] = ..., rule_set_version: _Optional[int] = ..., trigger: _Optional[_Union[OperationTrigger, _Mapping]] = ...) -> None: ...

class OperationTrigger(_message.Message):
    __slots__ = ("kind", "automation")
    KIND_FIELD_NUMBER: _ClassVar[int]
    AUTOMATION_FIELD_NUMBER: _ClassVar[int]
    kind: TriggerKind
    automation: str
    def __init__(self, kind: _Optional[_Union[TriggerKind, str]] = ..., automation: _Optional[str] = ...) -> None: ...

class PhaseDuration(_message.Message):
    __slots__ = ("phase", "duration")
    PHASE_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    phase: OperationPhase
    duration: _duration_pb2.Duration
    def __init__(self, phase: _Optional[_Union[OperationPhase, str]] = ..., duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class OperationCounters(_message.Message):
    __slots__ = ("files_scanned", "files_planned", "files_moved", "files_skipped", "files_failed", "duplicates_found", "bytes_scanned", "bytes_moved", "reclaimable_bytes")
    FILES_SCANNED_FIELD_NUMBER: _ClassVar[int]
    FILES_PLANNED_FIELD_NUMBER: _ClassVar[int]
    FILES_MOVED_FIELD_NUMBER: _ClassVar[int]
    FILES_SKIPPED_FIELD_NUMBER: _ClassVar[int]
    FILES_FAILED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FOUND_FIELD_NUMBER: _ClassVar[int]
    BYTES_SCANNED_FIELD_NUMBER: _ClassVar[int]
    BYTES_MOVED_FIELD_NUMBER: _ClassVar[int]
    RECLAIMABLE_BYTES_FIELD_NUMBER: _ClassVar[int]
    files_scanned: int
    files_planned: int
    files_moved: int
    files_skipped: int
    files_failed: int
    duplicates_found: int
    bytes_scanned: int
    bytes_moved: int
    reclaimable_bytes: int
    def __init__(self, files_scanned: _Optional[int] = ..., files_planned: _Optional[int] = ..., files_moved: _Optional[int] = ..., files_skipped: _Optional[int] = ..., files_failed: _Optional[int] = ..., duplicates_found: _Optional[int] = ..., bytes_scanned: _Optional[int] = ..., bytes_moved: _Optional[int] = ..., reclaimable_bytes: _Optional[int] = ...) -> None: ...

class CreateOperationRequest(_message.Message):
    __slots__ = ("operation", "request_id")
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    operation: Operation
    request_id: str
    def __init__(self, operation: _Optional[_Union[Operation, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class GetOperationRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListOperationsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "state", "kind", "automation")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    AUTOMATION_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    state: OperationState
    kind: OperationKind
    automation: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., state: _Optional[_Union[OperationState, str]] = ..., kind: _Optional[_Union[OperationKind, str]] = ..., automation: _Optional[str] = ...) -> None: ...

class ListOperationsResponse(_message.Message):
    __slots__ = ("operations", "next_page_token")
    OPERATIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    operations: _containers.RepeatedCompositeFieldContainer[Operation]
    next_page_token: str
    def __init__(self, operations: _Optional[_Iterable[_Union[Operation, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CancelOperationRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ApplyOperationRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class UndoOperationRequest(_message.Message):
    __slots__ = ("name", "request_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    request_id: str
    def __init__(self, name: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class WatchOperationRequest(_message.Message):
    __slots__ = ("name", "watch_token")
    NAME_FIELD_NUMBER: _ClassVar[int]
    WATCH_TOKEN_FIELD_NUMBER: _ClassVar[int]
    name: str
    watch_token: str
    def __init__(self, name: _Optional[str] = ..., watch_token: _Optional[str] = ...) -> None: ...

class CreateWatchTokenRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class WatchToken(_message.Message):
    __slots__ = ("token", "name", "expire_time", "watch_path")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    WATCH_PATH_FIELD_NUMBER: _ClassVar[int]
    token: str
    name: str
    expire_time: _timestamp_pb2.Timestamp
    watch_path: str
    def __init__(self, token: _Optional[str] = ..., name: _Optional[str] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., watch_path: _Optional[str] = ...) -> None: ...

class WatchOperationResponse(_message.Message):
    __slots__ = ("name", "state", "phase", "counters", "current_path", "files_per_second", "bytes_per_second", "progress_percent", "eta", "error", "snapshot_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    COUNTERS_FIELD_NUMBER: _ClassVar[int]
    CURRENT_PATH_FIELD_NUMBER: _ClassVar[int]
    FILES_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    BYTES_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_PERCENT_FIELD_NUMBER: _ClassVar[int]
    ETA_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    state: OperationState
    phase: OperationPhase
    counters: OperationCounters
    current_path: str
    files_per_second: float
    bytes_per_second: float
    progress_percent: float
    eta: _duration_pb2.Duration
    error: _status_pb2.Status
    snapshot_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., state: _Optional[_Union[OperationState, str]] = ..., phase: _Optional[_Union[OperationPhase, str]] = ..., counters: _Optional[_Union[OperationCounters, _Mapping]] = ..., current_path: _Optional[str] = ..., files_per_second: _Optional[float] = ..., bytes_per_second: _Optional[float] = ..., progress_percent: _Optional[float] = ..., eta: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., error: _Optional[_Union[_status_pb2.Status, _Mapping]] = ..., snapshot_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
