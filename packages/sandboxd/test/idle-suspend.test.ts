import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { selfSuspension } from "@alpine/core/suspension";
import { describe, expect, it } from "vitest";
import { diskUsage, IdleSuspend } from "../src/idle-suspend.ts";
import { Logger } from "../src/log.ts";
import type { Sandbox } from "../src/sandbox.ts";

/** Just what IdleSuspend reads of a Sandbox: its phase, its agent, its workspace and dirs. */
function fakeSandbox(dir: string) {
  const state = {
    phase: "ready",
    agent: {
      state: "idle" as string,
      lastActivity: null as Date | null,
      task: null as { state: string } | null,
      taskStatus() {
        return this.task;
      },
    },
    config: { workspace_dir: join(dir, "workspace"), home_dir: join(dir, "home") },
    workspaceStatus: async () => ({ dirty: true, ahead: 1, tree_hash: "t".repeat(40) }),
  };
  return state;
}

function setup() {
  const dir = mkdtempSync(join(tmpdir(), "alpine-idle-"));
  mkdirSync(join(dir, "workspace"), { recursive: true });
  mkdirSync(join(dir, "home"), { recursive: true });
  writeFileSync(join(dir, "workspace", "big.bin"), Buffer.alloc(64 * 1024, 1));
  const logFile = join(dir, "sandboxd.log");
  const log = new Logger(logFile);
  const sandbox = fakeSandbox(dir);
  let stopped = 0;
  const idle = new IdleSuspend(sandbox as unknown as Sandbox, log, () => stopped++);
  const lines = () => readFileSync(logFile, "utf8").split("\n").filter(Boolean);
  return { dir, sandbox, idle, stopped: () => stopped, lines };
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("sandboxd's idle suspension", () => {
  it("an idle sandbox stops after the period and says so in its last log line, with its workspace and disk", async () => {
    const s = setup();
    s.idle.configure(1000);
    await sleep(700);
    expect(s.stopped()).toBe(0);
    await sleep(1300);
    expect(s.stopped()).toBe(1);
    const said = selfSuspension(s.lines());
    expect(said?.workspace).toEqual({ dirty: true, ahead: 1, tree_hash: "t".repeat(40) });
    expect(said?.disk_bytes).toBeGreaterThanOrEqual(64 * 1024);
    expect(said?.idle_ms).toBeGreaterThanOrEqual(1000);
  });

  it("never while the agent is busy, retrying, waiting for a person, or a task runs", async () => {
    // Side by side, each with its own watch.
    const cases = ["busy", "retry", "needs_input", "unknown", "task"].map((what) => {
      const s = setup();
      if (what === "task") s.sandbox.agent.task = { state: "running" };
      else s.sandbox.agent.state = what;
      s.idle.configure(1000);
      return { what, s };
    });
    await sleep(1600);
    for (const { what, s } of cases) {
      expect(s.stopped(), what).toBe(0);
      s.idle.configure(null);
    }
  });

  it("an open request (a UI event stream) keeps it; the period starts again when it ends", async () => {
    const s = setup();
    s.idle.configure(1000);
    const end = s.idle.begin();
    await sleep(1600);
    expect(s.stopped()).toBe(0);
    end();
    await sleep(700);
    expect(s.stopped()).toBe(0);
    await sleep(1300);
    expect(s.stopped()).toBe(1);
  });

  it("off (null) never stops", async () => {
    const s = setup();
    s.idle.configure(null);
    await sleep(1300);
    expect(s.stopped()).toBe(0);
  });

  it("counts the disk of the directories, not following links", async () => {
    const s = setup();
    expect(await diskUsage([join(s.dir, "workspace")])).toBeGreaterThanOrEqual(64 * 1024);
    expect(await diskUsage([join(s.dir, "nowhere")])).toBe(0);
  });
});
