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
from google.protobuf import descriptor_pb2

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent / "openapi.json"
PACKAGE = "fileorganizer.v1"
PUBLIC = {"Register", "Login", "RefreshToken", "GetHealth"}

F = descriptor_pb2.FieldDescriptorProto
SCALARS: Dict[int, Dict[str, Any]] = {
    F.TYPE_DOUBLE: {"type": "number", "format": "double"},
    F.TYPE_FLOAT: {"type": "number", "format": "float"},
    F.TYPE_INT64: {"type": "string", "format": "int64"},
    F.TYPE_UINT64: {"type": "string", "format": "uint64"},
    F.TYPE_SINT64: {"type": "string", "format": "int64"},
    F.TYPE_FIXED64: {"type": "string", "format": "uint64"},
    F.TYPE_SFIXED64: {"type": "string", "format": "int64"},
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
    ".google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    ".google.protobuf.Duration": {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?s$", "example": "1.5s"},
    ".google.protobuf.FieldMask": {"type": "string", "description": "Comma-separated field paths."},
    ".google.protobuf.Empty": {"type": "object"},
    ".google.protobuf.Any": {
        "type": "object",
        "properties": {"@type": {"type": "string"}},
        "additionalProperties": True,
    },
    ".google.protobuf.Struct": {"type": "object", "additionalProperties": True},
    ".google.protobuf.Value": {},
}


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
        self.locations: Dict[str, Tuple[str, Tuple[int, ...]]] = {}
        self.files = list(fds.file)
        for f in self.files:
            for loc in f.source_code_info.location:
                text = loc.leading_comments.strip()
                if text:
                    self.comments[(f.name, tuple(loc.path))] = " ".join(line.strip() for line in text.splitlines())
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

    def comment(self, full: str, *sub: int) -> str:
        fname, path = self.locations[full]
        return self.comments.get((fname, path + sub), "")

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

    def field_schema(self, field: Any) -> Dict[str, Any]:
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
            return {"type": "array", "items": schema}
        return schema

    def message_schema(self, full: str) -> Dict[str, Any]:
        m = self.messages[full]
        props: Dict[str, Any] = {}
        required: List[str] = []
        for i, field in enumerate(m.field):
            schema = self.field_schema(field)
            desc = self.comment(full, 2, i)
            behaviors = list(field.options.Extensions[_field_behavior()])
            if "$ref" in schema and (desc or behaviors):
                schema = {"allOf": [schema]}
            if desc:
                schema["description"] = desc
            if 3 in behaviors:  # OUTPUT_ONLY
                schema["readOnly"] = True
            if 2 in behaviors and 3 not in behaviors:  # REQUIRED
                required.append(field.name)
            props[field.name] = schema
        out: Dict[str, Any] = {"type": "object", "properties": props}
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
                "schemas": {self.schema_name(k): v for k, v in sorted(self.schemas.items(), key=lambda kv: self.schema_name(kv[0]))},
            },
        }

    def operation(self, service: str, method: Any, rule: Any, path_params: List[Tuple[str, str, str]],
                  desc: str, op_id: str) -> Dict[str, Any]:
        req = self.messages[method.input_type]
        bound = {field for field, _, _ in path_params}
        params: List[Dict[str, Any]] = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"},
             "description": f"Sets `{field}` to `{pattern}`." if pattern != "*" else f"Sets `{field}`."}
            for field, name, pattern in path_params
        ]
        op: Dict[str, Any] = {"tags": [service], "operationId": op_id, "summary": method.name}
        if desc:
            op["description"] = desc
        body = rule.body
        if body == "*":
            op["requestBody"] = {"required": True, "content": {"application/json": {"schema": self.ref(method.input_type)}}}
        elif body:
            field = next(fd for fd in req.field if fd.name == body)
            if field.type_name == ".google.api.HttpBody":
                # Envoy passes the raw request body in (any Content-Type).
                content = {"*/*": {"schema": {"type": "string", "format": "binary"}}}
            else:
                content = {"application/json": {"schema": self.field_schema(field)}}
            op["requestBody"] = {"required": True, "content": content}
        if body != "*":
            for i, field in enumerate(req.field):
                if field.name in bound or field.name == body:
                    continue
                if field.type == F.TYPE_MESSAGE and field.type_name not in WELL_KNOWN:
                    continue
                p = {"name": field.name, "in": "query", "required": False, "schema": self.field_schema(field)}
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
        op["responses"] = {
            "200": {"description": "OK", "content": content},
            "default": {"description": "An error (google.rpc.Status with ErrorInfo details).",
                        "content": {"application/json": {"schema": self.ref(".google.rpc.Status")}}},
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
