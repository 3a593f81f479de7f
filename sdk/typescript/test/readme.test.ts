// Every ```ts example of sdk/typescript/README.md against a live server (node:test, run by
// tests/api/typescript_sdk.rs with FILEORG_URL). The examples form one session, in order: they
// are joined into one module (their imports merged) and run with the README's
// `http://localhost:50051` and `me@example.com` replaced by the test server and a fresh
// address. The program must type-check (strict tsc, as a user's module would); a line
// `console.log(…); // → text` must print exactly `text` every time it runs, and must run at
// least once. A second test checks the README shows every wrapper: each
// method of FileOrganizerClient, each page iterator, each function the package exports.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { test } from "node:test";
import * as browserEntry from "@fileorganizer/sdk";
import * as nodeEntry from "@fileorganizer/sdk/node";
import { FileOrganizerClient, SERVICES } from "@fileorganizer/sdk/node";
import { iterName, pageItemsField } from "../src/pages.js";

const URL_ = process.env.FILEORG_URL;
if (!URL_) throw new Error("FILEORG_URL is not set");
const here = dirname(fileURLToPath(import.meta.url));
const readme = readFileSync(join(here, "..", "README.md"), "utf8");
const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]);

/** Exported functions that are no wrapper of an RPC: classes and re-exports of Connect. */
const NOT_WRAPPERS = new Set(["ConnectError", "FileOrganizerClient"]);

interface Expectation {
  line: number;
  text: string;
  /** The README line, for messages. */
  source: string;
}

/** One module of all blocks: merged imports first, then the code with checked console.logs. */
function program(address: string): { source: string; expectations: Expectation[] } {
  const imports = new Map<string, Set<string>>();
  const body: string[] = [];
  const expectations: Expectation[] = [];
  const code = blocks.join("\n").replaceAll("http://localhost:50051", URL_!).replaceAll("me@example.com", address);
  // Multi-line imports are joined first.
  const statements = code.replace(/import\s*\{([^}]*)\}\s*from\s*("[^"]+");?/g, (_, names: string, from: string) => {
    const set = imports.get(from) ?? new Set<string>();
    for (const name of names.split(",").map((n) => n.trim()).filter(Boolean)) set.add(name);
    imports.set(from, set);
    return "";
  });
  assert.doesNotMatch(statements, /^\s*import\s/m, "only `import { … } from \"…\"` imports are supported");
  for (const [index, line] of statements.split("\n").entries()) {
    const expected = /\/\/ → (.*)$/.exec(line);
    if (expected && line.includes("console.log(")) {
      expectations.push({ line: index, text: expected[1].trim(), source: line.trim() });
      body.push(line.replace("console.log(", `__readme.check(${index}, `));
    } else {
      assert.ok(!expected, `README line with \`// →\` but no console.log: ${line}`);
      body.push(line);
    }
  }
  const header = [...imports].map(([from, names]) => `import { ${[...names].join(", ")} } from ${from};`);
  const prelude = "const __readme = (globalThis as any).__readme;";
  return { source: [...header, prelude, ...body].join("\n"), expectations };
}

function numbered(source: string): string {
  return source.split("\n").map((line, i) => `${String(i + 1).padStart(3)} ${line}`).join("\n");
}

test("every README example runs against a live server and prints what it says", async () => {
  assert.ok(blocks.length >= 6, `only ${blocks.length} examples`);
  const address = `readme-${crypto.randomUUID().slice(0, 8)}@example.com`;
  const { source, expectations } = program(address);
  assert.ok(expectations.length >= 30, `only ${expectations.length} checked lines`);
  const wanted = new Map(expectations.map((e) => [e.line, e]));
  const ran = new Set<number>();
  const wrong: string[] = [];
  (globalThis as Record<string, unknown>).__readme = {
    check(line: number, ...args: unknown[]) {
      const got = args.map(String).join(" ");
      ran.add(line);
      const want = wanted.get(line)!;
      if (got !== want.text) wrong.push(`${want.source}\n    printed ${JSON.stringify(got)}`);
    },
  };
  // Beside the package, so that its imports resolve to the built SDK.
  const file = join(here, `.readme-examples-${process.pid}.mts`);
  writeFileSync(file, source);
  let typeErrors: string | undefined;
  try {
    const tsc = join(here, "..", "..", "..", "node_modules", ".bin", "tsc");
    const options = ["--noEmit", "--strict", "--skipLibCheck", "--target", "es2022", "--module", "nodenext", "--moduleResolution", "nodenext", "--types", "node"];
    try {
      execFileSync(tsc, [...options, file], { encoding: "utf8" });
    } catch (err) {
      typeErrors = (err as { stdout?: string }).stdout ?? String(err);
    }
    if (typeErrors === undefined) await import(pathToFileURL(file).href);
  } catch (err) {
    assert.fail(`the README examples threw: ${err instanceof Error ? err.stack : String(err)}\n--- program ---\n${numbered(source)}`);
  } finally {
    rmSync(file, { force: true });
  }
  if (typeErrors !== undefined) assert.fail(`the README examples do not type-check:\n${typeErrors}\n--- program ---\n${numbered(source)}`);
  assert.deepEqual(wrong, []);
  const silent = expectations.filter((e) => !ran.has(e.line)).map((e) => `never ran: ${e.source}`);
  assert.deepEqual(silent, []);
});

test("the README shows every wrapper in an example", () => {
  const code = blocks.join("\n");
  const shown = (name: string) => new RegExp(`\\b${name}\\b`).test(code);
  const wrappers = new Set<string>();
  for (const name of Object.getOwnPropertyNames(FileOrganizerClient.prototype)) {
    if (name !== "constructor") wrappers.add(`client.${name}`);
  }
  for (const [property, service] of Object.entries(SERVICES)) {
    for (const method of service.methods) if (pageItemsField(method)) wrappers.add(`client.${property}.${iterName(method)}`);
  }
  for (const entry of [nodeEntry, browserEntry] as Record<string, unknown>[]) {
    for (const [name, value] of Object.entries(entry)) {
      if (typeof value === "function" && !NOT_WRAPPERS.has(name)) wrappers.add(name);
    }
  }
  assert.ok(wrappers.size >= 40, `only ${wrappers.size} wrappers`);
  const missing = [...wrappers].filter((w) => !shown(w.split(".").pop()!));
  assert.deepEqual(missing, [], "wrappers no README example shows");
});
