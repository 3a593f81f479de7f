// The TypeScript SDK against a live server (node:test, run by tests/api/typescript_sdk.rs
// with FILEORG_URL=http://127.0.0.1:<port>; the server's ACCESS_TOKEN_TTL_SECS is 10).
// Native gRPC (connect-node) unless a test says otherwise.
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  Code,
  ConnectError,
  OperationState,
  badField,
  connect,
  errorDetails,
  jsonOf,
  jsonString,
  messageFromJson,
  operations,
  pages,
  reasonOf,
  type FileOrganizerClient,
} from "@fileorganizer/sdk/node";

const URL_ = process.env.FILEORG_URL;
if (!URL_) throw new Error("FILEORG_URL is not set");
const PASSWORD = "correct horse battery";

function email(label: string): string {
  return `${label}-${crypto.randomUUID().slice(0, 8)}@example.com`;
}

async function rejects(promise: Promise<unknown>): Promise<ConnectError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof ConnectError, `not a ConnectError: ${String(err)}`);
    return err;
  }
  assert.fail("the call succeeded");
}

async function loggedIn(label: string): Promise<FileOrganizerClient> {
  const client = connect({ baseUrl: URL_! });
  await client.register(email(label), PASSWORD);
  return client;
}

async function upload(client: FileOrganizerClient, path: string, text: string): Promise<void> {
  await client.files.uploadSmallFile({ path, content: new TextEncoder().encode(text) });
}

test("register, login, current user and auth errors", async () => {
  const address = email("ts-auth");
  const client = connect({ baseUrl: URL_ });
  const user = await client.register(address, PASSWORD, "TS");
  assert.equal(user.email, address);
  assert.ok(client.session?.accessToken);

  const again = await rejects(connect({ baseUrl: URL_ }).register(address, PASSWORD));
  assert.equal(again.code, Code.AlreadyExists);
  assert.equal(reasonOf(again), "EMAIL_TAKEN");

  const other = connect({ baseUrl: URL_ });
  const wrong = await rejects(other.login(address, "not the password"));
  assert.equal(wrong.code, Code.Unauthenticated);
  assert.equal(errorDetails(wrong).reason, "INVALID_CREDENTIALS");
  assert.equal(errorDetails(wrong).domain, "fileorganizer.v1");

  const me = await (await other.login(address, PASSWORD), other.me());
  assert.equal(me.email, address);
  assert.equal(me.displayName, "TS");

  const anonymous = await rejects(connect({ baseUrl: URL_ }).me());
  assert.equal(anonymous.code, Code.Unauthenticated);
  assert.equal(reasonOf(anonymous), "CREDENTIALS_MISSING");

  await other.logout();
  assert.equal(other.session, undefined);
});

test("the access token is refreshed before it expires", async () => {
  const client = await loggedIn("ts-refresh");
  const first = client.session!;
  // 10 s tokens: the client refreshes once half the lifetime is left.
  assert.ok(first.refreshAt < first.expiresAt);
  assert.ok(first.expiresAt - first.refreshAt <= 5_000);
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, first.refreshAt - Date.now()) + 200));

  // Several calls at once share one refresh (a second one would present a spent token,
  // which revokes the whole session).
  const users = await Promise.all([client.me(), client.me(), client.me()]);
  assert.ok(users.every((u) => u.email === users[0].email));
  const second = client.session!;
  assert.notEqual(second.accessToken, first.accessToken);
  assert.notEqual(second.refreshToken, first.refreshToken);
  assert.ok(second.expiresAt > first.expiresAt);

  // The old refresh token was rotated away: presenting it again is refused.
  const reused = await rejects(client.auth.refreshToken({ refreshToken: first.refreshToken }));
  assert.equal(reused.code, Code.Unauthenticated);
  assert.equal(reasonOf(reused), "REFRESH_TOKEN_REUSED");
});

test("onSession follows the tokens, and resume signs a new client in from a kept refresh token", async () => {
  const address = email("ts-resume");
  const told: (string | undefined)[] = [];
  const first = connect({ baseUrl: URL_!, onSession: (s) => told.push(s?.refreshToken) });
  await first.register(address, PASSWORD);
  assert.deepEqual(told, [first.session!.refreshToken]);

  // A new client (the console after a page reload) resumes from the kept token, rotating it.
  const kept = told[0]!;
  const resumedTold: (string | undefined)[] = [];
  const second = connect({ baseUrl: URL_!, onSession: (s) => resumedTold.push(s?.refreshToken) });
  const user = await second.resume(kept);
  assert.equal(user.email, address);
  assert.equal(resumedTold.length, 1);
  assert.notEqual(resumedTold[0], kept);
  assert.equal((await second.me()).email, address);

  // Logout is told too, and the kept token, spent by the resume, signs no one in again.
  await second.logout();
  assert.deepEqual(resumedTold.slice(1), [undefined]);
  const again = await rejects(connect({ baseUrl: URL_! }).resume(kept));
  assert.equal(again.code, Code.Unauthenticated);
});

test("API keys authenticate every call", async () => {
  const owner = await loggedIn("ts-key");
  const ownerEmail = (await owner.me()).email;
  const { name, secret } = await owner.createApiKey("ci");
  assert.match(name, /^api-keys\//);
  assert.match(secret, /^fo_/);

  const byKey = connect({ baseUrl: URL_, apiKey: secret });
  assert.equal((await byKey.me()).email, ownerEmail);
  await upload(byKey, "keyed/hello.txt", "hello");
  const listing = await byKey.files.listDirectory({ path: "keyed" });
  assert.deepEqual(listing.entries.map((e) => e.name), ["hello.txt"]);

  const bad = await rejects(connect({ baseUrl: URL_, apiKey: "fo_nope_nope" }).me());
  assert.equal(bad.code, Code.Unauthenticated);
  assert.equal(reasonOf(bad), "API_KEY_INVALID");

  // A scoped key reads but cannot write.
  const scoped = await owner.createApiKey("reader", ["files.read"]);
  assert.deepEqual(scoped.scopes, ["files.read"]);
  const reader = connect({ baseUrl: URL_, apiKey: scoped.secret });
  await reader.files.listDirectory({ path: "keyed" });
  const denied = await rejects(upload(reader, "keyed/nope.txt", "no"));
  assert.equal(denied.code, Code.PermissionDenied);
  assert.equal(reasonOf(denied), "SCOPE_INSUFFICIENT");
});

test("dry run, plan, apply with live progress, report and undo", async () => {
  const client = await loggedIn("ts-organize");
  const files: Record<string, string> = {
    "inbox/notes.txt": "some notes",
    "inbox/table.csv": "a,b\n1,2\n",
    "inbox/script.py": "print('hi')\n",
    "inbox/more-notes.txt": "more notes, different size",
  };
  for (const [path, text] of Object.entries(files)) await upload(client, path, text);

  const created = await client.organize("inbox", { destinationPath: "sorted", dryRun: true });
  assert.match(created.name, /^operations\//);
  const planned = await client.wait(created);
  assert.equal(planned.state, OperationState.PLANNED);
  assert.equal(planned.counters?.filesPlanned, 4n);

  const records = await client.files.listFileRecords({ parent: created.name });
  assert.deepEqual(
    records.fileRecords.map((r) => r.newPath).sort(),
    ["sorted/Code/script.py", "sorted/Documents/more-notes.txt", "sorted/Documents/notes.txt", "sorted/Spreadsheets/table.csv"],
  );
  // A dry run moved nothing.
  const before = await client.files.listDirectory({ path: "inbox" });
  assert.equal(before.entries.length, 4);

  await client.apply(created);
  const snapshots = [];
  for await (const snapshot of client.watch(created)) snapshots.push(snapshot);
  const last = snapshots.at(-1)!;
  assert.equal(last.state, OperationState.SUCCEEDED, JSON.stringify(last.error));
  assert.equal(last.progressPercent, 100);
  assert.equal(last.counters?.filesMoved, 4n);
  for (let i = 1; i < snapshots.length; i++) {
    assert.ok(snapshots[i].progressPercent >= snapshots[i - 1].progressPercent || snapshots[i].phase !== snapshots[i - 1].phase);
  }

  const report = await client.report(created);
  const categories = Object.fromEntries(report.categories.map((c) => [c.category, Number(c.fileCount)]));
  assert.deepEqual(categories, { Code: 1, Documents: 2, Spreadsheets: 1 });
  assert.equal(report.topCategories[0], "Documents");

  const undo = await client.undo(created);
  assert.equal((await client.wait(undo)).state, OperationState.SUCCEEDED);
  const after = await client.files.listDirectory({ path: "inbox" });
  assert.deepEqual(after.entries.map((e) => e.path).sort(), Object.keys(files).sort());
});

test("invalid input is INVALID_ARGUMENT naming the field", async () => {
  const client = await loggedIn("ts-errors");
  const escape = await rejects(client.organize("../outside"));
  assert.equal(escape.code, Code.InvalidArgument);
  assert.equal(reasonOf(escape), "PATH_ESCAPE");
  assert.equal(badField(escape), "operation.source_path");

  const upload = await rejects(client.files.uploadSmallFile({ path: "/etc/passwd", content: new Uint8Array([1]) }));
  assert.equal(upload.code, Code.InvalidArgument);
  assert.equal(badField(upload), "path");

  const missing = await rejects(client.operations.getOperation({ name: "operations/00000000-0000-0000-0000-000000000000" }));
  assert.equal(missing.code, Code.NotFound);
});

test("the grpc-web transport works from Node too", async () => {
  const client = connect({ baseUrl: URL_, transport: "grpc-web" });
  const address = email("ts-web");
  await client.register(address, PASSWORD);
  assert.equal((await client.me()).email, address);
  const bad = await rejects(client.organize("inbox", { layoutTemplate: "{nonsense}" }));
  assert.equal(bad.code, Code.InvalidArgument);
  assert.equal(badField(bad), "operation.layout_template");
});

test("page iterators follow next_page_token through every page", async () => {
  const client = await loggedIn("ts-pages");
  const names = Array.from({ length: 7 }, (_, i) => `file-${i}.txt`);
  for (const name of names) await upload(client, `paged/${name}`, name);

  // Raw pages: 7 entries, 2 per page.
  const sizes: number[] = [];
  let lastToken = "x";
  for await (const page of pages(client.files.listDirectory, { path: "paged", pageSize: 2 })) {
    sizes.push(page.entries.length);
    lastToken = page.nextPageToken;
  }
  assert.deepEqual(sizes, [2, 2, 2, 1]);
  assert.equal(lastToken, "");

  // Items: every entry once, in the server's order, whatever the page size.
  const listed: string[] = [];
  for await (const entry of client.files.iterDirectory({ path: "paged", pageSize: 3 })) listed.push(entry.name);
  assert.deepEqual([...listed].sort(), names);
  const one: string[] = [];
  for await (const entry of client.files.iterDirectory({ path: "paged", pageSize: 1 })) one.push(entry.name);
  assert.deepEqual(one, listed);

  // Another service, another item type: API keys one per page.
  for (const label of ["a", "b", "c"]) await client.createApiKey(`key-${label}`);
  const keys: string[] = [];
  for await (const key of client.auth.iterApiKeys({ pageSize: 1 })) keys.push(key.displayName);
  assert.deepEqual([...keys].sort(), ["key-a", "key-b", "key-c"]);

  // A refusal on a later page surfaces from the iterator (a forged page token).
  const forged = await rejects(
    (async () => {
      for await (const _ of client.files.iterDirectory({ path: "paged", pageSize: 2, pageToken: "forged-token" })) void _;
    })(),
  );
  assert.equal(forged.code, Code.InvalidArgument);
  assert.equal(badField(forged), "page_token");

  // Operations, newest first, across pages.
  const dry = await client.organize("paged", { dryRun: true });
  await client.wait(dry);
  const ops: string[] = [];
  for await (const op of client.operations.iterOperations({ pageSize: 1 })) ops.push(op.name);
  assert.deepEqual(ops, [dry.name]);
});

test("responses become JSON with jsonOf (int64 as strings, enums by name)", async () => {
  const client = await loggedIn("ts-json");
  await upload(client, "inbox/a.txt", "alpha");
  await upload(client, "inbox/b.csv", "x,y\n");
  const op = await client.organize("inbox", { destinationPath: "sorted" });
  const last = await client.wait(op);
  assert.equal(last.state, OperationState.SUCCEEDED);

  assert.throws(() => JSON.stringify(last), /BigInt/);
  const json = JSON.parse(jsonString(last)) as { state: string; counters: { filesMoved: string } };
  assert.equal(json.state, "OPERATION_STATE_SUCCEEDED");
  assert.equal(json.counters.filesMoved, "2");
  assert.deepEqual(messageFromJson(operations.WatchOperationResponseSchema, json), last);

  const report = jsonOf(await client.report(op)) as { categories: { category: string; fileCount: string }[] };
  assert.deepEqual(
    report.categories.map((c) => [c.category, c.fileCount]).sort(),
    [["Documents", "1"], ["Spreadsheets", "1"]],
  );
  const operation = jsonOf(await client.operations.getOperation({ name: op.name }), { useProtoFieldName: true }) as Record<string, unknown>;
  assert.equal(operation.name, op.name);
  assert.equal(operation.destination_path, "sorted");
  assert.match(String(operation.create_time), /^\d{4}-\d\d-\d\dT/);
});

test("a session authenticates every RPC but the public ones", async () => {
  const seen: { rpc: string; bearer: boolean }[] = [];
  const client = connect({
    baseUrl: URL_,
    interceptors: [
      (next) => async (req) => {
        seen.push({ rpc: req.method.name, bearer: (req.header.get("authorization") ?? "").startsWith("Bearer ") });
        return next(req);
      },
    ],
  });
  await client.register(email("ts-bearer"), PASSWORD);
  await client.files.listTrash({});
  for await (const _ of client.files.iterCategories()) void _;
  await client.reports.getUsageSummary({});
  assert.deepEqual(seen, [
    { rpc: "Register", bearer: false },
    { rpc: "ListTrash", bearer: true },
    { rpc: "ListCategories", bearer: true },
    { rpc: "GetUsageSummary", bearer: true },
  ]);
});
