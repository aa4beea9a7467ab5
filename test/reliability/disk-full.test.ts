import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type E2EEnv, makeEnv, waitFor } from "../e2e/env.ts";
import { checkpointFiles, storeProblems } from "./checks.ts";
import { killLeftovers, processesUnder, recorder, run } from "./harness.ts";

/**
 * Issue 7, faults 1: the disk fills up during a checkpoint — alpine's checkpoint store, and
 * sandboxd's own staging dir — on a small tmpfs mounted for the test (needs root, as in CI).
 * The checkpoint fails cleanly (checkpoint_failed, retryable), leaves nothing half-written,
 * the previous verified checkpoint stays usable, teardown refuses to drop the unsaved work,
 * and once there is room again a retry succeeds.
 */
const root = process.getuid?.() === 0;
let e: E2EEnv;
const record = recorder("disk-full");
const alpine = (...args: string[]) => run(args, { env: e.env, cwd: e.cwd });
const mounts: string[] = [];
// biome-ignore lint/suspicious/noExplicitAny: CLI JSON output
type Json = any;

function mountTmpfs(dir: string, size: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  execFileSync("mount", ["-t", "tmpfs", "-o", `size=${size},mode=0700`, "tmpfs", dir]);
  mounts.push(dir);
}
const resize = (dir: string, size: string) =>
  execFileSync("mount", ["-o", `remount,size=${size}`, "tmpfs", dir]);
function unmount(dir: string): void {
  execFileSync("umount", ["-l", dir]);
  mounts.splice(mounts.indexOf(dir), 1);
}

beforeAll(async () => {
  if (!root) return;
  e = await makeEnv();
});
afterAll(async () => {
  if (!root) return;
  for (const m of [...mounts].reverse()) unmount(m);
  await alpine("teardown", "full", "--force", "--json");
  killLeftovers(e.alpineHome);
  await e.close();
  rmSync(e.root, { recursive: true, force: true });
});

const name = "full";
let id = "";
let verified: { id: string; created_at: string };
const sandboxDir = () => join(e.alpineHome, "sandboxes", id);
const workspace = () => join(sandboxDir(), "workspace");

async function status(): Promise<Json> {
  const r = await alpine("status", name, "--json");
  expect(r.code, r.stdout + r.stderr).toBe(0);
  return r.json();
}

describe.skipIf(!root)("disk full during a checkpoint", () => {
  it("a sandbox with a verified checkpoint on a 1 MiB checkpoint store", async () => {
    mountTmpfs(join(e.alpineHome, "checkpoints"), "1m");
    const r = await alpine(
      "launch",
      name,
      "--repo",
      e.repoUrl,
      "--task",
      "WRITE NOTES.md small notes",
      "--json",
    );
    expect(r.code, r.stdout + r.stderr).toBe(0);
    id = r.json().id;
    await waitFor("completion", async () => (await status()).state === "completed", { timeoutMs: 60_000 });
    const cp = await alpine("checkpoint", name, "--json");
    expect(cp.code, cp.stdout + cp.stderr).toBe(0);
    verified = { id: cp.json().checkpoint_id, created_at: cp.json().created_at };
  });

  it("the store fills up: checkpoint_failed, nothing half-written, the previous checkpoint still restores, teardown refuses", async () => {
    // 2 MiB of random bytes: git cannot compress them below the store's size.
    writeFileSync(join(workspace(), "big.bin"), randomBytes(2 * 1024 * 1024));
    const r = await alpine("checkpoint", name, "--json");
    expect(r.code, r.stdout).toBe(2);
    expect(r.json()).toMatchObject({ reason_code: "checkpoint_failed", retryable: true });
    expect(r.json().error).toMatch(/ENOSPC|no space/i);

    const s = await status();
    expect(s.state).toBe("completed");
    expect(s.durability).toMatchObject({ checkpoint_id: verified.id, verified: true });
    expect(s.teardown.blockers).toContain("unsaved_changes");
    expect(storeProblems(e.alpineHome, id, verified)).toEqual([]);
    // Usable: an export from it verifies every artifact again and reads the bundle.
    const patch = join(e.root, "from-checkpoint.patch");
    const ex = await alpine("export", name, "--from-checkpoint", "--patch", patch, "--json");
    expect(ex.code, ex.stdout + ex.stderr).toBe(0);
    expect(readFileSync(patch, "utf8")).toContain("small notes");

    const t = await alpine("teardown", name, "--json");
    expect(t.code, t.stdout).toBe(1);
    expect(t.json().reason_code).toBe("teardown_blocked");
    expect(t.json().details.unsaved_files).toContain("big.bin");
    expect(processesUnder(sandboxDir()).length).toBeGreaterThan(0);
    expect(existsSync(join(workspace(), "big.bin"))).toBe(true);

    // Recovery: from the moment there is room again to a verified checkpoint.
    const roomAt = Date.now();
    resize(join(e.alpineHome, "checkpoints"), "16m");
    const again = await alpine("checkpoint", name, "--json");
    expect(again.code, again.stdout + again.stderr).toBe(0);
    const recoveredMs = Date.now() - roomAt;
    verified = { id: again.json().checkpoint_id, created_at: again.json().created_at };
    expect(
      checkpointFiles(e.alpineHome, id, verified.id, e.git.repoPath("app")).get("big.bin")?.length,
    ).toBeGreaterThan(0);
    expect(storeProblems(e.alpineHome, id, verified)).toEqual([]);
    record({
      kind: "fault",
      fault: "disk full in alpine's checkpoint store during a checkpoint (1 MiB tmpfs)",
      what_happened:
        "checkpoint_failed (exit 2, retryable), nothing half-written; previous checkpoint still verified and exported; teardown refused (teardown_blocked); with room again the retry was verified",
      lost: "nothing",
      recovery_ms: recoveredMs,
      recovery: "free space, alpine checkpoint",
    });
  });

  it("sandboxd's staging dir fills up: checkpoint_failed, its partial files are removed, the retry works", async () => {
    writeFileSync(join(workspace(), "more.bin"), randomBytes(2 * 1024 * 1024));
    const staging = join(sandboxDir(), "checkpoints");
    mountTmpfs(staging, "1m");
    const r = await alpine("checkpoint", name, "--json");
    expect(r.code, r.stdout).toBe(2);
    expect(r.json()).toMatchObject({ reason_code: "checkpoint_failed", retryable: true });
    // Nothing partial is left; only sandboxd's private repo of checkpoint commits (incremental checkpoints build on it).
    expect(readdirSync(staging).filter((f) => f !== ".snapshot-git")).toEqual([]);
    const s = await status();
    expect(s.state).toBe("completed");
    expect(s.durability).toMatchObject({ checkpoint_id: verified.id, verified: true });
    expect(storeProblems(e.alpineHome, id, verified)).toEqual([]);

    const roomAt = Date.now();
    resize(staging, "32m");
    const again = await alpine("checkpoint", name, "--json");
    expect(again.code, again.stdout + again.stderr).toBe(0);
    const recoveredMs = Date.now() - roomAt;
    verified = { id: again.json().checkpoint_id, created_at: again.json().created_at };
    expect(checkpointFiles(e.alpineHome, id, verified.id, e.git.repoPath("app")).has("more.bin")).toBe(true);
    unmount(staging);
    record({
      kind: "fault",
      fault: "disk full in the sandbox's checkpoint staging dir (1 MiB tmpfs)",
      what_happened:
        "checkpoint_failed (exit 2, retryable); sandboxd removed its partial files; previous checkpoint still the verified one; with room again the retry was verified",
      lost: "nothing",
      recovery_ms: recoveredMs,
      recovery: "free space, alpine checkpoint",
    });
  });
});
