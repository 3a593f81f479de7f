// The Categories screen (issue 22): every category (built-in ones read-only, then the caller's
// own, which organize tries first), with its extensions, globs, color and file count; a form
// to create one or edit one of the caller's (UpdateCategory with an explicit update mask, so
// clearing the globs really clears them) and Delete. The server's field errors appear next to
// the fields.
import type { files as filesPb } from "@fileorganizer/sdk";
import { $, allPages, clearFieldErrors, el, fieldError, fillRows, scrollTable, tbody, textRow, type Ui, withFieldErrors } from "./ui";

let ui: Ui;
/** The category being edited (its resource name), or undefined for a new one. */
let editing: string | undefined;

const input = (id: string) => $<HTMLInputElement>(id);
/** "jpg, png" or one per line → ["jpg", "png"]. */
const list = (id: string) =>
  input(id)
    .value.split(/[,\n]/)
    .map((s) => s.trim())
    .filter(Boolean);

export function initCategories(hooks: Ui): void {
  ui = hooks;
  const cancel = el("button", { id: "category-cancel", type: "button", text: "Cancel edit" });
  cancel.hidden = true;
  $("categories-screen").append(
    el("h2", { text: "Categories" }),
    scrollTable("category-list", ["Name", "Extensions", "Globs", "Color", "Files", ""], "Categories"),
    el("h3", { id: "category-form-title", text: "New category" }),
    el(
      "form",
      { id: "category-form" },
      el("label", {}, "Name", el("input", { id: "category-display-name", required: "" }), fieldError("category.display_name")),
      el("label", {}, "Extensions (comma-separated)", el("input", { id: "category-extensions", placeholder: "jpg, png" }), fieldError("category.extensions")),
      el("label", {}, "Globs (comma-separated)", el("input", { id: "category-globs", placeholder: "**/invoice-*.pdf" }), fieldError("category.globs")),
      el("label", {}, "Color", el("input", { id: "category-color", placeholder: "#rrggbb" }), fieldError("category.color")),
      el("label", {}, "Icon", el("input", { id: "category-icon" }), fieldError("category.icon")),
      el("button", { id: "category-save", type: "submit", text: "Create" }),
      cancel,
    ),
  );
  $("category-form").addEventListener("submit", (e) => {
    e.preventDefault();
    void ui.action(save)();
  });
  cancel.addEventListener("click", () => edit(undefined));
}

function edit(category: filesPb.Category | undefined): void {
  editing = category?.name;
  input("category-display-name").value = category?.displayName ?? "";
  input("category-extensions").value = category?.extensions.join(", ") ?? "";
  input("category-globs").value = category?.globs.join(", ") ?? "";
  input("category-color").value = category?.color ?? "";
  input("category-icon").value = category?.icon ?? "";
  $("category-form-title").textContent = category ? `Edit ${category.displayName}` : "New category";
  $("category-save").textContent = category ? "Save" : "Create";
  $("category-cancel").hidden = !category;
  clearFieldErrors($("category-form"));
  if (category) input("category-display-name").focus();
}

async function save(): Promise<void> {
  const form = $("category-form");
  const category = {
    name: editing ?? "",
    displayName: input("category-display-name").value.trim(),
    extensions: list("category-extensions"),
    globs: list("category-globs"),
    color: input("category-color").value.trim(),
    icon: input("category-icon").value.trim(),
  };
  const saved = await withFieldErrors(ui, form, "The category was not saved", () =>
    editing
      ? ui.api().files.updateCategory({
          category,
          updateMask: { paths: ["display_name", "extensions", "globs", "color", "icon"] },
        })
      : ui.api().files.createCategory({ category }),
  );
  if (!saved) return;
  edit(undefined);
  await showCategories();
  ui.status(`Saved category "${saved.displayName}".`);
}

export async function showCategories(): Promise<void> {
  const all = await allPages(async (pageToken) => {
    const page = await ui.api().files.listCategories({ pageSize: 500, pageToken });
    return { items: page.categories, next: page.nextPageToken };
  });
  fillRows(tbody("category-list"),
    all.map((c) => {
      const actions = el("td", { class: "actions" });
      if (c.builtIn) {
        actions.textContent = "built-in";
      } else {
        const editButton = el("button", { type: "button", class: "edit", text: "Edit", "aria-label": `Edit ${c.displayName}` });
        editButton.addEventListener("click", () => edit(c));
        const remove = el("button", { type: "button", class: "delete", text: "Delete", "aria-label": `Delete ${c.displayName}` });
        remove.addEventListener(
          "click",
          ui.action(async () => {
            await ui.api().files.deleteCategory({ name: c.name });
            if (editing === c.name) edit(undefined);
            await showCategories();
            ui.status(`Deleted category "${c.displayName}".`);
          }),
        );
        actions.append(editButton, remove);
      }
      const swatch = el("td", {}, c.color ? el("span", { class: "swatch" }) : "", c.color || "–");
      const dot = swatch.querySelector<HTMLElement>(".swatch");
      if (dot) dot.style.background = c.color; // through the CSSOM: the CSP allows no inline style
      return textRow(
        [c.displayName, c.extensions.join(", ") || "–", c.globs.join(", ") || "–"],
        { class: "category", "data-name": c.name, "data-display-name": c.displayName, "data-built-in": String(c.builtIn) },
        swatch,
        el("td", { text: String(c.fileCount) }),
        actions,
      );
    }),
    "No categories.",
  );
}
