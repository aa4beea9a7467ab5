import { describe, expect, it } from "vitest";
import {
  esc,
  formatUsage,
  layout,
  listBody,
  listTable,
  messagePage,
  type SandboxPageData,
  sandboxBody,
  sandboxSections,
} from "../src/dashboard/index.ts";
import { type ListItemView, type StatusView, silentProgress, statusOperation } from "../src/index.ts";
import type { StoredEvent } from "../src/schemas.ts";
import { launched, world } from "./fakes/world.ts";

/** The dashboard's pages rendered from views: what a person reads for each state of a sandbox. */

const HOSTILE = `<script>alert("x")</script>`;

const item = (over: Partial<ListItemView> = {}): ListItemView => ({
  name: "fix-login",
  id: "sbx_1",
  provider: "local",
  repo: "https://git.example/app.git",
  branch: "alpine/fix-login",
  image_profile: "default",
  state: "running",
  agent: "idle",
  agent_reason: null,
  usage: null,
  last_activity: null,
  created_at: "2026-12-07T05:00:00.000Z",
  changed_files: [],
  changes_seen_at: null,
  overlaps: [],
  disk_bytes: null,
  ...over,
});

/** A status view as `alpine status` reports a freshly launched sandbox, patched per case. */
async function status(over: Partial<StatusView> = {}): Promise<StatusView> {
  const w = world();
  await launched(w, "box");
  const view = await statusOperation(
    {
      orchestrator: w.orchestrator,
      config: w.deps.config,
      progress: silentProgress,
      runtimeLogs: async () => [],
      loginUrl: () => "",
    },
    "box",
  );
  return { ...view, ...over };
}

const event = (over: Partial<StoredEvent>): StoredEvent => ({
  sandbox_id: "sbx_1",
  name: "box",
  at: "2026-01-01T00:00:00.000Z",
  kind: "note",
  from: null,
  to: null,
  operation_id: null,
  reason: "",
  ...over,
});

const page = (d: Partial<SandboxPageData> & { status: StatusView }): Record<string, string> =>
  sandboxSections({ logs: { name: d.status.name, events: [], lines: [] }, diff: null, ...d });

describe("dashboard pages: the list", () => {
  it("says how to start when there are no sandboxes", () => {
    expect(listTable([])).toContain("No sandboxes yet. Start one with <code>alpine launch &lt;name&gt;");
    expect(listBody([])).toContain('<div id="live-list" data-live aria-live="polite"><p>No sandboxes yet.');
  });

  it("counts sandboxes, one or many", () => {
    expect(listTable([item()])).toContain(">1 sandbox</caption>");
    expect(listTable([item(), item({ name: "two", id: "sbx_2" })])).toContain(">2 sandboxes</caption>");
  });

  it("marks states and agents by how bad they are, with the agent's reason", () => {
    const rows = listTable([
      item({ name: "ok", state: "running", agent: "busy" }),
      item({ name: "broken", state: "error", agent: "error", agent_reason: "model refused" }),
      item({ name: "asks", agent: "needs_input", agent_reason: "which branch?" }),
      item({ name: "spent", state: "completed", agent: "budget", agent_reason: "spent $5.00 of $5.00" }),
    ]);
    const row = (name: string) => new RegExp(`<tr data-sandbox="${name}">(.*?)</tr>`, "s").exec(rows)![1]!;
    expect(row("ok")).toContain('<span class="state ok">running</span>');
    expect(row("ok")).toContain('<span class="state ">busy</span>');
    expect(row("broken")).toContain('<span class="state bad">error</span>');
    expect(row("broken")).toContain(
      '<span class="state bad">error</span><br><span class="mut">model refused</span>',
    );
    expect(row("asks")).toContain(
      '<span class="state warn">needs_input</span><br><span class="mut">which branch?</span>',
    );
    expect(row("spent")).toContain('<span class="state ">completed</span>');
    expect(row("spent")).toContain('<span class="state warn">budget</span>');
  });

  it("shows cost, changed files, branch, last activity and overlaps linked to the other sandbox", () => {
    const rows = listTable([
      item({
        usage: { input: 1000, output: 234, reasoning: 0, cache_read: 0, cache_write: 0, cost: 12.5 },
        changed_files: ["a", "b", "c"],
        last_activity: "2026-12-07T06:01:02.345Z",
        overlaps: [
          { name: "peer one", files: ["a", "b"] },
          { name: "peer2", files: ["c"] },
        ],
      }),
      item({ name: "nobranch", branch: null as unknown as string }),
    ]);
    expect(rows).toContain("$12.50 · 1,234 tokens");
    expect(rows).toContain('class="changed">3<');
    expect(rows).toContain("<code>alpine/fix-login</code>");
    expect(rows).toContain('<time datetime="2026-12-07T06:01:02.345Z">2026-12-07 06:01:02Z</time>');
    expect(rows).toContain(
      '<a href="/sandboxes/peer%20one">peer one</a>: a, b</span><br><span class="warn"><a href="/sandboxes/peer2">peer2</a>: c',
    );
    const nobranch = /<tr data-sandbox="nobranch">(.*?)<\/tr>/s.exec(rows)![1]!;
    expect(nobranch).toContain('data-label="Repo">https://git.example/app.git</td>');
    expect(nobranch).toContain('data-label="Overlaps"><span class="mut">none</span>');
    expect(nobranch).toContain('data-label="Last activity"><span class="mut">—</span>');
    expect(nobranch).toContain('data-label="Spent">—<');
  });

  it("escapes hostile names, reasons, repos and overlapping files", () => {
    const rows = listTable([
      item({
        name: HOSTILE,
        repo: `https://x/"><img src=x onerror=alert(1)>`,
        agent: "needs_input",
        agent_reason: HOSTILE,
        overlaps: [{ name: HOSTILE, files: [HOSTILE] }],
      }),
    ]);
    expect(rows).not.toContain("<script>");
    expect(rows).not.toContain("<img");
    expect(rows).toContain("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;");
    expect(rows).toContain(`href="/sandboxes/${encodeURIComponent(HOSTILE)}"`);
  });
});

describe("dashboard pages: a sandbox", () => {
  it("cost: four decimals under a dollar, two from there; nothing spent yet is a dash", () => {
    const usage = { input: 10, output: 5, reasoning: 5, cache_read: 0, cache_write: 0 };
    expect(formatUsage({ ...usage, cost: 0.00123 })).toBe("$0.0012 · 20 tokens");
    expect(formatUsage({ ...usage, cost: 3.456 })).toBe("$3.46 · 20 tokens");
    expect(formatUsage(null)).toBe("—");
  });

  it("a launched sandbox: running, clean, no task, no checkpoint, not exported, nothing blocks teardown", async () => {
    const s = await status();
    const sec = page({ status: s, diff: { name: "box", files: [], patch: "" } });
    expect(sec["live-summary"]).toContain('<span class="state ok">running</span>');
    expect(sec["live-summary"]).toContain("<code>alpine/box</code></dd>");
    expect(sec["live-summary"]).toContain('<dt>Exported</dt><dd><span class="mut">not yet</span>');
    expect(sec["live-summary"]).toContain("<dt>Teardown</dt><dd>nothing blocks it");
    expect(sec["live-summary"]).not.toContain("<dt>Error</dt>");
    expect(sec["live-task"]).toBe(
      '<p class="mut">No task yet.</p><h3>History</h3><p class="mut">No events.</p>',
    );
    expect(sec["live-checkpoints"]).toBe('<p class="mut">No checkpoint yet.</p>');
    expect(sec["live-diff"]).toBe('<p class="mut">No changes.</p>');
  });

  it("an operation in progress, blockers, an error, an export with its pull request", async () => {
    const s = await status({
      state: "error",
      operation: {
        id: "op_1",
        type: "checkpoint",
        holder: "cli",
        acquired_at: "2026-01-01T00:00:00.000Z",
        expires_at: "2026-01-01T00:01:00.000Z",
      },
      teardown: { blockers: ["agent_busy", "unsaved_work"] } as StatusView["teardown"],
      error: { reason_code: "agent_start_failed", error: `OpenCode said ${HOSTILE}` } as StatusView["error"],
      export: {
        branch: "alpine/box",
        commit: "0123456789abcdef0123",
        pushed_at: "2026-01-01T00:00:00.000Z",
        pr_url: "https://github.test/pr/7",
      },
      workspace: null,
    });
    const summary = page({ status: s })["live-summary"]!;
    expect(summary).toContain(
      '<span class="state bad">error</span> <span class="mut">(checkpoint in progress)</span>',
    );
    expect(summary).toContain('<span class="warn">blocked by agent_busy, unsaved_work</span>');
    expect(summary).toContain(
      '<dt>Error</dt><dd class="bad">agent_start_failed: OpenCode said &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;</dd>',
    );
    expect(summary).toContain(
      '<code>alpine/box</code> 0123456789ab <a href="https://github.test/pr/7">pull request</a>',
    );
    expect(summary).toContain('<dt>Branch</dt><dd><span class="mut">not running</span>');
    expect(summary).toContain('<dd class="changed"><span class="mut">unknown</span>');
    const exportedNoPr = page({ status: { ...s, export: { ...s.export!, pr_url: null } } })["live-summary"]!;
    expect(exportedNoPr).toContain("<code>alpine/box</code> 0123456789ab</dd>");
  });

  it("the task and its history, newest first, transitions and notes escaped", async () => {
    const s = await status({
      task: {
        session_id: "ses_1",
        prompt_summary: HOSTILE,
        state: "completed",
        started_at: "2026-01-01T00:00:00.000Z",
        finished_at: "2026-01-01T00:05:00.000Z",
        usage: { input: 1, output: 1, reasoning: 0, cache_read: 0, cache_write: 0, cost: 0.5 },
      } as StatusView["task"],
    });
    const events = [
      event({ kind: "transition", from: null, to: "provisioning", reason: "launch" }),
      event({ kind: "transition", from: "provisioning", to: "running", reason: "ready" }),
      event({ kind: "note", reason: `agent asked ${HOSTILE}` }),
    ];
    const task = page({ status: s, logs: { name: "box", events, lines: [] } })["live-task"]!;
    expect(task).toContain('<strong>completed</strong>: <q class="prompt">&lt;script&gt;');
    expect(task).toContain(", finished <time");
    expect(task).toContain("$0.5000 · 2 tokens");
    const items = [...task.matchAll(/<li>(.*?)<\/li>/g)].map((m) =>
      m[1]!.replace(/<time[^>]*>.*?<\/time> /, ""),
    );
    expect(items).toEqual([
      "note: agent asked &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;",
      "provisioning → <strong>running</strong>: ready",
      "— → <strong>provisioning</strong>: launch",
    ]);
    const running = page({ status: { ...s, task: { ...s.task!, state: "running", finished_at: null } } })[
      "live-task"
    ]!;
    expect(running).not.toContain("finished");
  });

  it("history shows the latest 50 events", async () => {
    const s = await status();
    const events = Array.from({ length: 60 }, (_, i) => event({ reason: `event ${i}` }));
    const task = page({ status: s, logs: { name: "box", events, lines: [] } })["live-task"]!;
    expect(task.match(/<li>/g)).toHaveLength(50);
    expect(task).toContain("event 59");
    expect(task).toContain("event 10<");
    expect(task).not.toContain("event 9<");
  });

  it("checkpoints from the history, the latest marked; without history, the record's own", async () => {
    const s = await status({
      durability: {
        checkpoint_id: "ckpt_2",
        verified: true,
        content_hash: "sha256:c2",
        created_at: "2026-01-01T00:02:00.000Z",
      },
    });
    const events = [
      event({ at: "2026-01-01T00:01:00.000Z", reason: "checkpoint ckpt_1 verified (3 files)" }),
      event({ at: "2026-01-01T00:02:00.000Z", reason: "checkpoint ckpt_2 verified" }),
      event({ reason: "checkpoint failed: disk full" }),
    ];
    const list = page({ status: s, logs: { name: "box", events, lines: [] } })["live-checkpoints"]!;
    const ids = [...list.matchAll(/<code>(\w+)<\/code>/g)].map((m) => m[1]);
    expect(ids).toEqual(["ckpt_2", "ckpt_1"]);
    expect(list).toContain(
      '<code>ckpt_2</code> <time datetime="2026-01-01T00:02:00.000Z">2026-01-01 00:02:00Z</time> <span class="ok">latest, verified</span>',
    );
    expect(list).not.toMatch(/ckpt_1<\/code>[^<]*<time[^>]*>[^<]*<\/time> <span/);

    const unverified = { ...s, durability: { ...s.durability!, verified: false } };
    const own = page({ status: unverified })["live-checkpoints"]!;
    expect(own).toContain('<code>ckpt_2</code> <time datetime="2026-01-01T00:02:00.000Z">');
    expect(own).toContain('<span class="ok">latest</span>');
  });

  it("the diff: per file, lines marked added, removed and hunks; binary files; escaped", async () => {
    const s = await status();
    const patch = [
      "diff --git a/src/a.ts b/src/a.ts",
      "--- a/src/a.ts",
      "+++ b/src/a.ts",
      "@@ -1,2 +1,2 @@",
      `-const x = "${HOSTILE}";`,
      "+const x = 1;",
      " unchanged",
      "",
    ].join("\n");
    const diff = page({
      status: s,
      diff: {
        name: "box",
        files: [
          { path: "src/a.ts", status: "modified", insertions: 1, deletions: 1 },
          { path: "logo.png", status: "added", insertions: 0, deletions: 0 },
        ],
        patch,
      },
    })["live-diff"]!;
    expect(diff).toContain(
      '<summary><code>src/a.ts</code> <span class="mut">modified</span> <span class="add">+1</span> <span class="del">−1</span></summary>',
    );
    expect(diff).toContain("\n--- a/src/a.ts\n+++ b/src/a.ts\n");
    expect(diff).toContain('<span class="hunk">@@ -1,2 +1,2 @@</span>');
    expect(diff).toContain('<span class="del">-const x = &quot;&lt;script&gt;');
    expect(diff).toContain('<span class="add">+const x = 1;</span>');
    expect(diff).toContain("\n unchanged</pre>");
    expect(diff).toContain("<code>logo.png</code>");
    expect(diff).toContain("<pre>(binary or no text change)</pre>");
    expect(diff).not.toContain("<script>");
  });

  it("a long diff is cut at 1,500 lines, saying how many more there are", async () => {
    const s = await status();
    const body = Array.from({ length: 1600 }, (_, i) => `+line ${i}`);
    const patch = ["diff --git a/big.txt b/big.txt", ...body].join("\n");
    const diff = page({
      status: s,
      diff: {
        name: "box",
        files: [{ path: "big.txt", status: "added", insertions: 1600, deletions: 0 }],
        patch,
      },
    })["live-diff"]!;
    expect(diff).toContain("+line 1498");
    expect(diff).not.toContain("+line 1499<");
    expect(diff).toContain("… 101 more lines (alpine diff shows all)");
  });

  it("a diff that could not be read says why; a stopped sandbox's is not read", async () => {
    const s = await status();
    const failed = page({
      status: s,
      diff: { error: `sandboxd ${HOSTILE}`, reason_code: "sandbox_unavailable" } as SandboxPageData["diff"],
    })["live-diff"]!;
    expect(failed).toBe(
      '<p class="bad">The diff could not be read: sandboxd &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;</p>',
    );
    const stopped = page({ status: { ...s, state: "suspended" } })["live-diff"]!;
    expect(stopped).toContain("The sandbox is suspended; its diff is read when it runs");
  });

  it("the page: the sections inside their live regions, each action's form with the token, escaped", async () => {
    const s = await status();
    const body = sandboxBody({ status: s, logs: { name: "box", events: [], lines: [] }, diff: null }, `t"<`);
    const sec = page({ status: s });
    expect(body).toContain(`<div id="live-summary" data-live>${sec["live-summary"]}</div>`);
    expect(body).toContain(`<div id="live-diff" data-live>${sec["live-diff"]}</div>`);
    expect(body.match(/<input type="hidden" name="csrf" value="t&quot;&lt;">/g)).toHaveLength(5);
    expect(body).toContain('placeholder="alpine/box"');
    expect(body).toContain('<dialog id="force-dialog"');
  });
});

describe("dashboard pages: the frame", () => {
  it("the layout carries the token, the poll target and interval only when given; all escaped", () => {
    const full = layout({
      title: HOSTILE,
      heading: HOSTILE,
      csrf: "tok",
      poll: "/api/list",
      intervalMs: 1000,
      brand: HOSTILE,
      body: "<p>body</p>",
    });
    expect(full).toContain('<body data-csrf="tok" data-poll="/api/list" data-interval="1000">');
    expect(full).toContain("<p>body</p>");
    expect(full).not.toContain("<script>alert");
    const bare = layout({ title: "t", heading: "h", csrf: "tok", brand: "b", body: "" });
    expect(bare).toContain('<body data-csrf="tok">');
  });

  it("a message page escapes its title and text; esc covers the five characters and nullish values", () => {
    const m = messagePage(HOSTILE, `it's <b>`);
    expect(m).toContain("<h1>&lt;script&gt;");
    expect(m).toContain("<p>it&#39;s &lt;b&gt;</p>");
    expect(m).not.toContain("<script>");
    expect(esc(`&<>"'`)).toBe("&amp;&lt;&gt;&quot;&#39;");
    expect(esc(null)).toBe("");
    expect(esc(undefined)).toBe("");
    expect(esc(3)).toBe("3");
  });
});
