// The Operations screen: the caller's operations, newest first (ListOperations), filtered by
// state, kind and automation as the API allows, a page at a time (the page tokens of the pages
// before are kept, so "Newer" goes back without re-reading from the start). Each operation can
// be opened on the files screen (its plan, report and duplicate groups), undone when the
// server would accept it, and cancelled while it is queued, running, planned or applying.
import {
  Code,
  errorDetails,
  OperationKind,
  OperationState,
  operations as opsPb,
} from "@fileorganizer/sdk";
import { CANCELLABLE, undoable } from "./organize";
import { $, clearFieldErrors, el, fieldError, fillRows, scrollTable, showFieldErrors, tbody, type Ui, when } from "./ui";

let ui: Ui;
/** The page token of every page up to the shown one ("" for the first). */
let tokens: string[] = [""];
let nextToken = "";

const select = (id: string) => $<HTMLSelectElement>(id);

/** A <select> of an enum's values (UNSPECIFIED is "any"). */
function enumSelect(id: string, values: Record<string, string | number>, any: string): HTMLSelectElement {
  const box = el("select", { id }, el("option", { value: "0", text: any }));
  for (const [key, value] of Object.entries(values)) {
    if (typeof value === "number" && value !== 0) box.append(el("option", { value: String(value), text: key }));
  }
  return box;
}

export function initOperations(hooks: Ui): void {
  ui = hooks;
  $("operations-screen").append(
    el("h2", { id: "operations-heading", text: "Operations" }),
    el(
      "form",
      { id: "operations-filters", "aria-label": "Filter the operations" },
      el("label", {}, "State", enumSelect("ops-state", OperationState, "any state")),
      el("label", {}, "Kind", enumSelect("ops-kind", OperationKind, "any kind")),
      el(
        "label",
        {},
        "Started by automation",
        el("input", { id: "ops-automation", placeholder: "automations/… (empty: any)" }),
        fieldError("automation"),
      ),
      el(
        "label",
        {},
        "Per page",
        el("input", { id: "ops-page-size", type: "number", min: "1", max: "1000", value: "25" }),
        fieldError("page_size"),
      ),
      el("button", { id: "ops-show", type: "submit", text: "Show" }),
    ),
    el("p", { id: "operations-summary", "aria-live": "polite" }),
    scrollTable("operation-list", ["Operation", "Kind", "State", "Folders", "Created", "Started by", "Files", "Actions"], "Operations"),
    el(
      "div",
      { class: "pager", role: "group", "aria-label": "Pages of operations" },
      el("button", { id: "ops-newer", type: "button", text: "Newer", disabled: "" }),
      el("span", { id: "ops-page", text: "Page 1" }),
      el("button", { id: "ops-older", type: "button", text: "Older", disabled: "" }),
    ),
  );
  $("operations-filters").addEventListener("submit", (e) => {
    e.preventDefault();
    void ui.action(() => showOperations())();
  });
  $("ops-older").addEventListener("click", ui.action(async () => {
    if (!nextToken) return;
    tokens.push(nextToken);
    await load();
  }));
  $("ops-newer").addEventListener("click", ui.action(async () => {
    if (tokens.length < 2) return;
    tokens.pop();
    await load();
  }));
}

/** Shows the first page with the filters as set. */
export async function showOperations(): Promise<void> {
  tokens = [""];
  await load();
}

/** Loads the page `tokens` ends with. */
async function load(): Promise<void> {
  const form = $("operations-filters");
  clearFieldErrors(form);
  let page: opsPb.ListOperationsResponse;
  try {
    page = await ui.api().operations.listOperations({
      pageSize: Number($<HTMLInputElement>("ops-page-size").value) || 25,
      pageToken: tokens[tokens.length - 1],
      state: Number(select("ops-state").value),
      kind: Number(select("ops-kind").value),
      automation: $<HTMLInputElement>("ops-automation").value.trim(),
    });
  } catch (err) {
    if (errorDetails(err).code === Code.InvalidArgument && showFieldErrors(form, err)) {
      fillRows(tbody("operation-list"), [], "Nothing shown: see the marked filter.");
      ui.status("The filter was not accepted: see the marked field.");
      return;
    }
    throw err;
  }
  nextToken = page.nextPageToken;
  fillRows(tbody("operation-list"), page.operations.map(row), "Nothing here: no operation matches these filters.");
  const number = tokens.length;
  $("ops-page").textContent = `Page ${number}`;
  $<HTMLButtonElement>("ops-newer").disabled = number < 2;
  $<HTMLButtonElement>("ops-older").disabled = !nextToken;
  const summary = $("operations-summary");
  summary.dataset.count = String(page.operations.length);
  summary.textContent = `${page.operations.length} operation(s) on page ${number}${nextToken ? "; older ones on the next page" : ""}.`;
}

function row(op: opsPb.Operation): HTMLTableRowElement {
  const c = op.counters;
  const files =
    op.kind === OperationKind.UNDO
      ? `${c?.filesMoved ?? 0n} moved back`
      : `${c?.filesPlanned ?? 0n} planned, ${c?.filesMoved ?? 0n} moved` +
        (c?.duplicatesFound ? `, ${c.duplicatesFound} duplicate(s)` : "") +
        (c?.filesFailed ? `, ${c.filesFailed} failed` : "");
  const link = op.undoOf ? ` (undoes ${op.undoOf})` : op.undoneBy ? ` (undone by ${op.undoneBy})` : "";
  const folders = op.destinationPath && op.destinationPath !== op.sourcePath
    ? `${op.sourcePath || "(root)"} → ${op.destinationPath}`
    : op.sourcePath || "(root)";
  const trigger = op.trigger?.automation || (op.trigger ? opsPb.TriggerKind[op.trigger.kind].toLowerCase() : "manual");
  const state = OperationState[op.state];
  const tr = el(
    "tr",
    { class: "operation", "data-name": op.name, "data-state": state, "data-kind": OperationKind[op.kind] },
    el("td", {}, el("code", { text: op.name }), link),
    el("td", { text: OperationKind[op.kind] + (op.dryRun ? " (preview first)" : "") }),
    el("td", { class: "state", text: state }),
    el("td", { text: folders }),
    el("td", { text: when(op.createTime) }),
    el("td", { text: trigger }),
    el("td", { text: files }),
  );
  const actions = el("td", { class: "actions" });
  const open = el("button", { type: "button", class: "open", text: "Open", "aria-label": `Open ${op.name}` });
  open.addEventListener("click", ui.action(() => ui.openOperation(op.name)));
  actions.append(open);
  if (undoable(op)) {
    const undo = el("button", { type: "button", class: "undo", text: "Undo", "aria-label": `Undo ${op.name}` });
    undo.addEventListener("click", ui.action(async () => {
      undo.disabled = true;
      const undoOp = await ui.api().undo(op);
      ui.status(`Undoing ${op.name} (${undoOp.name})…`);
      const last = await ui.api().wait(undoOp);
      await load();
      if (last.state !== OperationState.SUCCEEDED) throw new Error(`the undo ${undoOp.name} ended ${OperationState[last.state]}`);
      ui.status(`Undone ${op.name} by ${undoOp.name}: ${last.counters?.filesMoved ?? 0n} file(s) moved back.`);
    }));
    actions.append(" ", undo);
  }
  if (CANCELLABLE.has(op.state)) {
    const cancel = el("button", { type: "button", class: "cancel", text: "Cancel", "aria-label": `Cancel ${op.name}` });
    cancel.addEventListener("click", ui.action(async () => {
      cancel.disabled = true;
      const after = await ui.api().operations.cancelOperation({ name: op.name });
      await load();
      ui.status(`Cancel requested: ${op.name} is ${OperationState[after.state]}.`);
    }));
    actions.append(" ", cancel);
  }
  tr.append(actions);
  return tr;
}
