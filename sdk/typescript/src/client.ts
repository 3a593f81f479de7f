/**
 * The typed client: one Connect client per service over a single transport, plus the
 * session handling every caller would otherwise write.
 *
 * Credentials are added by an interceptor, so the raw service clients (`client.files`,
 * `client.operations`, …) are authenticated too. With an API key every call carries
 * `x-api-key`; after `login`/`register` every call carries `authorization: Bearer …`, and
 * when the access token is close to expiry the interceptor first rotates it with
 * RefreshToken (one refresh at a time, however many calls are waiting). Refreshing ahead of
 * expiry instead of retrying after UNAUTHENTICATED means no call is ever sent twice, which
 * matters for streams and non-idempotent calls.
 *
 * Each service client is Connect's client for that service (one property per service, from
 * `SERVICES`) plus the page iterators derived from its descriptor (pages.ts), so every RPC
 * of the API is reachable, typed and authenticated as `client.<service>.<method>`; a test
 * walks the generated descriptors and fails when one is not. A call that never reaches the
 * server (refused, DNS, TLS) fails with UNAVAILABLE and reason UNREACHABLE naming the URL
 * (errors.ts) instead of Connect's bare `[unknown] fetch failed`.
 *
 * The transport is chosen by the caller: grpc-web (browsers, and Node through fetch) from
 * this entry point; native gRPC over HTTP/2 from `@fileorganizer/sdk/node`, kept separate so
 * that browser bundles never pull in `node:http2`.
 */
import { create } from "@bufbuild/protobuf";
import {
  createClient,
  type Client,
  type Interceptor,
  type Transport,
} from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { unreachableError } from "./errors.js";
import { withPagers, type ServiceClient } from "./pages.js";
import { AuthService, type User } from "./gen/fileorganizer/v1/auth_pb.js";
import { AutomationService } from "./gen/fileorganizer/v1/automation_pb.js";
import { FileService } from "./gen/fileorganizer/v1/file_pb.js";
import {
  OperationKind,
  OperationSchema,
  OperationService,
  OperationState,
  type Operation,
  type WatchOperationResponse,
} from "./gen/fileorganizer/v1/operation_pb.js";
import { ReportService, type OperationReport } from "./gen/fileorganizer/v1/report_pb.js";
import { RuleService } from "./gen/fileorganizer/v1/rule_pb.js";
import { SystemService } from "./gen/fileorganizer/v1/system_pb.js";

/** Builds the transport for a base URL; the client passes its credentials interceptor. */
export type TransportFactory = (options: {
  baseUrl: string;
  interceptors: Interceptor[];
}) => Transport;

export interface ClientOptions {
  /** Where the API listens, e.g. `http://127.0.0.1:50051` (`fileorg serve`'s GRPC_ADDR). */
  baseUrl: string;
  /** `"grpc-web"` (the default here) or a factory; `"grpc"` needs `@fileorganizer/sdk/node`. */
  transport?: "grpc-web" | TransportFactory;
  /** Authenticate every call with this API key (`fo_<prefix>_<secret>`) instead of a login. */
  apiKey?: string;
  /**
   * Refresh the access token when less than this many seconds of its lifetime are left
   * (default 60; never more than half the token's lifetime).
   */
  refreshMarginSeconds?: number;
  /** Extra interceptors, run after the credentials one. */
  interceptors?: Interceptor[];
  /**
   * Told every time the session's tokens change: after login, register, resume and each
   * refresh (rotation), and with `undefined` after logout. Lets a browser keep the current
   * refresh token somewhere that survives a page reload (see `resume`).
   */
  onSession?: (session: Session | undefined) => void;
}

/** The Operation fields a caller may set when creating an organize (all optional). */
export type OrganizeOptions = Partial<
  Pick<
    Operation,
    | "destinationPath"
    | "dryRun"
    | "layoutTemplate"
    | "duplicatePolicy"
    | "conflictPolicy"
    | "includeGlobs"
    | "excludeGlobs"
    | "hashAllFiles"
    | "removeEmptyDirs"
  >
>;

/** A logged-in session's tokens. */
export interface Session {
  accessToken: string;
  refreshToken: string;
  /** When the access token expires (milliseconds since the epoch, local clock). */
  expiresAt: number;
  /** When the client refreshes it (before `expiresAt`). */
  refreshAt: number;
}

/**
 * The API's services and the client property of each (`client.files` is FileService). A new
 * service is one line here; its RPCs and page iterators follow from the descriptor.
 */
export const SERVICES = {
  auth: AuthService,
  files: FileService,
  operations: OperationService,
  automations: AutomationService,
  rules: RuleService,
  reports: ReportService,
  system: SystemService,
} as const;

type Services = { readonly [K in keyof typeof SERVICES]: ServiceClient<(typeof SERVICES)[K]> };

/** RPCs that need no credentials (the service refuses none of them for lacking one). */
const PUBLIC_AUTH_METHODS = new Set(["Register", "Login", "RefreshToken"]);

/** Operation states after which a WatchOperation stream has nothing more to say. */
const FINAL_STATES = new Set([
  OperationState.PLANNED,
  OperationState.SUCCEEDED,
  OperationState.FAILED,
  OperationState.CANCELLED,
]);

/** `operations/{id}` for an id, a name or an Operation. */
export function operationName(operation: string | { name: string }): string {
  const ref = typeof operation === "string" ? operation : operation.name;
  return ref.startsWith("operations/") ? ref : `operations/${ref}`;
}

/** The grpc-web transport (browsers; also works in Node, whose fetch it uses). */
export const grpcWebTransport: TransportFactory = ({ baseUrl, interceptors }) =>
  createGrpcWebTransport({ baseUrl, interceptors, useBinaryFormat: true });

function randomId(): string {
  return globalThis.crypto.randomUUID();
}

// The service properties (`auth`, `files`, …) are declared through this interface merge and
// set in the constructor from SERVICES.
export interface FileOrganizerClient extends Services {}

export class FileOrganizerClient {
  /** The API's base URL, without a trailing slash. */
  readonly baseUrl: string;

  private apiKey: string | undefined;
  private current: Session | undefined;
  private refreshing: Promise<void> | undefined;
  private readonly marginMs: number;
  private readonly onSession: ((session: Session | undefined) => void) | undefined;

  constructor(options: ClientOptions & { transport?: "grpc-web" | TransportFactory }) {
    const factory = resolveTransport(options.transport);
    this.apiKey = options.apiKey;
    this.marginMs = (options.refreshMarginSeconds ?? 60) * 1000;
    this.onSession = options.onSession;
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    const transport = factory({
      baseUrl: this.baseUrl,
      interceptors: [this.reachability, this.credentials, ...(options.interceptors ?? [])],
    });
    for (const [property, service] of Object.entries(SERVICES)) {
      Object.defineProperty(this, property, {
        value: withPagers(service, createClient(service, transport) as Client<typeof service>),
        enumerable: true,
      });
    }
  }

  /** The current session's tokens (undefined before login/register or with an API key). */
  get session(): Session | undefined {
    return this.current ? { ...this.current } : undefined;
  }

  /** Switches to API-key authentication (or back, with `undefined`). */
  useApiKey(apiKey: string | undefined): void {
    this.apiKey = apiKey;
  }

  async register(email: string, password: string, displayName = ""): Promise<User> {
    const res = await this.auth.register({ email, password, displayName });
    this.#store(res);
    return res.user!;
  }

  async login(email: string, password: string): Promise<User> {
    const res = await this.auth.login({ email, password });
    this.#store(res);
    return res.user!;
  }

  /**
   * Resumes a session from a refresh token kept from an earlier client (e.g. before a page
   * reload): rotates it at once (the token given is then spent; the server treats a second
   * use as theft and ends the session) and returns the signed-in user.
   */
  async resume(refreshToken: string): Promise<User> {
    const res = await this.auth.refreshToken({ refreshToken });
    this.#store(res);
    return res.user ?? (await this.me());
  }

  /** Rotates the tokens now (the interceptor does this by itself before they expire). */
  async refresh(): Promise<void> {
    if (!this.refreshing) {
      const refreshToken = this.current?.refreshToken;
      if (!refreshToken) throw new Error("no session to refresh: call login or register first");
      // Callers arriving while this runs share it; `finally` runs after the assignment.
      this.refreshing = this.auth
        .refreshToken({ refreshToken })
        .then((res) => this.#store(res))
        .finally(() => {
          this.refreshing = undefined;
        });
    }
    return this.refreshing;
  }

  /** Ends this session on the server and forgets its tokens. */
  async logout(): Promise<void> {
    const refreshToken = this.current?.refreshToken ?? "";
    await this.auth.logout({ refreshToken });
    this.current = undefined;
    this.onSession?.(undefined);
  }

  async me(): Promise<User> {
    return this.auth.getCurrentUser({});
  }

  /**
   * Creates an API key; the secret is returned only here. `scopes` restricts it (e.g.
   * `["files.read"]`; the set is documented on `ApiKey.scopes`); none means all of the
   * caller's. A scope the caller lacks is refused (PERMISSION_DENIED, reason
   * SCOPE_INSUFFICIENT), an unknown one is INVALID_ARGUMENT.
   */
  async createApiKey(
    displayName: string,
    scopes: readonly string[] = [],
  ): Promise<{ name: string; secret: string; scopes: string[] }> {
    const res = await this.auth.createApiKey({ apiKey: { displayName, scopes: [...scopes] } });
    return { name: res.apiKey?.name ?? "", secret: res.secret, scopes: res.apiKey?.scopes ?? [] };
  }

  /** Queues an ORGANIZE operation (idempotent: a fresh request_id per call). */
  async organize(
    sourcePath: string,
    options: OrganizeOptions = {},
  ): Promise<Operation> {
    const operation = create(OperationSchema, {
      ...options,
      kind: OperationKind.ORGANIZE,
      sourcePath,
    });
    return this.operations.createOperation({ operation, requestId: randomId() });
  }

  /** Applies a PLANNED (dry-run) operation's plan. */
  async apply(operation: string | { name: string }): Promise<Operation> {
    return this.operations.applyOperation({ name: operationName(operation) });
  }

  /** Undoes an operation; returns the UNDO operation (watch it to see it finish). */
  async undo(operation: string | { name: string }): Promise<Operation> {
    return this.operations.undoOperation({
      name: operationName(operation),
      requestId: randomId(),
    });
  }

  /**
   * Live progress of an operation until it stops (PLANNED for a dry run, else SUCCEEDED,
   * FAILED or CANCELLED); the last snapshot yielded is the final one.
   */
  async *watch(
    operation: string | { name: string },
    signal?: AbortSignal,
  ): AsyncGenerator<WatchOperationResponse> {
    const stream = this.operations.watchOperation(
      { name: operationName(operation) },
      { signal },
    );
    for await (const snapshot of stream) {
      yield snapshot;
      if (FINAL_STATES.has(snapshot.state)) return;
    }
  }

  /** Watches until the operation stops and returns its final snapshot. */
  async wait(operation: string | { name: string }): Promise<WatchOperationResponse> {
    let last: WatchOperationResponse | undefined;
    for await (const snapshot of this.watch(operation)) last = snapshot;
    if (!last) throw new Error(`WatchOperation(${operationName(operation)}) ended without a snapshot`);
    return last;
  }

  /** The report of an operation (`reports/{operation id}`). */
  async report(operation: string | { name: string }): Promise<OperationReport> {
    const id = operationName(operation).slice("operations/".length);
    return this.reports.getOperationReport({ name: `reports/${id}` });
  }

  #store(res: { accessToken: string; refreshToken: string; expiresIn: number }): void {
    const now = Date.now();
    const lifetimeMs = res.expiresIn * 1000;
    this.current = {
      accessToken: res.accessToken,
      refreshToken: res.refreshToken,
      expiresAt: now + lifetimeMs,
      refreshAt: now + lifetimeMs - Math.min(this.marginMs, lifetimeMs / 2),
    };
    this.onSession?.(this.session);
  }

  /**
   * The credential headers a call needs now (refreshing the access token first when due),
   * for requests made without the Connect clients (e.g. a client stream over grpc-web).
   */
  async credentialHeaders(): Promise<Record<string, string>> {
    if (this.apiKey) return { "x-api-key": this.apiKey };
    if (!this.current) return {};
    if (Date.now() >= this.current.refreshAt) await this.refresh();
    return { authorization: `Bearer ${this.current.accessToken}` };
  }

  /** Turns a call that never reached the server into UNAVAILABLE / UNREACHABLE (errors.ts). */
  private readonly reachability: Interceptor = (next) => async (req) => {
    const translate = (err: unknown) => unreachableError(err, this.baseUrl) ?? err;
    let res;
    try {
      res = await next(req);
    } catch (err) {
      throw translate(err);
    }
    if (!res.stream) return res;
    const messages = res.message;
    return {
      ...res,
      message: (async function* () {
        try {
          yield* messages;
        } catch (err) {
          throw translate(err);
        }
      })(),
    };
  };

  /** Adds credentials to every call but the public auth RPCs, refreshing first if due. */
  private readonly credentials: Interceptor = (next) => async (req) => {
    const isPublic =
      req.service.typeName === AuthService.typeName && PUBLIC_AUTH_METHODS.has(req.method.name);
    if (!isPublic) {
      if (this.apiKey) {
        req.header.set("x-api-key", this.apiKey);
      } else if (this.current) {
        if (Date.now() >= this.current.refreshAt) await this.refresh();
        req.header.set("authorization", `Bearer ${this.current.accessToken}`);
      }
    }
    return next(req);
  };
}

function resolveTransport(choice: ClientOptions["transport"] | string): TransportFactory {
  if (choice === undefined || choice === "grpc-web") return grpcWebTransport;
  if (typeof choice === "function") return choice;
  throw new Error(
    `transport ${JSON.stringify(choice)} is not available here: import connect from "@fileorganizer/sdk/node" for "grpc"`,
  );
}

/** A client for the API at `options.baseUrl` (grpc-web unless a factory is given). */
export function connect(options: ClientOptions): FileOrganizerClient {
  return new FileOrganizerClient(options);
}
