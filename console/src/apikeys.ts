// The API keys screen (issue 22): the caller's keys (never their secrets: the server keeps only
// a hash), a form to create one with a name, chosen scopes and an optional expiry, and Revoke.
// A new key's secret is shown once, in a box with a Copy button, and is dropped from the page
// (and from this module's memory) as soon as the box is dismissed or the screen is left: it
// cannot be shown again, which the box says.
import type { auth } from "@fileorganizer/sdk";
import { $, allPages, el, fieldError, fillRows, scrollTable, tbody, textRow, type Ui, when, withFieldErrors } from "./ui";

/** The scopes a key may be restricted to (ApiKey.scopes in auth.proto), with what they allow. */
const SCOPES: [string, string][] = [
  ["files.read", "list, download, search files; read categories and rules"],
  ["files.write", "upload, delete, restore; edit categories and rules"],
  ["operations.read", "operations, progress, reports, usage"],
  ["operations.write", "create, apply, cancel, undo operations"],
  ["keys", "manage API keys"],
  ["account", "change the profile and password, log out"],
  ["admin", "administrators' RPCs (needs the admin role too)"],
];

let ui: Ui;

export function initApiKeys(hooks: Ui): void {
  ui = hooks;
  const secretBox = el(
    "div",
    { id: "key-secret-box", role: "status" },
    el("p", { text: "Your new key's secret. Copy it now: it is shown only this once and cannot be shown again." }),
    el("code", { id: "key-secret" }),
    el("button", { id: "key-copy", type: "button", text: "Copy" }),
    el("button", { id: "key-secret-done", type: "button", text: "I have stored it" }),
  );
  secretBox.hidden = true;
  $("keys-screen").append(
    el("h2", { text: "API keys" }),
    el("p", { text: "A key authenticates scripts and other programs (header x-api-key) without your password." }),
    scrollTable("key-list", ["Name", "Prefix", "Scopes", "Created", "Last used", "Expires", "State", ""], "API keys"),
    el("h3", { text: "New API key" }),
    el(
      "form",
      { id: "key-form" },
      el("label", {}, "Name", el("input", { id: "key-display-name", required: "", maxlength: "100" }), fieldError("api_key.display_name")),
      el("label", {}, "Expires (optional)", el("input", { id: "key-expires", type: "date" }), fieldError("api_key.expire_time")),
      el(
        "fieldset",
        { id: "key-scopes" },
        el("legend", { text: "Scopes (none chosen: everything you may do)" }),
        ...SCOPES.map(([scope, what]) =>
          el("label", { class: "check" }, el("input", { type: "checkbox", value: scope }), `${scope}: ${what}`),
        ),
        fieldError("api_key.scopes"),
      ),
      el("button", { id: "key-create", type: "submit", text: "Create key" }),
    ),
    secretBox,
  );
  $("key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    void ui.action(create)();
  });
  $("key-copy").addEventListener(
    "click",
    ui.action(async () => {
      await navigator.clipboard.writeText($("key-secret").textContent ?? "");
      ui.status("Copied the secret to the clipboard.");
    }),
  );
  $("key-secret-done").addEventListener("click", hideSecret);
}

/** Forgets the secret shown (the screen is left, or the person dismissed it). */
export function hideSecret(): void {
  $("key-secret").textContent = "";
  $("key-secret-box").hidden = true;
}

async function create(): Promise<void> {
  const form = $("key-form");
  const scopes = [...form.querySelectorAll<HTMLInputElement>("#key-scopes input:checked")].map((box) => box.value);
  const expires = $<HTMLInputElement>("key-expires").value;
  const res = await withFieldErrors(ui, form, "The key was not created", () =>
    ui.api().auth.createApiKey({
      apiKey: {
        displayName: $<HTMLInputElement>("key-display-name").value.trim(),
        scopes,
        // The end of the chosen day, local time.
        expireTime: expires ? { seconds: BigInt(Math.floor(new Date(`${expires}T23:59:59`).getTime() / 1000)), nanos: 0 } : undefined,
      },
    }),
  );
  if (!res) return;
  (form as HTMLFormElement).reset();
  $("key-secret").textContent = res.secret;
  $("key-secret-box").hidden = false;
  $("key-secret-box").dataset.key = res.apiKey?.name ?? "";
  await showApiKeys();
  ui.status(`Created API key "${res.apiKey?.displayName}".`);
}

function state(key: auth.ApiKey): string {
  if (key.revoked) return "revoked";
  if (key.expireTime && Number(key.expireTime.seconds) * 1000 < Date.now()) return "expired";
  return "active";
}

export async function showApiKeys(): Promise<void> {
  const keys = await allPages(async (pageToken) => {
    const page = await ui.api().auth.listApiKeys({ pageSize: 500, pageToken });
    return { items: page.apiKeys, next: page.nextPageToken };
  });
  fillRows(tbody("key-list"),
    keys.map((key) => {
      const actions = el("td", { class: "actions" });
      if (!key.revoked) {
        const revoke = el("button", { type: "button", class: "revoke", text: "Revoke", "aria-label": `Revoke ${key.displayName}` });
        revoke.addEventListener(
          "click",
          ui.action(async () => {
            await ui.api().auth.revokeApiKey({ name: key.name });
            await showApiKeys();
            ui.status(`Revoked API key "${key.displayName}".`);
          }),
        );
        actions.append(revoke);
      }
      return textRow(
        [
          key.displayName,
          `fo_${key.prefix}_…`,
          key.scopes.join(", ") || "all",
          when(key.createTime),
          when(key.lastUsedTime),
          key.expireTime ? when(key.expireTime) : "never",
          state(key),
        ],
        { class: "api-key", "data-name": key.name, "data-display-name": key.displayName, "data-state": state(key) },
        actions,
      );
    }),
    "No API keys yet.",
  );
}
