import type { ErrorJson } from "../errors.ts";
import type { StoredEvent, Usage } from "../schemas.ts";
import type { DiffView, ListItemView, LogsView, StatusView } from "../views.ts";

/**
 * The dashboard's pages as HTML strings, from core's views (the same objects `--json` prints).
 * Pure functions: the handler (handler.ts) fetches the views through the operations and these
 * render them; the live updates re-render the same sections.
 */

export function esc(value: unknown): string {
  return String(value ?? "")
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&#39;");
}

export function layout(opts: {
  title: string;
  heading: string;
  csrf: string;
  poll?: string;
  intervalMs?: number;
  brand: string;
  body: string;
}): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${esc(opts.title)}</title><link rel="stylesheet" href="/dashboard.css"><script src="/dashboard.js" defer></script></head>
<body data-csrf="${esc(opts.csrf)}"${opts.poll ? ` data-poll="${esc(opts.poll)}"` : ""}${opts.intervalMs ? ` data-interval="${opts.intervalMs}"` : ""}>
<a class="skip" href="#main">Skip to content</a>
<header><nav aria-label="Main"><a href="/">${esc(opts.brand)}</a></nav></header>
<main id="main"><h1>${esc(opts.heading)}</h1>
${opts.body}
<p class="mut"><small id="updated" aria-live="off"></small></p>
</main></body></html>
`;
}

/** A page for a refusal (sign-in, not found) without the dashboard's chrome. */
export function messagePage(title: string, text: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${esc(title)}</title><link rel="stylesheet" href="/dashboard.css"></head>
<body><main id="main"><h1>${esc(title)}</h1><p>${esc(text)}</p></main></body></html>
`;
}

export function formatUsage(usage: Usage | null | undefined): string {
  if (!usage) return "—";
  const tokens = usage.input + usage.output + usage.reasoning;
  return `$${usage.cost.toFixed(usage.cost < 1 ? 4 : 2)} · ${tokens.toLocaleString("en")} tokens`;
}

function time(iso: string | null | undefined): string {
  if (!iso) return `<span class="mut">—</span>`;
  return `<time datetime="${esc(iso)}">${esc(iso.replace("T", " ").replace(/\.\d+Z$/, "Z"))}</time>`;
}

const BAD_AGENT = new Set(["error", "budget", "needs_input", "retry"]);

function agentCell(agent: string, reason: string | null | undefined): string {
  const cls = BAD_AGENT.has(agent) ? (agent === "error" ? "bad" : "warn") : "";
  return `<span class="state ${cls}">${esc(agent)}</span>${reason ? `<br><span class="mut">${esc(reason)}</span>` : ""}`;
}

function stateCell(state: string): string {
  const cls = state === "error" ? "bad" : state === "running" ? "ok" : "";
  return `<span class="state ${cls}">${esc(state)}</span>`;
}

function overlapsText(overlaps: { name: string; files: string[] }[]): string {
  if (!overlaps.length) return `<span class="mut">none</span>`;
  return overlaps
    .map(
      (o) =>
        `<span class="warn"><a href="/sandboxes/${encodeURIComponent(o.name)}">${esc(o.name)}</a>: ${o.files.map(esc).join(", ")}</span>`,
    )
    .join("<br>");
}

/** The list's table (a live section). */
export function listTable(items: readonly ListItemView[]): string {
  if (!items.length)
    return `<p>No sandboxes yet. Start one with <code>alpine launch &lt;name&gt; --repo &lt;url&gt; --task "…"</code>.</p>`;
  const rows = items
    .map(
      (i) => `<tr data-sandbox="${esc(i.name)}">
<th scope="row" data-label="Sandbox"><a href="/sandboxes/${encodeURIComponent(i.name)}">${esc(i.name)}</a><br><span class="mut">${esc(i.provider)}</span></th>
<td data-label="State">${stateCell(i.state)}</td>
<td data-label="Agent">${agentCell(i.agent, i.agent_reason)}</td>
<td data-label="Repo">${esc(i.repo)}${i.branch ? `<br><code>${esc(i.branch)}</code>` : ""}</td>
<td data-label="Last activity">${time(i.last_activity)}</td>
<td data-label="Spent">${esc(formatUsage(i.usage))}</td>
<td data-label="Changed files" class="changed">${i.changed_files.length}</td>
<td data-label="Overlaps">${overlapsText(i.overlaps)}</td>
</tr>`,
    )
    .join("\n");
  return `<table class="list"><caption class="mut">${items.length} sandbox${items.length === 1 ? "" : "es"}</caption>
<thead><tr><th scope="col">Sandbox</th><th scope="col">State</th><th scope="col">Agent</th><th scope="col">Repo / branch</th><th scope="col">Last activity</th><th scope="col">Spent</th><th scope="col">Changed files</th><th scope="col">Overlaps</th></tr></thead>
<tbody>
${rows}
</tbody></table>`;
}

export function listBody(items: readonly ListItemView[]): string {
  return `<section aria-labelledby="sandboxes-h"><h2 id="sandboxes-h" class="skip">Sandboxes</h2><div id="live-list" data-live aria-live="polite">${listTable(items)}</div></section>`;
}

/** What a sandbox page shows, gathered by the handler. */
export interface SandboxPageData {
  status: StatusView;
  logs: LogsView;
  /** null: not read (the sandbox does not run; reading it would resume it); an error: it failed. */
  diff: DiffView | ErrorJson | null;
}

function summarySection(s: StatusView): string {
  const rt = s.runtime;
  const files = s.workspace?.changed_files.length;
  return `<dl>
<dt>State</dt><dd>${stateCell(s.state)}${s.operation ? ` <span class="mut">(${esc(s.operation.type)} in progress)</span>` : ""}</dd>
<dt>Agent</dt><dd>${agentCell(rt.agent, rt.agent_reason)}</dd>
<dt>Repo</dt><dd>${esc(s.identity.repo)}${s.identity.ref ? ` @ <code>${esc(s.identity.ref)}</code>` : ""}</dd>
<dt>Branch</dt><dd>${s.workspace ? `<code>${esc(s.workspace.branch)}</code>${s.workspace.dirty ? ` <span class="warn">uncommitted changes</span>` : ""}` : `<span class="mut">not running</span>`}</dd>
<dt>Provider</dt><dd>${esc(s.provider)}</dd>
<dt>Last activity</dt><dd>${time(s.last_activity)}</dd>
<dt>Spent</dt><dd>${esc(formatUsage(rt.usage))}</dd>
<dt>Changed files</dt><dd class="changed">${files ?? `<span class="mut">unknown</span>`}</dd>
<dt>Overlaps</dt><dd>${overlapsText(s.overlaps)}</dd>
<dt>Exported</dt><dd>${s.export ? `<code>${esc(s.export.branch)}</code> ${esc(s.export.commit.slice(0, 12))}${s.export.pr_url ? ` <a href="${esc(s.export.pr_url)}">pull request</a>` : ""}` : `<span class="mut">not yet</span>`}</dd>
<dt>Teardown</dt><dd>${s.teardown.blockers.length ? `<span class="warn">blocked by ${s.teardown.blockers.map(esc).join(", ")}</span>` : "nothing blocks it"}</dd>
${s.error ? `<dt>Error</dt><dd class="bad">${esc(s.error.reason_code)}: ${esc(s.error.error)}</dd>` : ""}
</dl>`;
}

function taskSection(s: StatusView, events: readonly StoredEvent[]): string {
  const t = s.task;
  const current = t
    ? `<p><strong>${esc(t.state)}</strong>: <q class="prompt">${esc(t.prompt_summary)}</q><br><span class="mut">started ${time(t.started_at)}${t.finished_at ? `, finished ${time(t.finished_at)}` : ""} · ${esc(formatUsage(t.usage))}</span></p>`
    : `<p class="mut">No task yet.</p>`;
  const history = events.length
    ? `<ol reversed>${[...events]
        .reverse()
        .slice(0, 50)
        .map(
          (e) =>
            `<li>${time(e.at)} ${e.kind === "transition" ? `${esc(e.from ?? "—")} → <strong>${esc(e.to)}</strong>` : esc(e.kind)}: ${esc(e.reason)}</li>`,
        )
        .join("")}</ol>`
    : `<p class="mut">No events.</p>`;
  return `${current}<h3>History</h3>${history}`;
}

const CHECKPOINT_EVENT = /checkpoint (\S+) verified/;

function checkpointsSection(s: StatusView, events: readonly StoredEvent[]): string {
  const seen = events
    .map((e) => ({ at: e.at, id: CHECKPOINT_EVENT.exec(e.reason)?.[1] }))
    .filter((c): c is { at: string; id: string } => Boolean(c.id))
    .reverse();
  if (!seen.length && !s.durability) return `<p class="mut">No checkpoint yet.</p>`;
  const latest = s.durability?.checkpoint_id;
  const ids = seen.length ? seen : [{ at: s.durability!.created_at, id: s.durability!.checkpoint_id }];
  return `<ul>${ids
    .map(
      (c) =>
        `<li><code>${esc(c.id)}</code> ${time(c.at)}${c.id === latest ? ` <span class="ok">latest${s.durability?.verified ? ", verified" : ""}</span>` : ""}</li>`,
    )
    .join("")}</ul>`;
}

const MAX_DIFF_LINES = 1500;

function diffLines(text: string): string {
  const lines = text.split("\n");
  const shown = lines.slice(0, MAX_DIFF_LINES).map((l) => {
    const cls =
      l.startsWith("+") && !l.startsWith("+++")
        ? "add"
        : l.startsWith("-") && !l.startsWith("---")
          ? "del"
          : l.startsWith("@@")
            ? "hunk"
            : "";
    return cls ? `<span class="${cls}">${esc(l)}</span>` : esc(l);
  });
  if (lines.length > MAX_DIFF_LINES)
    shown.push(
      `<span class="mut">… ${lines.length - MAX_DIFF_LINES} more lines (alpine diff shows all)</span>`,
    );
  return shown.join("\n");
}

/** The patch split per file (`diff --git a/x b/x` headers), keyed by the b-side path. */
export function patchByFile(patch: string): Map<string, string> {
  const out = new Map<string, string>();
  const parts = patch.split(/^(?=diff --git )/m);
  for (const part of parts) {
    const m = /^diff --git a\/(.+?) b\/(.+)$/m.exec(part);
    if (m?.[2]) out.set(m[2], part.replace(/\n$/, ""));
  }
  return out;
}

function diffSection(diff: SandboxPageData["diff"], state: string): string {
  if (diff === null)
    return `<p class="mut">The sandbox is ${esc(state)}; its diff is read when it runs (launch it again to resume).</p>`;
  if ("reason_code" in diff) return `<p class="bad">The diff could not be read: ${esc(diff.error)}</p>`;
  if (!diff.files.length) return `<p class="mut">No changes.</p>`;
  const byFile = patchByFile(diff.patch);
  return diff.files
    .map(
      (f) =>
        `<details open class="file"><summary><code>${esc(f.path)}</code> <span class="mut">${esc(f.status)}</span> <span class="add">+${f.insertions}</span> <span class="del">−${f.deletions}</span></summary><pre>${diffLines(byFile.get(f.path) ?? "(binary or no text change)")}</pre></details>`,
    )
    .join("\n");
}

/** The live sections of a sandbox page, by element id. */
export function sandboxSections(d: SandboxPageData): Record<string, string> {
  return {
    "live-summary": summarySection(d.status),
    "live-task": taskSection(d.status, d.logs.events),
    "live-checkpoints": checkpointsSection(d.status, d.logs.events),
    "live-diff": diffSection(d.diff, d.status.state),
  };
}

export function sandboxBody(d: SandboxPageData, csrf: string): string {
  const n = encodeURIComponent(d.status.name);
  const sec = sandboxSections(d);
  const input = `<input type="hidden" name="csrf" value="${esc(csrf)}">`;
  return `<section aria-labelledby="summary-h"><h2 id="summary-h">Summary</h2><div id="live-summary" data-live>${sec["live-summary"]}</div></section>
<section aria-labelledby="actions-h"><h2 id="actions-h">Actions</h2>
<div class="actions">
<form method="post" action="/sandboxes/${n}/open" data-action="open" data-busy="minting a login link">${input}<button type="submit">Open web UI</button></form>
<form method="post" action="/sandboxes/${n}/checkpoint" data-action="checkpoint" data-busy="checkpointing">${input}<button type="submit">Checkpoint</button></form>
<form method="post" action="/sandboxes/${n}/export" data-action="export" data-busy="exporting">${input}<label>Branch (optional)<input name="branch" autocomplete="off" placeholder="${esc(d.status.workspace?.branch ?? "")}"></label><label class="inline"><input type="checkbox" name="pr" value="1"> as a pull request</label><button type="submit">Export</button></form>
<form method="post" action="/sandboxes/${n}/teardown" data-action="teardown" data-busy="tearing down">${input}<button type="submit" class="danger">Tear down</button></form>
</div>
<form method="post" action="/sandboxes/${n}/task" data-action="task" data-busy="sending the task">${input}<label for="prompt">New task for the agent</label><textarea id="prompt" name="prompt" required></textarea><div><button type="submit">Send task</button></div></form>
<p id="result" role="status" aria-live="polite"></p>
</section>
<section aria-labelledby="task-h"><h2 id="task-h">Task</h2><div id="live-task" data-live>${sec["live-task"]}</div></section>
<section aria-labelledby="checkpoints-h"><h2 id="checkpoints-h">Checkpoints</h2><div id="live-checkpoints" data-live>${sec["live-checkpoints"]}</div></section>
<section aria-labelledby="diff-h"><h2 id="diff-h">Changes</h2><div id="live-diff" data-live>${sec["live-diff"]}</div></section>
<dialog id="force-dialog" aria-labelledby="force-h"><form method="dialog"><h2 id="force-h">Tear down anyway?</h2><p data-message></p><p>A forced teardown drops work that is saved nowhere, as <code>alpine teardown --force</code> does.</p><div class="actions"><button value="cancel" autofocus>Cancel</button><button value="force" class="danger">Tear down, losing unsaved work</button></div></form></dialog>`;
}
