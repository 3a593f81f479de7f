// What the console's screens share: DOM helpers and the hooks main.ts gives every screen
// (the signed-in client, the action wrapper that shows errors, the status line).
import { Code, errorDetails, type FileOrganizerClient } from "@fileorganizer/sdk";

export const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

/** Hooks into the page that every screen module is given by main.ts. */
export interface Ui {
  /** The signed-in client (throws when signed out). */
  api(): FileOrganizerClient;
  /** Wraps a UI action: clears the error box, shows any new error, never throws. */
  action(fn: () => Promise<void>): () => Promise<void>;
  /** Sets the status line. */
  status(text: string): void;
  /** Shows an operation (its state and records) on the organize screen. */
  openOperation(name: string): Promise<void>;
  /** Lists a folder on the files screen (after a restore, say). */
  browse(path: string): Promise<void>;
}

/** Creates an element with attributes (`text` sets textContent) and children. */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
}

/** An empty, hidden slot for the server's message about `field` (see showFieldErrors). */
export function fieldError(field: string): HTMLElement {
  const slot = el("span", { class: "field-error", "data-field": field });
  slot.hidden = true;
  return slot;
}

/**
 * Shows the server's INVALID_ARGUMENT field violations next to the fields: every element with
 * `data-field` whose value is the violation's field, or the longest one that is a prefix of it
 * (`rule.conditions[1]` shows `rule.conditions[1].name_regex`), gets the description. Returns
 * whether every violation found a place; `rename` maps a field before the lookup.
 */
export function showFieldErrors(root: HTMLElement, err: unknown, rename: (field: string) => string = (f) => f): boolean {
  clearFieldErrors(root);
  const slots = [...root.querySelectorAll<HTMLElement>(".field-error[data-field]")];
  let placed = 0;
  const violations = errorDetails(err).fieldViolations;
  for (const violation of violations) {
    const field = rename(violation.field);
    const slot = slots
      .filter((s) => field === s.dataset.field || field.startsWith(`${s.dataset.field}.`))
      .sort((a, b) => b.dataset.field!.length - a.dataset.field!.length)[0];
    if (!slot) continue;
    slot.textContent = `${field}: ${violation.description}`;
    slot.dataset.violation = field;
    slot.hidden = false;
    placed++;
  }
  return violations.length > 0 && placed === violations.length;
}

export function clearFieldErrors(root: HTMLElement): void {
  for (const slot of root.querySelectorAll<HTMLElement>(".field-error")) {
    slot.textContent = "";
    delete slot.dataset.violation;
    slot.hidden = true;
  }
}

/** A timestamp for people ("–" when unset). */
export function when(ts: { seconds: bigint; nanos: number } | undefined): string {
  if (!ts) return "–";
  return new Date(Number(ts.seconds) * 1000).toISOString().replace(".000Z", "Z");
}

/**
 * Fills a table body with `rows`, or with one "nothing here" row spanning every column when
 * there are none, so that an empty table never shows bare headers. Every table of the console
 * is filled through this.
 */
export function fillRows(body: HTMLTableSectionElement, rows: HTMLTableRowElement[], empty = "Nothing here."): void {
  if (rows.length > 0) {
    body.replaceChildren(...rows);
    return;
  }
  const columns = body.closest("table")?.querySelectorAll("thead th").length || 1;
  body.replaceChildren(el("tr", { class: "empty" }, el("td", { colspan: String(columns), text: empty })));
}

/** A table row of text cells, then any extra cells (e.g. one holding buttons). */
export function textRow(cells: string[], attrs: Record<string, string> = {}, ...extra: HTMLTableCellElement[]): HTMLTableRowElement {
  return el("tr", attrs, ...cells.map((text) => el("td", { text })), ...extra);
}

/**
 * A table with a caption-less header row and an empty body, inside a box that scrolls
 * sideways when the table is wider than its card (`.table-scroll`), so a narrow screen scrolls
 * the table instead of pushing it out of the card.
 */
export function scrollTable(id: string, headers: string[], label: string): HTMLDivElement {
  return el(
    "div",
    { class: "table-scroll", tabindex: "0", role: "region", "aria-label": label },
    el(
      "table",
      { id },
      // An empty header is an actions column: named for screen readers only.
      el("thead", {}, el("tr", {}, ...headers.map((text) => el("th", { scope: "col" }, text || el("span", { class: "visually-hidden", text: "Actions" }))))),
      el("tbody"),
    ),
  );
}

/** The body of the table with this id. */
export const tbody = (id: string) => $<HTMLTableElement>(id).tBodies[0];

/** Bytes for people (B, KiB, MiB, GiB). */
export function humanSize(bytes: bigint | number): string {
  const n = Number(bytes);
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 * 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 / 1024 / 1024).toFixed(1)} GiB`;
}

/** Every item of a paged List RPC: `page(token)` fetches one page (items and the next token). */
export async function allPages<T>(page: (pageToken: string) => Promise<{ items: T[]; next: string }>): Promise<T[]> {
  const all: T[] = [];
  let token = "";
  do {
    const { items, next } = await page(token);
    all.push(...items);
    token = next;
  } while (token);
  return all;
}

/**
 * Runs a call whose INVALID_ARGUMENT field violations belong next to `form`'s fields: shown
 * there (the status line says `<what>: see the messages…`), the result is undefined; any other
 * error is thrown (to the page's error box). On success the form's old messages are cleared.
 */
export async function withFieldErrors<T>(ui: Ui, form: HTMLElement, what: string, call: () => Promise<T>): Promise<T | undefined> {
  try {
    const result = await call();
    clearFieldErrors(form);
    return result;
  } catch (err) {
    if (errorDetails(err).code === Code.InvalidArgument && showFieldErrors(form, err)) {
      ui.status(`${what}: see the messages next to the fields.`);
      return undefined;
    }
    throw err;
  }
}
