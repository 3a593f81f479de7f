// SDK checks that need no FileOrganizer server (node:test, run by tests/api/typescript_sdk.rs):
// every RPC of the generated descriptors is reachable, typed and authenticated through the
// client, every List/Search RPC has its page iterator, a call that cannot reach the server
// fails with UNAVAILABLE / UNREACHABLE naming the URL (closed local port, TLS against a
// plain server, unknown host) while an answer from a reached server is never called
// unreachable, the page iterator stops on a repeated token, and jsonOf covers every message.
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { createServer, type AddressInfo, type Server } from "node:net";
import { dirname, join, relative } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { test } from "node:test";
import type { DescFile, DescService } from "@bufbuild/protobuf";
import {
  API_FILES,
  Code,
  ConnectError,
  SERVICES,
  SDK_ERROR_DOMAIN,
  apiRegistry,
  connect,
  errorDetails,
  isUnreachable,
  pages,
  reasonOf,
  type FileOrganizerClient,
} from "@fileorganizer/sdk/node";
import { iterName, pageItemsField } from "../src/pages.js";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..", "..", "..");
const genDir = join(here, "..", "src", "gen", "fileorganizer");
/** RPCs that must go out without credentials (the client adds none to them). */
const PUBLIC = new Set(["fileorganizer.v1.AuthService/Register", "fileorganizer.v1.AuthService/Login", "fileorganizer.v1.AuthService/RefreshToken"]);

/** Every generated file of the API (src/gen/fileorganizer/**\/*_pb.ts), found by walking the directory. */
async function generatedFiles(): Promise<DescFile[]> {
  const files: DescFile[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) await walk(path);
      else if (entry.name.endsWith("_pb.ts")) {
        const module: Record<string, unknown> = await import(pathToFileURL(path).href);
        const file = Object.values(module).find((v) => (v as { kind?: string })?.kind === "file") as DescFile | undefined;
        assert.ok(file, `${relative(root, path)} exports no file descriptor`);
        files.push(file);
      }
    }
  };
  await walk(genDir);
  assert.ok(files.length >= 8, `only ${files.length} generated files under ${genDir}`);
  return files;
}

function propertyOf(service: DescService): string | undefined {
  return Object.entries(SERVICES).find(([, s]) => s.typeName === service.typeName)?.[0];
}

/** A client whose calls stop after the SDK's own interceptors, recording what would be sent. */
function recordingClient(apiKey?: string): { client: FileOrganizerClient; sent: { rpc: string; headers: Headers }[] } {
  const sent: { rpc: string; headers: Headers }[] = [];
  const client = connect({
    baseUrl: "http://127.0.0.1:9",
    apiKey,
    interceptors: [
      () => async (req) => {
        sent.push({ rpc: `${req.service.typeName}/${req.method.name}`, headers: new Headers(req.header) });
        throw new ConnectError("recorded, not sent", Code.Canceled);
      },
    ],
  });
  return { client, sent };
}

async function callOnce(fn: (...args: unknown[]) => unknown, kind: string): Promise<void> {
  const empty = (async function* () {})();
  try {
    const result = fn(kind === "client_streaming" || kind === "bidi_streaming" ? empty : {});
    if (kind === "server_streaming" || kind === "bidi_streaming") {
      for await (const _ of result as AsyncIterable<unknown>) void _;
    } else await result;
  } catch (err) {
    assert.equal(ConnectError.from(err).rawMessage, "recorded, not sent");
    return;
  }
  assert.fail("the recording interceptor did not run");
}

test("every RPC in the descriptors is reachable, typed and authenticated through the client", async () => {
  const files = await generatedFiles();
  const registered = new Set(API_FILES.map((f) => f.name));
  const missingFiles = files.map((f) => f.name).filter((name) => !registered.has(name));
  assert.deepEqual(missingFiles, [], "add these files to API_FILES in src/json.ts");

  const services = files.flatMap((f) => f.services);
  assert.ok(services.length >= 7, `only ${services.length} services`);
  const missing: string[] = [];
  const { client, sent } = recordingClient("fo_test_key");
  let rpcs = 0;
  for (const service of services) {
    const property = propertyOf(service);
    if (!property) {
      missing.push(`${service.typeName}: no client property (add it to SERVICES in src/client.ts)`);
      continue;
    }
    assert.equal(apiRegistry.getService(service.typeName)?.typeName, service.typeName);
    const serviceClient = (client as unknown as Record<string, Record<string, unknown>>)[property];
    for (const method of service.methods) {
      rpcs++;
      const rpc = `${service.typeName}/${method.name}`;
      const fn = serviceClient[method.localName];
      if (typeof fn !== "function") {
        missing.push(`${rpc}: client.${property}.${method.localName} is missing`);
        continue;
      }
      const before = sent.length;
      await callOnce(fn as (...args: unknown[]) => unknown, method.methodKind);
      assert.equal(sent.length, before + 1, `${rpc} sent nothing`);
      const call = sent.at(-1)!;
      assert.equal(call.rpc, rpc, `client.${property}.${method.localName} calls ${call.rpc}`);
      if (PUBLIC.has(rpc)) assert.equal(call.headers.get("x-api-key"), null, `${rpc} leaks the API key`);
      else assert.equal(call.headers.get("x-api-key"), "fo_test_key", `${rpc} is not authenticated`);

      if (/^(List|Search)/.test(method.name)) {
        if (!pageItemsField(method)) missing.push(`${rpc}: not paged the usual way (page_token, next_page_token, one repeated field); write its iterator`);
        else if (typeof serviceClient[iterName(method)] !== "function") missing.push(`${rpc}: client.${property}.${iterName(method)} is missing`);
      }
    }
  }
  assert.deepEqual(missing, [], "RPCs without a TypeScript wrapper");
  assert.ok(rpcs >= 50, `only ${rpcs} RPCs found`);
  // The naming rule, pinned on two examples.
  assert.equal(typeof client.files.iterTrash, "function");
  assert.equal(typeof client.files.iterSearchFiles, "function");

  // Without credentials nothing is added; with a session every call but the public ones
  // carries the bearer token (checked on the live server by sdk.test.ts).
  const anonymous = recordingClient();
  await callOnce(anonymous.client.files.listTrash as never, "unary");
  assert.equal(anonymous.sent[0].headers.get("authorization"), null);
});

/** A local port nothing listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return (server.address() as AddressInfo).port;
}

async function failure(promise: Promise<unknown>): Promise<ConnectError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof ConnectError, `not a ConnectError: ${String(err)}`);
    return err;
  }
  assert.fail("the call succeeded");
}

function assertUnreachable(err: ConnectError, url: string, failureKind: string): void {
  assert.equal(err.code, Code.Unavailable, err.message);
  assert.equal(reasonOf(err), "UNREACHABLE");
  assert.ok(isUnreachable(err));
  const details = errorDetails(err);
  assert.equal(details.domain, SDK_ERROR_DOMAIN);
  assert.equal(details.metadata.url, url);
  assert.equal(details.metadata.failure, failureKind, err.message);
  assert.ok(err.rawMessage.startsWith(`cannot reach the FileOrganizer API at ${url}: `), err.rawMessage);
  assert.ok(err.cause, "the original error is kept as cause");
}

test("a refused connection is UNAVAILABLE with reason UNREACHABLE naming the URL", async () => {
  const port = await closedPort();
  const url = `http://127.0.0.1:${port}`;
  for (const transport of ["grpc", "grpc-web"] as const) {
    const client = connect({ baseUrl: url, transport, apiKey: "fo_x_y" });
    assertUnreachable(await failure(client.system.getHealth({})), url, "connection_refused");
    assertUnreachable(await failure(client.me()), url, "connection_refused");
    // Streams and page iterators too.
    assertUnreachable(await failure(client.wait("operations/00000000-0000-0000-0000-000000000000")), url, "connection_refused");
    assertUnreachable(await failure((async () => { for await (const _ of client.files.iterTrash()) void _; })()), url, "connection_refused");
  }
  // A login (no credentials, refreshes nothing) is translated the same way.
  assertUnreachable(await failure(connect({ baseUrl: `${url}/` }).login("a@example.com", "pw")), url, "connection_refused");
});

test("TLS and DNS failures are UNREACHABLE too, with their own failure kind", async () => {
  // A plain TCP server answering a TLS hello with HTTP.
  const plain = createServer((socket) => socket.end("HTTP/1.1 400 Bad Request\r\n\r\n"));
  const port = await listen(plain);
  try {
    for (const transport of ["grpc", "grpc-web"] as const) {
      const url = `https://127.0.0.1:${port}`;
      assertUnreachable(await failure(connect({ baseUrl: url, transport }).system.getHealth({})), url, "tls");
      const dns = "http://no-such-host.invalid:50051";
      assertUnreachable(await failure(connect({ baseUrl: dns, transport }).system.getHealth({})), dns, "dns");
    }
  } finally {
    plain.close();
  }
});

test("a server that was reached is never reported unreachable", async () => {
  // Accepts the connection, reads the request, then drops it without an answer.
  const dropping = createServer((socket) => socket.once("data", () => socket.destroy()));
  // Answers every grpc-web request with an HTTP 503 (a proxy without a healthy upstream).
  const busy = createServer((socket) =>
    socket.once("data", () => socket.end("HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")),
  );
  const dropPort = await listen(dropping);
  const busyPort = await listen(busy);
  try {
    for (const transport of ["grpc", "grpc-web"] as const) {
      const dropped = await failure(connect({ baseUrl: `http://127.0.0.1:${dropPort}`, transport }).system.getHealth({}));
      assert.notEqual(reasonOf(dropped), "UNREACHABLE", `${transport}: ${dropped.message}`);
    }
    const answered = await failure(connect({ baseUrl: `http://127.0.0.1:${busyPort}`, transport: "grpc-web" }).system.getHealth({}));
    assert.equal(answered.code, Code.Unavailable);
    assert.notEqual(reasonOf(answered), "UNREACHABLE", answered.message);
  } finally {
    dropping.close();
    busy.close();
  }
});

test("a page token handed back twice stops the iterator instead of looping", async () => {
  const tokens = ["a", "b", "a", "c"];
  const asked: string[] = [];
  const call = async (req: { pageToken?: string; pageSize?: number }) => {
    asked.push(req.pageToken ?? "");
    assert.equal(req.pageSize, 2, "page_size is kept on every page");
    return { items: [asked.length], nextPageToken: tokens[asked.length - 1] };
  };
  const seen: number[] = [];
  const err = await failure(
    (async () => {
      for await (const page of pages(call, { pageSize: 2 })) seen.push(...page.items);
    })(),
  );
  assert.equal(err.code, Code.Internal);
  assert.equal(reasonOf(err), "PAGE_TOKEN_REPEATED");
  assert.deepEqual(asked, ["", "a", "b"]);
  assert.deepEqual(seen, [1, 2, 3]);

  // A start token is honoured; an empty next token ends the walk.
  const once = async (req: { pageToken?: string }) => ({ items: [req.pageToken], nextPageToken: "" });
  const all = [];
  for await (const page of pages(once, { pageToken: "start" })) all.push(...page.items);
  assert.deepEqual(all, ["start"]);
});

test("the npm scripts point at files that exist", () => {
  const scripts: Record<string, string> = JSON.parse(readFileSync(join(root, "package.json"), "utf8")).scripts;
  const sdkScripts: Record<string, string> = JSON.parse(readFileSync(join(here, "..", "package.json"), "utf8")).scripts;
  for (const [dir, list] of [[root, scripts], [join(here, ".."), sdkScripts]] as const) {
    for (const [name, command] of Object.entries(list)) {
      for (const match of command.matchAll(/-p\s+(\S+)/g)) {
        assert.ok(existsSync(join(dir, match[1])), `npm script ${name}: ${match[1]} does not exist`);
      }
    }
  }
  assert.match(scripts["typecheck:tests"], /sdk\/typescript\/tsconfig\.test\.json/);
});

test("jsonOf turns every message of the API into JSON and back", async () => {
  const { create, equals } = await import("@bufbuild/protobuf");
  const { jsonOf, jsonString, messageFromJson, operations } = await import("@fileorganizer/sdk/node");
  let count = 0;
  for (const type of apiRegistry) {
    if (type.kind !== "message" || !type.typeName.startsWith("fileorganizer.")) continue;
    const message = create(type);
    const json = jsonOf(message);
    assert.equal(typeof JSON.stringify(json), "string");
    assert.ok(equals(type, messageFromJson(type, json), message), type.typeName);
    count++;
  }
  assert.ok(count >= 100, `only ${count} messages`);

  const snapshot = create(operations.WatchOperationResponseSchema, {
    state: operations.OperationState.SUCCEEDED,
    counters: { filesMoved: 4n, bytesMoved: 9007199254740993n },
  });
  assert.throws(() => JSON.stringify(snapshot), TypeError);
  const json = jsonOf(snapshot) as { state: string; counters: Record<string, string>; progressPercent: number };
  assert.equal(json.state, "OPERATION_STATE_SUCCEEDED");
  assert.equal(json.counters.filesMoved, "4");
  assert.equal(json.counters.bytesMoved, "9007199254740993", "no precision lost above 2^53");
  assert.equal(json.progressPercent, 0, "zero values are present");
  const snake = jsonOf(snapshot, { useProtoFieldName: true }) as { counters: Record<string, string> };
  assert.equal(snake.counters.files_moved, "4");
  assert.equal(JSON.parse(jsonString(snapshot, 2)).counters.filesMoved, "4");
  assert.ok(equals(operations.WatchOperationResponseSchema, messageFromJson(operations.WatchOperationResponseSchema, json), snapshot));
  assert.throws(() => jsonOf({ $typeName: "evil.Unknown" } as never), /not a message of the FileOrganizer API/);
});
