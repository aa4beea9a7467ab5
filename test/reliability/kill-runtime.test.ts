import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type E2EEnv, makeEnv, waitFor } from "../e2e/env.ts";
import { treeDigest } from "../e2e/tree.ts";
import { eventsOf, illegalTransitions, leaseOf } from "./checks.ts";
import {
  buildFaultCli,
  killAt,
  killLeftovers,
  processesUnder,
  recorder,
  run,
  sandboxdsUnder,
} from "./harness.ts";

/**
 * Issue 7, faults 1 (runtime side): OpenCode killed mid-task, sandboxd killed, a recovering
 * launch killed, a restore cut short. The sandbox must come back with its workspace intact,
 * and a teardown without --force must never drop work it cannot see.
 */
let e: E2EEnv;
const record = recorder("kill-runtime");
const alpine = (...args: string[]) => run(args, { env: e.env, cwd: e.cwd });
// biome-ignore lint/suspicious/noExplicitAny: CLI JSON output
type Json = any;

beforeAll(async () => {
  e = await makeEnv();
  await buildFaultCli();
});
afterAll(async () => {
  await alpine("teardown", "rt", "--force", "--json");
  killLeftovers(e.alpineHome);
  await e.close();
  rmSync(e.root, { recursive: true, force: true });
});

const name = "rt";
let id = "";
const sandboxDir = () => join(e.alpineHome, "sandboxes", id);
const workspace = () => join(sandboxDir(), "workspace");

async function status(): Promise<Json> {
  const r = await alpine("status", name, "--json");
  expect(r.code, r.stdout + r.stderr).toBe(0);
  return r.json();
}

/** sandboxd's own view (OpenCode's pid and restarts), with the sandbox's token. */
async function sandboxdStatus(): Promise<Json> {
  const s = await status();
  const token = readFileSync(join(sandboxDir(), "token"), "utf8");
  const res = await fetch(`${s.runtime.web_url}/v1/status`, {
    headers: { authorization: `Bearer ${token}` },
  });
  expect(res.status).toBe(200);
  return res.json();
}

describe("the sandbox's own processes killed", () => {
  it("a sandbox with unsaved work", async () => {
    const r = await alpine(
      "launch",
      name,
      "--repo",
      e.repoUrl,
      "--task",
      "WRITE NOTES.md from the agent",
      "--json",
    );
    expect(r.code, r.stdout + r.stderr).toBe(0);
    id = r.json().id;
    await waitFor("completion", async () => (await status()).state === "completed", { timeoutMs: 60_000 });
    mkdirSync(join(workspace(), "deep"), { recursive: true });
    writeFileSync(join(workspace(), "deep", "unsaved.txt"), "saved nowhere yet\n");
  });

  it("OpenCode SIGKILLed mid-task: sandboxd restarts it, status shows the restart, the workspace is intact, a new task runs", async () => {
    const t = await alpine("task", name, "SLEEP 8000 WRITE INTERRUPTED.md never written", "--json");
    expect(t.code, t.stdout).toBe(0);
    await waitFor("the agent to be busy", async () => (await status()).runtime.agent === "busy");
    const before = treeDigest(workspace());
    const oc = await sandboxdStatus();
    expect(oc.opencode.pid).toBeGreaterThan(0);
    const killedAt = Date.now();
    process.kill(oc.opencode.pid, "SIGKILL");

    const back = await waitFor(
      "OpenCode to be restarted",
      async () => {
        const s = await status();
        return s.runtime.opencode_restarts >= 1 && s.runtime.agent !== "unknown" ? s : null;
      },
      { timeoutMs: 60_000, intervalMs: 200 },
    );
    const recoveryMs = Date.now() - killedAt;
    expect(back.runtime.probe_state).toBe("ok");
    // Cut short by the crash, not failed by the model or a tool (issue 17's task states); the reason says so.
    expect(back.task.state).toBe("interrupted");
    expect((await sandboxdStatus()).opencode.pid).not.toBe(oc.opencode.pid);
    expect(treeDigest(workspace())).toEqual(before);

    const next = await alpine("task", name, "--wait", "WRITE AFTER.md after the restart", "--json");
    expect(next.code, next.stdout + next.stderr).toBe(0);
    expect(next.json().state).toBe("completed");
    expect(readFileSync(join(workspace(), "AFTER.md"), "utf8")).toContain("after the restart");
    expect(readFileSync(join(workspace(), "deep", "unsaved.txt"), "utf8")).toBe("saved nowhere yet\n");
    record({
      kind: "fault",
      fault: "OpenCode SIGKILLed while the agent worked",
      what_happened: `sandboxd restarted it (status: opencode_restarts ${back.runtime.opencode_restarts}, task failed); the next task ran`,
      lost: "nothing (the interrupted turn's unwritten output only)",
      recovery_ms: recoveryMs,
      recovery: "automatic (sandboxd)",
    });
  });

  it("sandboxd SIGKILLed: status says unavailable, teardown refuses, launch recovers the same sandbox and workspace", async () => {
    const before = treeDigest(workspace());
    const [sbx] = sandboxdsUnder(e.alpineHome);
    expect(sbx).toBeDefined();
    const killedAt = Date.now();
    process.kill(sbx!.pid, "SIGKILL");
    // OpenCode runs under bubblewrap's --die-with-parent: nothing of the sandbox lives on.
    await waitFor("the sandbox's processes to end", async () => processesUnder(sandboxDir()).length === 0);

    const down = await status();
    expect(down.state).toBe("completed");
    expect(down.runtime.probe_state).toBe("unavailable");
    expect(down.error.reason_code).toBe("sandbox_unavailable");
    expect(down.teardown.blockers).toContain("runtime_unreachable");
    const refused = await alpine("teardown", name, "--json");
    expect(refused.code).toBe(1);
    expect(refused.json().reason_code).toBe("teardown_blocked");

    const again = await alpine("launch", name, "--json");
    const recoveryMs = Date.now() - killedAt;
    expect(again.code, again.stdout + again.stderr).toBe(0);
    expect(again.json()).toMatchObject({ id, state: "running", reused: false });
    expect(treeDigest(workspace())).toEqual(before);
    expect(sandboxdsUnder(e.alpineHome)).toHaveLength(1);
    record({
      kind: "fault",
      fault: "sandboxd SIGKILLed",
      what_happened:
        "status: unavailable (sandbox_unavailable), teardown refused (teardown_blocked); `launch`: same sandbox, same workspace",
      lost: "nothing",
      recovery_ms: recoveryMs,
      recovery: "alpine launch",
    });
  });

  it("the launch that recovers it SIGKILLed too: teardown without --force still refuses to drop the unseen work", async () => {
    const before = treeDigest(workspace());
    process.kill(sandboxdsUnder(e.alpineHome)[0]!.pid, "SIGKILL");
    await waitFor("the sandbox's processes to end", async () => processesUnder(sandboxDir()).length === 0);
    const kill = await killAt("launch.agent_starting", ["launch", name, "--json"], {
      env: e.env,
      cwd: e.cwd,
    });

    const after = await status();
    expect(after.state).toBe("error");
    expect(after.teardown.blockers).toContain("runtime_unreachable");
    const refused = await alpine("teardown", name, "--json");
    expect(refused.code, refused.stdout).toBe(1);
    expect(refused.json().reason_code).toBe("teardown_blocked");
    expect(existsSync(join(workspace(), "deep", "unsaved.txt"))).toBe(true);

    const again = await alpine("launch", name, "--json");
    const recoveryMs = Date.now() - kill.killedAt;
    expect(again.code, again.stdout + again.stderr).toBe(0);
    expect(treeDigest(workspace())).toEqual(before);
    record({
      kind: "fault",
      fault: "sandboxd SIGKILLed, then the recovering launch SIGKILLed at launch.agent_starting",
      what_happened:
        "status: error; teardown without --force refused (teardown_blocked: the workspace cannot be read); `launch`: workspace back",
      lost: "nothing",
      recovery_ms: recoveryMs,
      recovery: "alpine launch",
    });
  });

  it("a restore cut short (the half-written workspace a killed sandboxd leaves) is restored again, not replaced by a fresh clone", async () => {
    const t = await alpine("teardown", name, "--json");
    expect(t.code, t.stdout + t.stderr).toBe(0);
    expect(t.json().checkpoint_id).toMatch(/^ckpt_/);
    const kill = await killAt("launch.restoring", ["launch", name, "--json"], { env: e.env, cwd: e.cwd });
    expect((await status()).state).toBe("error");
    // What Workspace.restore leaves when sandboxd dies in it: a git dir marked in progress.
    mkdirSync(join(workspace(), ".git"), { recursive: true });
    writeFileSync(join(workspace(), ".git", "alpine-clone-in-progress"), "");

    const again = await alpine("launch", name, "--json");
    const recoveryMs = Date.now() - kill.killedAt;
    expect(again.code, again.stdout + again.stderr).toBe(0);
    expect(again.json()).toMatchObject({ resumed: true, state: "running" });
    expect(readFileSync(join(workspace(), "deep", "unsaved.txt"), "utf8")).toBe("saved nowhere yet\n");
    expect(existsSync(join(workspace(), "AFTER.md"))).toBe(true);
    expect(leaseOf(e.alpineHome, name)).toBeNull();
    expect(illegalTransitions(eventsOf(e.alpineHome, name))).toEqual([]);
    record({
      kind: "fault",
      fault: "restore cut short (sandboxd killed mid-restore, launcher killed)",
      what_happened: "status: error; `launch` restored the checkpoint again over the half-written workspace",
      lost: "nothing",
      recovery_ms: recoveryMs,
      recovery: "alpine launch",
    });
  });
});
