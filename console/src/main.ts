// FileOrganizer Pro console: a single page that talks to the service only over grpc-web,
// through @fileorganizer/sdk (browser entry: no native gRPC). Plain DOM, no framework.
import {
  connect,
  errorDetails,
  FileConflictPolicy,
  FileKind,
  OperationState,
  files as filesPb,
  type FileOrganizerClient,
  type operations,
} from "@fileorganizer/sdk";
import { drawCategoryChart } from "./chart";
import "./style.css";

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const input = (id: string) => $<HTMLInputElement>(id);
const button = (id: string) => $<HTMLButtonElement>(id);

let client: FileOrganizerClient | undefined;
let current: operations.Operation | undefined;

/** The API's grpc-web origin, set once by loadConfig(). */
let apiUrl = "";

/**
 * Reads the API origin from the console server's own configuration (`config.json`, from
 * CONSOLE_API_URL), never from the page's URL: a link to the genuine console must not be able
 * to send the credentials typed into it anywhere else. The server's CSP (connect-src) names the
 * same origin, so the browser would refuse any other one anyway.
 */
async function loadConfig(): Promise<string> {
  const response = await fetch("./config.json", { cache: "no-store" });
  if (!response.ok) throw new Error(`the console's config.json answered HTTP ${response.status}`);
  const config = (await response.json()) as { apiUrl?: unknown };
  if (typeof config.apiUrl !== "string" || !/^https?:\/\/[^/?#@\s]+$/.test(config.apiUrl)) {
    throw new Error("the console's config.json names no API origin (apiUrl)");
  }
  return config.apiUrl;
}

/** The status line; actions set it last, so it stays until the next action. */
function status(text: string): void {
  $("status").textContent = text;
}

function showError(err: unknown): void {
  const box = $("error");
  const d = errorDetails(err);
  const field = d.fieldViolations[0]?.field;
  box.textContent = `${d.codeName}${d.reason ? ` (${d.reason})` : ""}: ${d.message}${field ? ` [field: ${field}]` : ""}`;
  box.dataset.code = d.codeName;
  box.dataset.reason = d.reason;
  box.hidden = false;
}

/** Runs a UI action: clears the last error, shows any new one, never throws. */
function action(fn: () => Promise<void>): () => Promise<void> {
  return async () => {
    $("error").hidden = true;
    try {
      await fn();
    } catch (err) {
      showError(err);
    }
  };
}

function api(): FileOrganizerClient {
  if (!client) throw new Error("not signed in");
  return client;
}

// ---------------------------------------------------------------- sign in
async function signIn(register: boolean): Promise<void> {
  const form = $<HTMLFormElement>("login-form");
  if (!form.reportValidity()) return;
  if (!apiUrl) throw new Error("the console has no API origin yet");
  const next = connect({ baseUrl: apiUrl, transport: "grpc-web" });
  const user = register
    ? await next.register(input("email").value, input("password").value)
    : await next.login(input("email").value, input("password").value);
  client = next;
  $("who").textContent = user.email;
  $("login-panel").hidden = true;
  $("app").hidden = false;
  button("logout").hidden = false;
  await browse(input("path").value);
  status(register ? "Registered and signed in." : "Signed in.");
}

async function signOut(): Promise<void> {
  await api().logout().catch(() => undefined);
  client = undefined;
  $("app").hidden = true;
  $("login-panel").hidden = false;
  button("logout").hidden = true;
  $("who").textContent = "";
  status("Signed out.");
}

// ---------------------------------------------------------------- storage
function humanSize(bytes: bigint): string {
  const n = Number(bytes);
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

async function browse(path: string): Promise<void> {
  const entries: filesPb.FileEntry[] = [];
  let pageToken = "";
  do {
    const page = await api().files.listDirectory({ path, pageToken, pageSize: 500 });
    entries.push(...page.entries);
    pageToken = page.nextPageToken;
  } while (pageToken);
  input("path").value = path;
  const body = $("listing").querySelector("tbody")!;
  body.replaceChildren(
    ...entries.map((entry) => {
      const row = document.createElement("tr");
      const dir = entry.kind === FileKind.DIRECTORY;
      row.className = dir ? "dir" : "file";
      row.dataset.path = entry.path;
      for (const text of [entry.name, dir ? "folder" : entry.category || "file", dir ? "" : humanSize(entry.sizeBytes)]) {
        const cell = document.createElement("td");
        cell.textContent = text;
        row.append(cell);
      }
      if (dir) row.firstElementChild!.addEventListener("click", action(() => browse(entry.path)));
      return row;
    }),
  );
  status(`${path || "(root)"}: ${entries.length} entries`);
}

async function upload(): Promise<void> {
  const chosen = [...(input("upload-file").files ?? [])];
  if (chosen.length === 0) throw new Error("choose a file first");
  const dir = input("upload-dir").value.replace(/\/+$/, "");
  for (const file of chosen) {
    const content = new Uint8Array(await file.arrayBuffer());
    // UploadSmallFile: one message, since grpc-web has no client streaming.
    await api().files.uploadSmallFile({
      path: dir ? `${dir}/${file.name}` : file.name,
      content,
      conflictPolicy: FileConflictPolicy.RENAME,
    });
  }
  await browse(dir);
  status(`Uploaded ${chosen.length} file(s) into ${dir || "(root)"}.`);
}

// ---------------------------------------------------------------- organize
function setProgress(percent: number): void {
  const clamped = Math.max(0, Math.min(100, percent));
  const bar = $("progress");
  bar.setAttribute("aria-valuenow", String(Math.round(clamped)));
  (bar.querySelector(".fill") as HTMLElement).style.width = `${clamped}%`;
  $("progress-text").textContent = `${Math.round(clamped)} %`;
}

function showOperation(name: string, state: OperationState): void {
  $("op-name").textContent = name;
  $("op-state").textContent = OperationState[state];
  $("op-state").dataset.state = OperationState[state];
}

/** Follows WatchOperation until the operation stops, feeding the progress bar. */
async function follow(op: { name: string }): Promise<operations.WatchOperationResponse> {
  const last = await (async () => {
    let snapshot: operations.WatchOperationResponse | undefined;
    for await (snapshot of api().watch(op)) {
      showOperation(op.name, snapshot.state);
      setProgress(snapshot.progressPercent);
    }
    return snapshot;
  })();
  if (!last) throw new Error("the progress stream ended without a snapshot");
  return last;
}

async function showPlan(name: string): Promise<void> {
  const records = await api().files.listFileRecords({ parent: name, pageSize: 1000 });
  const body = $("plan").querySelector("tbody")!;
  body.replaceChildren(
    ...records.fileRecords.map((r) => {
      const row = document.createElement("tr");
      row.className = "record";
      row.dataset.status = filesPb.FileRecordStatus[r.status];
      for (const text of [r.originalPath, r.newPath, r.category, filesPb.FileRecordStatus[r.status]]) {
        const cell = document.createElement("td");
        cell.textContent = text;
        row.append(cell);
      }
      return row;
    }),
  );
}

async function preview(): Promise<void> {
  button("apply").disabled = button("undo").disabled = true;
  $("report").hidden = true;
  setProgress(0);
  current = await api().organize(input("source").value, {
    destinationPath: input("destination").value,
    dryRun: true,
  });
  showOperation(current.name, current.state);
  const last = await follow(current);
  if (last.state !== OperationState.PLANNED) throw new Error(`the dry run ended ${OperationState[last.state]}`);
  await showPlan(current.name);
  button("apply").disabled = false;
  status(`Planned ${last.counters?.filesPlanned ?? 0n} move(s); nothing was moved yet.`);
}

async function apply(): Promise<void> {
  if (!current) return;
  button("apply").disabled = true;
  setProgress(0);
  await api().apply(current);
  const last = await follow(current);
  await showPlan(current.name);
  if (last.state !== OperationState.SUCCEEDED) throw new Error(`the operation ended ${OperationState[last.state]}`);
  await showReport(current.name);
  button("undo").disabled = false;
  await browse(input("destination").value || input("source").value);
  status(`Moved ${last.counters?.filesMoved ?? 0n} file(s).`);
}

async function showReport(name: string): Promise<void> {
  const report = await api().report(name);
  $("report-summary").textContent =
    `${report.totals?.filesMoved ?? 0n} files moved, ${report.duplicateFileCount} duplicates, ` +
    `${report.categories.length} categories (top: ${report.topCategories.join(", ") || "none"})`;
  drawCategoryChart($("category-chart") as unknown as SVGSVGElement, report.categories);
  $("report").hidden = false;
}

async function undo(): Promise<void> {
  if (!current) return;
  button("undo").disabled = true;
  const undoOp = await api().undo(current);
  const last = await follow(undoOp);
  if (last.state !== OperationState.SUCCEEDED) throw new Error(`the undo ended ${OperationState[last.state]}`);
  await browse(input("source").value);
  status("Undone: every file is back where it was.");
}

// ---------------------------------------------------------------- wiring
// Sign-in stays disabled until the API origin is known.
void action(async () => {
  apiUrl = await loadConfig();
  $("api-url").textContent = apiUrl;
  button("login").disabled = button("register").disabled = false;
})();
$("login-form").addEventListener("submit", (e) => {
  e.preventDefault();
  void action(() => signIn(false))();
});
button("register").addEventListener("click", action(() => signIn(true)));
button("logout").addEventListener("click", action(signOut));
$("browse-form").addEventListener("submit", (e) => {
  e.preventDefault();
  void action(() => browse(input("path").value))();
});
button("up").addEventListener(
  "click",
  action(() => browse(input("path").value.split("/").slice(0, -1).join("/"))),
);
$("upload-form").addEventListener("submit", (e) => {
  e.preventDefault();
  void action(upload)();
});
$("organize-form").addEventListener("submit", (e) => {
  e.preventDefault();
  void action(preview)();
});
button("apply").addEventListener("click", action(apply));
button("undo").addEventListener("click", action(undo));
