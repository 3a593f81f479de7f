// The SDK's Node transfers against a live server whose upload limit is low (run by
// tests/api/typescript_sdk.rs with FILEORG_URL and FILEORG_UPLOAD_LIMIT = RATE_LIMIT_UPLOAD
// per short RATE_LIMIT_WINDOW_SECS): uploadFolder paced by RetryInfo and idempotent,
// importArchive (and importArchiveBytes over grpc-web), downloadArchive / downloadArchiveTo,
// uploadLarge resumed after its connection is cut.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, utimesSync, writeFileSync } from "node:fs";
import { createConnection, createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { randomBytes } from "node:crypto";
import {
  ArchiveFormat,
  Code,
  ConnectError,
  FileKind,
  connect,
  downloadArchive,
  downloadArchiveTo,
  importArchive,
  importArchiveBytes,
  uploadFolder,
  uploadLarge,
  type FileOrganizerClient,
  type WaitNotice,
} from "@fileorganizer/sdk/node";

const URL_ = process.env.FILEORG_URL;
const LIMIT = Number(process.env.FILEORG_UPLOAD_LIMIT);
if (!URL_ || !LIMIT) throw new Error("FILEORG_URL and FILEORG_UPLOAD_LIMIT must be set");
const PASSWORD = "correct horse battery";

async function loggedIn(label: string, baseUrl = URL_!): Promise<{ client: FileOrganizerClient; email: string }> {
  const email = `${label}-${crypto.randomUUID().slice(0, 8)}@example.com`;
  const client = connect({ baseUrl });
  await client.register(email, PASSWORD);
  return { client, email };
}

/** Every file path under `path` on the server, sorted. */
async function walk(client: FileOrganizerClient, path: string): Promise<string[]> {
  const out: string[] = [];
  const pending = [path];
  while (pending.length > 0) {
    const res = await client.files.listDirectory({ path: pending.pop()!, pageSize: 1000 });
    for (const e of res.entries) (e.kind === FileKind.DIRECTORY ? pending : out).push(e.path);
  }
  return out.sort();
}

async function download(client: FileOrganizerClient, path: string): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const body of client.files.downloadFile({ path })) parts.push(body.data);
  return Buffer.concat(parts);
}

test("uploadFolder waits out the rate limit and never duplicates", async () => {
  const { client } = await loggedIn("ts-folder");
  const local = mkdtempSync(join(tmpdir(), "ts-folder-"));
  const count = 3 * LIMIT + 1; // needs at least four windows: the limit must be met
  const expected: string[] = [];
  for (let i = 0; i < count; i++) {
    const sub = i % 2 ? "a" : "a/b";
    mkdirSync(join(local, sub), { recursive: true });
    const name = `f${String(i).padStart(2, "0")}.txt`;
    writeFileSync(join(local, sub, name), `file ${i}\n`.repeat(i + 1));
    expected.push(`up/${sub}/${name}`);
  }
  utimesSync(join(local, "a/b/f00.txt"), 1_500_000_000, 1_500_000_000);
  const notices: WaitNotice[] = [];
  const first = await uploadFolder(client, local, "up", { concurrency: 3, onWait: (n) => notices.push(n) });
  assert.deepEqual([first.uploaded, first.identical], [count, 0]);
  assert.ok(first.waits >= 1 && notices.length === first.waits, "the limit was never met: nothing was paced");
  assert.ok(notices.every((n) => n.delayMs > 0));
  assert.deepEqual(await walk(client, "up"), expected.sort());
  const f00 = first.files.find((f) => f.path === "up/a/b/f00.txt");
  assert.equal(f00?.modifyTime?.seconds, 1_500_000_000n);

  const second = await uploadFolder(client, local, "up", { concurrency: 3 });
  assert.deepEqual([second.uploaded, second.identical], [0, count]);
  assert.deepEqual(await walk(client, "up"), expected.sort());
});

test("importArchive extracts a tar, and importing it again copies nothing", async () => {
  const { client } = await loggedIn("ts-import");
  const dir = mkdtempSync(join(tmpdir(), "ts-import-"));
  mkdirSync(join(dir, "src/pics/deep"), { recursive: true });
  const big = randomBytes(300_000);
  writeFileSync(join(dir, "src/pics/one.bin"), big);
  writeFileSync(join(dir, "src/pics/deep/two.txt"), "two\n");
  execFileSync("tar", ["-C", join(dir, "src"), "-cf", join(dir, "a.tar"), "pics"]);
  const res = await importArchive(client, join(dir, "a.tar"), "imported");
  assert.equal(res.fileCount, 2n);
  assert.equal(res.format, ArchiveFormat.TAR);
  assert.deepEqual(await walk(client, "imported"), ["imported/pics/deep/two.txt", "imported/pics/one.bin"]);
  assert.ok((await download(client, "imported/pics/one.bin")).equals(big));

  const again = await importArchive(client, readFileSync(join(dir, "a.tar")), "imported");
  assert.equal(again.fileCount, 0n);
  assert.equal(again.skippedCount, 2n);
  assert.deepEqual(await walk(client, "imported"), ["imported/pics/deep/two.txt", "imported/pics/one.bin"]);
});

test("downloadArchive and downloadArchiveTo: a folder out as zip and tar, over gRPC and grpc-web", async () => {
  const { client, email } = await loggedIn("ts-export");
  const dir = mkdtempSync(join(tmpdir(), "ts-export-"));
  mkdirSync(join(dir, "src/pics/deep"), { recursive: true });
  const big = randomBytes(2_500_000);
  writeFileSync(join(dir, "src/pics/one.bin"), big);
  writeFileSync(join(dir, "src/pics/deep/two.txt"), "two\n");
  execFileSync("tar", ["-C", join(dir, "src"), "-cf", join(dir, "a.tar"), "pics"]);
  assert.equal((await importArchive(client, join(dir, "a.tar"), "out")).fileCount, 2n);

  // Into a directory: the server's name, never replacing a file there.
  mkdirSync(join(dir, "saved"));
  const saved = await downloadArchiveTo(client, join(dir, "saved"), { path: "out/pics" });
  assert.equal(saved.path, join(dir, "saved/pics.zip"));
  const listed = execFileSync("python3", ["-c", "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); " +
    "assert z.testzip() is None; print(' '.join(sorted(z.namelist())))", saved.path]).toString().trim();
  assert.equal(listed, "deep/ deep/two.txt one.bin");
  await assert.rejects(downloadArchiveTo(client, join(dir, "saved"), { path: "out/pics" }), /EEXIST/);

  // As bytes over grpc-web (the console's way), a tar.
  const web = connect({ baseUrl: URL_!, transport: "grpc-web" });
  await web.login(email, PASSWORD);
  const parts: Uint8Array[] = [];
  let name: string | undefined;
  for await (const chunk of downloadArchive(web, { path: "out", format: ArchiveFormat.TAR, onName: (n) => (name = n) })) {
    parts.push(chunk);
  }
  assert.equal(name, "out.tar");
  assert.ok(parts.length >= 2, `${parts.length} chunks`);
  writeFileSync(join(dir, "out.tar"), Buffer.concat(parts));
  const names = execFileSync("tar", ["-tf", join(dir, "out.tar")]).toString().trim().split("\n").sort();
  assert.deepEqual(names, ["pics/", "pics/deep/", "pics/deep/two.txt", "pics/one.bin"]);
  execFileSync("tar", ["-C", dir, "-xf", join(dir, "out.tar"), "pics/one.bin"]);
  assert.ok(readFileSync(join(dir, "pics/one.bin")).equals(big));

  // A missing folder: NOT_FOUND, and no file left behind.
  await assert.rejects(downloadArchiveTo(client, join(dir, "missing.zip"), { path: "nope" }), (e: unknown) =>
    e instanceof ConnectError && e.code === Code.NotFound);
  assert.ok(!existsSync(join(dir, "missing.zip")));
});

test("importArchiveBytes: one ImportArchive over grpc-web (the console's way), paced", async () => {
  const email = `ts-web-${crypto.randomUUID().slice(0, 8)}@example.com`;
  const web = connect({ baseUrl: URL_!, transport: "grpc-web" });
  await web.register(email, PASSWORD);
  const dir = mkdtempSync(join(tmpdir(), "ts-web-"));
  mkdirSync(join(dir, "src/d"), { recursive: true });
  const big = randomBytes(2_500_000); // several messages
  writeFileSync(join(dir, "src/d/big.bin"), big);
  writeFileSync(join(dir, "src/small.txt"), "small\n");
  execFileSync("tar", ["-C", join(dir, "src"), "-cf", join(dir, "w.tar"), "."]);
  const archive = new Uint8Array(readFileSync(join(dir, "w.tar")));
  const res = await importArchiveBytes(web, archive, "web");
  assert.equal(res.fileCount, 2n);
  assert.ok((await download(web, "web/d/big.bin")).equals(big));
  // Use up the upload limit, then import again: it waits (RetryInfo) and stores no copies.
  // A small archive: the whole request is sent before the refusal comes, so the RetryInfo is
  // read (a large body over HTTP/1.1 loses it; importArchiveBytes then backs off instead).
  execFileSync("tar", ["-C", join(dir, "src"), "-cf", join(dir, "small.tar"), "small.txt"]);
  const small = new Uint8Array(readFileSync(join(dir, "small.tar")));
  const waits: WaitNotice[] = [];
  for (let i = 0; i < LIMIT; i++) {
    const again = await importArchiveBytes(web, small, "web", { onWait: (n) => waits.push(n) });
    assert.equal(again.fileCount, 0n);
  }
  assert.ok(waits.length >= 1, "the limit was never met");
  // The server's RetryInfo (at most the 3 s window, rounded up to whole seconds), or the
  // SDK's own backoff when a refused large body closed the connection (1, 2, 4 … 30 s).
  assert.ok(waits.every((w) => w.attempt >= 1 && w.delayMs > 0 && w.delayMs <= 30000), JSON.stringify(waits));
  assert.deepEqual(await walk(web, "web"), ["web/d/big.bin", "web/small.txt"]);
  // A refusal that is not a rate limit is thrown at once (here: not an archive).
  await assert.rejects(importArchiveBytes(web, new TextEncoder().encode("not an archive at all"), "web2"), (err) => {
    assert.ok(err instanceof ConnectError && err.code === Code.InvalidArgument, String(err));
    return true;
  });
});

/** A TCP proxy on 127.0.0.1 that destroys every connection once, after `cutAfter` bytes went
 * from the client to the server; later connections pass untouched. */
function cuttingProxy(upstreamPort: number, cutAfter: number) {
  const sockets = new Set<Socket>();
  const state = { forwarded: 0, cuts: 0 };
  const server = createServer((client) => {
    const upstream = createConnection({ host: "127.0.0.1", port: upstreamPort });
    sockets.add(client).add(upstream);
    client.on("data", (data) => {
      upstream.write(data);
      state.forwarded += data.length;
      if (state.cuts === 0 && state.forwarded >= cutAfter) {
        state.cuts = 1;
        for (const s of sockets) s.destroy();
        sockets.clear();
      }
    });
    upstream.on("data", (data) => client.write(data));
    for (const [a, b] of [
      [client, upstream],
      [upstream, client],
    ]) {
      a.on("close", () => b.destroy());
      a.on("error", () => b.destroy());
    }
  });
  /** Stops listening and ends every connection (a live one would keep node running). */
  const close = () => {
    server.close();
    for (const s of sockets) s.destroy();
  };
  return { server, state, close };
}

test("uploadLarge resumes by itself after the connection is cut mid-file", async () => {
  const upstreamPort = Number(new URL(URL_!).port);
  const proxy = cuttingProxy(upstreamPort, 5 * 1024 * 1024);
  await new Promise<void>((resolve) => proxy.server.listen(0, "127.0.0.1", resolve));
  const port = (proxy.server.address() as { port: number }).port;
  try {
    const { client: direct, email } = await loggedIn("ts-large");
    const viaProxy = connect({ baseUrl: `http://127.0.0.1:${port}` });
    await viaProxy.login(email, PASSWORD);
    const dir = mkdtempSync(join(tmpdir(), "ts-large-"));
    const data = randomBytes(12 * 1024 * 1024 + 5);
    writeFileSync(join(dir, "big.iso"), data);
    const resumed: number[] = [];
    const done = await uploadLarge(viaProxy, join(dir, "big.iso"), "inbox/big.iso", {
      chunkSize: 4 * 1024 * 1024,
      onResume: (offset) => resumed.push(offset),
    });
    assert.equal(proxy.state.cuts, 1, "the proxy never cut the connection");
    assert.ok(resumed.length >= 1 && resumed.every((o) => o >= 0 && o < data.length), String(resumed));
    assert.equal(done.file?.path, "inbox/big.iso");
    assert.equal(done.file?.sizeBytes, BigInt(data.length));
    assert.ok((await download(direct, "inbox/big.iso")).equals(data), "the stored bytes differ");
    const again = await uploadLarge(direct, join(dir, "big.iso"), "inbox/big.iso");
    assert.ok(again.skippedIdentical);
    assert.deepEqual(await walk(direct, "inbox"), ["inbox/big.iso"]);
  } finally {
    proxy.close();
  }
});
