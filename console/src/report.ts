// The report of the operation shown on the organize screen: the summary, the per-category
// chart, the export buttons (ExportReport as CSV, JSON or HTML, gathered from the stream and
// handed to the browser as a download named as the server names it) and the operation's
// duplicate groups (ListDuplicateGroups, a page at a time, each file marked kept or duplicate).
import { dispositionName, reports as reportsPb, type FileOrganizerClient } from "@fileorganizer/sdk";
import { drawCategoryChart } from "./chart";
import { saveBlob } from "./download";
import { $, fillRows, humanSize, tbody, textRow, type Ui } from "./ui";

/** Duplicate groups per page. */
const GROUPS_PER_PAGE = 20;

let ui: Ui;
/** The report shown (`reports/{id}`), and the next page of its duplicate groups. */
let shown = "";
let groupsToken = "";

const reportName = (operation: string) => `reports/${operation.slice("operations/".length)}`;

export function initReport(hooks: Ui): void {
  ui = hooks;
  for (const button of $("report-exports").querySelectorAll<HTMLButtonElement>("button[data-format]")) {
    button.addEventListener(
      "click",
      ui.action(() => exportReport(button.dataset.format as keyof typeof reportsPb.ReportFormat)),
    );
  }
  $("duplicates-more").addEventListener("click", ui.action(() => showGroups(false)));
}

/**
 * Shows operation `operation`'s report, as the server computes it now; `undoneBy` names the
 * undo that moved its files back since (the report then says so above the figures).
 */
export async function showReport(operation: string, undoneBy = ""): Promise<void> {
  const report = await ui.api().report(operation);
  shown = reportName(operation);
  const box = $("report");
  box.dataset.operation = operation;
  box.dataset.filesMoved = String(report.totals?.filesMoved ?? 0n);
  const planOnly = report.dryRun && (report.totals?.filesMoved ?? 0n) === 0n;
  $("report-heading").textContent = planOnly ? "Report (a plan: nothing moved)" : "Report";
  box.dataset.undoneBy = undoneBy;
  $("report-undone").hidden = !undoneBy;
  $("report-undone").textContent = undoneBy
    ? `Undone by ${undoneBy}: the files were moved back; this report shows what the operation had done.`
    : "";
  $("report-summary").textContent =
    `${report.totals?.filesMoved ?? 0n} files moved, ${report.duplicateFileCount} duplicates, ` +
    `${report.categories.length} categories (top: ${report.topCategories.join(", ") || "none"})`;
  drawCategoryChart($("category-chart") as unknown as SVGSVGElement, report.categories);
  await showGroups(true);
  box.hidden = false;
}

/** Hides the report (it no longer describes what is on disk, or another operation is shown). */
export function hideReport(): void {
  $("report").hidden = true;
  delete $("report").dataset.operation;
  shown = "";
}

/** The first page of duplicate groups (`first`), or the next one appended. */
async function showGroups(first: boolean): Promise<void> {
  if (!shown) return;
  const page = await ui.api().reports.listDuplicateGroups({
    parent: shown,
    pageSize: GROUPS_PER_PAGE,
    pageToken: first ? "" : groupsToken,
  });
  groupsToken = page.nextPageToken;
  const rows = page.duplicateGroups.flatMap((group) =>
    group.files.map((file, i) =>
      textRow(
        [
          i === 0 ? `${group.contentHash.slice(0, 12)}… (${group.fileCount} files, ${humanSize(group.reclaimableBytes)} reclaimable)` : "",
          file.originalPath,
          file.path,
          humanSize(group.sizeBytes),
          file.kept ? "kept" : "duplicate",
        ],
        {
          class: i === 0 ? "dup-file group-start" : "dup-file",
          "data-hash": group.contentHash,
          "data-path": file.originalPath,
          "data-kept": String(file.kept),
        },
      ),
    ),
  );
  const body = tbody("duplicate-groups");
  if (first) fillRows(body, rows, "Nothing here: no two files of this operation have the same content.");
  else body.append(...rows);
  $("duplicates-summary").textContent = `${page.totalSize} group(s) of files with the same content.`;
  $("duplicates-summary").dataset.total = String(page.totalSize);
  $("duplicates-more").hidden = !groupsToken;
}

/** ExportReport in `format`, saved by the browser under the server's file name. */
async function exportReport(format: keyof typeof reportsPb.ReportFormat): Promise<void> {
  if (!shown) throw new Error("no report is shown");
  const extension = format.toLowerCase();
  let name = `${shown.replace("reports/", "report-")}.${extension}`;
  let type = "application/octet-stream";
  const parts: BlobPart[] = [];
  let bytes = 0;
  ui.status(`Exporting the report as ${format}…`);
  const stream = ui.api().reports.exportReport(
    { name: shown, format: reportsPb.ReportFormat[format] },
    { onHeader: (headers) => (name = dispositionName(headers.get("content-disposition")) ?? name) },
  );
  for await (const chunk of stream) {
    if (chunk.contentType) type = chunk.contentType;
    parts.push(chunk.data as Uint8Array<ArrayBuffer>);
    bytes += chunk.data.length;
  }
  saveBlob(new Blob(parts, { type }), name);
  ui.status(`Exported ${name} (${bytes} bytes).`);
}
