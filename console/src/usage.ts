// The Usage screen (issue 22): GetUsageSummary (storage used against the quota, with a meter;
// the trash's share; what the caller's operations organized and the duplicates they found;
// operations per state) and, for administrators, GetRateLimitStatus for a user id (the
// caller's own by default): every limiter bucket's use in its window and when it resets. The
// RPC is admin-only on the server, so other users are told so instead of shown an error.
import { auth, OperationState } from "@fileorganizer/sdk";
import { $, el, fillRows, humanSize, scrollTable, tbody, textRow, type Ui, when } from "./ui";

let ui: Ui;

export function initUsage(hooks: Ui): void {
  ui = hooks;
  const meter = el("meter", { id: "quota-meter", min: "0", max: "100", low: "80", high: "95", optimum: "0" });
  $("usage-screen").append(
    el("h2", { text: "Usage and quota" }),
    el("button", { id: "usage-refresh", type: "button", text: "Refresh" }),
    el("p", {}, el("label", { for: "quota-meter", text: "Storage: " }), meter, " ", el("span", { id: "quota-text" })),
    el("dl", { id: "usage-summary", class: "pairs" }),
    scrollTable("usage-states", ["State", "Operations"], "Operations per state"),
    el("h3", { text: "Rate limits" }),
    el("div", { id: "rate-limits" }),
  );
  $("usage-refresh").addEventListener("click", ui.action(showUsage));
}

function pair(key: string, label: string, value: string): HTMLElement {
  return el("div", { "data-key": key }, el("dt", { text: label }), el("dd", { text: value }));
}

export async function showUsage(): Promise<void> {
  const [summary, me] = await Promise.all([ui.api().reports.getUsageSummary({}), ui.api().me()]);
  const meter = $<HTMLMeterElement>("quota-meter");
  meter.value = summary.storageUsedPercent;
  const text = `${humanSize(summary.storageUsedBytes)} of ${humanSize(summary.storageQuotaBytes)} (${summary.storageUsedPercent.toFixed(1)} %)`;
  $("quota-text").textContent = text;
  meter.setAttribute("aria-valuetext", text);
  $("quota-text").dataset.used = String(summary.storageUsedBytes);
  $("quota-text").dataset.quota = String(summary.storageQuotaBytes);
  $("usage-summary").replaceChildren(
    pair("trash", "In the trash", humanSize(summary.trashBytes)),
    pair("operations", "Operations", String(summary.operationCount)),
    pair("organized", "Files organized", `${summary.filesOrganized} (${humanSize(summary.bytesOrganized)})`),
    pair("duplicates", "Duplicates found", `${summary.duplicatesFound} (${humanSize(summary.reclaimableBytes)} reclaimable)`),
    pair("computed", "Computed", when(summary.computeTime)),
  );
  fillRows(tbody("usage-states"),
    summary.operationsByState.map((s) => textRow([OperationState[s.state], String(s.count)], { "data-state": OperationState[s.state] })),
    "No operations yet.",
  );
  const box = $("rate-limits");
  if (me.role !== auth.UserRole.ADMIN) {
    box.replaceChildren(el("p", { id: "rate-limits-admin-only", text: "Rate-limit counters are shown to administrators only." }));
    return;
  }
  if (!box.querySelector("form")) {
    const userId = el("input", { id: "rate-user", value: me.id, spellcheck: "false" });
    const form = el(
      "form",
      { id: "rate-form" },
      el("label", {}, "User id", userId),
      el("button", { id: "rate-show", type: "submit", text: "Show counters" }),
    );
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      void ui.action(showRateLimits)();
    });
    box.replaceChildren(form, scrollTable("rate-counters", ["Bucket", "Used", "Limit", "Window", "Resets"], "Rate-limit counters"), el("p", { id: "rate-backend" }));
  }
  await showRateLimits();
}

async function showRateLimits(): Promise<void> {
  const res = await ui.api().system.getRateLimitStatus({ userId: $<HTMLInputElement>("rate-user").value.trim() });
  fillRows(tbody("rate-counters"),
    res.counters.map((c) =>
      textRow(
        [c.bucket, String(c.used), String(c.limit), c.window ? `${c.window.seconds} s` : "–", when(c.resetTime)],
        { class: "counter", "data-bucket": c.bucket, "data-used": String(c.used), "data-limit": String(c.limit) },
      ),
    ),
    "No counters.",
  );
  $("rate-backend").textContent = `Counted in ${res.backend}.`;
}
