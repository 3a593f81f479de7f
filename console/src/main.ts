// FileOrganizer Pro console: a single page that talks to the service only over grpc-web,
// through @fileorganizer/sdk (browser entry: no native gRPC). Plain DOM, no framework.
import {
  connect,
  errorDetails,
  FileConflictPolicy,
  FileKind,
  importArchiveBytes,
  paced,
  type WaitNotice,
  files as filesPb,
  type FileOrganizerClient,
  type auth,
} from "@fileorganizer/sdk";
import { hideSecret, initApiKeys, showApiKeys } from "./apikeys";
import { initAutomations, showAutomations } from "./automations";
import { initCategories, showCategories } from "./categories";
import { downloadFolderZip } from "./download";
import { initOperations, showOperations } from "./operations";
import { initOrganize, openOperation } from "./organize";
import { initProfile, showProfile } from "./profile";
import { initReport } from "./report";
import { initRules, showRules } from "./rules";
import { initSearch, showSearch } from "./search";
import { forgetSession, keepSession, keptRefreshToken } from "./session";
import { fileActions, initTrash, showTrash } from "./trash";
import { $, fillRows, humanSize, type Ui } from "./ui";
import { initUsage, showUsage } from "./usage";
import { tarBlob } from "./tar";
import "./style.css";

const input = (id: string) => $<HTMLInputElement>(id);
const button = (id: string) => $<HTMLButtonElement>(id);

let client: FileOrganizerClient | undefined;

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
      // The status line said how the last action went: under an error it would contradict it.
      status("");
      showError(err);
    }
  };
}

function api(): FileOrganizerClient {
  if (!client) throw new Error("not signed in");
  return client;
}

// ---------------------------------------------------------------- sign in
/**
 * A client whose session is kept for a reload (src/session.ts: the refresh token in this tab's
 * sessionStorage, replaced at every rotation; the access token only in the client's memory).
 */
function newClient(): FileOrganizerClient {
  if (!apiUrl) throw new Error("the console has no API origin yet");
  return connect({ baseUrl: apiUrl, transport: "grpc-web", onSession: keepSession });
}

async function signIn(register: boolean): Promise<void> {
  const form = $<HTMLFormElement>("login-form");
  if (!form.reportValidity()) return;
  const next = newClient();
  const user = register
    ? await next.register(input("email").value, input("password").value)
    : await next.login(input("email").value, input("password").value);
  input("password").value = "";
  await enter(next, user);
  status(register ? "Registered and signed in." : "Signed in.");
}

async function enter(next: FileOrganizerClient, user: auth.User): Promise<void> {
  client = next;
  $("who").textContent = user.displayName ? `${user.displayName} <${user.email}>` : user.email;
  $("login-panel").hidden = true;
  $("app").hidden = false;
  button("logout").hidden = false;
  await browse(input("path").value);
}

/** After a reload: the session kept in this tab, if any, rotated for a fresh pair. */
async function resume(): Promise<void> {
  const kept = keptRefreshToken();
  if (!kept) return;
  const next = newClient();
  let user: auth.User;
  try {
    user = await next.resume(kept);
  } catch (err) {
    forgetSession();
    status("Your session has ended; sign in again.");
    throw err;
  }
  await enter(next, user);
  status("Signed in (session resumed).");
}

async function signOut(): Promise<void> {
  await api().logout().catch(() => undefined);
  // Even when the server could not be told: this tab forgets the session.
  forgetSession();
  client = undefined;
  $("app").hidden = true;
  $("login-panel").hidden = false;
  button("logout").hidden = true;
  $("who").textContent = "";
  status("Signed out.");
}

// ---------------------------------------------------------------- storage
async function browse(path: string): Promise<void> {
  const entries: filesPb.FileEntry[] = [];
  let pageToken = "";
  do {
    const page = await api().files.listDirectory({ path, pageToken, pageSize: 500 });
    entries.push(...page.entries);
    pageToken = page.nextPageToken;
  } while (pageToken);
  input("path").value = path;
  const body = $<HTMLTableElement>("listing").tBodies[0];
  fillRows(
    body,
    entries.map((entry) => {
      const row = document.createElement("tr");
      const dir = entry.kind === FileKind.DIRECTORY;
      row.className = dir ? "dir" : "file";
      row.dataset.path = entry.path;
      for (const text of [entry.name, dir ? "(folder)" : entry.category || "–", dir ? "" : humanSize(entry.sizeBytes)]) {
        const cell = document.createElement("td");
        cell.textContent = text;
        row.append(cell);
      }
      row.append(fileActions(entry));
      if (dir) row.firstElementChild!.addEventListener("click", action(() => browse(entry.path)));
      return row;
    }),
    "This folder is empty.",
  );
  status(`${path || "(root)"}: ${entries.length} entries`);
}

// ---------------------------------------------------------------- uploads
/**
 * More files than this go as ONE ImportArchive (a tar built here) instead of one upload each:
 * the server allows 10 uploads a minute per user by default, and an import counts once.
 */
const ARCHIVE_ABOVE = 5;

interface Picked {
  /** Path relative to the upload folder (`sub/name` for a chosen or dropped folder). */
  path: string;
  file: File;
}

/** What was chosen or dropped last (the file inputs are read when it is empty). */
let picked: Picked[] = [];

function pickedFromInputs(): Picked[] {
  const folder = [...(input("upload-folder").files ?? [])];
  const files = folder.length > 0 ? folder : [...(input("upload-file").files ?? [])];
  return files.map((file) => ({ path: file.webkitRelativePath || file.name, file }));
}

/** Every file under a dropped entry (folders walked, depth-bounded, iteratively). */
async function droppedFiles(roots: FileSystemEntry[]): Promise<Picked[]> {
  const out: Picked[] = [];
  const pending: { entry: FileSystemEntry; depth: number }[] = roots.map((entry) => ({ entry, depth: 0 }));
  while (pending.length > 0) {
    const { entry, depth } = pending.pop()!;
    if (entry.isFile) {
      const file = await new Promise<File>((ok, fail) => (entry as FileSystemFileEntry).file(ok, fail));
      out.push({ path: entry.fullPath.replace(/^\/+/, ""), file });
    } else if (entry.isDirectory && depth < 64) {
      const reader = (entry as FileSystemDirectoryEntry).createReader();
      for (;;) {
        const batch = await new Promise<FileSystemEntry[]>((ok, fail) => reader.readEntries(ok, fail));
        if (batch.length === 0) break;
        pending.push(...batch.map((child) => ({ entry: child, depth: depth + 1 })));
      }
    }
  }
  return out.sort((a, b) => (a.path < b.path ? -1 : 1));
}

function showPicked(list: Picked[]): void {
  $("upload-picked").textContent = list.length ? `${list.length} file(s) chosen` : "";
}

/** One row per file: its state (queued, waiting, uploading, done, identical, failed). */
function uploadRows(list: Picked[]): Map<string, HTMLLIElement> {
  const rows = new Map<string, HTMLLIElement>();
  $("upload-list").replaceChildren(
    ...list.map(({ path }) => {
      const li = document.createElement("li");
      li.dataset.path = path;
      rows.set(path, li);
      return li;
    }),
  );
  return rows;
}

function setRow(li: HTMLLIElement | undefined, state: string, text: string): void {
  if (!li) return;
  li.dataset.state = state;
  li.textContent = `${li.dataset.path}: ${text}`;
}

function uploadSummary(done: number, total: number, extra = ""): void {
  const summary = $("upload-summary");
  summary.dataset.done = String(done);
  summary.dataset.total = String(total);
  summary.textContent = `${done} of ${total} uploaded${extra ? ` (${extra})` : ""}`;
}

/** Shows a wait for the upload limit; the count stays on the page (data-waits). */
function showWait(notice: WaitNotice): void {
  const box = $("upload-wait");
  box.dataset.waits = String(Number(box.dataset.waits ?? "0") + 1);
  box.textContent = `Upload limit reached: waiting ${Math.ceil(notice.delayMs / 1000)} s as the server asked (RetryInfo), then going on.`;
  box.hidden = false;
}

async function upload(): Promise<void> {
  const chosen = picked.length > 0 ? picked : pickedFromInputs();
  if (chosen.length === 0) throw new Error("choose files or a folder first");
  const dir = input("upload-dir").value.replace(/\/+$/, "");
  const mode = $<HTMLSelectElement>("upload-mode").value;
  const asArchive = mode === "archive" || (mode === "auto" && chosen.length > ARCHIVE_ABOVE);
  const rows = uploadRows(chosen);
  $("upload-wait").hidden = true;
  $("upload-wait").dataset.waits = "0";
  uploadSummary(0, chosen.length);
  let identical = 0;
  if (asArchive) {
    for (const { path } of chosen) setRow(rows.get(path), "uploading", "in the archive");
    status(`Packing ${chosen.length} file(s) into one archive…`);
    const tar = tarBlob(chosen.map(({ path, file }) => ({ path, file, lastModified: file.lastModified })));
    status(`Importing ${chosen.length} file(s) as one archive…`);
    const res = await importArchiveBytes(api(), new Uint8Array(await tar.arrayBuffer()), dir, { onWait: showWait });
    const skipped = new Map(res.skippedEntries.map((e) => [e.name.replace(/^\.\//, ""), e]));
    let done = 0;
    for (const { path } of chosen) {
      const skip = skipped.get(path);
      if (!skip) {
        setRow(rows.get(path), "done", "uploaded");
        done++;
      } else if (skip.reason === filesPb.ArchiveEntrySkipReason.IDENTICAL) {
        setRow(rows.get(path), "identical", "already there, not uploaded again");
        identical++;
        done++;
      } else {
        setRow(rows.get(path), "failed", `skipped: ${filesPb.ArchiveEntrySkipReason[skip.reason]} ${skip.detail}`);
      }
    }
    uploadSummary(done, chosen.length, identical ? `${identical} already there` : "");
  } else {
    let done = 0;
    for (const { path, file } of chosen) {
      const li = rows.get(path);
      setRow(li, "uploading", "uploading");
      const content = new Uint8Array(await file.arrayBuffer());
      // UploadSmallFile: one message, since grpc-web has no client streaming. SKIP_IF_IDENTICAL:
      // pressing Upload again stores no copies.
      const res = await paced(
        path,
        () =>
          api().files.uploadSmallFile({
            path: dir ? `${dir}/${path}` : path,
            content,
            conflictPolicy: FileConflictPolicy.SKIP_IF_IDENTICAL,
            modifyTime: { seconds: BigInt(Math.floor(file.lastModified / 1000)), nanos: 0 },
          }),
        {
          onWait: (notice) => {
            setRow(li, "waiting", `waiting ${Math.ceil(notice.delayMs / 1000)} s for the upload limit`);
            showWait(notice);
          },
        },
      );
      if (res.skippedIdentical) identical++;
      setRow(li, res.skippedIdentical ? "identical" : "done", res.skippedIdentical ? "already there" : "uploaded");
      uploadSummary(++done, chosen.length, identical ? `${identical} already there` : "");
    }
  }
  await browse(dir);
  status(`Uploaded ${chosen.length} file(s) into ${dir || "(root)"}.`);
}

// ---------------------------------------------------------------- screens
/** Each screen (a `data-screen` of the nav) and what opening it does. */
const SCREENS = {
  files: async () => undefined,
  rules: showRules,
  automations: showAutomations,
  operations: showOperations,
  trash: showTrash,
  search: showSearch,
  categories: showCategories,
  keys: showApiKeys,
  usage: showUsage,
  profile: showProfile,
} satisfies Record<string, () => Promise<void>>;
type Screen = keyof typeof SCREENS;

/**
 * Shows one screen: `#app[data-screen]` and the CSS show that screen's sections (those with
 * its `data-screen`; the files screen's sections have none).
 */
async function showScreen(screen: Screen): Promise<void> {
  $("app").dataset.screen = screen;
  for (const section of $("app").querySelectorAll<HTMLElement>(":scope > section")) {
    section.classList.toggle("off-screen", (section.dataset.screen ?? "files") !== screen);
  }
  for (const b of $("screens").querySelectorAll<HTMLButtonElement>("button")) {
    if (b.dataset.screen === screen) b.setAttribute("aria-current", "page");
    else b.removeAttribute("aria-current");
  }
  // A new API key's secret is shown once: leaving the screen drops it.
  hideSecret();
  try {
    await SCREENS[screen]();
  } finally {
    // Loaded (or failed to, the error box says why): what tests wait for.
    $("app").dataset.shown = screen;
  }
}

// ---------------------------------------------------------------- wiring
const ui: Ui = { api, action, status, openOperation, browse };
initRules(ui);
initAutomations(ui);
initTrash(ui);
initSearch(ui);
initCategories(ui);
initApiKeys(ui);
initUsage(ui);
initProfile(ui);
initOperations(ui);
initReport(ui);
initOrganize({ ...ui, browse, showScreen: (screen) => showScreen(screen as Screen) });
for (const b of $("screens").querySelectorAll<HTMLButtonElement>("button")) {
  b.addEventListener("click", action(() => showScreen(b.dataset.screen as Screen)));
}
void action(() => showScreen("files"))();
// Sign-in stays disabled until the API origin is known.
void action(async () => {
  apiUrl = await loadConfig();
  $("api-url").textContent = apiUrl;
  button("login").disabled = button("register").disabled = false;
  try {
    await resume();
  } finally {
    // Booted: signed in again from the kept session, or showing the sign-in form.
    document.body.dataset.booted = "true";
  }
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
button("download-zip").addEventListener(
  "click",
  action(async () => {
    const path = input("path").value.replace(/\/+$/, "");
    status(`Downloading ${path || "(root)"} as a zip…`);
    const saved = await downloadFolderZip(api(), path, (bytes) => status(`Downloading… ${bytes} bytes`));
    status(`Downloaded ${saved.name} (${saved.bytes} bytes).`);
  }),
);
for (const id of ["upload-file", "upload-folder"]) {
  input(id).addEventListener("change", () => {
    picked = [];
    showPicked(pickedFromInputs());
  });
}
const dropZone = $("drop-zone");
dropZone.addEventListener("dragover", (e) => {
  e.preventDefault();
  dropZone.classList.add("over");
});
dropZone.addEventListener("dragleave", () => dropZone.classList.remove("over"));
dropZone.addEventListener("drop", (e) => {
  e.preventDefault();
  dropZone.classList.remove("over");
  const entries = [...(e.dataTransfer?.items ?? [])]
    .map((item) => item.webkitGetAsEntry())
    .filter((entry): entry is FileSystemEntry => entry !== null);
  void action(async () => {
    picked = await droppedFiles(entries);
    showPicked(picked);
  })();
});
$("upload-form").addEventListener("submit", (e) => {
  e.preventDefault();
  void action(upload)();
});
