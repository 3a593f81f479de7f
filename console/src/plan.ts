// The plan table: an operation's file records (ListFileRecords, every page) with where each
// file was, where it goes or went, its category, its status, the file it duplicates, and what
// decided its destination (the rule's name, or the layout template when no rule matched).
// It always shows what the server says now: it is re-read after every step (apply, undo,
// reopen), never patched locally.
import { files as filesPb, type FileOrganizerClient } from "@fileorganizer/sdk";
import { $, fillRows, tbody, textRow } from "./ui";

/** Records shown at most (pages of 1000). */
const MAX_RECORDS = 5000;

/** A rule's display name, or its resource name when it was deleted since. */
async function ruleNames(api: FileOrganizerClient, names: Set<string>): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const name of names) {
    try {
      const rule = await api.rules.getRule({ name });
      out.set(name, `rule "${rule.displayName}"`);
    } catch {
      out.set(name, `${name} (deleted)`);
    }
  }
  return out;
}

/** Shows operation `name`'s records in `#plan`; returns the records shown. */
export async function showPlan(api: FileOrganizerClient, name: string): Promise<filesPb.FileRecord[]> {
  const records: filesPb.FileRecord[] = [];
  let pageToken = "";
  let total = 0n;
  let counts: filesPb.FileRecordStatusCounts | undefined;
  do {
    const page = await api.files.listFileRecords({ parent: name, pageSize: 1000, pageToken });
    records.push(...page.fileRecords);
    total = page.totalSize;
    counts ??= page.statusCounts;
    pageToken = page.nextPageToken;
  } while (pageToken && records.length < MAX_RECORDS);
  const rules = await ruleNames(api, new Set(records.map((r) => r.rule).filter(Boolean)));
  const body = tbody("plan");
  fillRows(
    body,
    records.map((r) => {
      const status = filesPb.FileRecordStatus[r.status];
      const row = textRow(
        [
          r.originalPath,
          r.newPath || "(stays)",
          r.category || "–",
          status,
          r.duplicateOfPath || "",
          r.rule ? (rules.get(r.rule) ?? r.rule) : "layout template",
          r.reason,
        ],
        { class: r.duplicateOf ? "record duplicate" : "record", "data-status": status, "data-path": r.originalPath },
      );
      if (r.duplicateOf) {
        row.dataset.duplicateOf = r.duplicateOfPath;
        row.cells[4].prepend(Object.assign(document.createElement("strong"), { textContent: "Duplicate of " }));
      }
      if (r.rule) row.dataset.rule = r.rule;
      return row;
    }),
    "Nothing here: the operation has no file records (yet).",
  );
  const c = counts;
  const parts = c
    ? (
        [
          ["planned", c.planned],
          ["completed", c.completed],
          ["skipped", c.skipped],
          ["failed", c.failed],
          ["duplicate", c.duplicate],
          ["undone", c.undone],
        ] as const
      )
        .filter(([, n]) => n > 0n)
        .map(([word, n]) => `${n} ${word}`)
    : [];
  const duplicates = records.filter((r) => r.duplicateOf).length;
  $("plan-summary").textContent =
    `${total} record(s)${parts.length ? `: ${parts.join(", ")}` : ""}` +
    (duplicates ? `; ${duplicates} duplicate(s) marked` : "") +
    (BigInt(records.length) < total ? ` (the first ${records.length} are shown)` : "");
  return records;
}

/** Empties the plan table (no operation shown). */
export function clearPlan(): void {
  fillRows(tbody("plan"), [], "Nothing here yet: preview an organize or open an operation.");
  $("plan-summary").textContent = "";
}
