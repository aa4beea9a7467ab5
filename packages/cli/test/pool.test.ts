import { type ChildProcess, spawn } from "node:child_process";
import { lstatSync, mkdirSync, mkdtempSync, readlinkSync, symlinkSync, utimesSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  claim,
  listPool,
  orphanClaims,
  type PoolEntry,
  poolDir,
  resolveSandboxDir,
  take,
  writeEntry,
} from "../src/providers/pool.ts";

/** The warm pool's bookkeeping on a real alpine home, with stand-in sandboxd processes. */
const procs: ChildProcess[] = [];
afterAll(() => {
  for (const p of procs) p.kill("SIGKILL");
});

function runtime(home: string, id: string, fingerprint: string, alive = true): PoolEntry {
  const dir = join(home, "sandboxes", id);
  mkdirSync(dir, { recursive: true });
  let pid = 2 ** 22 + 11; // no such process
  if (alive) {
    // Looks like a warm sandboxd: its command line says so and it works in the runtime's dir.
    const p = spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)", "sandboxd"], { cwd: dir });
    procs.push(p);
    pid = p.pid!;
  }
  const entry = { id, dir, pid, fingerprint, created_at: new Date().toISOString() };
  writeEntry(home, entry);
  return entry;
}

describe("warm pool bookkeeping", () => {
  it("a launch claims a live runtime of its fingerprint, once, and lives at its path", () => {
    const home = mkdtempSync(join(tmpdir(), "alpine-pool-"));
    runtime(home, "warm-0000000000000001", "other");
    runtime(home, "warm-0000000000000002", "fp", false);
    const good = runtime(home, "warm-0000000000000003", "fp");
    const got = claim(home, "sbx_a", "fp");
    expect(got?.id).toBe(good.id);
    expect(readlinkSync(join(home, "sandboxes", "sbx_a"))).toBe(good.id);
    expect(resolveSandboxDir(home, "sbx_a")).toBe(good.dir);
    // Taken: nobody else gets it; the others stay for the pool's maintenance to remove.
    expect(claim(home, "sbx_b", "fp")).toBeNull();
    expect(
      listPool(home)
        .map((e) => e.id)
        .sort(),
    ).toEqual(["warm-0000000000000001", "warm-0000000000000002"]);
    expect(() => lstatSync(join(home, "sandboxes", "sbx_b"))).toThrow();
  });

  it("of two takers of one runtime exactly one wins", () => {
    const home = mkdtempSync(join(tmpdir(), "alpine-pool-"));
    const e = runtime(home, "warm-0000000000000004", "fp", false);
    expect([take(home, e), take(home, e)]).toEqual([true, false]);
  });

  it("a claim whose launch died before linking is an orphan after a while; a linked one is not", () => {
    const home = mkdtempSync(join(tmpdir(), "alpine-pool-"));
    const lost = runtime(home, "warm-0000000000000005", "fp", false);
    const kept = runtime(home, "warm-0000000000000006", "fp", false);
    expect(take(home, lost) && take(home, kept)).toBe(true);
    const old = new Date(Date.now() - 11 * 60_000);
    for (const e of [lost, kept]) utimesSync(join(poolDir(home), `${e.id}.claimed`), old, old);
    mkdirSync(join(home, "sandboxes"), { recursive: true });
    symlinkSync(kept.id, join(home, "sandboxes", "sbx_kept"));
    expect(orphanClaims(home).map((e) => e.id)).toEqual([lost.id]);
  });
});
