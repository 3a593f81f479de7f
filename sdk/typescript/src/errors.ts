/**
 * Errors: every failed call rejects with a Connect `ConnectError` whose `code` is the gRPC
 * status code. The service attaches `google.rpc` details to its errors (an `ErrorInfo` whose
 * `reason` is one of `fileorganizer.v1.ErrorReason`, a `BadRequest` naming the field of a
 * validation error, a `RetryInfo` on RESOURCE_EXHAUSTED); these helpers decode them with the
 * generated schemas so callers never parse `grpc-status-details-bin` themselves.
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Duration } from "@bufbuild/protobuf/wkt";
import {
  BadRequestSchema,
  ErrorInfoSchema,
  RetryInfoSchema,
} from "./gen/google/rpc/error_details_pb.js";

/** The domain of every ErrorInfo the service sends. */
export const ERROR_DOMAIN = "fileorganizer.v1";
/** The domain of the ErrorInfo of errors the SDK raises itself (the server never saw the call). */
export const SDK_ERROR_DOMAIN = "sdk.fileorganizer";

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

/** Why a call could not reach the server (`metadata.failure` of an UNREACHABLE error). */
export type UnreachableFailure = "connection_refused" | "dns" | "tls" | "no_route" | "timeout" | "network";

/** System error codes (Node's, undici's, OpenSSL's) that mean the request never reached the server. */
const FAILURES: Record<string, UnreachableFailure> = {
  ECONNREFUSED: "connection_refused",
  ENOTFOUND: "dns",
  EAI_AGAIN: "dns",
  EAI_NONAME: "dns",
  EAI_FAIL: "dns",
  EHOSTUNREACH: "no_route",
  ENETUNREACH: "no_route",
  ENETDOWN: "no_route",
  EHOSTDOWN: "no_route",
  ETIMEDOUT: "timeout",
  UND_ERR_CONNECT_TIMEOUT: "timeout",
  EPROTO: "tls",
  DEPTH_ZERO_SELF_SIGNED_CERT: "tls",
  SELF_SIGNED_CERT_IN_CHAIN: "tls",
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "tls",
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: "tls",
};

const DESCRIPTIONS: Record<UnreachableFailure, string> = {
  connection_refused: "connection refused",
  dns: "host name not found",
  tls: "TLS handshake failed",
  no_route: "no route to host",
  timeout: "connection timed out",
  network: "network error",
};

/** What the browsers' fetch says, without any detail, when a request got no answer. */
const FETCH_FAILED = /^(fetch failed|failed to fetch|networkerror when attempting to fetch resource\.?|load failed)$/i;

function classify(error: unknown): { failure: UnreachableFailure; cause: string } | undefined {
  let fetchFailed = false;
  for (let e = error, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    if (e instanceof ConnectError) {
      // An error the server (or a proxy) answered with is never "unreachable".
      if (e.details.length > 0 || [...e.metadata.keys()].length > 0) return undefined;
      continue;
    }
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string") {
      // OpenSSL's message is a dump; its `reason` is the readable part ("wrong version number").
      const reason = (e as { reason?: unknown }).reason;
      const said = (typeof reason === "string" && reason ? reason : e.message).trim();
      const text = said.includes(code) ? said : `${code}: ${said}`;
      const failure =
        FAILURES[code] ??
        (/^(ERR_TLS_|ERR_SSL_|CERT_)/.test(code) ? "tls" : undefined) ??
        // A TLS client meeting a server that closes the handshake (e.g. plain HTTP).
        (code === "ECONNRESET" && /secure TLS connection/.test(e.message) ? "tls" : undefined);
      if (failure) return { failure, cause: text };
      // Node named another failure (e.g. the socket closed mid-request): the server was reached.
      return undefined;
    }
    if (e instanceof TypeError && FETCH_FAILED.test(e.message)) fetchFailed = true;
  }
  // A browser's fetch gives no reason (refused, DNS, TLS and CORS look the same).
  return fetchFailed ? { failure: "network", cause: "fetch failed" } : undefined;
}

/**
 * The error for a call that never reached the server at `baseUrl` (connection refused, DNS,
 * TLS, no route), or undefined if `error` is anything else (an answer of the server, a
 * connection dropped after it was established, …). The result is UNAVAILABLE with ErrorInfo
 * reason `UNREACHABLE` (domain `sdk.fileorganizer`), metadata `url`, `failure`
 * (`connection_refused`, `dns`, `tls`, `no_route`, `timeout`, `network`) and `cause` (the
 * system error), a message naming the URL, and the original error as `cause`.
 */
export function unreachableError(error: unknown, baseUrl: string): ConnectError | undefined {
  const found = classify(error);
  if (!found) return undefined;
  const info = create(ErrorInfoSchema, {
    reason: "UNREACHABLE",
    domain: SDK_ERROR_DOMAIN,
    metadata: { url: baseUrl, failure: found.failure, cause: found.cause },
  });
  return new ConnectError(
    `cannot reach the FileOrganizer API at ${baseUrl}: ${DESCRIPTIONS[found.failure]} (${found.cause})`,
    Code.Unavailable,
    undefined,
    [{ desc: ErrorInfoSchema, value: info }],
    error,
  );
}

/** True if the error is an UNREACHABLE one (the call never reached the server). */
export function isUnreachable(error: unknown): boolean {
  const details = errorDetails(error);
  return details.reason === "UNREACHABLE" && details.domain === SDK_ERROR_DOMAIN;
}

export { Code, ConnectError };
