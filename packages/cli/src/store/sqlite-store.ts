import { existsSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import type { Lease, SandboxRecord, StateStore, StoredEvent } from "@alpine/core";
// The narrow import keeps zod and the rest of core out of `alpine list`'s start-up.
import { AlpineError } from "@alpine/core/errors";
import { normaliseRecord } from "@alpine/core/records";
// Bundled into the CLI by scripts/build.mjs (its JavaScript only; the native addon stays in
// node_modules): loading its dozen CommonJS files one by one, or importing them from ESM (Node
// then lexes them for named exports), is a good part of `alpine list`'s start-up.
import Database from "better-sqlite3";

let addonPath: string | undefined;

/**
 * The path of better-sqlite3's native addon, given to it as `nativeBinding`: its own
 * lookup (lib/binding.js) starts from its `__dirname`, which in a bundle is the CLI's
 * directory. Its order is kept: an addon compiled on purpose (build/Debug, build/Release),
 * else the prebuilt one the package ships for this platform, which its lookup picks.
 */
function nativeBinding(): string {
  if (addonPath) return addonPath;
  const fromHere = createRequire(import.meta.url);
  const root = dirname(fromHere.resolve("better-sqlite3/package.json"));
  const compiled = ["Debug", "Release"]
    .map((dir) => join(root, "build", dir, "better_sqlite3.node"))
    .find((file) => existsSync(file));
  const found = compiled ?? prebuiltAddon(root);
  if (!found)
    throw new Error(`better-sqlite3 has no native addon for ${process.platform}-${process.arch} in ${root}`);
  addonPath = found;
  return addonPath;
}

/** The prebuilt addon for this platform (glibc or musl), as better-sqlite3's own lookup chooses it. */
function prebuiltAddon(root: string): string | null {
  const binding = createRequire(join(root, "package.json"))("./lib/binding.js") as {
    getPrebuildPath(): string | null;
  };
  return binding.getPrebuildPath();
}

/**
 * Schema migrations, applied in order; `PRAGMA user_version` records how many
 * have run. Never edit a shipped migration: append a new one.
 */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE sandboxes (
     name TEXT PRIMARY KEY,
     id TEXT NOT NULL UNIQUE,
     version INTEGER NOT NULL,
     state TEXT NOT NULL,
     record TEXT NOT NULL
   );
   CREATE TABLE events (
     seq INTEGER PRIMARY KEY AUTOINCREMENT,
     sandbox_id TEXT NOT NULL,
     name TEXT NOT NULL,
     at TEXT NOT NULL,
     kind TEXT NOT NULL,
     from_state TEXT,
     to_state TEXT,
     operation_id TEXT,
     reason TEXT NOT NULL
   );
   CREATE INDEX events_by_name ON events(name, seq);
   CREATE TABLE leases (
     name TEXT PRIMARY KEY,
     id TEXT NOT NULL,
     lease TEXT NOT NULL
   );`,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

function storeError(path: string, err: unknown): AlpineError {
  const message = err instanceof Error ? err.message : String(err);
  const code = (err as { code?: string }).code;
  if (code === "SQLITE_BUSY") {
    return new AlpineError(
      "operation_in_progress",
      `alpine's state database is locked by another process (${path})`,
      {
        path,
      },
    );
  }
  return new AlpineError(
    "state_store_error",
    `cannot use alpine's state database ${path}: ${message}. It was left untouched; move it aside to start afresh.`,
    { path, sqlite_code: code ?? null },
    { cause: err },
  );
}

export class SqliteStateStore implements StateStore {
  private readonly db: Database.Database;

  constructor(readonly path: string) {
    try {
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      this.db = new Database(path, { timeout: 5000, nativeBinding: nativeBinding() });
      // Before anything that writes (switching to WAL rewrites the header): a newer alpine's
      // database is refused untouched.
      this.refuseNewer();
      this.db.pragma("journal_mode = WAL");
      this.db.pragma("synchronous = NORMAL");
      this.db.pragma("foreign_keys = ON");
      this.migrate();
    } catch (err) {
      throw storeError(path, err);
    }
  }

  private refuseNewer(): void {
    const current = this.db.pragma("user_version", { simple: true }) as number;
    if (current > MIGRATIONS.length) {
      this.db.close();
      throw new AlpineError(
        "state_store_error",
        `state database ${this.path} has schema version ${current}, newer than this alpine (${MIGRATIONS.length}); upgrade alpine`,
        { path: this.path, schema_version: current },
      );
    }
  }

  private migrate(): void {
    const current = this.db.pragma("user_version", { simple: true }) as number;
    if (current === MIGRATIONS.length) return;
    this.db
      .transaction(() => {
        // Re-read inside the write lock: another process may have migrated meanwhile.
        const version = this.db.pragma("user_version", { simple: true }) as number;
        for (let i = version; i < MIGRATIONS.length; i++) this.db.exec(MIGRATIONS[i]!);
        this.db.pragma(`user_version = ${MIGRATIONS.length}`);
      })
      .immediate();
  }

  private run<T>(fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      if (err instanceof AlpineError) throw err;
      throw storeError(this.path, err);
    }
  }

  close(): void {
    this.db.close();
  }

  async get(name: string): Promise<SandboxRecord | null> {
    return this.run(() => {
      const row = this.db.prepare("SELECT record FROM sandboxes WHERE name = ?").get(name) as
        | { record: string }
        | undefined;
      // Records are validated when written (the orchestrator builds them from typed values).
      return row ? normaliseRecord(JSON.parse(row.record)) : null;
    });
  }

  async list(): Promise<SandboxRecord[]> {
    return this.run(() =>
      (this.db.prepare("SELECT record FROM sandboxes ORDER BY name").all() as { record: string }[]).map(
        // The store wrote these records itself; parsing them again with zod per row would dominate `list`.
        (row) => normaliseRecord(JSON.parse(row.record)),
      ),
    );
  }

  private insertEvents(events: StoredEvent[]): void {
    const insert = this.db.prepare(
      "INSERT INTO events (sandbox_id, name, at, kind, from_state, to_state, operation_id, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    );
    for (const e of events) {
      insert.run(e.sandbox_id, e.name, e.at, e.kind, e.from, e.to, e.operation_id, e.reason);
    }
  }

  async put(record: SandboxRecord, expectedVersion: number | null, events: StoredEvent[]): Promise<boolean> {
    return this.run(() =>
      this.db
        .transaction(() => {
          const row = this.db.prepare("SELECT version FROM sandboxes WHERE name = ?").get(record.name) as
            | { version: number }
            | undefined;
          if (expectedVersion === null ? row !== undefined : row?.version !== expectedVersion) return false;
          this.db
            .prepare(
              `INSERT INTO sandboxes (name, id, version, state, record) VALUES (@name, @id, @version, @state, @record)
               ON CONFLICT(name) DO UPDATE SET id = @id, version = @version, state = @state, record = @record`,
            )
            .run({
              name: record.name,
              id: record.id,
              version: record.version,
              state: record.state,
              record: JSON.stringify(record),
            });
          this.insertEvents(events);
          return true;
        })
        .immediate(),
    );
  }

  async remove(name: string, expectedVersion: number): Promise<boolean> {
    return this.run(
      () =>
        this.db.prepare("DELETE FROM sandboxes WHERE name = ? AND version = ?").run(name, expectedVersion)
          .changes === 1,
    );
  }

  async appendEvents(events: StoredEvent[]): Promise<void> {
    this.run(() => this.db.transaction(() => this.insertEvents(events)).immediate());
  }

  async events(name: string, opts: { afterSeq?: number; limit?: number } = {}): Promise<StoredEvent[]> {
    return this.run(() => {
      const rows = this.db
        .prepare(
          `SELECT seq, sandbox_id, name, at, kind, from_state AS "from", to_state AS "to", operation_id, reason
           FROM events WHERE name = ? AND seq > ? ORDER BY seq LIMIT ?`,
        )
        .all(name, opts.afterSeq ?? 0, opts.limit ?? -1) as StoredEvent[];
      return rows;
    });
  }

  async getLease(name: string): Promise<Lease | null> {
    return this.run(() => {
      const row = this.db.prepare("SELECT lease FROM leases WHERE name = ?").get(name) as
        | { lease: string }
        | undefined;
      return row ? (JSON.parse(row.lease) as Lease) : null;
    });
  }

  async compareAndSwapLease(name: string, expectedId: string | null, next: Lease | null): Promise<boolean> {
    return this.run(() =>
      this.db
        .transaction(() => {
          const row = this.db.prepare("SELECT id FROM leases WHERE name = ?").get(name) as
            | { id: string }
            | undefined;
          if ((row?.id ?? null) !== expectedId) return false;
          if (next === null) {
            this.db.prepare("DELETE FROM leases WHERE name = ?").run(name);
          } else {
            this.db
              .prepare(
                "INSERT INTO leases (name, id, lease) VALUES (?, ?, ?) ON CONFLICT(name) DO UPDATE SET id = excluded.id, lease = excluded.lease",
              )
              .run(name, next.id, JSON.stringify(next));
          }
          return true;
        })
        .immediate(),
    );
  }
}
