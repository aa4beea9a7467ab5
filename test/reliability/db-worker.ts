// A separate process working on alpine's state database through the real store and lease
// code, for the state-DB reliability tests. Modes:
//   write <db> <shared> <own> <n> <startAt>  n operations on the shared record and n on its own:
//                                            take the lease, bump the record, append an event
//   lock <db>                                hold a write transaction with a half-done write, forever
//   commit <db> <name>                       create a record, then wait (to be SIGKILLed: WAL left)
import { type AlpineError, acquireLease, newSandboxRecord } from "@alpine/core";
import Database from "better-sqlite3";
import { nodeClock, nodeIds, thisHost } from "../../packages/cli/src/context.ts";
import { SqliteStateStore } from "../../packages/cli/src/store/sqlite-store.ts";

const [mode, dbPath, ...rest] = process.argv.slice(2) as [string, string, ...string[]];
const say = (v: unknown) => process.stdout.write(`${JSON.stringify(v)}\n`);
const forever = () => new Promise(() => setInterval(() => {}, 1 << 30));

function record(name: string) {
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

if (mode === "write") {
  const [shared, own, n, startAt] = rest as [string, string, string, string];
  const store = new SqliteStateStore(dbPath);
  const deps = { store, clock: nodeClock, host: thisHost, ids: nodeIds };
  const wait = Number(startAt) - Date.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  const counts = { done: 0, busy: 0, errors: [] as string[] };
  const one = async (name: string) => {
    for (;;) {
      try {
        const held = await acquireLease(deps, { id: `sbx-${name}`, name }, "task", nodeIds.operationId());
        try {
          const current = (await store.get(name))!;
          const next = { ...current, version: current.version + 1, updated_at: new Date().toISOString() };
          const ok = await store.put(next, current.version, [
            {
              sandbox_id: current.id,
              name,
              at: next.updated_at,
              kind: "note",
              from: null,
              to: null,
              operation_id: held.lease.operation_id,
              reason: `write by ${process.pid}`,
            },
          ]);
          if (!ok) counts.errors.push("a version compare failed while holding the lease");
        } finally {
          await held.release();
        }
        counts.done++;
        return;
      } catch (err) {
        if ((err as AlpineError).reason !== "operation_in_progress") {
          counts.errors.push(`${(err as AlpineError).reason ?? "?"}: ${(err as Error).message}`);
          return;
        }
        counts.busy++;
        await new Promise((r) => setTimeout(r, 5 + Math.random() * 20));
      }
    }
  };
  for (let i = 0; i < Number(n); i++) {
    await one(shared);
    await one(own);
  }
  store.close();
  say(counts);
} else if (mode === "lock") {
  const db = new Database(dbPath, { timeout: 0 });
  db.exec("BEGIN IMMEDIATE");
  db.prepare("INSERT INTO sandboxes (name, id, version, state, record) VALUES (?, ?, 1, 'new', '{}')").run(
    "half-written",
    "sbx-half-written",
  );
  say({ locked: true });
  await forever();
} else if (mode === "commit") {
  const [name] = rest as [string];
  const store = new SqliteStateStore(dbPath);
  await store.put(record(name), null, []);
  say({ committed: name });
  await forever();
} else if (mode === "seed") {
  const store = new SqliteStateStore(dbPath);
  for (const name of rest) await store.put(record(name), null, []);
  store.close();
  say({ seeded: rest });
}
