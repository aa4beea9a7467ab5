import { type ChildProcess, spawn } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SCHEMA_VERSION } from "../../packages/cli/src/store/sqlite-store.ts";
import { bundleHelper } from "../helpers/bundle.ts";
import { eventsOf, leaseOf } from "./checks.ts";
import { recorder, run } from "./harness.ts";

/**
 * Issue 7, faults 1 (state DB), through real processes and the real CLI: many writers at once,
 * a writer SIGKILLed holding the write lock or with its commit only in the WAL, and databases
 * alpine cannot use (older schema: migrated; newer, corrupt, truncated: a clear
 * state_store_error, the file left byte for byte). packages/cli/test/store.test.ts covers the
 * store class itself (lease races, takeover, migration); this covers what a user sees.
 */
let worker: string;
const record = recorder("state-db");
const roots: string[] = [];

beforeAll(async () => {
  worker = await bundleHelper("test/reliability/db-worker.ts");
});
afterAll(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

function home() {
  const root = mkdtempSync(join(tmpdir(), "alpine-rel-db-"));
  roots.push(root);
  const alpineHome = join(root, "alpine");
  mkdirSync(alpineHome);
  const env = { HOME: root, ALPINE_HOME: alpineHome, XDG_CONFIG_HOME: join(root, "config") };
  return {
    root,
    alpineHome,
    db: join(alpineHome, "state.db"),
    env,
    cli: (...a: string[]) => run(a, { env, cwd: root }),
  };
}

function startWorker(...args: string[]) {
  const child: ChildProcess = spawn(process.execPath, [worker, ...args], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const lines = createInterface({ input: child.stdout! });
  const messages: Record<string, unknown>[] = [];
  let wake: (() => void) | null = null;
  lines.on("line", (l) => {
    messages.push(JSON.parse(l));
    wake?.();
  });
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  return {
    child,
    exited,
    async first(): Promise<Record<string, unknown>> {
      while (messages.length === 0) await new Promise<void>((r) => (wake = r));
      return messages[0]!;
    },
  };
}

describe("alpine's state database", () => {
  it("8 writer processes at once: every lease-guarded write lands, none is lost or reported as an error", async () => {
    const h = home();
    const names = Array.from({ length: 8 }, (_, i) => `own-${i}`);
    const seed = startWorker("seed", h.db, "shared", ...names);
    await seed.exited;
    const n = 25;
    const startAt = String(Date.now() + 800);
    const workers = names.map((own) => startWorker("write", h.db, "shared", own, String(n), startAt));
    const results = await Promise.all(workers.map((w) => w.first()));
    await Promise.all(workers.map((w) => w.exited));
    for (const r of results) expect(r).toMatchObject({ done: 2 * n, errors: [] });
    const db = new Database(h.db, { readonly: true });
    const version = (name: string) =>
      (db.prepare("SELECT version FROM sandboxes WHERE name = ?").get(name) as { version: number }).version;
    expect(version("shared")).toBe(1 + 8 * n);
    for (const own of names) expect(version(own)).toBe(1 + n);
    db.close();
    expect(eventsOf(h.alpineHome, "shared")).toHaveLength(8 * n);
    expect(leaseOf(h.alpineHome, "shared")).toBeNull();
    const busy = results.reduce((sum, r) => sum + Number(r.busy), 0);
    record({
      kind: "fault",
      fault: `8 processes writing at once (${16 * n} lease-guarded writes, ${8 * n} on one record)`,
      what_happened: `all landed in order (version ${1 + 8 * n}); ${busy} attempts met operation_in_progress and retried`,
      lost: "nothing",
      recovery_ms: null,
      recovery: "none needed",
    });
  });

  it("a process SIGKILLed holding the write lock: meanwhile reads work and writes say operation_in_progress; after it, its half-done write is gone", async () => {
    const h = home();
    await startWorker("seed", h.db, "victim").exited;
    const locker = startWorker("lock", h.db);
    expect(await locker.first()).toEqual({ locked: true });

    const list = await h.cli("list", "--json");
    expect(list.code, list.stdout + list.stderr).toBe(0);
    expect(list.json().map((s: { name: string }) => s.name)).toEqual(["victim"]);
    const blocked = await h.cli("teardown", "victim", "--json");
    expect(blocked.code, blocked.stdout + blocked.stderr).toBe(2);
    expect(blocked.json()).toMatchObject({ reason_code: "operation_in_progress", retryable: true });

    const killedAt = Date.now();
    locker.child.kill("SIGKILL");
    await locker.exited;
    const down = await h.cli("teardown", "victim", "--json");
    const recoveryMs = Date.now() - killedAt;
    expect(down.code, down.stdout + down.stderr).toBe(0);
    expect(down.json()).toMatchObject({ state: "destroyed" });
    expect((await h.cli("list", "--json")).json().map((s: { name: string }) => s.name)).toEqual(["victim"]);
    record({
      kind: "fault",
      fault: "a process SIGKILLed while holding the state DB's write lock",
      what_happened:
        "while it lived: reads worked, writes failed with operation_in_progress (retryable); after the kill the lock was gone and its uncommitted write rolled back",
      lost: "nothing (the dead process's uncommitted write only)",
      recovery_ms: recoveryMs,
      recovery: "retry the command",
    });
  });

  it("a writer SIGKILLed with its commit still in the WAL: the next command sees the record", async () => {
    const h = home();
    const writer = startWorker("commit", h.db, "in-wal");
    expect(await writer.first()).toEqual({ committed: "in-wal" });
    writer.child.kill("SIGKILL");
    await writer.exited;
    expect(existsSync(`${h.db}-wal`)).toBe(true);
    const list = await h.cli("list", "--json");
    expect(list.code, list.stdout + list.stderr).toBe(0);
    expect(list.json().map((s: { name: string }) => s.name)).toEqual(["in-wal"]);
    record({
      kind: "fault",
      fault: "a writer SIGKILLed right after committing (data only in the WAL)",
      what_happened: "the next command replayed the WAL and listed the record",
      lost: "nothing",
      recovery_ms: null,
      recovery: "automatic (SQLite WAL recovery)",
    });
  });

  it("an older schema (version 0) is migrated in place by the next command, keeping what was there", async () => {
    const h = home();
    const db = new Database(h.db);
    db.exec("CREATE TABLE unrelated (x INTEGER); INSERT INTO unrelated VALUES (42);");
    db.pragma("user_version = 0");
    db.close();
    const r = await h.cli("list", "--json");
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.json()).toEqual([]);
    const check = new Database(h.db, { readonly: true });
    expect(check.pragma("user_version", { simple: true })).toBe(SCHEMA_VERSION);
    expect(check.prepare("SELECT x FROM unrelated").get()).toEqual({ x: 42 });
    check.close();
    record({
      kind: "fault",
      fault: "state DB at an older schema version (0)",
      what_happened: `migrated to version ${SCHEMA_VERSION} by the next command; its other contents kept`,
      lost: "nothing",
      recovery_ms: null,
      recovery: "automatic (migration)",
    });
  });

  const unusable: [what: string, make: (db: string) => void, detail: RegExp][] = [
    [
      "from a newer alpine (schema version + 1)",
      (path) => {
        const db = new Database(path);
        db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
        db.close();
      },
      /newer than this alpine/,
    ],
    [
      "not a database at all",
      (path) => writeFileSync(path, "this is not a database ".repeat(400)),
      /state\.db/,
    ],
    [
      "truncated to half its size",
      (path) => {
        const db = new Database(path);
        db.exec(
          "CREATE TABLE sandboxes (name TEXT PRIMARY KEY, id TEXT, version INTEGER, state TEXT, record TEXT)",
        );
        const insert = db.prepare("INSERT INTO sandboxes VALUES (?, ?, 1, 'new', ?)");
        for (let i = 0; i < 400; i++) insert.run(`s${i}`, `sbx${i}`, "x".repeat(500));
        db.pragma("journal_mode = DELETE");
        db.pragma("user_version = 1");
        db.close();
        const { size } = statSync(path);
        truncateSync(path, Math.floor(size / 2));
      },
      /state\.db/,
    ],
  ];
  for (const [what, make, detail] of unusable) {
    it(`a state DB ${what}: state_store_error naming the file, which is left byte for byte`, async () => {
      const h = home();
      make(h.db);
      const before = readFileSync(h.db);
      for (const args of [
        ["list"],
        ["status", "demo"],
        ["launch", "demo", "--repo", "https://git.invalid/app.git"],
      ]) {
        const r = await h.cli(...args, "--json");
        expect(r.code, `${args[0]}: ${r.stdout}${r.stderr}`).toBe(2);
        expect(r.json()).toMatchObject({ reason_code: "state_store_error", details: { path: h.db } });
        expect(r.json().error).toMatch(detail);
      }
      expect(readFileSync(h.db).equals(before)).toBe(true);
      record({
        kind: "fault",
        fault: `state DB ${what}`,
        what_happened:
          "every command: state_store_error (exit 2) naming the file; the file was not changed or reset",
        lost: "nothing (the file is left for the user to move aside)",
        recovery_ms: null,
        recovery: "user moves the file aside or upgrades alpine",
      });
    });
  }
});
