import type { Lease, SandboxRecord, StateStore, StoredEvent } from "../../src/index.ts";

/**
 * An in-memory StateStore with the SQLite store's semantics: record writes compare-and-swap on
 * `version` (null: must not exist) and append their events in the same step; leases are
 * compare-and-swapped on their id. Values are copied in and out, as a real store serialises them.
 */
export class MemoryStateStore implements StateStore {
  readonly records = new Map<string, SandboxRecord>();
  readonly leases = new Map<string, Lease>();
  readonly log: StoredEvent[] = [];
  /** Called before every put; a test can write meanwhile, as a concurrent command would. */
  beforePut: ((record: SandboxRecord) => void | Promise<void>) | null = null;
  private seq = 0;

  async get(name: string): Promise<SandboxRecord | null> {
    const record = this.records.get(name);
    return record ? structuredClone(record) : null;
  }

  async list(): Promise<SandboxRecord[]> {
    return [...this.records.values()].map((r) => structuredClone(r));
  }

  async put(record: SandboxRecord, expectedVersion: number | null, events: StoredEvent[]): Promise<boolean> {
    await this.beforePut?.(record);
    const current = this.records.get(record.name);
    if (expectedVersion === null ? current !== undefined : current?.version !== expectedVersion) return false;
    this.records.set(record.name, structuredClone(record));
    await this.appendEvents(events);
    return true;
  }

  async remove(name: string, expectedVersion: number): Promise<boolean> {
    if (this.records.get(name)?.version !== expectedVersion) return false;
    this.records.delete(name);
    return true;
  }

  async appendEvents(events: StoredEvent[]): Promise<void> {
    for (const e of events) this.log.push({ ...structuredClone(e), seq: ++this.seq });
  }

  async events(name: string, opts: { afterSeq?: number; limit?: number } = {}): Promise<StoredEvent[]> {
    const after = opts.afterSeq ?? 0;
    const matching = this.log.filter((e) => e.name === name && (e.seq ?? 0) > after);
    return opts.limit === undefined ? matching : matching.slice(0, opts.limit);
  }

  async getLease(name: string): Promise<Lease | null> {
    const lease = this.leases.get(name);
    return lease ? { ...lease } : null;
  }

  async compareAndSwapLease(name: string, expectedId: string | null, next: Lease | null): Promise<boolean> {
    if ((this.leases.get(name)?.id ?? null) !== expectedId) return false;
    if (next) this.leases.set(name, { ...next });
    else this.leases.delete(name);
    return true;
  }

  /** The transitions of a sandbox, as "from→to", in order. */
  transitions(name: string): string[] {
    return this.log.filter((e) => e.name === name && e.kind === "transition").map((e) => `${e.from}→${e.to}`);
  }

  notes(name: string, kind: StoredEvent["kind"] = "note"): string[] {
    return this.log.filter((e) => e.name === name && e.kind === kind).map((e) => e.reason);
  }
}
