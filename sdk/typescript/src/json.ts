/**
 * JSON of responses. Messages are plain objects, but int64 fields are `bigint`, so
 * `JSON.stringify(response)` throws ("Do not know how to serialize a BigInt"), and it would
 * print enums as numbers and Timestamps as `{seconds, nanos}` anyway. `jsonOf(message)`
 * gives the canonical protobuf JSON instead (protobuf-es `toJson` with the message's own
 * schema, looked up by its `$typeName` in a registry of every API file and its imports):
 * int64 as decimal strings, enums by name, Timestamps as RFC 3339, field names in
 * lowerCamelCase, and every field present (`alwaysEmitImplicit`, so a zero counter is `"0"`,
 * not missing). `{ useProtoFieldName: true }` gives snake_case names, exactly what the REST
 * API (Envoy's transcoder) prints.
 */
import {
  createRegistry,
  fromJson,
  toJson,
  type DescFile,
  type DescMessage,
  type JsonValue,
  type JsonWriteOptions,
  type Message,
  type MessageShape,
} from "@bufbuild/protobuf";
import { file_fileorganizer_v1_auth } from "./gen/fileorganizer/v1/auth_pb.js";
import { file_fileorganizer_v1_automation } from "./gen/fileorganizer/v1/automation_pb.js";
import { file_fileorganizer_v1_errors } from "./gen/fileorganizer/v1/errors_pb.js";
import { file_fileorganizer_v1_file } from "./gen/fileorganizer/v1/file_pb.js";
import { file_fileorganizer_v1_operation } from "./gen/fileorganizer/v1/operation_pb.js";
import { file_fileorganizer_v1_report } from "./gen/fileorganizer/v1/report_pb.js";
import { file_fileorganizer_v1_rule } from "./gen/fileorganizer/v1/rule_pb.js";
import { file_fileorganizer_v1_system } from "./gen/fileorganizer/v1/system_pb.js";
import { file_google_rpc_error_details } from "./gen/google/rpc/error_details_pb.js";
import { file_google_rpc_status } from "./gen/google/rpc/status_pb.js";

/** The API's proto files (fileorganizer/v1/*.proto); a test checks none is missing. */
export const API_FILES: readonly DescFile[] = [
  file_fileorganizer_v1_auth,
  file_fileorganizer_v1_automation,
  file_fileorganizer_v1_errors,
  file_fileorganizer_v1_file,
  file_fileorganizer_v1_operation,
  file_fileorganizer_v1_report,
  file_fileorganizer_v1_rule,
  file_fileorganizer_v1_system,
  file_google_rpc_error_details,
  file_google_rpc_status,
];

function withDependencies(files: readonly DescFile[]): DescFile[] {
  const all = new Map<string, DescFile>();
  const visit = (file: DescFile) => {
    if (all.has(file.name)) return;
    all.set(file.name, file);
    file.dependencies.forEach(visit);
  };
  files.forEach(visit);
  return [...all.values()];
}

/** Every message, enum and service of the API and of the files it imports. */
export const apiRegistry = createRegistry(...withDependencies(API_FILES));

export type JsonOptions = Partial<Omit<JsonWriteOptions, "registry">>;

function schemaOf(message: Message): DescMessage {
  const schema = apiRegistry.getMessage(message.$typeName);
  if (!schema) throw new TypeError(`jsonOf: ${message.$typeName} is not a message of the FileOrganizer API`);
  return schema;
}

/**
 * The protobuf JSON of a request, response or any message of the API: a plain value that
 * `JSON.stringify` accepts.
 */
export function jsonOf(message: Message, options: JsonOptions = {}): JsonValue {
  return toJson(schemaOf(message), message, { alwaysEmitImplicit: true, ...options, registry: apiRegistry });
}

/** `JSON.stringify(jsonOf(message, options), null, space)`. */
export function jsonString(message: Message, space?: number, options: JsonOptions = {}): string {
  return JSON.stringify(jsonOf(message, options), null, space);
}

/** Reads a message back from its JSON (the inverse of `jsonOf`). */
export function messageFromJson<Desc extends DescMessage>(schema: Desc, json: JsonValue): MessageShape<Desc> {
  return fromJson(schema, json, { registry: apiRegistry });
}
