// The organize part of the files screen: the form (kind, folders and every option of
// CreateOperation, with the server's defaults filled in and its field errors shown next to the
// fields), and the operation being shown: its state and progress (WatchOperation), its plan
// (plan.ts), its report (report.ts), and Apply, Undo and Cancel.
//
// Everything shown about an operation is re-read from the server after each step: after an
// undo the plan shows the records the server now marks UNDONE, and the report of the undone
// moves is taken off the screen (it describes files that are no longer where it says).
import { Code, errorDetails, OperationKind, OperationState, operations, type FileOrganizerClient } from "@fileorganizer/sdk";
import { clearPlan, showPlan } from "./plan";
import { hideReport, showReport } from "./report";
import { $, clearFieldErrors, showFieldErrors, type Ui } from "./ui";

/** What the files screen gives the organize part besides the shared hooks. */
export interface OrganizeHooks extends Ui {
  /** Lists a folder in the file browser. */
  browse(path: string): Promise<void>;
  /** Switches to a screen. */
  showScreen(screen: string): Promise<void>;
}

let ui: OrganizeHooks;
let current: operations.Operation | undefined;

const input = (id: string) => $<HTMLInputElement>(id);
const button = (id: string) => $<HTMLButtonElement>(id);
const api = (): FileOrganizerClient => ui.api();

/** States in which CancelOperation does something (QUEUED/PLANNED at once, else at the next file). */
export const CANCELLABLE: ReadonlySet<OperationState> = new Set([
  OperationState.QUEUED,
  OperationState.RUNNING,
  OperationState.PLANNED,
  OperationState.APPLYING,
]);

export function initOrganize(hooks: OrganizeHooks): void {
  ui = hooks;
  clearPlan();
  $("organize-form").addEventListener("submit", (e) => {
    e.preventDefault();
    void ui.action(preview)();
  });
  button("apply").addEventListener("click", ui.action(apply));
  button("undo").addEventListener("click", ui.action(undo));
  button("cancel").addEventListener("click", ui.action(cancel));
}

/** Globs typed one per line (blank lines ignored). */
const globs = (id: string) =>
  $<HTMLTextAreaElement>(id)
    .value.split("\n")
    .map((g) => g.trim())
    .filter(Boolean);

/** What CreateOperation takes as its operation. */
type OperationInit = NonNullable<Parameters<FileOrganizerClient["operations"]["createOperation"]>[0]["operation"]>;

/** The operation the form describes. */
function spec(): OperationInit {
  const rules = $<HTMLSelectElement>("apply-rules").value;
  return {
    kind: OperationKind[$<HTMLSelectElement>("op-kind").value as "ORGANIZE" | "DEDUPLICATE"],
    sourcePath: input("source").value.trim(),
    destinationPath: input("destination").value.trim(),
    dryRun: true,
    layoutTemplate: input("layout-template").value.trim(),
    duplicatePolicy: operations.DuplicatePolicy[$<HTMLSelectElement>("duplicate-policy").value as "REPORT_ONLY"],
    conflictPolicy: operations.ConflictPolicy[$<HTMLSelectElement>("conflict-policy").value as "RENAME"],
    includeGlobs: globs("include-globs"),
    excludeGlobs: globs("exclude-globs"),
    hashAllFiles: input("hash-all-files").checked,
    removeEmptyDirs: input("remove-empty-dirs").checked,
    applyRules: rules === "auto" ? undefined : rules === "yes",
  };
}

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
  button("cancel").disabled = !CANCELLABLE.has(state);
}

/** Sets the buttons for the shown operation as the server last described it. */
function showButtons(op: operations.Operation): void {
  button("apply").disabled = op.state !== OperationState.PLANNED;
  button("undo").disabled = !undoable(op);
  button("cancel").disabled = !CANCELLABLE.has(op.state);
}

/** Whether UndoOperation can take `op` (see its contract in operation.proto). */
export function undoable(op: operations.Operation): boolean {
  const finished = [OperationState.SUCCEEDED, OperationState.FAILED, OperationState.CANCELLED].includes(op.state);
  return finished && (op.counters?.filesMoved ?? 0n) > 0n && op.kind !== OperationKind.UNDO && !op.undoneBy;
}

/** Follows WatchOperation until the operation stops, feeding the progress bar. */
async function follow(op: { name: string }): Promise<operations.WatchOperationResponse> {
  let last: operations.WatchOperationResponse | undefined;
  for await (const snapshot of api().watch(op)) {
    last = snapshot;
    showOperation(op.name, snapshot.state);
    setProgress(snapshot.progressPercent);
  }
  if (!last) throw new Error("the progress stream ended without a snapshot");
  return last;
}

async function preview(): Promise<void> {
  const form = $("organize-form");
  clearFieldErrors(form);
  button("apply").disabled = button("undo").disabled = true;
  hideReport();
  setProgress(0);
  try {
    current = await api().operations.createOperation({ operation: spec(), requestId: crypto.randomUUID() });
  } catch (err) {
    if (errorDetails(err).code === Code.InvalidArgument && showFieldErrors(form, err)) {
      $<HTMLDetailsElement>("organize-options").open ||= !!form.querySelector(".options .field-error:not([hidden])");
      ui.status("Nothing was created: see the marked fields.");
      return;
    }
    throw err;
  }
  showOperation(current.name, current.state);
  const last = await follow(current);
  await showPlan(api(), current.name);
  current = await api().operations.getOperation({ name: current.name });
  showButtons(current);
  if (last.state === OperationState.CANCELLED) return ui.status(`Cancelled ${current.name}: nothing was moved.`);
  if (last.state !== OperationState.PLANNED) throw new Error(`the dry run ended ${OperationState[last.state]}`);
  await showReport(current.name);
  ui.status(`Planned ${last.counters?.filesPlanned ?? 0n} move(s); nothing was moved yet.`);
}

async function apply(): Promise<void> {
  if (!current) return;
  button("apply").disabled = true;
  hideReport();
  setProgress(0);
  await api().apply(current);
  const last = await follow(current);
  await showPlan(api(), current.name);
  current = await api().operations.getOperation({ name: current.name });
  showButtons(current);
  if (last.state === OperationState.CANCELLED) {
    return ui.status(`Cancelled ${current.name} after ${last.counters?.filesMoved ?? 0n} move(s); Undo moves them back.`);
  }
  if (last.state !== OperationState.SUCCEEDED) throw new Error(`the operation ended ${OperationState[last.state]}`);
  await showReport(current.name);
  await ui.browse(current.destinationPath || current.sourcePath);
  ui.status(`Moved ${last.counters?.filesMoved ?? 0n} file(s).`);
}

async function undo(): Promise<void> {
  if (!current) return;
  const undone = current;
  button("undo").disabled = true;
  const undoOp = await api().undo(undone);
  const last = await follow(undoOp);
  // The undone operation's records now say UNDONE (or why a file stayed): show them, and take
  // its report off the screen. The undo operation itself is on the Operations screen.
  await showPlan(api(), undone.name);
  current = await api().operations.getOperation({ name: undone.name });
  showOperation(current.name, current.state);
  showButtons(current);
  hideReport();
  if (last.state !== OperationState.SUCCEEDED) throw new Error(`the undo ended ${OperationState[last.state]}`);
  await ui.browse(undone.sourcePath);
  ui.status(
    last.counters?.filesFailed || last.counters?.filesSkipped
      ? `Undone by ${undoOp.name}, but ${last.counters.filesFailed + last.counters.filesSkipped} file(s) could not be moved back: see the plan.`
      : `Undone by ${undoOp.name}: every file is back where it was.`,
  );
}

async function cancel(): Promise<void> {
  if (!current) return;
  button("cancel").disabled = true;
  const op = await api().operations.cancelOperation({ name: current.name });
  current = op;
  showOperation(op.name, op.state);
  showButtons(op);
  ui.status(`Cancel requested: ${op.name} is ${OperationState[op.state]}.`);
}

/**
 * Opens an operation on the files screen (from the Operations or Automations screen): its
 * state, records and report, with the buttons its state allows.
 */
export async function openOperation(name: string): Promise<void> {
  const op = await api().operations.getOperation({ name });
  current = op;
  await ui.showScreen("files");
  hideReport();
  setProgress(op.state === OperationState.SUCCEEDED ? 100 : 0);
  showOperation(op.name, op.state);
  showButtons(op);
  await showPlan(api(), op.name);
  if (op.state !== OperationState.QUEUED) await showReport(op.name, op.undoneBy);
  $("op-name").scrollIntoView();
  ui.status(`Operation ${op.name}: ${OperationState[op.state]}${op.undoneBy ? `, undone by ${op.undoneBy}` : ""}.`);
}
