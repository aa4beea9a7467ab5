import { describe, expect, it } from "vitest";
import {
  type AgentState,
  checkpointBeforeSuspend,
  IDLE_SUSPEND_LOG_MESSAGE,
  type IdleFacts,
  idleVerdict,
  needsResume,
  type SandboxState,
  STATES,
  selfSuspension,
  suspendAfterMs,
  suspendedTeardown,
} from "../src/index.ts";

const MIN = 60_000;
const NOW = Date.parse("2026-01-01T01:00:00.000Z");
const idle = (over: Partial<IdleFacts> = {}): IdleFacts => ({
  state: "completed",
  agent: "idle",
  taskRunning: false,
  requestsInFlight: 0,
  leaseHeld: false,
  lastActivityMs: NOW - 31 * MIN,
  nowMs: NOW,
  afterMs: 30 * MIN,
  ...over,
});

describe("idleVerdict: nothing of a busy agent is ever suspended", () => {
  const cases: [string, Partial<IdleFacts>, ReturnType<typeof idleVerdict>][] = [
    ["idle past the period", {}, { suspend: true, idleForMs: 31 * MIN }],
    ["exactly at the period", { lastActivityMs: NOW - 30 * MIN }, { suspend: true, idleForMs: 30 * MIN }],
    ["running, agent idle", { state: "running" }, { suspend: true, idleForMs: 31 * MIN }],
    ["agent error", { agent: "error" }, { suspend: true, idleForMs: 31 * MIN }],
    ["agent out of budget", { agent: "budget" }, { suspend: true, idleForMs: 31 * MIN }],
    ["sandboxd does not know the state", { state: undefined }, { suspend: true, idleForMs: 31 * MIN }],
    ["off", { afterMs: null }, { suspend: false, why: "off" }],
    ["agent busy", { agent: "busy" }, { suspend: false, why: "agent_busy" }],
    ["agent retrying", { agent: "retry" }, { suspend: false, why: "agent_busy" }],
    ["agent waits for a person", { agent: "needs_input" }, { suspend: false, why: "agent_busy" }],
    ["agent state unknown", { agent: "unknown" }, { suspend: false, why: "agent_busy" }],
    ["a task still running", { taskRunning: true }, { suspend: false, why: "task_running" }],
    ["a request open (UI stream)", { requestsInFlight: 1 }, { suspend: false, why: "in_use" }],
    ["an operation holds the lease", { leaseHeld: true }, { suspend: false, why: "operation_in_progress" }],
    ["saving (an operation runs)", { state: "saving" }, { suspend: false, why: "not_live" }],
    ["already suspended", { state: "suspended" }, { suspend: false, why: "not_live" }],
    ["destroyed", { state: "destroyed" }, { suspend: false, why: "not_live" }],
    [
      "active 10 min ago",
      { lastActivityMs: NOW - 10 * MIN },
      { suspend: false, why: "recent", dueInMs: 20 * MIN },
    ],
  ];
  for (const [what, over, verdict] of cases) {
    it(what, () => expect(idleVerdict(idle(over))).toEqual(verdict));
  }

  it("for every agent state and sandbox state, suspends only idle/error/budget agents of running or completed sandboxes", () => {
    const agents: AgentState[] = ["idle", "busy", "needs_input", "retry", "error", "budget", "unknown"];
    for (const agent of agents) {
      for (const state of STATES) {
        const v = idleVerdict(idle({ agent, state }));
        const expected =
          ["idle", "error", "budget"].includes(agent) && (state === "running" || state === "completed");
        expect(v.suspend, `${state}/${agent}`).toBe(expected);
      }
    }
  });
});

describe("suspendAfterMs", () => {
  it.each([
    [0, null],
    [30, 30 * MIN],
    [0.05, 3_000],
  ])("%s minutes → %s ms", (minutes, ms) => {
    expect(suspendAfterMs({ suspend_after_minutes: minutes })).toBe(ms);
  });
});

describe("selfSuspension reads sandboxd's last start or suspension line", () => {
  const line = (msg: string, extra: Record<string, unknown> = {}) =>
    JSON.stringify({ ts: "2026-01-01T00:00:00.000Z", level: "info", msg, component: "sandboxd", ...extra });
  const suspended = line(IDLE_SUSPEND_LOG_MESSAGE, {
    idle_ms: 4000,
    disk_bytes: 12345,
    workspace: { dirty: true, ahead: 1, tree_hash: "t" },
  });
  it.each<[string, string[], boolean]>([
    [
      "suspended, then shut down",
      [line("listening"), suspended, line("shutting down"), line("stopped")],
      true,
    ],
    ["started again after a suspension", [suspended, line("listening")], false],
    ["crashed (no suspension line)", [line("listening"), line("uncaught exception")], false],
    ["nothing logged", [], false],
    ["OpenCode's plain lines around it", [line("listening"), suspended, "plain text from opencode"], true],
  ])("%s", (_what, lines, yes) => {
    expect(selfSuspension(lines) !== null).toBe(yes);
  });
  it("carries the workspace and the disk", () => {
    expect(selfSuspension([line("listening"), suspended])).toEqual({
      at: "2026-01-01T00:00:00.000Z",
      idle_ms: 4000,
      disk_bytes: 12345,
      workspace: { dirty: true, ahead: 1, tree_hash: "t" },
    });
  });
});

describe("resume and teardown of a suspended sandbox", () => {
  it("only a suspended sandbox is resumed by a command that needs its runtime", () => {
    for (const s of STATES) expect(needsResume(s as SandboxState)).toBe(s === "suspended");
  });
  const verified = (tree: string) => ({
    id: "ckpt_1",
    verified: true,
    content_hash: "sha256:x",
    tree_hash: tree,
    head_commit: "h",
    bytes: 1,
    created_at: "2026-01-01T00:00:00.000Z",
  });
  const suspension = (
    workspace: { dirty: boolean; ahead: number; tree_hash: string | null } | null,
    saved: "checkpoint" | "kept_workspace" = "kept_workspace",
  ) => ({
    at: "2026-01-01T00:00:00.000Z",
    saved,
    disk_bytes: 1,
    workspace,
    from: "completed" as const,
  });
  it.each<[string, Parameters<typeof suspendedTeardown>[0], "destroy" | "resume_first"]>([
    [
      "checkpointed when suspended",
      { checkpoint: null, export: null, suspension: suspension(null, "checkpoint") },
      "destroy",
    ],
    [
      "a clean workspace",
      { checkpoint: null, export: null, suspension: suspension({ dirty: false, ahead: 0, tree_hash: "a" }) },
      "destroy",
    ],
    [
      "its tree is the verified checkpoint's",
      {
        checkpoint: verified("a"),
        export: null,
        suspension: suspension({ dirty: true, ahead: 0, tree_hash: "a" }),
      },
      "destroy",
    ],
    [
      "unsaved work on the kept disk",
      {
        checkpoint: verified("b"),
        export: null,
        suspension: suspension({ dirty: true, ahead: 0, tree_hash: "a" }),
      },
      "resume_first",
    ],
    [
      "a commit nothing holds",
      { checkpoint: null, export: null, suspension: suspension({ dirty: false, ahead: 1, tree_hash: "a" }) },
      "resume_first",
    ],
    [
      "the workspace could not be read",
      { checkpoint: verified("a"), export: null, suspension: suspension(null) },
      "resume_first",
    ],
    ["no suspension recorded", { checkpoint: verified("a"), export: null }, "resume_first"],
  ])("%s → %s", (_what, record, plan) => {
    expect(suspendedTeardown(record)).toBe(plan);
  });
});

describe("checkpointBeforeSuspend: where the disk dies, a resume has only the checkpoint", () => {
  const ws = (dirty: boolean, ahead: number, tree_hash: string | null) => ({ dirty, ahead, tree_hash });
  const ckpt = (tree_hash: string, verified = true) => ({ verified, tree_hash });
  it.each([
    ["no workspace reported", null, null, false],
    ["clean, never checkpointed", null, ws(false, 0, "base"), false],
    ["dirty, never checkpointed", null, ws(true, 0, "t1"), true],
    ["commits ahead, never checkpointed", null, ws(false, 2, "t1"), true],
    ["dirty, its tree verified", ckpt("t1"), ws(true, 0, "t1"), false],
    ["dirty, its tree checkpointed but not verified", ckpt("t1", false), ws(true, 0, "t1"), true],
    ["dirty, the checkpoint is of an older tree (exported since)", ckpt("t0"), ws(true, 0, "t1"), true],
    ["dirty, tree unknown", ckpt("t1"), ws(true, 0, null), true],
    ["clean again after a checkpoint of changes", ckpt("t1"), ws(false, 0, "base"), true],
  ] as const)("%s", (_what, checkpoint, workspace, yes) => {
    expect(checkpointBeforeSuspend(checkpoint, workspace)).toBe(yes);
  });
});
