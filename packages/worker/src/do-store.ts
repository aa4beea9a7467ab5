import type { Lease, SandboxRecord, StateStore, StoredEvent } from "@alpine/core";
import { normaliseRecord } from "@alpine/core/records";

/**
 * The orchestrator's StateStore on a Durable Object's SQLite storage: the same
 * three tables as the CLI's SQLite store. Every method runs synchronously
 * inside `transactionSync`, so a compare-and-swap is atomic and no other
 * request of this object interleaves with it.
 */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE IF NOT EXISTS sandboxes (
     name TEXT PRIMARY KEY, id TEXT NOT NULL, version INTEGER NOT NULL, state TEXT NOT NULL, record TEXT NOT NULL
   );
   CREATE TABLE IF NOT EXISTS events (
     seq INTEGER PRIMARY KEY AUTOINCREMENT, sandbox_id TEXT NOT NULL, name TEXT NOT NULL, at TEXT NOT NULL,
     kind TEXT NOT NULL, from_state TEXT, to_state TEXT, operation_id TEXT, reason TEXT NOT NULL
   );
   CREATE INDEX IF NOT EXISTS events_by_name ON events(name, seq);
   CREATE TABLE IF NOT EXISTS leases (name TEXT PRIMARY KEY, id TEXT NOT NULL, lease TEXT NOT NULL);
   CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);`,
];

export class DoStateStore implements StateStore {
  constructor(
    private readonly storage: DurableObjectStorage,
    /** Called after every committed record write (keeps the registry's list in step). */
    private readonly onWrite: (record: SandboxRecord) => Promise<void> = async () => {},
  ) {
    const sql = storage.sql;
    storage.transactionSync(() => {
      sql.exec("CREATE TABLE IF NOT EXISTS schema_version (v INTEGER NOT NULL)");
      const row = sql.exec<{ v: number }>("SELECT v FROM schema_version").toArray()[0];
      const current = row?.v ?? 0;
      for (let i = current; i < MIGRATIONS.length; i++) sql.exec(MIGRATIONS[i]!);
      if (!row) sql.exec("INSERT INTO schema_version (v) VALUES (?)", MIGRATIONS.length);
      else if (current < MIGRATIONS.length) sql.exec("UPDATE schema_version SET v = ?", MIGRATIONS.length);
    });
  }

  private get sql() {
    return this.storage.sql;
  }

  async get(name: string): Promise<SandboxRecord | null> {
    const row = this.sql
      .exec<{ record: string }>("SELECT record FROM sandboxes WHERE name = ?", name)
      .toArray()[0];
    return row ? normaliseRecord(JSON.parse(row.record)) : null;
  }

  async list(): Promise<SandboxRecord[]> {
    return this.sql
      .exec<{ record: string }>("SELECT record FROM sandboxes ORDER BY name")
      .toArray()
      .map((r) => normaliseRecord(JSON.parse(r.record)));
  }

  private insertEvents(events: StoredEvent[]): void {
    for (const e of events) {
      this.sql.exec(
        "INSERT INTO events (sandbox_id, name, at, kind, from_state, to_state, operation_id, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        e.sandbox_id,
        e.name,
        e.at,
        e.kind,
        e.from,
        e.to,
        e.operation_id,
        e.reason,
      );
    }
  }

  async put(given: SandboxRecord, expectedVersion: number | null, events: StoredEvent[]): Promise<boolean> {
    // The owner the object recorded at first launch (sandbox-object.ts) goes into every write of the
    // record, which core's operations build without knowing who asked.
    const owner = this.getKv("owner");
    const record = owner && !given.owner ? { ...given, owner } : given;
    const ok = this.storage.transactionSync(() => {
      const row = this.sql
        .exec<{ version: number }>("SELECT version FROM sandboxes WHERE name = ?", record.name)
        .toArray()[0];
      if (expectedVersion === null ? row !== undefined : row?.version !== expectedVersion) return false;
      this.sql.exec(
        `INSERT INTO sandboxes (name, id, version, state, record) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT(name) DO UPDATE SET id = excluded.id, version = excluded.version, state = excluded.state, record = excluded.record`,
        record.name,
        record.id,
        record.version,
        record.state,
        JSON.stringify(record),
      );
      this.insertEvents(events);
      return true;
    });
    if (ok) await this.onWrite(record);
    return ok;
  }

  async remove(name: string, expectedVersion: number): Promise<boolean> {
    const cursor = this.sql.exec(
      "DELETE FROM sandboxes WHERE name = ? AND version = ?",
      name,
      expectedVersion,
    );
    return cursor.rowsWritten === 1;
  }

  async appendEvents(events: StoredEvent[]): Promise<void> {
    this.storage.transactionSync(() => this.insertEvents(events));
  }

  async events(name: string, opts: { afterSeq?: number; limit?: number } = {}): Promise<StoredEvent[]> {
    return this.sql
      .exec<Record<string, SqlStorageValue>>(
        `SELECT seq, sandbox_id, name, at, kind, from_state AS "from", to_state AS "to", operation_id, reason
         FROM events WHERE name = ? AND seq > ? ORDER BY seq LIMIT ?`,
        name,
        opts.afterSeq ?? 0,
        opts.limit ?? -1,
      )
      .toArray() as unknown as StoredEvent[];
  }

  async getLease(name: string): Promise<Lease | null> {
    const row = this.sql
      .exec<{ lease: string }>("SELECT lease FROM leases WHERE name = ?", name)
      .toArray()[0];
    return row ? (JSON.parse(row.lease) as Lease) : null;
  }

  async compareAndSwapLease(name: string, expectedId: string | null, next: Lease | null): Promise<boolean> {
    return this.storage.transactionSync(() => {
      const row = this.sql.exec<{ id: string }>("SELECT id FROM leases WHERE name = ?", name).toArray()[0];
      if ((row?.id ?? null) !== expectedId) return false;
      if (next === null) this.sql.exec("DELETE FROM leases WHERE name = ?", name);
      else
        this.sql.exec(
          "INSERT INTO leases (name, id, lease) VALUES (?, ?, ?) ON CONFLICT(name) DO UPDATE SET id = excluded.id, lease = excluded.lease",
          name,
          next.id,
          JSON.stringify(next),
        );
      return true;
    });
  }

  /** A small key/value table for the object's own settings (sealed config, alarm bookkeeping). */
  getKv(key: string): string | null {
    const row = this.sql.exec<{ value: string }>("SELECT value FROM kv WHERE key = ?", key).toArray()[0];
    return row?.value ?? null;
  }

  setKv(key: string, value: string | null): void {
    if (value === null) this.sql.exec("DELETE FROM kv WHERE key = ?", key);
    else
      this.sql.exec(
        "INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        key,
        value,
      );
  }
}
