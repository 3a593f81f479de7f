// The Search screen (issue 22): SearchFiles over the caller's file records (what operations
// planned or did), with its filters: name text (empty or at least 3 characters, the server
// says so next to the field otherwise), category, content hash and operation; newest first,
// page by page ("More results" follows next_page_token with the same filters).
import { files as filesPb } from "@fileorganizer/sdk";
import { $, el, fieldError, fillRows, humanSize, scrollTable, tbody, textRow, type Ui, withFieldErrors } from "./ui";

let ui: Ui;
/** The filters of the results shown and the token of their next page. */
let last: { filters: Omit<filesPb.SearchFilesRequest, "$typeName" | "pageSize" | "pageToken">; next: string } | undefined;
let rows: HTMLTableRowElement[] = [];

const value = (id: string) => $<HTMLInputElement>(id).value.trim();

export function initSearch(hooks: Ui): void {
  ui = hooks;
  const more = el("button", { id: "search-more", type: "button", text: "More results" });
  more.hidden = true;
  $("search-screen").append(
    el("h2", { text: "Search" }),
    el("p", { text: "Finds files by what your operations recorded about them (old and new paths)." }),
    el(
      "form",
      { id: "search-form" },
      el("label", {}, "Name contains", el("input", { id: "search-name", type: "search" }), fieldError("name_contains")),
      el("label", {}, "Category", el("input", { id: "search-category" }), fieldError("category")),
      el("label", {}, "Content hash (blake3)", el("input", { id: "search-hash", spellcheck: "false" }), fieldError("content_hash")),
      el("label", {}, "Operation", el("input", { id: "search-operation", placeholder: "operations/…" }), fieldError("operation")),
      el("button", { id: "search-run", type: "submit", text: "Search" }),
    ),
    el("p", { id: "search-count", "aria-live": "polite" }),
    scrollTable("search-results", ["File", "Now at", "Category", "Size", "Status", "Operation"], "Search results"),
    more,
  );
  $("search-form").addEventListener("submit", (e) => {
    e.preventDefault();
    void ui.action(() => search(false))();
  });
  more.addEventListener("click", ui.action(() => search(true)));
}

export async function showSearch(): Promise<void> {
  $("search-name").focus();
}

async function search(nextPage: boolean): Promise<void> {
  const form = $("search-form");
  const filters =
    nextPage && last
      ? last.filters
      : { nameContains: value("search-name"), category: value("search-category"), contentHash: value("search-hash"), operation: value("search-operation") };
  const res = await withFieldErrors(ui, form, "Not searched", () =>
    ui.api().files.searchFiles({ ...filters, pageSize: 100, pageToken: nextPage ? (last?.next ?? "") : "" }),
  );
  if (!res) return;
  const found = res.fileRecords.map((r) =>
    textRow(
      [r.originalPath, r.newPath || "–", r.category || "–", humanSize(r.sizeBytes), filesPb.FileRecordStatus[r.status], r.operation],
      { class: "result", "data-path": r.originalPath, "data-new-path": r.newPath },
    ),
  );
  rows = nextPage ? [...rows, ...found] : found;
  last = { filters, next: res.nextPageToken };
  fillRows(tbody("search-results"), rows, "No file matches these filters.");
  $("search-more").hidden = !res.nextPageToken;
  $("search-count").textContent = `${rows.length} result(s)${res.nextPageToken ? " so far" : ""}`;
  ui.status(`Search: ${rows.length} result(s).`);
}
