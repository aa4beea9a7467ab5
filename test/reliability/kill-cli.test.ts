import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type E2EEnv, makeEnv, waitFor } from "../e2e/env.ts";
import { checkpointFiles, eventsOf, illegalTransitions, leaseOf, storeProblems } from "./checks.ts";
import {
  buildFaultCli,
  killAt,
  killLeftovers,
  portOpen,
  processesUnder,
  recorder,
  run,
  sandboxdsUnder,
} from "./harness.ts";

/**
 * Issue 7, faults 1: the CLI is SIGKILLed (from outside, by this test) at every named step of
 * launch, checkpoint, export and teardown. After each kill the next `status` must tell the
 * truth, a retry must complete the operation, and nothing may be left behind: no lease, no
 * process or port, no unverified checkpoint, no lost file.
 */
let e: E2EEnv;
const record = recorder("kill-cli");
const alpine = (...args: string[]) => run(args, { env: e.env, cwd: e.cwd });

beforeAll(async () => {
  e = await makeEnv();
  await buildFaultCli();
});
afterAll(async () => {
  const list = (await alpine("list", "--json")).json() as { name: string }[];
  for (const s of list) await alpine("teardown", s.name, "--force", "--json");
  killLeftovers(e.alpineHome);
  await e.close();
  rmSync(e.root, { recursive: true, force: true });
});

// biome-ignore lint/suspicious/noExplicitAny: CLI JSON output
type Json = any;

const sandboxDir = (id: string) => join(e.alpineHome, "sandboxes", id);
const workspace = (id: string) => join(sandboxDir(id), "workspace");
const procsOf = (id: string) => processesUnder(sandboxDir(id));

async function status(name: string): Promise<Json> {
  const r = await alpine("status", name, "--json");
  expect(r.code, r.stdout + r.stderr).toBe(0);
  return r.json();
}

/** Runs a command until it succeeds, retrying while it fails with a retryable code. */
async function retry(args: string[]): Promise<{ out: Json; attempts: number; reasons: string[] }> {
  const reasons: string[] = [];
  for (let attempt = 1; ; attempt++) {
    const r = await alpine(...args);
    if (r.code === 0) return { out: r.json(), attempts: attempt, reasons };
    const err = r.json();
    reasons.push(err.reason_code);
    if (!err.retryable || attempt >= 10) throw new Error(`${args.join(" ")} failed: ${r.stdout}${r.stderr}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

async function completed(name: string): Promise<Json> {
  return waitFor(
    `${name} to complete`,
    async () => {
      const s = await status(name);
      return s.state === "completed" ? s : null;
    },
    { timeoutMs: 60_000, intervalMs: 300 },
  );
}

function noLeaseAndLegalLog(name: string): void {
  expect(leaseOf(e.alpineHome, name), "lease left behind").toBeNull();
  expect(illegalTransitions(eventsOf(e.alpineHome, name))).toEqual([]);
}

describe("the CLI killed at each step of launch", () => {
  // Where each kill leaves the record, as the next `status` must report it.
  const cases: [step: string, state: string][] = [
    ["launch.lease_acquired", "new"],
    ["launch.provisioning", "error"],
    ["launch.runtime_created", "error"],
    ["launch.runtime_started", "error"],
    ["launch.cloning", "error"],
    ["launch.agent_starting", "error"],
    ["launch.running", "running"],
  ];
  cases.forEach(([step, expected], i) => {
    it(`${step}: status says ${expected}; a retried launch runs the task; nothing is left over`, async () => {
      const name = `launch-${i}`;
      const task = `WRITE L${i}.md launched after a kill at ${step}`;
      const kill = await killAt(step, ["launch", name, "--repo", e.repoUrl, "--task", task, "--json"], {
        env: e.env,
        cwd: e.cwd,
      });
      expect(kill.signal).toBe("SIGKILL");

      const after = await status(name);
      expect(after.state).toBe(expected);
      expect(after.operation).toBeNull();
      if (expected === "error") {
        expect(after.error).toMatchObject({ reason_code: "sandbox_unavailable" });
        expect(after.error.error).toMatch(/interrupted/);
        // The runtime a dead launch may have started does not live on unseen.
        expect(procsOf(after.id)).toEqual([]);
      }

      const again = await retry(["launch", name, "--task", task, "--json"]);
      const recoveryMs = Date.now() - kill.killedAt;
      expect(again.out).toMatchObject({ name, state: "running", task_accepted: true });
      const done = await completed(name);
      expect(readFileSync(join(workspace(done.id), `L${i}.md`), "utf8")).toContain("launched after a kill");
      expect(sandboxdsUnder(e.alpineHome).filter((p) => p.cwd.startsWith(sandboxDir(done.id)))).toHaveLength(
        1,
      );
      noLeaseAndLegalLog(name);
      record({
        kind: "fault",
        fault: `CLI SIGKILLed at ${step}`,
        what_happened: `next status: ${after.state}${after.error ? ` (${after.error.reason_code})` : ""}; \`launch\` again: running, task done${again.attempts > 1 ? ` (after ${again.reasons.join(", ")})` : ""}`,
        lost: "nothing",
        recovery_ms: recoveryMs,
        recovery: "alpine launch",
      });

      const down = await alpine("teardown", name, "--force", "--json");
      expect(down.code, down.stdout).toBe(0);
      expect(procsOf(done.id)).toEqual([]);
    });
  });
});

describe("the CLI killed at each step of checkpoint, export and teardown", () => {
  const name = "work";
  let id = "";
  let verified: { id: string; created_at: string } | null = null;
  const write = (file: string, text: string) => writeFileSync(join(workspace(id), file), text);

  it("a sandbox with work and a verified checkpoint", async () => {
    const r = await alpine(
      "launch",
      name,
      "--repo",
      e.repoUrl,
      "--task",
      "WRITE NOTES.md first notes",
      "--json",
    );
    expect(r.code, r.stdout + r.stderr).toBe(0);
    id = r.json().id;
    await completed(name);
    const cp = await alpine("checkpoint", name, "--json");
    expect(cp.code, cp.stdout).toBe(0);
    verified = { id: cp.json().checkpoint_id, created_at: cp.json().created_at };
  });

  const checkpointSteps = [
    "checkpoint.lease_acquired",
    "checkpoint.saving",
    "checkpoint.written",
    "checkpoint.artifact_stored",
    "checkpoint.manifest_stored",
    "checkpoint.verified",
  ];
  for (const step of checkpointSteps) {
    it(`checkpoint killed at ${step}: the previous checkpoint stays the verified one; a retry saves the new work`, async () => {
      const file = `${step}.txt`;
      write(file, `work before a kill at ${step}\n`);
      const kill = await killAt(step, ["checkpoint", name, "--json"], { env: e.env, cwd: e.cwd });

      const after = await status(name);
      expect(after.state).toBe("completed");
      expect(after.operation).toBeNull();
      expect(after.durability).toMatchObject({ checkpoint_id: verified!.id, verified: true });
      expect(after.teardown.blockers).toContain("unsaved_changes");
      expect(storeProblems(e.alpineHome, id, verified)).toEqual([]);

      const again = await retry(["checkpoint", name, "--json"]);
      const recoveryMs = Date.now() - kill.killedAt;
      expect(again.out).toMatchObject({ name, verified: true });
      verified = { id: again.out.checkpoint_id, created_at: again.out.created_at };
      expect(checkpointFiles(e.alpineHome, id, verified.id, e.git.repoPath("app")).get(file)).toBe(
        `work before a kill at ${step}\n`,
      );
      expect(storeProblems(e.alpineHome, id, verified)).toEqual([]);
      noLeaseAndLegalLog(name);
      record({
        kind: "fault",
        fault: `CLI SIGKILLed at ${step}`,
        what_happened: `next status: ${after.state}, previous checkpoint still the verified one, no partial checkpoint in the store; \`checkpoint\` again: verified${again.attempts > 1 ? ` (after ${again.reasons.join(", ")})` : ""}`,
        lost: "nothing",
        recovery_ms: recoveryMs,
        recovery: "alpine checkpoint",
      });
    });
  }

  for (const step of ["export.lease_acquired", "export.pushed", "export.recorded"]) {
    it(`export killed at ${step}: a retry pushes every file and records the export`, async () => {
      const file = `${step}.txt`;
      write(file, `exported after a kill at ${step}\n`);
      const previous = (await status(name)).export?.commit ?? null;
      const kill = await killAt(step, ["export", name, "--json"], { env: e.env, cwd: e.cwd });

      const after = await status(name);
      expect(after.state).toBe("completed");
      expect(after.operation).toBeNull();

      const again = await retry(["export", name, "--json"]);
      const recoveryMs = Date.now() - kill.killedAt;
      expect(again.out).toMatchObject({ pushed: true, branch: `alpine/${name}`, source: "workspace" });
      expect(await e.git.readRef("app", `refs/heads/alpine/${name}`)).toBe(again.out.commit);
      expect(await e.git.readFile("app", again.out.commit, file)).toBe(`exported after a kill at ${step}\n`);
      expect(await e.git.readFile("app", again.out.commit, "NOTES.md")).toContain("first notes");
      expect((await status(name)).export).toMatchObject({ commit: again.out.commit });
      noLeaseAndLegalLog(name);
      record({
        kind: "fault",
        fault: `CLI SIGKILLed at ${step}`,
        what_happened: `next status: ${after.state}, ${(after.export?.commit ?? null) === previous ? "the previous export still the recorded one" : "this export recorded"}; \`export\` again: pushed every file and recorded it`,
        lost: "nothing",
        recovery_ms: recoveryMs,
        recovery: "alpine export",
      });
    });
  }

  // Where a dead teardown leaves the record; the runtime is stopped in every case but the first.
  const teardownCases: [step: string, state: string][] = [
    ["teardown.lease_acquired", "completed"],
    ["teardown.checkpointed", "tearing_down"],
    ["teardown.tearing_down", "tearing_down"],
    ["teardown.runtime_stopped", "tearing_down"],
    ["teardown.runtime_destroyed", "tearing_down"],
  ];
  const savedFiles: string[] = [];
  for (const [step, expected] of teardownCases) {
    it(`teardown killed at ${step}: status says ${expected}; a retry destroys it; the work comes back on resume`, async () => {
      let s = await status(name);
      if (s.state === "destroyed") {
        const resumed = await alpine("launch", name, "--json");
        expect(resumed.code, resumed.stdout + resumed.stderr).toBe(0);
        id = resumed.json().id;
        for (const f of savedFiles) expect(existsSync(join(workspace(id), f)), f).toBe(true);
        s = await status(name);
      }
      const port = Number(new URL(s.runtime.web_url).port);
      const file = `${step}.txt`;
      write(file, `saved by a teardown killed at ${step}\n`);
      savedFiles.push(file);
      const kill = await killAt(step, ["teardown", name, "--json"], { env: e.env, cwd: e.cwd });

      const after = await status(name);
      expect(after.state).toBe(expected);
      expect(after.operation).toBeNull();
      if (expected === "tearing_down") {
        expect(procsOf(id)).toEqual([]);
        expect(await portOpen(port)).toBe(false);
        expect(after.error?.error ?? "").toMatch(/interrupted/);
      }

      const again = await retry(["teardown", name, "--json"]);
      const recoveryMs = Date.now() - kill.killedAt;
      expect(again.out).toMatchObject({ name, state: "destroyed" });
      expect(procsOf(id)).toEqual([]);
      expect(await portOpen(port)).toBe(false);
      expect(existsSync(sandboxDir(id))).toBe(false);
      const final = await status(name);
      expect(
        checkpointFiles(e.alpineHome, id, final.durability.checkpoint_id, e.git.repoPath("app")).get(file),
      ).toBe(`saved by a teardown killed at ${step}\n`);
      noLeaseAndLegalLog(name);
      record({
        kind: "fault",
        fault: `CLI SIGKILLed at ${step}`,
        what_happened: `next status: ${after.state}${expected === "tearing_down" ? " (interrupted; runtime stopped)" : ""}; \`teardown\` again: destroyed, work in its checkpoint`,
        lost: "nothing",
        recovery_ms: recoveryMs,
        recovery: "alpine teardown",
      });
    });
  }

  it("launch killed while resuming from the checkpoint (launch.restoring): a retry restores every file", async () => {
    expect((await status(name)).state).toBe("destroyed");
    const kill = await killAt("launch.restoring", ["launch", name, "--json"], { env: e.env, cwd: e.cwd });
    const after = await status(name);
    expect(after.state).toBe("error");
    expect(procsOf(id)).toEqual([]);
    const again = await retry(["launch", name, "--json"]);
    const recoveryMs = Date.now() - kill.killedAt;
    expect(again.out).toMatchObject({ state: "running", resumed: true });
    id = again.out.id;
    for (const f of savedFiles) expect(existsSync(join(workspace(id), f)), f).toBe(true);
    noLeaseAndLegalLog(name);
    record({
      kind: "fault",
      fault: "CLI SIGKILLed at launch.restoring (resume of a destroyed sandbox)",
      what_happened: "next status: error (interrupted); `launch` again: restored from the checkpoint",
      lost: "nothing",
      recovery_ms: recoveryMs,
      recovery: "alpine launch",
    });
  });
});
