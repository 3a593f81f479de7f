// The Profile screen (issue 22): who is signed in (email, role, storage, dates) and the two
// things UpdateCurrentUser allows: the display name (update mask "display_name"), and the
// password, which needs the current one and signs out every other session of the user (this
// one stays signed in). The new password is typed twice and compared here before it is sent;
// the server's policy and its "is not the current password" appear next to the fields.
import { auth, type FileOrganizerClient } from "@fileorganizer/sdk";
import { $, clearFieldErrors, el, fieldError, humanSize, type Ui, when, withFieldErrors } from "./ui";

let ui: Ui;

const input = (id: string) => $<HTMLInputElement>(id);

export function initProfile(hooks: Ui): void {
  ui = hooks;
  $("profile-screen").append(
    el("h2", { text: "Profile" }),
    el("dl", { id: "profile-facts", class: "pairs" }),
    el(
      "form",
      { id: "profile-form" },
      el("label", {}, "Display name", el("input", { id: "profile-display-name", maxlength: "100", autocomplete: "name" }), fieldError("user.display_name")),
      el("button", { id: "profile-save", type: "submit", text: "Save name" }),
    ),
    el("h3", { text: "Change password" }),
    el(
      "form",
      { id: "password-form" },
      el("label", {}, "Current password", el("input", { id: "password-current", type: "password", autocomplete: "current-password", required: "" }), fieldError("current_password")),
      el("label", {}, "New password", el("input", { id: "password-new", type: "password", autocomplete: "new-password", minlength: "8", required: "" }), fieldError("new_password")),
      el("label", {}, "New password again", el("input", { id: "password-repeat", type: "password", autocomplete: "new-password", required: "" }), fieldError("repeat")),
      el("button", { id: "password-change", type: "submit", text: "Change password" }),
    ),
  );
  $("profile-form").addEventListener("submit", (e) => {
    e.preventDefault();
    void ui.action(saveName)();
  });
  $("password-form").addEventListener("submit", (e) => {
    e.preventDefault();
    void ui.action(changePassword)();
  });
}

function fact(key: string, label: string, value: string): HTMLElement {
  return el("div", { "data-key": key }, el("dt", { text: label }), el("dd", { text: value }));
}

function showUser(user: auth.User): void {
  $("profile-facts").replaceChildren(
    fact("email", "Email", user.email),
    fact("role", "Role", user.role === auth.UserRole.ADMIN ? "administrator" : "user"),
    fact("storage", "Storage", `${humanSize(user.storageUsedBytes)} of ${humanSize(user.storageQuotaBytes)}`),
    fact("created", "Member since", when(user.createTime)),
    fact("last-login", "Last sign-in", when(user.lastLoginTime)),
  );
  input("profile-display-name").value = user.displayName;
  $("who").textContent = user.displayName ? `${user.displayName} <${user.email}>` : user.email;
}

export async function showProfile(): Promise<void> {
  showUser(await ui.api().me());
}

/** Runs an update; INVALID_ARGUMENT with field violations goes next to the fields. */
function update(form: HTMLElement, req: Parameters<FileOrganizerClient["auth"]["updateCurrentUser"]>[0], what: string): Promise<auth.User | undefined> {
  return withFieldErrors(ui, form, what, () => ui.api().auth.updateCurrentUser(req));
}

async function saveName(): Promise<void> {
  const displayName = input("profile-display-name").value.trim();
  const user = await update($("profile-form"), { user: { displayName }, updateMask: { paths: ["display_name"] } }, "The name was not saved");
  if (!user) return;
  showUser(user);
  ui.status("Saved your display name.");
}

async function changePassword(): Promise<void> {
  const form = $("password-form");
  clearFieldErrors(form);
  if (input("password-new").value !== input("password-repeat").value) {
    const slot = form.querySelector<HTMLElement>('.field-error[data-field="repeat"]')!;
    slot.textContent = "The two new passwords differ.";
    slot.dataset.violation = "repeat";
    slot.hidden = false;
    ui.status("The password was not changed: see the messages next to the fields.");
    return;
  }
  const user = await update(
    form,
    { currentPassword: input("password-current").value, newPassword: input("password-new").value },
    "The password was not changed",
  );
  if (!user) return;
  (form as HTMLFormElement).reset();
  showUser(user);
  ui.status("Password changed. Your other sessions were signed out; this one stays signed in.");
}
