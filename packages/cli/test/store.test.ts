import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { AlpineError, acquireLease, type Lease, newSandboxRecord, type SandboxRecord } from "@alpine/core";
import Database from "better-sqlite3";
import { beforeAll, describe, expect, it } from "vitest";
import { bundleHelper } from "../../../test/helpers/bundle.ts";
import { nodeClock, nodeIds, thisHost } from "../src/context.ts";
import { SCHEMA_VERSION, SqliteStateStore } from "../src/store/sqlite-store.ts";

let worker: string;
beforeAll(async () => {
  worker = await bundleHelper("test/helpers/lease-worker.ts");
});

const tmpDb = () => join(mkdtempSync(join(tmpdir(), "alpine-store-")), "state.db");

function startWorker(db: string, name: string, holdMs: number, startAt = 0) {
  const child = spawn(process.execPath, [worker, db, name, String(holdMs), String(startAt)], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const lines = createInterface({ input: child.stdout! });
  const messages: Record<string, unknown>[] = [];
  const waiters: (() => void)[] = [];
  lines.on("line", (l) => {
    messages.push(JSON.parse(l));
    for (const w of waiters.splice(0)) w();
  });
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  return {
    child,
    messages,
    exited,
    async first(): Promise<Record<string, unknown>> {
      while (messages.length === 0) await new Promise<void>((r) => waiters.push(r));
      return messages[0]!;
    },
  };
}

function record(name: string): SandboxRecord {
  return newSandboxRecord(
    {
      id: `sbx-${name}`,
      name,
      provider: "local",
      repo: "/tmp/repo",
      ref: null,
      branch: `alpine/${name}`,
      image_profile: "default",
    },
    new Date().toISOString(),
  );
}

describe("SQLite state store", () => {
  it("creates its schema at the current version in WAL mode", () => {
    const path = tmpDb();
    new SqliteStateStore(path).close();
    const db = new Database(path);
    expect(db.pragma("user_version", { simple: true })).toBe(SCHEMA_VERSION);
    expect(db.pragma("journal_mode", { simple: true })).toBe("wal");
    db.close();
  });

  it("put compares versions: a stale writer loses", async () => {
    const store = new SqliteStateStore(tmpDb());
    const r = record("demo");
    expect(await store.put(r, null, [])).toBe(true);
    expect(await store.put(r, null, [])).toBe(false);
    expect(await store.put({ ...r, version: 2, state: "provisioning" }, 1, [])).toBe(true);
    expect(await store.put({ ...r, version: 3 }, 1, [])).toBe(false);
    expect((await store.get("demo"))?.state).toBe("provisioning");
    store.close();
  });

  it("two processes racing for one lease: exactly one wins, the other gets operation_in_progress", async () => {
    const db = tmpDb();
    new SqliteStateStore(db).close();
    for (let round = 0; round < 4; round++) {
      const startAt = Date.now() + 400;
      const a = startWorker(db, `race-${round}`, 600, startAt);
      const b = startWorker(db, `race-${round}`, 600, startAt);
      const results = await Promise.all([a.first(), b.first()]);
      expect(results.filter((r) => r.acquired === true)).toHaveLength(1);
      expect(results.filter((r) => r.acquired === false)).toEqual([
        { acquired: false, reason: "operation_in_progress" },
      ]);
      await Promise.all([a.exited, b.exited]);
    }
    // Once released, the lease is free again.
    const store = new SqliteStateStore(db);
    expect(await store.getLease("race-0")).toBeNull();
    store.close();
  });

  it("the lease is persisted while held and visible to other processes", async () => {
    const db = tmpDb();
    const holder = startWorker(db, "visible", 1500);
    const first = await holder.first();
    expect(first.acquired).toBe(true);
    const store = new SqliteStateStore(db);
    const lease = await store.getLease("visible");
    expect(lease?.pid).toBe(holder.child.pid);
    expect(lease?.type).toBe("launch");
    await holder.exited;
    expect(await store.getLease("visible")).toBeNull();
    store.close();
  });

  it("a holder killed with SIGKILL leaves a lease the next operation takes over, and the takeover is logged", async () => {
    const db = tmpDb();
    const holder = startWorker(db, "victim", 60_000);
    expect((await holder.first()).acquired).toBe(true);
    holder.child.kill("SIGKILL");
    await holder.exited;
    const store = new SqliteStateStore(db);
    const stale = await store.getLease("victim");
    expect(stale?.pid).toBe(holder.child.pid);
    const next = startWorker(db, "victim", 10);
    const got = await next.first();
    expect(got.acquired).toBe(true);
    await next.exited;
    const events = await store.events("victim");
    expect(events.map((e) => e.kind)).toEqual(["lease_takeover"]);
    expect(events[0]!.reason).toMatch(new RegExp(`holder pid ${holder.child.pid} is gone`));
    store.close();
  });

  it("an expired lease of another host is taken over; a live one is not", async () => {
    const store = new SqliteStateStore(tmpDb());
    const deps = { store, clock: nodeClock, host: thisHost, ids: nodeIds };
    const foreign = (expires: number): Lease => ({
      id: `foreign-${expires}`,
      type: "export",
      holder: "other-host:1",
      host: "other-host",
      pid: 1,
      operation_id: "op_foreign",
      acquired_at: new Date(Date.now() - 60_000).toISOString(),
      expires_at: new Date(expires).toISOString(),
    });
    expect(hostname()).not.toBe("other-host");
    await store.compareAndSwapLease("a", null, foreign(Date.now() + 60_000));
    await expect(acquireLease(deps, { id: "sbx-a", name: "a" }, "teardown", "op_x")).rejects.toMatchObject({
      reason: "operation_in_progress",
      details: { operation: "export", holder: "other-host:1" },
    });
    await store.compareAndSwapLease("b", null, foreign(Date.now() - 1));
    const held = await acquireLease(deps, { id: "sbx-b", name: "b" }, "teardown", "op_y");
    expect(held.lease.operation_id).toBe("op_y");
    await held.release();
    expect((await store.events("b"))[0]?.reason).toMatch(/expired/);
    store.close();
  });

  it("a corrupt database file is a clear error and is never reset", () => {
    const path = tmpDb();
    const garbage = "this is not a database ".repeat(400);
    writeFileSync(path, garbage);
    let error: unknown;
    try {
      new SqliteStateStore(path);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(AlpineError);
    expect((error as AlpineError).reason).toBe("state_store_error");
    expect((error as AlpineError).message).toContain(path);
    expect(readFileSync(path, "utf8")).toBe(garbage);
  });

  it("a database from a newer alpine is refused, not downgraded", () => {
    const path = tmpDb();
    const db = new Database(path);
    db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    db.close();
    expect(() => new SqliteStateStore(path)).toThrow(/newer than this alpine/);
  });

  it("a database at an older schema version is migrated in place, keeping its data", async () => {
    const path = tmpDb();
    const db = new Database(path);
    db.exec("CREATE TABLE unrelated (x INTEGER); INSERT INTO unrelated VALUES (42);");
    db.pragma("user_version = 0");
    db.close();
    const store = new SqliteStateStore(path);
    expect(await store.list()).toEqual([]);
    store.close();
    const check = new Database(path);
    expect(check.prepare("SELECT x FROM unrelated").get()).toEqual({ x: 42 });
    expect(check.pragma("user_version", { simple: true })).toBe(SCHEMA_VERSION);
    check.close();
  });
});
