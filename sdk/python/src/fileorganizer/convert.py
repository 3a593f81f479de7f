"""Pure conversions between Python values and the generated messages, shared by the sync
(:class:`fileorganizer.Client`) and asyncio (:class:`fileorganizer.aio.AsyncClient`) clients.

Decisions:

- **Enums are names.** A request field of an enum type takes the short name (``"CSV"``,
  ``"csv"``), the full name (``"REPORT_FORMAT_CSV"``) or the number (``pb.report.REPORT_FORMAT_CSV``);
  anything else raises :class:`UnknownEnumValue` listing the valid names. Every enum of the API
  prefixes its values with its own name in UPPER_SNAKE (buf lint ENUM_VALUE_PREFIX), which is
  what is stripped.
- **Responses are read-only views** (:class:`View`) over the message: attribute access as on the
  message, except that enum fields read as short names (``op.state == "SUCCEEDED"``), set
  Timestamps as aware ``datetime`` and Durations as ``timedelta`` (unset ones as ``None``),
  repeated fields as lists and maps as dicts. ``view.pb`` is the message itself, for the raw
  stubs; ``view.to_dict()`` is JSON-ready. Views are accepted wherever a message is.
- **Requests are built from keyword arguments** named like the request's fields: a nested
  message can be a message, a view or a dict, a Timestamp a ``datetime``, a Duration a
  ``timedelta`` or seconds, a FieldMask a list of paths. An unknown keyword raises ``TypeError``
  naming the fields there are.
"""

from __future__ import annotations

import datetime as _dt
import re
from functools import lru_cache
from typing import Any, Dict, Iterable, List, Mapping, Tuple, Type

from google.protobuf import descriptor as _d
from google.protobuf import duration_pb2, field_mask_pb2, json_format, message as _message, timestamp_pb2

from fileorganizer.errors import UnknownEnumValue

__all__ = [
    "View",
    "view",
    "build",
    "enum_value",
    "enum_name",
    "resource_name",
    "unwrap",
]

_TIMESTAMP = "google.protobuf.Timestamp"
_DURATION = "google.protobuf.Duration"
_FIELD_MASK = "google.protobuf.FieldMask"
_ANY = "google.protobuf.Any"


# -- enums --------------------------------------------------------------------------------------


@lru_cache(maxsize=None)
def _prefix(enum: _d.EnumDescriptor) -> str:
    """The values' common prefix (``REPORT_FORMAT_``), from the enum's name. Short aliases of a
    value (``CSV = 1`` beside ``REPORT_FORMAT_CSV = 1``, ``allow_alias``) do not carry it."""
    prefix = re.sub(r"(?<!^)(?=[A-Z])", "_", enum.name).upper() + "_"
    return prefix if any(v.name.startswith(prefix) for v in enum.values) else ""


def _short(enum: _d.EnumDescriptor, name: str) -> str:
    prefix = _prefix(enum)
    return name[len(prefix) :] if prefix and name.startswith(prefix) else name


def enum_name(enum: _d.EnumDescriptor, number: int) -> str:
    """The short name of an enum value (``"SUCCEEDED"``); the number as text when it is not
    one this SDK knows (a newer server)."""
    value = enum.values_by_number.get(number)
    return _short(enum, value.name) if value is not None else str(number)


def enum_names(enum: _d.EnumDescriptor) -> List[str]:
    """The short names a request may use (``*_UNSPECIFIED`` left out), one per value: an alias
    that spells the same short name is not listed twice."""
    names: List[str] = []
    for v in enum.values:
        short = _short(enum, v.name)
        if not v.name.endswith("_UNSPECIFIED") and short not in names:
            names.append(short)
    return names


def enum_value(enum: _d.EnumDescriptor, value: Any, field: str = "") -> int:
    """The number of ``value`` (a short or full name, any case, or a number) in ``enum``;
    :class:`UnknownEnumValue` (a ``ValueError``) listing the valid names otherwise."""
    if isinstance(value, bool):
        pass
    elif isinstance(value, int):
        if value in enum.values_by_number:
            return int(value)
    elif isinstance(value, str):
        text = value.strip().upper().replace("-", "_")
        for candidate in (text, _prefix(enum) + text):
            if candidate in enum.values_by_name:
                return enum.values_by_name[candidate].number
    raise UnknownEnumValue(field or enum.name, value, enum.name, enum_names(enum))


# -- responses ----------------------------------------------------------------------------------


def _timestamp(ts: timestamp_pb2.Timestamp) -> _dt.datetime:
    return _dt.datetime.fromtimestamp(ts.seconds, _dt.timezone.utc) + _dt.timedelta(microseconds=ts.nanos // 1000)


def _read(fd: _d.FieldDescriptor, value: Any, parent: Any) -> Any:
    if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
        value_fd = fd.message_type.fields_by_name["value"]
        return {k: _read_one(value_fd, v, None) for k, v in value.items()}
    if fd.is_repeated:
        return [_read_one(fd, v, None) for v in value]
    return _read_one(fd, value, parent)


def _read_one(fd: _d.FieldDescriptor, value: Any, parent: Any) -> Any:
    if fd.enum_type is not None:
        return enum_name(fd.enum_type, value)
    if fd.message_type is None:
        return value
    full = fd.message_type.full_name
    if full in (_TIMESTAMP, _DURATION):
        if parent is not None and not parent.HasField(fd.name):
            return None
        return _timestamp(value) if full == _TIMESTAMP else value.ToTimedelta()
    if full in (_ANY, _FIELD_MASK):
        return value
    return View(value)


class View:
    """A read-only view of a response message (see the module doc): ``op.state`` is
    ``"SUCCEEDED"``, ``op.create_time`` a ``datetime``, ``op.counters.files_moved`` an int.
    ``pb`` is the message; ``to_dict()`` a JSON-ready dict (enum short names, RFC 3339
    times, int64 as int); ``has(field)`` whether a field with presence is set."""

    __slots__ = ("_pb",)

    def __init__(self, msg: _message.Message) -> None:
        object.__setattr__(self, "_pb", msg)

    @property
    def pb(self) -> Any:
        """The message itself."""
        return self._pb

    def has(self, field: str) -> bool:
        return bool(self._pb.HasField(field))

    def __getattr__(self, name: str) -> Any:
        fd = self._pb.DESCRIPTOR.fields_by_name.get(name)
        if fd is None:
            raise AttributeError(
                f"{self._pb.DESCRIPTOR.name} has no field {name!r} "
                f"(fields: {', '.join(self._pb.DESCRIPTOR.fields_by_name)})"
            )
        return _read(fd, getattr(self._pb, name), self._pb)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{self._pb.DESCRIPTOR.name} views are read-only; pass changes to a wrapper")

    def __dir__(self) -> Iterable[str]:
        return [*self._pb.DESCRIPTOR.fields_by_name, "pb", "has", "to_dict"]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, View):
            return bool(self._pb == other._pb)
        if isinstance(other, _message.Message):
            return bool(self._pb == other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        parts = [f"{fd.name}={_read(fd, v, self._pb)!r}" for fd, v in self._pb.ListFields()]
        return f"{self._pb.DESCRIPTOR.name}({', '.join(parts)})"

    def to_dict(self) -> Dict[str, Any]:
        return _short_enums(
            self._pb.DESCRIPTOR,
            json_format.MessageToDict(self._pb, preserving_proto_field_name=True),
        )


def _short_enums(desc: _d.Descriptor, data: Dict[str, Any]) -> Dict[str, Any]:
    """MessageToDict's enum names shortened, int64 strings back to ints."""
    for key, value in data.items():
        fd = desc.fields_by_name.get(key)
        if fd is None:
            continue
        items = value if isinstance(value, list) else [value]
        if fd.enum_type is not None:
            short = [enum_name(fd.enum_type, fd.enum_type.values_by_name[v].number) if isinstance(v, str) else v for v in items]
            data[key] = short if isinstance(value, list) else short[0]
        elif fd.type in (fd.TYPE_INT64, fd.TYPE_UINT64, fd.TYPE_SINT64, fd.TYPE_FIXED64, fd.TYPE_SFIXED64):
            ints = [int(v) for v in items]
            data[key] = ints if isinstance(value, list) else ints[0]
        elif fd.message_type is not None and fd.message_type.full_name not in (_TIMESTAMP, _DURATION, _ANY, _FIELD_MASK):
            if fd.message_type.GetOptions().map_entry:
                continue
            for item in items:
                if isinstance(item, dict):
                    _short_enums(fd.message_type, item)
    return data


def view(msg: Any) -> Any:
    """A :class:`View` of a message; ``None`` for ``google.protobuf.Empty``."""
    if msg.DESCRIPTOR.full_name == "google.protobuf.Empty":
        return None
    return View(msg)


# -- requests -----------------------------------------------------------------------------------


def unwrap(value: Any) -> Any:
    """The message of a view; anything else as it is."""
    return value._pb if isinstance(value, View) else value


def _write_one(fd: _d.FieldDescriptor, value: Any, where: str) -> Any:
    if fd.enum_type is not None:
        return enum_value(fd.enum_type, value, where)
    if fd.message_type is None:
        return value
    value = unwrap(value)
    if isinstance(value, _message.Message):
        return value
    full = fd.message_type.full_name
    if full == _TIMESTAMP and isinstance(value, _dt.datetime):
        ts = timestamp_pb2.Timestamp()
        ts.FromDatetime(value if value.tzinfo else value.replace(tzinfo=_dt.timezone.utc))
        return ts
    if full == _DURATION and isinstance(value, (_dt.timedelta, int, float)):
        d = duration_pb2.Duration()
        d.FromTimedelta(value if isinstance(value, _dt.timedelta) else _dt.timedelta(seconds=value))
        return d
    if full == _FIELD_MASK and not isinstance(value, Mapping):
        return field_mask_pb2.FieldMask(paths=[value] if isinstance(value, str) else list(value))
    if isinstance(value, Mapping):
        return build(fd.message_type, value, where + ".")
    raise TypeError(f"{where}: expected a {fd.message_type.name} (message, view or dict), got {type(value).__name__}")


def build(desc: Any, values: Mapping[str, Any], where: str = "") -> Any:
    """A message of type ``desc`` (a descriptor or generated class) from keyword values
    (see the module doc); ``None`` values are left unset."""
    desc = getattr(desc, "DESCRIPTOR", desc)
    cls: Type[Any] = _message_class(desc)
    fields: Dict[str, Any] = {}
    for key, value in values.items():
        fd = desc.fields_by_name.get(key)
        if fd is None:
            raise TypeError(f"{desc.name} has no field {where}{key!r} (fields: {', '.join(desc.fields_by_name)})")
        if value is None:
            continue
        path = f"{where}{key}"
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            value_fd = fd.message_type.fields_by_name["value"]
            fields[key] = {k: _write_one(value_fd, v, f"{path}[{k!r}]") for k, v in dict(value).items()}
        elif fd.is_repeated:
            if isinstance(value, (str, bytes)) or isinstance(value, Mapping):
                raise TypeError(f"{path}: expected a list")
            fields[key] = [_write_one(fd, v, f"{path}[{i}]") for i, v in enumerate(value)]
        else:
            fields[key] = _write_one(fd, value, path)
    return cls(**fields)


@lru_cache(maxsize=None)
def _message_class(desc: _d.Descriptor) -> Type[Any]:
    from google.protobuf import message_factory

    return message_factory.GetMessageClass(desc)


def resource_name(ref: Any, prefix: str) -> str:
    """The resource name ``prefix + id`` of ``ref``: a name (``"operations/…"``), a bare id, or
    anything with a ``name`` (a view, a message, a :class:`~fileorganizer.Progress`). The id is
    the last segment, so an operation's name gives its report's (``reports/…``)."""
    name = ref if isinstance(ref, str) else getattr(ref, "name", None)
    if not isinstance(name, str):
        raise TypeError(f"expected a {prefix}… name or something with a name, got {type(ref).__name__}")
    if not prefix or name.startswith(prefix):
        return name
    return prefix + name.rsplit("/", 1)[-1]


def split_fields(desc: Any, values: Mapping[str, Any]) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """``values`` split into (fields of ``desc``, the rest)."""
    desc = getattr(desc, "DESCRIPTOR", desc)
    own = {k: v for k, v in values.items() if k in desc.fields_by_name}
    return own, {k: v for k, v in values.items() if k not in own}
