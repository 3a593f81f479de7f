/**
 * Errors: every failed call rejects with a Connect `ConnectError` whose `code` is the gRPC
 * status code. The service attaches `google.rpc` details to its errors (an `ErrorInfo` whose
 * `reason` is one of `fileorganizer.v1.ErrorReason`, a `BadRequest` naming the field of a
 * validation error, a `RetryInfo` on RESOURCE_EXHAUSTED); these helpers decode them with the
 * generated schemas so callers never parse `grpc-status-details-bin` themselves.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { Duration } from "@bufbuild/protobuf/wkt";
import {
  BadRequestSchema,
  ErrorInfoSchema,
  RetryInfoSchema,
} from "./gen/google/rpc/error_details_pb.js";

/** The domain of every ErrorInfo the service sends. */
export const ERROR_DOMAIN = "fileorganizer.v1";

/** What a failed call tells: the gRPC code and the decoded error details. */
export interface ApiErrorDetails {
  /** The gRPC status code. */
  code: Code;
  /** The code's name, e.g. `"InvalidArgument"` (Connect's spelling of INVALID_ARGUMENT). */
  codeName: string;
  /** The message without Connect's `[code]` prefix. */
  message: string;
  /** ErrorInfo reason, e.g. `"INVALID_CREDENTIALS"`; empty when the error carried none. */
  reason: string;
  /** ErrorInfo domain (`fileorganizer.v1` for the service's own errors). */
  domain: string;
  /** ErrorInfo metadata. */
  metadata: Record<string, string>;
  /** BadRequest field violations (validation errors name the offending field). */
  fieldViolations: { field: string; description: string }[];
  /** RetryInfo delay in milliseconds (RESOURCE_EXHAUSTED), if any. */
  retryDelayMs?: number;
}

function durationMs(d: Duration | undefined): number | undefined {
  return d === undefined ? undefined : Number(d.seconds) * 1000 + Math.round(d.nanos / 1e6);
}

/** Decodes a call's error (any thrown value is first turned into a ConnectError). */
export function errorDetails(error: unknown): ApiErrorDetails {
  const err = ConnectError.from(error);
  const info = err.findDetails(ErrorInfoSchema)[0];
  const badRequest = err.findDetails(BadRequestSchema)[0];
  const retry = err.findDetails(RetryInfoSchema)[0];
  return {
    code: err.code,
    codeName: Code[err.code] ?? String(err.code),
    message: err.rawMessage,
    reason: info?.reason ?? "",
    domain: info?.domain ?? "",
    metadata: { ...(info?.metadata ?? {}) },
    fieldViolations: (badRequest?.fieldViolations ?? []).map((v) => ({
      field: v.field,
      description: v.description,
    })),
    retryDelayMs: durationMs(retry?.retryDelay),
  };
}

/** The ErrorInfo reason of an error (`""` when it has none). */
export function reasonOf(error: unknown): string {
  return errorDetails(error).reason;
}

/** The field named by an error's first BadRequest violation (`""` when none). */
export function badField(error: unknown): string {
  return errorDetails(error).fieldViolations[0]?.field ?? "";
}

export { Code, ConnectError };
