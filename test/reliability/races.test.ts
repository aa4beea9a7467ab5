import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type E2EEnv, makeEnv, waitFor } from "../e2e/env.ts";
import { isSandboxdCommand } from "../helpers/procs.ts";
import { eventsOf, illegalTransitions, leaseOf } from "./checks.ts";
import { buildClis, killLeftovers, processesUnder, recorder, run } from "./harness.ts";

/**
 * Issue 7, races: ten (then ten more) alpine processes started at once on the same and on
 * different sandboxes — launch, task, checkpoint, export, teardown, gc, status. Each must
 * complete or fail with operation_in_progress (an export meeting a save or teardown in
 * progress may say export_retryable_state, as docs/durability.md specifies); afterwards every
 * sandbox's event log is a legal walk through the lifecycle table, no lease is left, and
 * exactly the live sandboxes have a runtime. Three sandboxes keep it affordable on 2 cores.
 */
const record = recorder("races");
let e: E2EEnv;
const alpine = (...args: string[]) => run(args, { env: e.env, cwd: e.cwd, timeoutMs: 180_000 });
// biome-ignore lint/suspicious/noExplicitAny: CLI JSON output
type Json = any;

beforeAll(async () => {
  // Retention 0: gc really tears down a completed, saved sandbox in the middle of the race.
  e = await makeEnv({ yaml: ["sandbox:", "  completed_retention_minutes: 0"] });
  await buildClis();
});
afterAll(async () => {
  for (const n of ["race-a", "race-b", "race-c"]) await alpine("teardown", n, "--force", "--json");
  killLeftovers(e.alpineHome);
  await e.close();
  rmSync(e.root, { recursive: true, force: true });
});

async function status(name: string): Promise<Json> {
  const r = await alpine("status", name, "--json");
  expect(r.code, r.stdout + r.stderr).toBe(0);
  return r.json();
}

/** Starts every command at once; returns each one's outcome. */
async function race(commands: string[][]): Promise<{ args: string; code: number; reason: string | null }[]> {
  const results = await Promise.all(commands.map((args) => alpine(...args, "--json")));
  return results.map((r, i) => {
    let reason: string | null = null;
    if (r.code !== 0) {
      try {
        reason = r.json().reason_code;
      } catch {
        reason = `unparsable: ${r.stdout}${r.stderr}`.slice(0, 300);
      }
    }
    return { args: commands[i]!.join(" "), code: r.code, reason };
  });
}

function judge(outcomes: Awaited<ReturnType<typeof race>>): string {
  for (const o of outcomes) {
    const allowed = o.args.startsWith("export")
      ? [null, "operation_in_progress", "export_retryable_state"]
      : [null, "operation_in_progress"];
    expect(allowed, `${o.args} → exit ${o.code} ${o.reason}`).toContain(o.reason);
    if (o.reason) expect(o.code, o.args).toBe(2);
  }
  const counts = new Map<string, number>();
  for (const o of outcomes)
    counts.set(o.reason ?? "completed", (counts.get(o.reason ?? "completed") ?? 0) + 1);
  return [...counts].map(([k, n]) => `${n} ${k}`).join(", ");
}

function settledAndLegal(names: string[]): string {
  for (const n of names) {
    expect(leaseOf(e.alpineHome, n), `lease of ${n}`).toBeNull();
    expect(illegalTransitions(eventsOf(e.alpineHome, n)), n).toEqual([]);
  }
  return `legal for ${names.join(", ")} (${names.map((n) => eventsOf(e.alpineHome, n).filter((x) => x.kind === "transition").length).join("+")} transitions)`;
}

/** One sandboxd per sandbox that should have a runtime, none for the others. */
async function runtimesMatchRecords(names: string[]): Promise<void> {
  for (const n of names) {
    const s = await status(n);
    const procs = processesUnder(join(e.alpineHome, "sandboxes", s.id)).filter((p) =>
      isSandboxdCommand(p.cmd),
    );
    const live = ["running", "completed"].includes(s.state);
    expect(procs.length, `${n} is ${s.state}: ${procs.map((p) => p.cmd.slice(0, 160)).join(" | ")}`).toBe(
      live ? 1 : 0,
    );
    if (live) expect(s.runtime.probe_state, n).toBe("ok");
  }
}

describe("concurrent operations", () => {
  it("two sandboxes: A running with unsaved work, B completed and saved", async () => {
    const a = await alpine("launch", "race-a", "--repo", e.repoUrl, "--json");
    expect(a.code, a.stdout + a.stderr).toBe(0);
    writeFileSync(join(e.alpineHome, "sandboxes", a.json().id, "workspace", "unsaved.txt"), "A's work\n");
    const b = await alpine("launch", "race-b", "--repo", e.repoUrl, "--task", "WRITE B.md b", "--json");
    expect(b.code, b.stdout + b.stderr).toBe(0);
    await waitFor("B to complete", async () => (await status("race-b")).state === "completed", {
      timeoutMs: 60_000,
    });
    expect((await alpine("checkpoint", "race-b", "--json")).code).toBe(0);
    expect((await status("race-b")).teardown.blockers).toEqual([]);
  });

  it("round 1: launch, task, checkpoint, export, status on A while teardown, export, launch, gc, status race on B", async () => {
    const outcomes = await race([
      ["task", "race-a", "SLEEP 8000 WRITE race.md written during the race"],
      ["checkpoint", "race-a"],
      ["export", "race-a", "--patch", join(e.root, "a.patch")],
      ["launch", "race-a"],
      ["status", "race-a"],
      ["teardown", "race-b"],
      ["export", "race-b", "--patch", join(e.root, "b.patch")],
      ["launch", "race-b"],
      ["gc"],
      ["status", "race-b"],
    ]);
    const summary = judge(outcomes);
    const events = settledAndLegal(["race-a", "race-b"]);
    await runtimesMatchRecords(["race-a", "race-b"]);
    record({
      kind: "race",
      round: "1: two sandboxes, launch/task/checkpoint/export/teardown/gc/status",
      processes: outcomes.length,
      outcomes: summary,
      events,
    });
  });

  it("round 2: four launches of a new sandbox, four checkpoints of A and two forced teardowns of B at once", async () => {
    await waitFor("A's task to finish", async () => (await status("race-a")).runtime.agent === "idle", {
      timeoutMs: 60_000,
    });
    const outcomes = await race([
      ...Array.from({ length: 4 }, () => ["launch", "race-c", "--repo", e.repoUrl]),
      ...Array.from({ length: 4 }, () => ["checkpoint", "race-a"]),
      ["teardown", "race-b", "--force"],
      ["teardown", "race-b", "--force"],
    ]);
    const summary = judge(outcomes);
    const launched = outcomes.filter((o) => o.args.startsWith("launch") && o.code === 0).length;
    expect(launched).toBeGreaterThanOrEqual(1);
    const events = settledAndLegal(["race-a", "race-b", "race-c"]);
    // One record for race-c, however many launches raced to create it.
    expect(eventsOf(e.alpineHome, "race-c").filter((x) => x.kind === "note" && x.to === "new")).toHaveLength(
      1,
    );
    expect((await status("race-b")).state).toBe("destroyed");
    await runtimesMatchRecords(["race-a", "race-b", "race-c"]);
    record({
      kind: "race",
      round: "2: 4× launch of a new sandbox, 4× checkpoint, 2× teardown --force",
      processes: outcomes.length,
      outcomes: summary,
      events,
    });
  });
});
