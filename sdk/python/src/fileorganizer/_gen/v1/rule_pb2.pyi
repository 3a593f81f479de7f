import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
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

class RuleMatch(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RULE_MATCH_UNSPECIFIED: _ClassVar[RuleMatch]
    RULE_MATCH_ALL: _ClassVar[RuleMatch]
    RULE_MATCH_ANY: _ClassVar[RuleMatch]
RULE_MATCH_UNSPECIFIED: RuleMatch
RULE_MATCH_ALL: RuleMatch
RULE_MATCH_ANY: RuleMatch

class Rule(_message.Message):
    __slots__ = ("name", "display_name", "position", "match", "conditions", "action", "version", "etag", "create_time", "update_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    MATCH_FIELD_NUMBER: _ClassVar[int]
    CONDITIONS_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    display_name: str
    position: int
    match: RuleMatch
    conditions: _containers.RepeatedCompositeFieldContainer[RuleCondition]
    action: RuleAction
    version: int
    etag: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., display_name: _Optional[str] = ..., position: _Optional[int] = ..., match: _Optional[_Union[RuleMatch, str]] = ..., conditions: _Optional[_Iterable[_Union[RuleCondition, _Mapping]]] = ..., action: _Optional[_Union[RuleAction, _Mapping]] = ..., version: _Optional[int] = ..., etag: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RuleCondition(_message.Message):
    __slots__ = ("name_glob", "name_regex", "extensions", "content_type", "size", "modify_time", "age", "under_folder", "is_duplicate", "capture_time", "capture_age")
    NAME_GLOB_FIELD_NUMBER: _ClassVar[int]
    NAME_REGEX_FIELD_NUMBER: _ClassVar[int]
    EXTENSIONS_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    MODIFY_TIME_FIELD_NUMBER: _ClassVar[int]
    AGE_FIELD_NUMBER: _ClassVar[int]
    UNDER_FOLDER_FIELD_NUMBER: _ClassVar[int]
    IS_DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    CAPTURE_TIME_FIELD_NUMBER: _ClassVar[int]
    CAPTURE_AGE_FIELD_NUMBER: _ClassVar[int]
    name_glob: str
    name_regex: str
    extensions: ExtensionSet
    content_type: ContentTypeSet
    size: SizeRange
    modify_time: TimeRange
    age: AgeRange
    under_folder: str
    is_duplicate: bool
    capture_time: TimeRange
    capture_age: AgeRange
    def __init__(self, name_glob: _Optional[str] = ..., name_regex: _Optional[str] = ..., extensions: _Optional[_Union[ExtensionSet, _Mapping]] = ..., content_type: _Optional[_Union[ContentTypeSet, _Mapping]] = ..., size: _Optional[_Union[SizeRange, _Mapping]] = ..., modify_time: _Optional[_Union[TimeRange, _Mapping]] = ..., age: _Optional[_Union[AgeRange, _Mapping]] = ..., under_folder: _Optional[str] = ..., is_duplicate: _Optional[bool] = ..., capture_time: _Optional[_Union[TimeRange, _Mapping]] = ..., capture_age: _Optional[_Union[AgeRange, _Mapping]] = ...) -> None: ...

class ExtensionSet(_message.Message):
    __slots__ = ("extensions",)
    EXTENSIONS_FIELD_NUMBER: _ClassVar[int]
    extensions: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, extensions: _Optional[_Iterable[str]] = ...) -> None: ...

class ContentTypeSet(_message.Message):
    __slots__ = ("content_types",)
    CONTENT_TYPES_FIELD_NUMBER: _ClassVar[int]
    content_types: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, content_types: _Optional[_Iterable[str]] = ...) -> None: ...

class SizeRange(_message.Message):
    __slots__ = ("min_bytes", "max_bytes")
    MIN_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_BYTES_FIELD_NUMBER: _ClassVar[int]
    min_bytes: int
    max_bytes: int
    def __init__(self, min_bytes: _Optional[int] = ..., max_bytes: _Optional[int] = ...) -> None: ...

class TimeRange(_message.Message):
    __slots__ = ("start_time", "end_time")
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AgeRange(_message.Message):
    __slots__ = ("older_than_days", "newer_than_days")
    OLDER_THAN_DAYS_FIELD_NUMBER: _ClassVar[int]
    NEWER_THAN_DAYS_FIELD_NUMBER: _ClassVar[int]
    older_than_days: int
    newer_than_days: int
    def __init__(self, older_than_days: _Optional[int] = ..., newer_than_days: _Optional[int] = ...) -> None: ...

class RuleAction(_message.Message):
    __slots__ = ("move", "rename", "set_category", "trash", "leave_in_place")
    MOVE_FIELD_NUMBER: _ClassVar[int]
    RENAME_FIELD_NUMBER: _ClassVar[int]
    SET_CATEGORY_FIELD_NUMBER: _ClassVar[int]
    TRASH_FIELD_NUMBER: _ClassVar[int]
    LEAVE_IN_PLACE_FIELD_NUMBER: _ClassVar[int]
    move: MoveAction
    rename: RenameAction
    set_category: SetCategoryAction
    trash: TrashAction
    leave_in_place: LeaveInPlaceAction
    def __init__(self, move: _Optional[_Union[MoveAction, _Mapping]] = ..., rename: _Optional[_Union[RenameAction, _Mapping]] = ..., set_category: _Optional[_Union[SetCategoryAction, _Mapping]] = ..., trash: _Optional[_Union[TrashAction, _Mapping]] = ..., leave_in_place: _Optional[_Union[LeaveInPlaceAction, _Mapping]] = ...) -> None: ...

class MoveAction(_message.Message):
    __slots__ = ("destination_template",)
    DESTINATION_TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    destination_template: str
    def __init__(self, destination_template: _Optional[str] = ...) -> None: ...

class RenameAction(_message.Message):
    __slots__ = ("name_template",)
    NAME_TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    name_template: str
    def __init__(self, name_template: _Optional[str] = ...) -> None: ...

class SetCategoryAction(_message.Message):
    __slots__ = ("category",)
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    category: str
    def __init__(self, category: _Optional[str] = ...) -> None: ...

class TrashAction(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class LeaveInPlaceAction(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CreateRuleRequest(_message.Message):
    __slots__ = ("rule",)
    RULE_FIELD_NUMBER: _ClassVar[int]
    rule: Rule
    def __init__(self, rule: _Optional[_Union[Rule, _Mapping]] = ...) -> None: ...

class GetRuleRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListRulesRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListRulesResponse(_message.Message):
    __slots__ = ("rules", "next_page_token")
    RULES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    rules: _containers.RepeatedCompositeFieldContainer[Rule]
    next_page_token: str
    def __init__(self, rules: _Optional[_Iterable[_Union[Rule, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateRuleRequest(_message.Message):
    __slots__ = ("rule", "update_mask")
    RULE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    rule: Rule
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, rule: _Optional[_Union[Rule, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class DeleteRuleRequest(_message.Message):
    __slots__ = ("name", "etag")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    name: str
    etag: str
    def __init__(self, name: _Optional[str] = ..., etag: _Optional[str] = ...) -> None: ...

class PreviewRulesRequest(_message.Message):
    __slots__ = ("folder", "paths", "rules", "max_files")
    FOLDER_FIELD_NUMBER: _ClassVar[int]
    PATHS_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    MAX_FILES_FIELD_NUMBER: _ClassVar[int]
    folder: str
    paths: _containers.RepeatedScalarFieldContainer[str]
    rules: _containers.RepeatedCompositeFieldContainer[Rule]
    max_files: int
    def __init__(self, folder: _Optional[str] = ..., paths: _Optional[_Iterable[str]] = ..., rules: _Optional[_Iterable[_Union[Rule, _Mapping]]] = ..., max_files: _Optional[int] = ...) -> None: ...

class PreviewRulesResponse(_message.Message):
    __slots__ = ("entries", "truncated", "matched_count")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    MATCHED_COUNT_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[RulePreviewEntry]
    truncated: bool
    matched_count: int
    def __init__(self, entries: _Optional[_Iterable[_Union[RulePreviewEntry, _Mapping]]] = ..., truncated: _Optional[bool] = ..., matched_count: _Optional[int] = ...) -> None: ...

class RulePreviewEntry(_message.Message):
    __slots__ = ("path", "rule", "rule_display_name", "matched_conditions", "explanation", "destination", "error")
    PATH_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    RULE_DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    MATCHED_CONDITIONS_FIELD_NUMBER: _ClassVar[int]
    EXPLANATION_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    path: str
    rule: str
    rule_display_name: str
    matched_conditions: _containers.RepeatedScalarFieldContainer[int]
    explanation: str
    destination: str
    error: str
    def __init__(self, path: _Optional[str] = ..., rule: _Optional[str] = ..., rule_display_name: _Optional[str] = ..., matched_conditions: _Optional[_Iterable[int]] = ..., explanation: _Optional[str] = ..., destination: _Optional[str] = ..., error: _Optional[str] = ...) -> None: ...
