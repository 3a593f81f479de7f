#!/usr/bin/env python3
"""Generates sdk/openapi/openapi.json (OpenAPI 3.0) from the API's descriptor set: one operation per
google.api.http rule (additional bindings included), component schemas from the messages and their
comments, as Envoy's transcoder speaks JSON: proto field names (snake_case), 64-bit integers as
strings, enums as their names, Timestamp/Duration/FieldMask as strings, errors as google.rpc.Status.

    sdk/openapi/generate.py                       write sdk/openapi/openapi.json
    sdk/openapi/generate.py --check               fail if the committed file is stale
    sdk/openapi/generate.py --descriptor PATH     use an encoded FileDescriptorSet instead of
                                                  compiling proto/ (e.g. from `fileorg descriptor --out PATH`)

Without --descriptor, proto/fileorganizer/v1/*.proto are compiled with grpcio-tools' protoc
(imports and source info included, as build.rs does), so no cargo build is needed.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from google.api import annotations_pb2, http_pb2  # noqa: F401  (registers the google.api.http extension)
from google.api import resource_pb2
from google.protobuf import descriptor_pb2

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent / "openapi.json"
PACKAGE = "fileorganizer.v1"
PUBLIC = {"Register", "Login", "RefreshToken", "GetHealth"}

F = descriptor_pb2.FieldDescriptorProto
# 64-bit integers as the transcoder prints and parses them: decimal strings (within range).
INT64 = r"^-?[0-9]{1,19}$"
UINT64 = r"^[0-9]{1,20}$"
# A resource id, unless the resource's comment gives its own (`openapi: id=REGEX`).
UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
# The HTTP statuses Envoy maps the codes the service returns to (google.rpc.Code), each a
# google.rpc.Status body. No `default`: a status not listed here is a defect (tests/rest/fuzz_api.py).
ERRORS = {
    "400": "INVALID_ARGUMENT, FAILED_PRECONDITION or OUT_OF_RANGE: the message and a BadRequest detail name the field.",
    "401": "UNAUTHENTICATED: no, an expired or a revoked credential.",
    "403": "PERMISSION_DENIED: the credential lacks the scope or role.",
    "404": "NOT_FOUND: no such resource of the caller's.",
    "409": "ALREADY_EXISTS or ABORTED (a conflict, e.g. a stale etag).",
    "429": "RESOURCE_EXHAUSTED: a rate limit or the storage quota.",
    "503": "UNAVAILABLE: the server is draining or its database unreachable; retry.",
}
# Keywords an `openapi:` comment line may set, and how their values are read.
KEYWORDS = {
    "minimum": int, "maximum": int, "minLength": int, "maxLength": int, "minItems": int,
    "maxItems": int, "pattern": str, "format": str, "id": str,
}
TAG = re.compile(r"^openapi:\s*(.*)$")
SCALARS: Dict[int, Dict[str, Any]] = {
    F.TYPE_DOUBLE: {"type": "number", "format": "double"},
    F.TYPE_FLOAT: {"type": "number", "format": "float"},
    F.TYPE_INT64: {"type": "string", "format": "int64", "pattern": INT64},
    F.TYPE_UINT64: {"type": "string", "format": "uint64", "pattern": UINT64},
    F.TYPE_SINT64: {"type": "string", "format": "int64", "pattern": INT64},
    F.TYPE_FIXED64: {"type": "string", "format": "uint64", "pattern": UINT64},
    F.TYPE_SFIXED64: {"type": "string", "format": "int64", "pattern": INT64},
    F.TYPE_INT32: {"type": "integer", "format": "int32"},
    F.TYPE_SINT32: {"type": "integer", "format": "int32"},
    F.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    F.TYPE_UINT32: {"type": "integer", "format": "int64", "minimum": 0},
    F.TYPE_FIXED32: {"type": "integer", "format": "int64", "minimum": 0},
    F.TYPE_BOOL: {"type": "boolean"},
    F.TYPE_STRING: {"type": "string"},
    F.TYPE_BYTES: {"type": "string", "format": "byte"},
}
WELL_KNOWN: Dict[str, Dict[str, Any]] = {
    ".google.protobuf.Timestamp": {"type": "string", "format": "date-time", "x-well-known": "Timestamp"},
    ".google.protobuf.Duration": {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]{1,9})?s$", "example": "1.5s",
                                  "x-well-known": "Duration"},
    ".google.protobuf.FieldMask": {"type": "string", "description": "Comma-separated field paths.",
                                   "x-well-known": "FieldMask"},
    ".google.protobuf.Empty": {"type": "object"},
    ".google.protobuf.Any": {
        "type": "object",
        "properties": {"@type": {"type": "string"}},
        "additionalProperties": True,
    },
    ".google.protobuf.Struct": {"type": "object", "additionalProperties": True},
    ".google.protobuf.Value": {},
}


def split_tags(comment: str, where: str) -> Tuple[List[str], Dict[str, Any]]:
    """A leading comment's lines (stripped, `openapi:` lines left out) and the keywords of its
    `openapi:` lines."""
    lines: List[str] = []
    tags: Dict[str, Any] = {}
    for line in comment.strip().splitlines():
        line = line.strip()
        m = TAG.match(line)
        if m is None:
            if line:
                lines.append(line)
            continue
        for item in m.group(1).split():
            key, sep, value = item.partition("=")
            if not sep or key not in KEYWORDS or key in tags:
                raise SystemExit(f"{where}: bad openapi keyword {item!r} (one of {sorted(KEYWORDS)}, each once)")
            tags[key] = KEYWORDS[key](value)
    return lines, tags


def load_descriptor(path: Optional[Path]) -> descriptor_pb2.FileDescriptorSet:
    if path is None:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "descriptor.pb"
            protos = sorted(str(p.relative_to(ROOT / "proto")) for p in (ROOT / "proto/fileorganizer/v1").glob("*.proto"))
            subprocess.run(
                [sys.executable, "-m", "grpc_tools.protoc", "-I", str(ROOT / "proto"),
                 "--include_imports", "--include_source_info", f"--descriptor_set_out={out}", *protos],
                check=True,
            )
            data = out.read_bytes()
    else:
        data = path.read_bytes()
    return descriptor_pb2.FileDescriptorSet.FromString(data)


class Builder:
    def __init__(self, fds: descriptor_pb2.FileDescriptorSet) -> None:
        self.messages: Dict[str, descriptor_pb2.DescriptorProto] = {}
        self.enums: Dict[str, descriptor_pb2.EnumDescriptorProto] = {}
        self.comments: Dict[Tuple[str, Tuple[int, ...]], str] = {}
        self.tags: Dict[Tuple[str, Tuple[int, ...]], Dict[str, Any]] = {}
        self.resources: Dict[str, str] = {}  # collection ("operations/") -> id regex
        self.resource_types: Dict[str, str] = {}  # "fileorganizer.v1/Operation" -> its name regex
        self.locations: Dict[str, Tuple[str, Tuple[int, ...]]] = {}
        self.files = list(fds.file)
        for f in self.files:
            for loc in f.source_code_info.location:
                lines, tags = split_tags(loc.leading_comments, f"{f.name} {list(loc.path)}")
                if lines:
                    self.comments[(f.name, tuple(loc.path))] = " ".join(lines)
                if tags:
                    self.tags[(f.name, tuple(loc.path))] = tags
            for i, m in enumerate(f.message_type):
                self._add_message(f, f".{f.package}", m, (4, i))
            for i, e in enumerate(f.enum_type):
                self.enums[f".{f.package}.{e.name}"] = e
        self.schemas: Dict[str, Any] = {}

    def _add_message(self, f: Any, scope: str, m: Any, path: Tuple[int, ...]) -> None:
        full = f"{scope}.{m.name}"
        self.messages[full] = m
        self.locations[full] = (f.name, path)
        for i, nested in enumerate(m.nested_type):
            self._add_message(f, full, nested, path + (3, i))
        for e in m.enum_type:
            self.enums[f"{full}.{e.name}"] = e
        resource = m.options.Extensions[resource_pb2.resource]
        for pattern in resource.pattern:
            id_regex = self.tags.get((f.name, path), {}).get("id", UUID)
            collection, _, rest = pattern.partition("/{")
            if "/" in rest:
                continue  # a nested resource (operations/{operation}/files/{file}) is never a path variable
            self.resources[collection + "/"] = id_regex
            self.resource_types[resource.type] = f"{collection}/{id_regex}"

    def comment(self, full: str, *sub: int) -> str:
        fname, path = self.locations[full]
        return self.comments.get((fname, path + sub), "")

    def tag(self, full: str, *sub: int) -> Dict[str, Any]:
        fname, path = self.locations[full]
        return dict(self.tags.get((fname, path + sub), {}))

    def constrain(self, schema: Dict[str, Any], field: Any, tags: Dict[str, Any], behaviors: List[int],
                  request: bool = False) -> Dict[str, Any]:
        """`schema` of `field` (not repeated) with what the server checks: a resource reference's
        name pattern (in a request message: a response may name other things, e.g. a draft
        rule `rules/-0`), the comment's `openapi:` keywords."""
        tags.pop("id", None)
        reference = field.options.Extensions[resource_pb2.resource_reference].type
        if reference and request and 3 not in behaviors and field.type == F.TYPE_STRING:
            name = self.resource_types.get(reference)
            if name is not None:
                # Empty means unset (proto3) unless the field is required.
                schema["pattern"] = f"^{name}$" if 2 in behaviors else f"^(?:{name})?$"
        if "pattern" in tags and "pattern" in schema and "format" not in schema:
            raise SystemExit(f"{field.name}: an openapi pattern on a resource name, which has its own")
        schema.update(tags)  # e.g. a narrower pattern for an int64
        return schema

    @staticmethod
    def schema_name(full: str) -> str:
        return full.lstrip(".").removeprefix(PACKAGE + ".")

    def ref(self, full: str) -> Dict[str, Any]:
        if full in WELL_KNOWN:
            return dict(WELL_KNOWN[full])
        if full not in self.schemas and full in self.messages:
            self.schemas[full] = None  # placeholder against recursion
            self.schemas[full] = self.message_schema(full)
        return {"$ref": f"#/components/schemas/{self.schema_name(full)}"}

    def field_schema(self, field: Any, tags: Optional[Dict[str, Any]] = None,
                     behaviors: Optional[List[int]] = None, request: bool = False) -> Dict[str, Any]:
        tags = dict(tags or {})
        behaviors = behaviors or []
        if field.type == F.TYPE_MESSAGE:
            entry = self.messages.get(field.type_name)
            if entry is not None and entry.options.map_entry:
                return {"type": "object", "additionalProperties": self.field_schema(entry.field[1])}
            schema = self.ref(field.type_name)
        elif field.type == F.TYPE_ENUM:
            schema = {"type": "string", "enum": [v.name for v in self.enums[field.type_name].value]}
        else:
            schema = dict(SCALARS[field.type])
        if field.label == F.LABEL_REPEATED:
            array: Dict[str, Any] = {"type": "array"}
            for key in ("minItems", "maxItems"):
                if key in tags:
                    array[key] = tags.pop(key)
            array["items"] = self.constrain(schema, field, tags, behaviors, request) if "$ref" not in schema else schema
            return array
        if "$ref" in schema:
            if tags:
                raise SystemExit(f"{field.name}: openapi keywords on a message field")
            return schema
        return self.constrain(schema, field, tags, behaviors, request)

    def path_schema(self, request: str, field_path: str, pattern: str) -> Dict[str, Any]:
        """A path variable's schema: the id of a resource name (`operations/*`), else the field's."""
        if pattern != "*":
            collection = pattern.replace("*", "")
            id_regex = self.resources.get(collection)
            if id_regex is None:
                raise SystemExit(f"{request}: {pattern} is no resource's pattern")
            return {"type": "string", "pattern": f"^{id_regex}$"}
        full, field, tags, behaviors = request, None, {}, []
        for part in field_path.split("."):
            m = self.messages[full]
            i, field = next((i, fd) for i, fd in enumerate(m.field) if fd.name == part)
            tags, behaviors = self.tag(full, 2, i), list(field.options.Extensions[_field_behavior()])
            full = field.type_name
        schema = self.field_schema(field, tags, behaviors, True)
        if schema.get("type") == "string" and "pattern" not in schema and "format" not in schema:
            schema["pattern"] = "^[^/]+$"  # one path segment
        return schema

    def message_schema(self, full: str) -> Dict[str, Any]:
        m = self.messages[full]
        props: Dict[str, Any] = {}
        required: List[str] = []
        for i, field in enumerate(m.field):
            behaviors = list(field.options.Extensions[_field_behavior()])
            schema = self.field_schema(field, self.tag(full, 2, i), behaviors, full.endswith("Request"))
            desc = self.comment(full, 2, i)
            if "$ref" in schema and (desc or behaviors):
                schema = {"allOf": [schema]}
            if desc:
                schema["description"] = desc
            if 3 in behaviors:  # OUTPUT_ONLY
                schema["readOnly"] = True
            if field.HasField("oneof_index"):
                # A member of a oneof (or a proto3 `optional` field): JSON
                # carries it only when it is the one set.
                schema["x-oneof"] = m.oneof_decl[field.oneof_index].name
            if 2 in behaviors and 3 not in behaviors:  # REQUIRED
                required.append(field.name)
            props[field.name] = schema
        # The transcoder refuses a field the message does not have (and never prints one).
        out: Dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
        desc = self.comment(full)
        if desc:
            out["description"] = desc
        if required:
            out["required"] = required
        return out

    def build(self) -> Dict[str, Any]:
        paths: Dict[str, Dict[str, Any]] = {}
        tags = []
        for f in self.files:
            if f.package != PACKAGE:
                continue
            for si, service in enumerate(f.service):
                tags.append({"name": service.name, "description": self.comments.get((f.name, (6, si)), "")})
                for mi, method in enumerate(service.method):
                    rule = method.options.Extensions[annotations_pb2.http]
                    rules = [rule, *rule.additional_bindings] if rule.WhichOneof("pattern") else []
                    desc = self.comments.get((f.name, (6, si, 2, mi)), "")
                    for n, r in enumerate(rules):
                        verb = r.WhichOneof("pattern")
                        template = getattr(r, verb)
                        path, params = convert_template(template)
                        op_id = f"{service.name}_{method.name}" + (f"_{n + 1}" if n else "")
                        paths.setdefault(path, {})[verb] = self.operation(service.name, method, r, params, desc, op_id)
        return {
            "openapi": "3.0.3",
            "info": {
                "title": "FileOrganizer Pro REST API",
                "version": "v1",
                "description": (
                    "JSON/REST transcoded by Envoy from the gRPC contract proto/fileorganizer/v1 "
                    "(generated by sdk/openapi/generate.py; do not edit). Field names are the proto "
                    "names, 64-bit integers are strings, enums are their names, server streams are "
                    "server-sent events, errors are google.rpc.Status JSON."
                ),
            },
            "servers": [{"url": "http://127.0.0.1:8080"}],
            "tags": tags,
            "security": [{"bearer": []}, {"apiKey": []}],
            "paths": dict(sorted(paths.items())),
            "components": {
                "securitySchemes": {
                    "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                    "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
                },
                "responses": {
                    code: {"description": text, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/google.rpc.Status"}}}}
                    for code, text in ERRORS.items()
                },
                "schemas": {self.schema_name(k): v for k, v in sorted(self.schemas.items(), key=lambda kv: self.schema_name(kv[0]))},
            },
        }

    def operation(self, service: str, method: Any, rule: Any, path_params: List[Tuple[str, str, str]],
                  desc: str, op_id: str) -> Dict[str, Any]:
        req = self.messages[method.input_type]
        bound = {field for field, _, _ in path_params}
        params: List[Dict[str, Any]] = [
            {"name": name, "in": "path", "required": True, "schema": self.path_schema(method.input_type, field, pattern),
             "description": f"Sets `{field}` to `{pattern}`." if pattern != "*" else f"Sets `{field}`."}
            for field, name, pattern in path_params
        ]
        op: Dict[str, Any] = {"tags": [service], "operationId": op_id, "summary": method.name}
        if desc:
            op["description"] = desc
        body = rule.body
        if body == "*":
            schema = self.ref(method.input_type)
            if bound:
                # The path sets these fields: the body has the others.
                inline = json.loads(json.dumps(self.schemas[method.input_type]))
                for name in bound:
                    inline["properties"].pop(name, None)
                    if name in inline.get("required", []):
                        inline["required"].remove(name)
                if not inline.get("required", True):
                    del inline["required"]
                schema = inline
            op["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
        elif body:
            field = next(fd for fd in req.field if fd.name == body)
            if field.type_name == ".google.api.HttpBody":
                # The raw request body, any content type (Envoy streams it into the RPC).
                op["requestBody"] = {"required": True,
                                     "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}}
            else:
                op["requestBody"] = {"required": True,
                                     "content": {"application/json": {"schema": self.field_schema(field)}}}
        if body != "*":
            for i, field in enumerate(req.field):
                if field.name in bound or field.name == body:
                    continue
                if field.type == F.TYPE_MESSAGE and field.type_name not in WELL_KNOWN:
                    continue
                behaviors = list(field.options.Extensions[_field_behavior()])
                if 3 in behaviors:  # OUTPUT_ONLY: not a request parameter
                    continue
                p = {"name": field.name, "in": "query", "required": 2 in behaviors,
                     "schema": self.field_schema(field, self.tag(method.input_type, 2, i), behaviors, True)}
                d = self.comment(method.input_type, 2, i)
                if d:
                    p["description"] = d
                params.append(p)
        if params:
            op["parameters"] = params
        out = method.output_type
        if out == ".google.api.HttpBody":
            content = {"*/*": {"schema": {"type": "string", "format": "binary"}}}
        elif method.server_streaming:
            content = {"text/event-stream": {"schema": self.ref(out)}}
        else:
            content = {"application/json": {"schema": self.ref(out)}}
        self.ref(".google.rpc.Status")
        op["responses"] = {
            "200": {"description": "OK", "content": content},
            **{code: {"$ref": f"#/components/responses/{code}"} for code in ERRORS},
        }
        if method.name in PUBLIC:
            op["security"] = []
        return op


def _field_behavior() -> Any:
    from google.api import field_behavior_pb2

    return field_behavior_pb2.field_behavior


VAR = re.compile(r"\{([a-z_.]+)(?:=([^}]*))?\}")


def convert_template(template: str) -> Tuple[str, List[Tuple[str, str, str]]]:
    """`/api/v1/{name=operations/*}:cancel` -> (`/api/v1/operations/{id}:cancel`, [(name, id, operations/*)])."""
    params: List[Tuple[str, str, str]] = []

    def sub(m: "re.Match[str]") -> str:
        field, pattern = m.group(1), m.group(2) or "*"
        if pattern == "*":
            name = field.replace(".", "_")
            params.append((field, name, pattern))
            return "{" + name + "}"
        if pattern.count("*") != 1 or "**" in pattern:
            raise SystemExit(f"unsupported path template {template}")
        params.append((field, "id", pattern))
        return pattern.replace("*", "{id}")

    return VAR.sub(sub, template), params


def render(descriptor: Optional[Path]) -> str:
    return json.dumps(Builder(load_descriptor(descriptor)).build(), indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="fail if sdk/openapi/openapi.json is stale")
    parser.add_argument("--descriptor", type=Path, help="an encoded FileDescriptorSet (default: compile proto/)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    text = render(args.descriptor)
    if args.check:
        if not args.out.exists() or args.out.read_text() != text:
            print(f"{args.out} is stale: run sdk/openapi/generate.py", file=sys.stderr)
            return 1
        print("sdk/openapi: openapi.json is up to date")
        return 0
    args.out.write_text(text)
    print(f"sdk/openapi: wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
