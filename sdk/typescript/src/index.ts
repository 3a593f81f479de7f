/**
 * @fileorganizer/sdk — TypeScript client of FileOrganizer Pro for browsers (grpc-web) and
 * Node (`@fileorganizer/sdk/node` adds native gRPC).
 *
 * Message types and service descriptors are generated from proto/ by generate.sh
 * (protoc-gen-es); this module only adds the typed client, page iterators, JSON and error
 * helpers.
 */
export * from "./client.js";
export * from "./errors.js";
export * from "./json.js";
export { pages, type IterName, type PageItem, type Pagers, type ServiceClient } from "./pages.js";
export * from "./transfers.js";
export * from "./grpc-web-upload.js";
export * as auth from "./gen/fileorganizer/v1/auth_pb.js";
export * as automations from "./gen/fileorganizer/v1/automation_pb.js";
export * as errors from "./gen/fileorganizer/v1/errors_pb.js";
export * as files from "./gen/fileorganizer/v1/file_pb.js";
export * as operations from "./gen/fileorganizer/v1/operation_pb.js";
export * as reports from "./gen/fileorganizer/v1/report_pb.js";
export * as rules from "./gen/fileorganizer/v1/rule_pb.js";
export * as system from "./gen/fileorganizer/v1/system_pb.js";
export { ErrorReason } from "./gen/fileorganizer/v1/errors_pb.js";
export { ArchiveFormat, FileConflictPolicy, FileKind } from "./gen/fileorganizer/v1/file_pb.js";
export {
  OperationKind,
  OperationPhase,
  OperationState,
} from "./gen/fileorganizer/v1/operation_pb.js";
