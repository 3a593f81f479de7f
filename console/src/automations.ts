// The automations screen (issue 21): each automation with its kind (arrival, schedule, server
// folder), its trigger, paused state (pause/resume), last and next run, the error of its last
// run, and the operations it produced (ListOperations filtered by `automation`), each a link that
// opens the operation; a form to create one (field errors next to the fields) and delete.
import { Code, errorDetails, OperationState, automations as autoPb, type operations } from "@fileorganizer/sdk";
import { $, clearFieldErrors, el, fieldError, showFieldErrors, type Ui, when } from "./ui";

type Automation = autoPb.Automation;
type TriggerCase = NonNullable<Automation["trigger"]["case"]>;

const KINDS: Record<TriggerCase, string> = {
  arrival: "on arrival (uploads into a folder)",
  schedule: "on a schedule",
  watchedFolder: "server folder (changed on disk)",
};

/** Operations shown per automation (the newest). */
const RUNS_SHOWN = 10;

let ui: Ui;

const value = (id: string) => $<HTMLInputElement>(id).value.trim();

export function initAutomations(hooks: Ui): void {
  ui = hooks;
  const kind = el("select", { id: "automation-kind" });
  for (const [k, label] of Object.entries(KINDS)) kind.append(el("option", { value: k, text: label }));
  $("automations-screen").append(
    el("h2", { text: "Automations" }),
    el("button", { id: "automations-refresh", type: "button", text: "Refresh" }),
    el("div", { id: "automation-list" }),
    el("h3", { text: "New automation" }),
    el(
      "form",
      { id: "automation-form" },
      el("label", {}, "Name", el("input", { id: "automation-display-name" }), fieldError("automation.display_name")),
      el("label", {}, "Kind", kind, fieldError("automation.trigger")),
      el(
        "label",
        { id: "automation-folder-label" },
        "Watched folder",
        el("input", { id: "automation-folder", value: "inbox" }),
        fieldError("automation.arrival"),
        fieldError("automation.watched_folder"),
      ),
      el("label", { id: "automation-quiet-label" }, "Quiet period (s)", el("input", { id: "automation-quiet", type: "number", value: "5" })),
      el("label", { id: "automation-cron-label", hidden: "" }, "Cron", el("input", { id: "automation-cron", value: "0 3 * * *" }), fieldError("automation.schedule.cron")),
      el("label", { id: "automation-tz-label", hidden: "" }, "Time zone", el("input", { id: "automation-tz", value: "UTC" }), fieldError("automation.schedule.time_zone")),
      el("label", { id: "automation-source-label", hidden: "" }, "Source", el("input", { id: "automation-source", value: "inbox" })),
      el("label", {}, "Destination", el("input", { id: "automation-destination", value: "sorted" }), fieldError("automation.operation")),
      el("button", { id: "automation-create", type: "submit", text: "Create" }),
    ),
  );
  const sync = () => {
    const k = kind.value as TriggerCase;
    $("automation-folder-label").hidden = $("automation-quiet-label").hidden = k === "schedule";
    $("automation-cron-label").hidden = $("automation-tz-label").hidden = $("automation-source-label").hidden = k !== "schedule";
  };
  kind.addEventListener("change", sync);
  sync();
  $("automations-refresh").addEventListener("click", ui.action(showAutomations));
  $("automation-form").addEventListener("submit", (e) => {
    e.preventDefault();
    void ui.action(create)();
  });
}

async function create(): Promise<void> {
  const form = $("automation-form");
  const k = $<HTMLSelectElement>("automation-kind").value as TriggerCase;
  const seconds = Number(value("automation-quiet") || "5");
  const quietPeriod = { seconds: BigInt(Math.max(0, Math.floor(seconds))), nanos: 0 };
  const folderPath = value("automation-folder");
  const trigger: Automation["trigger"] =
    k === "schedule"
      ? { case: k, value: { cron: value("automation-cron"), timeZone: value("automation-tz") } as autoPb.ScheduleTrigger }
      : k === "arrival"
        ? { case: k, value: { folderPath, quietPeriod } as autoPb.ArrivalTrigger }
        : { case: k, value: { folderPath, quietPeriod } as autoPb.WatchedFolderTrigger };
  try {
    const made = await ui.api().automations.createAutomation({
      automation: {
        displayName: value("automation-display-name"),
        trigger,
        operation: {
          sourcePath: k === "schedule" ? value("automation-source") : folderPath,
          destinationPath: value("automation-destination"),
        },
      },
    });
    clearFieldErrors(form);
    ui.status(`Created automation "${made.displayName || made.name}".`);
  } catch (err) {
    if (errorDetails(err).code === Code.InvalidArgument && showFieldErrors(form, err)) {
      ui.status("The automation was not created: see the messages next to the fields.");
      return;
    }
    throw err;
  }
  await showAutomations();
}

function kindOf(a: Automation): string {
  return a.trigger.case ? KINDS[a.trigger.case] : "?";
}

function triggerDetails(a: Automation): string {
  const t = a.trigger;
  const quiet = (d: { seconds: bigint } | undefined) => (d ? `, quiet period ${d.seconds} s` : "");
  switch (t.case) {
    case "schedule":
      return `cron "${t.value.cron}" in ${t.value.timeZone || "UTC"}`;
    case "arrival":
      return `uploads into "${t.value.folderPath}"${quiet(t.value.quietPeriod)}`;
    case "watchedFolder":
      return `changes on disk in "${t.value.folderPath}"${quiet(t.value.quietPeriod)}`;
    default:
      return "";
  }
}

async function runsOf(a: Automation): Promise<operations.Operation[]> {
  const page = await ui.api().operations.listOperations({ automation: a.name, pageSize: RUNS_SHOWN });
  return page.operations;
}

/** Lists the automations (all pages), each with its newest operations. */
export async function showAutomations(): Promise<void> {
  const all: Automation[] = [];
  let pageToken = "";
  do {
    const page = await ui.api().automations.listAutomations({ pageSize: 1000, pageToken });
    all.push(...page.automations);
    pageToken = page.nextPageToken;
  } while (pageToken);
  const cards = await Promise.all(all.map(async (a) => card(a, await runsOf(a))));
  $("automation-list").replaceChildren(...(cards.length ? cards : [el("p", { text: "No automations yet." })]));
}

function card(a: Automation, runs: operations.Operation[]): HTMLElement {
  const field = (label: string, cls: string, text: string) =>
    el("div", { class: cls }, el("dt", { text: label }), el("dd", { text }));
  const pause = el("button", { type: "button", class: a.paused ? "resume" : "pause", text: a.paused ? "Resume" : "Pause" });
  pause.addEventListener(
    "click",
    ui.action(async () => {
      if (a.paused) await ui.api().automations.resumeAutomation({ name: a.name });
      else await ui.api().automations.pauseAutomation({ name: a.name });
      ui.status(`${a.paused ? "Resumed" : "Paused"} "${a.displayName || a.name}".`);
      await showAutomations();
    }),
  );
  const del = el("button", { type: "button", class: "delete", text: "Delete" });
  del.addEventListener(
    "click",
    ui.action(async () => {
      await ui.api().automations.deleteAutomation({ name: a.name });
      ui.status(`Deleted "${a.displayName || a.name}"; the operations it created stay.`);
      await showAutomations();
    }),
  );
  const list = el(
    "ul",
    { class: "runs" },
    ...runs.map((op) => {
      const link = el("a", { href: "#", class: "operation", "data-name": op.name, "data-state": OperationState[op.state] }, op.name);
      link.addEventListener(
        "click",
        (e) => {
          e.preventDefault();
          void ui.action(() => ui.openOperation(op.name))();
        },
      );
      return el("li", {}, link, ` ${OperationState[op.state]}, created ${when(op.createTime)}`);
    }),
  );
  return el(
    "article",
    {
      class: a.lastError ? "automation failed" : "automation",
      "data-name": a.name,
      "data-paused": String(a.paused),
      "data-kind": a.trigger.case ?? "",
      "data-run-count": String(a.runCount),
    },
    el("h4", { text: a.displayName || a.name }),
    el(
      "dl",
      {},
      field("Kind", "kind", kindOf(a)),
      field("Trigger", "trigger", triggerDetails(a)),
      field("State", "state", a.paused ? "paused" : "active"),
      field("Last run", "last-run", when(a.lastRunTime)),
      field("Next run", "next-run", when(a.nextRunTime)),
      field("Runs", "run-count", String(a.runCount)),
      field("Last error", "last-error", a.lastError || "none"),
    ),
    pause,
    del,
    el("h5", { text: runs.length ? "Operations it created (newest first)" : "No operations yet" }),
    list,
  );
}
