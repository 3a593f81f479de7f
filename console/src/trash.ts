// The file browser's per-file actions (download, delete) and the Trash screen (issue 22):
// DeleteFile moves a file or folder to the trash, never deletes it; the trash lists what was
// deleted (ListTrash, every page) with Restore (RestoreFile, to the original path; when that
// path is taken the person chooses: refuse, the server's ALREADY_EXISTS, or keep both under a
// " (n)" name) and Empty trash (EmptyTrash), the one action here that loses data, which asks
// for a second click on a button that names how many items go, rather than a native confirm().
import { FileConflictPolicy, FileKind, type files as filesPb } from "@fileorganizer/sdk";
import { downloadFile } from "./download";
import { $, allPages, el, fillRows, humanSize, scrollTable, tbody, textRow, type Ui, when } from "./ui";

let ui: Ui;
/** The trash as last listed (EmptyTrash's confirmation names its count). */
let items: filesPb.TrashItem[] = [];

export function initTrash(hooks: Ui): void {
  ui = hooks;
  const policy = el("select", { id: "restore-policy" });
  policy.append(
    el("option", { value: String(FileConflictPolicy.FAIL), text: "refuse (nothing is overwritten)" }),
    el("option", { value: String(FileConflictPolicy.RENAME), text: "keep both (restore under a new name)" }),
  );
  const confirm = el("button", { id: "trash-empty-confirm", type: "button", class: "danger" });
  confirm.hidden = true;
  $("trash-screen").append(
    el("h2", { text: "Trash" }),
    el("p", { text: "Deleted files and folders stay here until the trash is emptied." }),
    el(
      "form",
      { id: "trash-form" },
      el("button", { id: "trash-refresh", type: "button", text: "Refresh" }),
      el("label", {}, "When the original path is taken", policy),
      el("button", { id: "trash-empty", type: "button", text: "Empty trash…" }),
      confirm,
    ),
    el("p", { id: "trash-total" }),
    scrollTable("trash", ["Original path", "Kind", "Size", "Deleted", "Deleted by", ""], "Trash"),
  );
  $("trash-refresh").addEventListener("click", ui.action(showTrash));
  $("trash-empty").addEventListener("click", () => {
    confirm.textContent = `Delete ${items.length} item(s) permanently`;
    confirm.hidden = items.length === 0;
    if (items.length === 0) ui.status("The trash is already empty.");
  });
  confirm.addEventListener(
    "click",
    ui.action(async () => {
      confirm.hidden = true;
      // The items that were shown, not whatever is in the trash by now.
      const res = await ui.api().files.emptyTrash({ names: items.map((i) => i.name) });
      await showTrash();
      const failed = res.failedItems.length ? `; ${res.failedItems.length} could not be deleted` : "";
      ui.status(`Deleted ${res.deletedCount} item(s) permanently, freed ${humanSize(res.freedBytes)}${failed}.`);
    }),
  );
}

export async function showTrash(): Promise<void> {
  let total = 0n;
  const found = await allPages(async (pageToken) => {
    const page = await ui.api().files.listTrash({ pageSize: 500, pageToken });
    total = page.totalSizeBytes;
    return { items: page.trashItems, next: page.nextPageToken };
  });
  items = found;
  $("trash-empty-confirm").hidden = true;
  $("trash-total").textContent = `${found.length} item(s), ${humanSize(total)}`;
  fillRows(tbody("trash"),
    found.map((item) => {
      const restore = el("button", { type: "button", class: "restore", text: "Restore" });
      restore.setAttribute("aria-label", `Restore ${item.originalPath}`);
      restore.addEventListener("click", ui.action(() => restoreItem(item)));
      return textRow(
        [
          item.originalPath,
          item.kind === FileKind.DIRECTORY ? "folder" : "file",
          humanSize(item.sizeBytes),
          when(item.deleteTime),
          item.operation || "you",
        ],
        { class: "trash-item", "data-name": item.name, "data-path": item.originalPath },
        el("td", {}, restore),
      );
    }),
    "The trash is empty.",
  );
}

async function restoreItem(item: filesPb.TrashItem): Promise<void> {
  const conflictPolicy = Number($<HTMLSelectElement>("restore-policy").value) as FileConflictPolicy;
  const res = await ui.api().files.restoreFile({ name: item.name, conflictPolicy });
  const path = res.file?.path ?? item.originalPath;
  await showTrash();
  ui.status(`Restored ${path}${path !== item.originalPath ? ` (${item.originalPath} was taken)` : ""}.`);
}

/** The actions cell of a listing row: Download (files) and Delete (to the trash). */
export function fileActions(entry: filesPb.FileEntry): HTMLTableCellElement {
  const cell = el("td", { class: "actions" });
  if (entry.kind === FileKind.FILE) {
    const download = el("button", { type: "button", class: "download", text: "Download" });
    download.setAttribute("aria-label", `Download ${entry.name}`);
    download.addEventListener(
      "click",
      ui.action(async () => {
        ui.status(`Downloading ${entry.path}…`);
        const saved = await downloadFile(ui.api(), entry.path);
        ui.status(`Downloaded ${saved.name} (${saved.bytes} bytes).`);
      }),
    );
    cell.append(download);
  }
  const remove = el("button", { type: "button", class: "delete", text: "Delete" });
  remove.setAttribute("aria-label", `Delete ${entry.name} (to the trash)`);
  remove.addEventListener(
    "click",
    ui.action(async () => {
      await ui.api().files.deleteFile({ path: entry.path });
      const folder = entry.path.split("/").slice(0, -1).join("/");
      await ui.browse(folder);
      ui.status(`Moved ${entry.path} to the trash.`);
    }),
  );
  cell.append(remove);
  return cell;
}
