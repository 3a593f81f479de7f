// The rules screen (issue 21): the user's organizing rules in the order they are tried, an
// editor (create, edit, delete, reorder; conditions combined with all/any; one action), and a
// live preview: as the rule is edited, PreviewRules runs (debounced) on a folder with the draft
// rule among the stored ones and shows, per file, which rule matched, why, and where it would go.
//
// Validation is the server's: the preview checks the draft as you type and Save checks it again,
// and every INVALID_ARGUMENT field violation is shown next to its field, in the server's words
// (a field of the draft is `rules[k]…` in the preview and `rule…` on save; both land on the
// same place). Updates and deletes send the etag the rule was read with: a rule changed
// elsewhere meanwhile is refused and the editor says so instead of overwriting it.
import { Code, errorDetails, rules as rulesPb } from "@fileorganizer/sdk";
import { $, clearFieldErrors, el, fieldError, fillRows, scrollTable, showFieldErrors, tbody, type Ui } from "./ui";

type Rule = rulesPb.Rule;
type ConditionCase = NonNullable<rulesPb.RuleCondition["condition"]["case"]>;
type ActionCase = NonNullable<rulesPb.RuleAction["action"]["case"]>;

/** How each condition kind is edited: one or two text boxes. */
const CONDITIONS: Record<ConditionCase, { label: string; a: string; b?: string }> = {
  nameGlob: { label: "name matches glob", a: "*.pdf" },
  nameRegex: { label: "name matches regex", a: "^IMG_\\d+" },
  extensions: { label: "extension is one of", a: "pdf, jpg" },
  contentType: { label: "content type is one of", a: "image/*, application/pdf" },
  size: { label: "size in bytes", a: "at least", b: "at most" },
  modifyTime: { label: "modified between", a: "from YYYY-MM-DD", b: "before YYYY-MM-DD" },
  age: { label: "modified, days ago", a: "more than", b: "less than" },
  captureTime: { label: "captured between", a: "from YYYY-MM-DD", b: "before YYYY-MM-DD" },
  captureAge: { label: "captured, days ago", a: "more than", b: "less than" },
  underFolder: { label: "lies under folder", a: "Camera Uploads" },
  isDuplicate: { label: "is a duplicate", a: "true or false" },
};

const ACTIONS: Record<ActionCase, { label: string; value?: string }> = {
  move: { label: "move to", value: "Invoices/{year}/{name}" },
  rename: { label: "rename to", value: "{year}-{month}-{name}" },
  setCategory: { label: "set category", value: "Receipts" },
  trash: { label: "move to trash" },
  leaveInPlace: { label: "leave in place" },
};

/** A value the form cannot even send (not a number, not a date): refused here. */
class LocalError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

const DEBOUNCE_MS = 300;

let ui: Ui;
let stored: Rule[] = [];
/** The rule being edited: its name and the etag it was read with ("" for a new rule). */
let editing: { name: string; etag: string } | undefined;
let previewTimer: ReturnType<typeof setTimeout> | undefined;
let previewSeq = 0;

const form = () => $<HTMLFormElement>("rule-form");
const value = (id: string) => $<HTMLInputElement>(id).value;

/** Builds the screen inside `section#rules-screen`. */
export function initRules(hooks: Ui): void {
  ui = hooks;
  const actionKinds = el("select", { id: "rule-action-kind" });
  for (const [kind, { label }] of Object.entries(ACTIONS)) actionKinds.append(el("option", { value: kind, text: label }));
  $("rules-screen").append(
    el("h2", { text: "Rules" }),
    el("p", {
      class: "hint",
      text: "Rules are tried in order; the first whose conditions hold decides what an organize does with a file. Files no rule matches follow the operation's layout template.",
    }),
    scrollTable("rule-list", ["Position", "Rule", "What it does", "Actions"], "Rules"),
    el("button", { id: "rule-new", type: "button", text: "New rule" }),
    el(
      "form",
      { id: "rule-form", hidden: "" },
      el("h3", { id: "rule-form-title", text: "New rule" }),
      el("p", { id: "rule-stale", role: "alert", hidden: "" }),
      el(
        "div",
        { class: "row" },
        el("label", {}, "Name", el("input", { id: "rule-display-name", required: "" }), fieldError("rule.display_name")),
        el("label", {}, "Position", el("input", { id: "rule-position", type: "number", value: "0" }), fieldError("rule.position")),
        el(
          "label",
          {},
          "Files must match",
          el(
            "select",
            { id: "rule-match" },
            el("option", { value: String(rulesPb.RuleMatch.ALL), text: "all conditions" }),
            el("option", { value: String(rulesPb.RuleMatch.ANY), text: "any condition" }),
          ),
          fieldError("rule.match"),
        ),
      ),
      el("div", { id: "rule-conditions" }),
      fieldError("rule.conditions"),
      el("button", { id: "rule-add-condition", type: "button", text: "Add condition" }),
      el(
        "div",
        { class: "row" },
        el("label", {}, "Then", actionKinds),
        el("label", { id: "rule-action-value-label" }, "Template", el("input", { id: "rule-action-value" })),
        fieldError("rule.action"),
      ),
      el(
        "div",
        { class: "row" },
        el("button", { id: "rule-save", type: "submit", text: "Save" }),
        el("button", { id: "rule-cancel", type: "button", text: "Close" }),
      ),
    ),
    el("h3", { text: "Preview" }),
    el(
      "form",
      { id: "rule-preview-form" },
      el("label", {}, "Folder", el("input", { id: "rule-preview-folder", value: "inbox" })),
      el("button", { id: "rule-preview-run", type: "submit", text: "Preview" }),
    ),
    el("p", { id: "rule-preview-status", "aria-live": "polite" }),
    scrollTable("rule-preview", ["File", "Rule", "Why", "Goes to"], "Rule preview"),
  );
  $("rule-new").addEventListener("click", () => openEditor(undefined));
  $("rule-cancel").addEventListener("click", () => {
    form().hidden = true;
    editing = undefined;
    schedulePreview();
  });
  $("rule-add-condition").addEventListener("click", () => {
    addCondition({ case: "nameGlob", value: "" });
    schedulePreview();
  });
  actionKinds.addEventListener("change", syncActionInput);
  form().addEventListener("input", schedulePreview);
  form().addEventListener("change", schedulePreview);
  form().addEventListener("submit", (e) => {
    e.preventDefault();
    void ui.action(save)();
  });
  $("rule-preview-form").addEventListener("submit", (e) => {
    e.preventDefault();
    void ui.action(runPreview)();
  });
  $("rule-preview-folder").addEventListener("input", schedulePreview);
}

/** Shows the screen: reloads the rules and previews. */
export async function showRules(): Promise<void> {
  await loadRules();
  await runPreview();
}

async function loadRules(): Promise<void> {
  const out: Rule[] = [];
  let pageToken = "";
  do {
    const page = await ui.api().rules.listRules({ pageSize: 1000, pageToken });
    out.push(...page.rules);
    pageToken = page.nextPageToken;
  } while (pageToken);
  stored = out;
  fillRows(
    tbody("rule-list"),
    stored.map((rule, i) => {
      const row = el(
        "tr",
        { class: "rule", "data-name": rule.name, "data-display-name": rule.displayName },
        el("td", { text: String(rule.position) }),
        el("td", { text: rule.displayName }),
        el("td", { text: summary(rule) }),
      );
      const buttons = el("td");
      const button = (cls: string, text: string, fn: () => Promise<void>, disabled = false) => {
        const b = el("button", { type: "button", class: cls, text });
        b.disabled = disabled;
        b.addEventListener("click", ui.action(fn));
        buttons.append(b);
      };
      button("edit", "Edit", async () => openEditor(rule));
      button("up", "↑", () => reorder(i, i - 1), i === 0);
      button("down", "↓", () => reorder(i, i + 1), i === stored.length - 1);
      button("delete", "Delete", () => remove(rule));
      row.append(buttons);
      return row;
    }),
    "Nothing here: no rules yet. Files follow the operation's layout template.",
  );
}

function summary(rule: Rule): string {
  const joiner = rule.match === rulesPb.RuleMatch.ANY ? " or " : " and ";
  const conditions = rule.conditions.map((c) => {
    const [a, b] = conditionInputs(c.condition);
    const kind = c.condition.case;
    return kind ? `${CONDITIONS[kind].label} ${[a, b].filter(Boolean).join("…")}` : "?";
  });
  const action = rule.action?.action;
  const what = action?.case ? `${ACTIONS[action.case].label} ${actionValue(action) ?? ""}`.trim() : "?";
  return `${conditions.length ? `if ${conditions.join(joiner)}` : "every file"}: ${what}`;
}

// ---------------------------------------------------------------- the editor
function openEditor(rule: Rule | undefined): void {
  editing = rule ? { name: rule.name, etag: rule.etag } : { name: "", etag: "" };
  $("rule-form-title").textContent = rule ? `Edit "${rule.displayName}"` : "New rule";
  $("rule-stale").hidden = true;
  clearFieldErrors(form());
  $<HTMLInputElement>("rule-display-name").value = rule?.displayName ?? "";
  $<HTMLInputElement>("rule-position").value = String(rule?.position ?? 0);
  $<HTMLSelectElement>("rule-match").value = String(rule?.match === rulesPb.RuleMatch.ANY ? rulesPb.RuleMatch.ANY : rulesPb.RuleMatch.ALL);
  $("rule-conditions").replaceChildren();
  for (const c of rule?.conditions ?? []) addCondition(c.condition);
  if (!rule) addCondition({ case: "nameGlob", value: "" });
  const action = rule?.action?.action ?? { case: "move", value: { destinationTemplate: "" } as rulesPb.MoveAction };
  $<HTMLSelectElement>("rule-action-kind").value = action.case ?? "move";
  syncActionInput();
  $<HTMLInputElement>("rule-action-value").value = actionValue(action) ?? "";
  form().hidden = false;
  schedulePreview();
}

function addCondition(condition: rulesPb.RuleCondition["condition"]): void {
  const box = $("rule-conditions");
  const kind = el("select", { class: "kind", "aria-label": "Condition" });
  for (const [k, { label }] of Object.entries(CONDITIONS)) kind.append(el("option", { value: k, text: label }));
  kind.value = condition.case ?? "nameGlob";
  const [a, b] = conditionInputs(condition);
  const row = el(
    "div",
    { class: "condition" },
    kind,
    el("input", { class: "a", value: a, "aria-label": "Condition value" }),
    el("input", { class: "b", value: b, "aria-label": "Condition second value" }),
    el("button", { type: "button", class: "remove", text: "Remove" }),
    fieldError(""),
  );
  kind.addEventListener("change", () => syncCondition(row));
  row.querySelector(".remove")!.addEventListener("click", () => {
    row.remove();
    renumber();
    schedulePreview();
  });
  box.append(row);
  syncCondition(row);
  renumber();
}

/** Placeholders and the second box follow the kind. */
function syncCondition(row: HTMLElement): void {
  const spec = CONDITIONS[(row.querySelector("select") as HTMLSelectElement).value as ConditionCase];
  const [a, b] = row.querySelectorAll("input");
  a.placeholder = spec.a;
  b.placeholder = spec.b ?? "";
  b.hidden = spec.b === undefined;
}

/** Condition i's error slot is `rule.conditions[i]`. */
function renumber(): void {
  $("rule-conditions")
    .querySelectorAll<HTMLElement>(".condition")
    .forEach((row, i) => {
      row.dataset.index = String(i);
      (row.querySelector(".field-error") as HTMLElement).dataset.field = `rule.conditions[${i}]`;
    });
}

function syncActionInput(): void {
  const spec = ACTIONS[$<HTMLSelectElement>("rule-action-kind").value as ActionCase];
  const input = $<HTMLInputElement>("rule-action-value");
  input.placeholder = spec.value ?? "";
  $("rule-action-value-label").hidden = spec.value === undefined;
  $("rule-action-value-label").firstChild!.textContent = $<HTMLSelectElement>("rule-action-kind").value === "setCategory" ? "Category" : "Template";
}

function actionValue(action: rulesPb.RuleAction["action"]): string | undefined {
  switch (action.case) {
    case "move":
      return action.value.destinationTemplate;
    case "rename":
      return action.value.nameTemplate;
    case "setCategory":
      return action.value.category;
    default:
      return undefined;
  }
}

function day(ts: { seconds: bigint } | undefined): string {
  return ts ? new Date(Number(ts.seconds) * 1000).toISOString().slice(0, 10) : "";
}

/** The two text boxes of a condition. */
function conditionInputs(c: rulesPb.RuleCondition["condition"]): [string, string] {
  const opt = (v: bigint | number | undefined) => (v === undefined ? "" : String(v));
  switch (c.case) {
    case "nameGlob":
    case "nameRegex":
    case "underFolder":
      return [c.value, ""];
    case "extensions":
      return [c.value.extensions.join(", "), ""];
    case "contentType":
      return [c.value.contentTypes.join(", "), ""];
    case "size":
      return [opt(c.value.minBytes), opt(c.value.maxBytes)];
    case "modifyTime":
    case "captureTime":
      return [day(c.value.startTime), day(c.value.endTime)];
    case "age":
    case "captureAge":
      return [opt(c.value.olderThanDays), opt(c.value.newerThanDays)];
    case "isDuplicate":
      return [String(c.value), ""];
    default:
      return ["", ""];
  }
}

/** The rule the form describes, as the API takes it (LocalError for what cannot be sent). */
function draft(): Rule {
  const list = (s: string) => s.split(",").map((x) => x.trim()).filter(Boolean);
  const conditions = [...$("rule-conditions").querySelectorAll<HTMLElement>(".condition")].map((row, i) => {
    const field = `rule.conditions[${i}]`;
    const kind = (row.querySelector("select") as HTMLSelectElement).value as ConditionCase;
    const [aBox, bBox] = row.querySelectorAll("input");
    const [a, b] = [aBox.value.trim(), bBox.value.trim()];
    const whole = (s: string, big: boolean): bigint | number | undefined => {
      if (s === "") return undefined;
      if (!/^-?\d+$/.test(s)) throw new LocalError(field, `${JSON.stringify(s)} is not a whole number`);
      return big ? BigInt(s) : Number(s);
    };
    const date = (s: string) => {
      if (s === "") return undefined;
      const ms = /^\d{4}-\d{2}-\d{2}$/.test(s) ? Date.parse(`${s}T00:00:00Z`) : NaN;
      if (Number.isNaN(ms)) throw new LocalError(field, `${JSON.stringify(s)} is not a date like 2024-01-31`);
      return { seconds: BigInt(ms / 1000), nanos: 0 };
    };
    const condition = ((): rulesPb.RuleCondition["condition"] => {
      switch (kind) {
        case "nameGlob":
        case "nameRegex":
        case "underFolder":
          return { case: kind, value: a };
        case "extensions":
          return { case: kind, value: { extensions: list(a) } as rulesPb.ExtensionSet };
        case "contentType":
          return { case: kind, value: { contentTypes: list(a) } as rulesPb.ContentTypeSet };
        case "size":
          return { case: kind, value: { minBytes: whole(a, true), maxBytes: whole(b, true) } as rulesPb.SizeRange };
        case "modifyTime":
        case "captureTime":
          return { case: kind, value: { startTime: date(a), endTime: date(b) } as rulesPb.TimeRange };
        case "age":
        case "captureAge":
          return { case: kind, value: { olderThanDays: whole(a, false), newerThanDays: whole(b, false) } as rulesPb.AgeRange };
        case "isDuplicate":
          if (!["true", "false"].includes(a)) throw new LocalError(field, "write true or false");
          return { case: kind, value: a === "true" };
      }
    })();
    return { condition } as rulesPb.RuleCondition;
  });
  const kind = $<HTMLSelectElement>("rule-action-kind").value as ActionCase;
  const v = value("rule-action-value");
  const action = ((): rulesPb.RuleAction["action"] => {
    switch (kind) {
      case "move":
        return { case: kind, value: { destinationTemplate: v } as rulesPb.MoveAction };
      case "rename":
        return { case: kind, value: { nameTemplate: v } as rulesPb.RenameAction };
      case "setCategory":
        return { case: kind, value: { category: v } as rulesPb.SetCategoryAction };
      case "trash":
        return { case: kind, value: {} as rulesPb.TrashAction };
      case "leaveInPlace":
        return { case: kind, value: {} as rulesPb.LeaveInPlaceAction };
    }
  })();
  const position = value("rule-position").trim();
  if (!/^-?\d+$/.test(position)) throw new LocalError("rule.position", "must be a whole number");
  return {
    name: editing?.name ?? "",
    displayName: value("rule-display-name"),
    position: Number(position),
    match: Number($<HTMLSelectElement>("rule-match").value),
    conditions,
    action: { action } as rulesPb.RuleAction,
    etag: editing?.etag ?? "",
  } as Rule;
}

/** Shows a LocalError next to its field; true when `err` was one. */
function showLocal(err: unknown): boolean {
  if (!(err instanceof LocalError)) return false;
  clearFieldErrors(form());
  const slot = form().querySelector<HTMLElement>(`.field-error[data-field="${err.field}"]`);
  if (slot) {
    slot.textContent = `${err.field}: ${err.message}`;
    slot.dataset.violation = err.field;
    slot.hidden = false;
  }
  return true;
}

async function save(): Promise<void> {
  if (!editing) return;
  let rule: Rule;
  try {
    rule = draft();
  } catch (err) {
    if (showLocal(err)) return;
    throw err;
  }
  $("rule-stale").hidden = true;
  try {
    const saved = editing.name
      ? await ui.api().rules.updateRule({
          rule,
          updateMask: { paths: ["display_name", "position", "match", "conditions", "action"] },
        })
      : await ui.api().rules.createRule({ rule });
    clearFieldErrors(form());
    editing = { name: saved.name, etag: saved.etag };
    $("rule-form-title").textContent = `Edit "${saved.displayName}"`;
    ui.status(`Saved rule "${saved.displayName}" (version ${saved.version}).`);
  } catch (err) {
    const d = errorDetails(err);
    if (d.code === Code.InvalidArgument && showFieldErrors(form(), err)) {
      ui.status("The rule was not saved: see the messages next to the fields.");
      return;
    }
    if (editing.name && (d.code === Code.FailedPrecondition || d.code === Code.Aborted)) {
      const box = $("rule-stale");
      box.textContent =
        `Not saved: this rule was changed elsewhere after you opened it (${d.message}). ` +
        "Your edits are still in the form; open the rule again (Edit) to see the current version.";
      box.hidden = false;
      await loadRules();
      return;
    }
    throw err;
  }
  await loadRules();
  await runPreview();
}

async function remove(rule: Rule): Promise<void> {
  await ui.api().rules.deleteRule({ name: rule.name, etag: rule.etag });
  if (editing?.name === rule.name) {
    editing = undefined;
    form().hidden = true;
  }
  ui.status(`Deleted rule "${rule.displayName}".`);
  await loadRules();
  await runPreview();
}

/** Moves rule `from` to place `to`, then numbers every rule's position 0, 10, 20, … */
async function reorder(from: number, to: number): Promise<void> {
  const order = [...stored];
  const [moved] = order.splice(from, 1);
  order.splice(to, 0, moved);
  for (const [i, rule] of order.entries()) {
    if (rule.position === i * 10) continue;
    await ui.api().rules.updateRule({
      rule: { name: rule.name, position: i * 10, etag: rule.etag },
      updateMask: { paths: ["position"] },
    });
  }
  ui.status(`Moved rule "${moved.displayName}".`);
  await loadRules();
  await runPreview();
}

// ---------------------------------------------------------------- the live preview
function schedulePreview(): void {
  clearTimeout(previewTimer);
  previewTimer = setTimeout(() => void ui.action(runPreview)(), DEBOUNCE_MS);
}

/** The rules to preview: the stored ones with the draft in its place; `index` is the draft's. */
function draftSet(): { rules: Rule[]; index: number } {
  if (!editing || form().hidden) return { rules: stored, index: -1 };
  const rule = draft();
  const others = stored.filter((r) => r.name !== editing!.name);
  // Tried by position, then creation: the draft goes after the rules of its position it was
  // created after (a new rule: after all of them).
  const old = stored.findIndex((r) => r.name === editing!.name);
  let index = others.findIndex((r, i) => r.position > rule.position || (old >= 0 && i >= old && r.position === rule.position));
  if (index < 0) index = others.length;
  others.splice(index, 0, rule);
  return { rules: others, index };
}

async function runPreview(): Promise<void> {
  const seq = ++previewSeq;
  const line = $("rule-preview-status");
  let set: { rules: Rule[]; index: number };
  try {
    set = draftSet();
  } catch (err) {
    if (showLocal(err)) {
      line.textContent = "Preview paused: fix the marked field.";
      return;
    }
    throw err;
  }
  let response: rulesPb.PreviewRulesResponse;
  try {
    response = await ui.api().rules.previewRules({
      folder: value("rule-preview-folder").trim(),
      // Draft rules whenever a rule is being edited; the stored ones otherwise.
      rules: set.index >= 0 ? set.rules : [],
      maxFiles: 500,
    });
  } catch (err) {
    if (seq !== previewSeq) return;
    const d = errorDetails(err);
    const draftField = `rules[${set.index}]`;
    if (d.code === Code.InvalidArgument) {
      const placed = showFieldErrors(form(), err, (f) => (f.startsWith(draftField) ? `rule${f.slice(draftField.length)}` : f));
      line.textContent = placed ? "Preview paused: the rule has an error (shown next to the field)." : `Preview failed: ${d.message}`;
      line.dataset.state = "invalid";
      $("rule-preview").classList.add("stale");
      return;
    }
    throw err;
  }
  if (seq !== previewSeq) return;
  if (set.index >= 0) clearFieldErrors(form());
  const draftName = `rules/-${set.index}`;
  fillRows(
    tbody("rule-preview"),
    response.entries.map((entry) => {
      const byDraft = set.index >= 0 && entry.rule === draftName;
      const row = el(
        "tr",
        {
          class: `preview${byDraft ? " by-draft" : ""}`,
          "data-path": entry.path,
          "data-rule": entry.ruleDisplayName,
          "data-matched": entry.rule ? (byDraft ? "draft" : "rule") : "none",
        },
        el("td", { text: entry.path }),
        el("td", { text: entry.rule ? `${entry.ruleDisplayName}${byDraft ? " (editing)" : ""}` : "no rule: the operation's template" }),
        el("td", { text: entry.error ? `error: ${entry.error}` : entry.explanation }),
        el("td", { text: entry.rule ? entry.destination || "(stays)" : "" }),
      );
      return row;
    }),
    "Nothing here: the folder has no files to preview.",
  );
  $("rule-preview").classList.remove("stale");
  line.dataset.state = "ok";
  line.textContent = `${response.entries.length} file(s) previewed${response.truncated ? " (more not shown)" : ""}, ${response.matchedCount} matched a rule.`;
}
